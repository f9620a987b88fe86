//! What changed between two deployments: their routes matched by route key, and each
//! difference as a row of the deployment page's changes table.

use std::collections::BTreeMap;

use gatehouse_model::DeployedRoute;

use super::super::routes::summary;

/// How one route differs between two deployments, matched by route key.
#[derive(Debug, PartialEq)]
pub(super) enum Change<'a> {
    Added(&'a DeployedRoute),
    Removed(&'a DeployedRoute),
    /// Same key, but another integration or API key requirement.
    Changed {
        old: &'a DeployedRoute,
        new: &'a DeployedRoute,
    },
}

/// The changes from `old` to `new`, by route key in order; routes alike in both are left out.
pub(super) fn diff<'a>(old: &'a [DeployedRoute], new: &'a [DeployedRoute]) -> Vec<Change<'a>> {
    let mut by_key: BTreeMap<String, (Option<&DeployedRoute>, Option<&DeployedRoute>)> =
        BTreeMap::new();
    for route in old {
        by_key.entry(route.route_key.to_string()).or_default().0 = Some(route);
    }
    for route in new {
        by_key.entry(route.route_key.to_string()).or_default().1 = Some(route);
    }
    by_key
        .into_values()
        .filter_map(|pair| match pair {
            (None, Some(new)) => Some(Change::Added(new)),
            (Some(old), None) => Some(Change::Removed(old)),
            (Some(old), Some(new))
                if old.integration != new.integration
                    || old.api_key_required != new.api_key_required =>
            {
                Some(Change::Changed { old, new })
            }
            _ => None,
        })
        .collect()
}

/// A route as a diff cell describes it.
fn describe(route: &DeployedRoute) -> String {
    if route.api_key_required {
        format!("{} · API key required", summary(&route.integration))
    } else {
        summary(&route.integration)
    }
}

/// One line of the changes table.
pub(super) struct DiffRow {
    pub(super) route_key: String,
    /// `added`, `removed` or `changed`: the label and the cells' class.
    pub(super) kind: &'static str,
    pub(super) before: String,
    pub(super) after: String,
}

impl DiffRow {
    pub(super) fn new(change: &Change<'_>) -> DiffRow {
        match change {
            Change::Added(new) => DiffRow {
                route_key: new.route_key.to_string(),
                kind: "added",
                before: String::new(),
                after: describe(new),
            },
            Change::Removed(old) => DiffRow {
                route_key: old.route_key.to_string(),
                kind: "removed",
                before: describe(old),
                after: String::new(),
            },
            Change::Changed { old, new } => DiffRow {
                route_key: new.route_key.to_string(),
                kind: "changed",
                before: describe(old),
                after: describe(new),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use uuid::Uuid;

    fn route(key: &str, integration: Value, api_key_required: bool) -> DeployedRoute {
        serde_json::from_value(json!({
            "id": Uuid::now_v7(),
            "route_key": key,
            "api_key_required": api_key_required,
            "integration": integration,
        }))
        .expect("route")
    }

    fn mock(status: u16) -> Value {
        json!({"type": "MOCK", "status": status})
    }

    fn kinds(changes: &[Change<'_>]) -> Vec<(String, &'static str)> {
        changes
            .iter()
            .map(|c| {
                let row = DiffRow::new(c);
                (row.route_key, row.kind)
            })
            .collect()
    }

    #[test]
    fn routes_are_matched_by_key_and_sorted() {
        let old = [
            route("GET /a", mock(200), false),
            route("GET /gone", mock(200), false),
            route("GET /same", mock(200), false),
        ];
        let new = [
            route("POST /new", mock(201), false),
            route("GET /same", mock(200), false),
            route("GET /a", mock(500), false),
        ];
        assert_eq!(
            kinds(&diff(&old, &new)),
            [
                ("GET /a".to_owned(), "changed"),
                ("GET /gone".to_owned(), "removed"),
                ("POST /new".to_owned(), "added"),
            ]
        );
    }

    #[test]
    fn a_new_api_key_requirement_is_a_change_and_shows_old_and_new() {
        let old = [route("GET /a", mock(200), false)];
        let new = [route("GET /a", mock(200), true)];
        let changes = diff(&old, &new);
        let row = DiffRow::new(&changes[0]);
        assert_eq!(row.kind, "changed");
        assert_eq!(row.before, "MOCK 200");
        assert_eq!(row.after, "MOCK 200 · API key required");
    }

    #[test]
    fn a_route_recreated_alike_under_another_id_is_no_change() {
        let old = [route("GET /a", mock(200), false)];
        let new = [route("GET /a", mock(200), false)];
        assert!(diff(&old, &new).is_empty());
        assert!(diff(&[], &[]).is_empty());
    }

    #[test]
    fn against_nothing_every_route_is_added() {
        let new = [
            route("$default", mock(404), false),
            route("GET /b", mock(200), false),
        ];
        let changes = diff(&[], &new);
        assert!(changes.iter().all(|c| matches!(c, Change::Added(_))));
        assert_eq!(changes.len(), 2);
    }
}
