//! What changed between two deployments: their routes matched by route key, and each
//! difference as a row of the deployment page's changes table. A route differs when its
//! integration, its API key requirement or its authorization (type, authorizer, scopes)
//! does.

use std::collections::{BTreeMap, HashMap};

use gatehouse_model::{DeployedAuthorizer, DeployedRoute};
use uuid::Uuid;

use super::super::routes::{authorization_summary, summary};

/// How one route differs between two deployments, matched by route key.
#[derive(Debug, PartialEq)]
pub(super) enum Change<'a> {
    Added(&'a DeployedRoute),
    Removed(&'a DeployedRoute),
    /// Same key, but another integration, API key requirement or authorization.
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
                    || old.api_key_required != new.api_key_required
                    || old.authorization != new.authorization =>
            {
                Some(Change::Changed { old, new })
            }
            _ => None,
        })
        .collect()
}

/// A deployment's authorizer names by id, for the routes that use them.
pub(super) fn authorizer_names(authorizers: &[DeployedAuthorizer]) -> HashMap<Uuid, String> {
    authorizers
        .iter()
        .map(|a| (a.id, a.spec.name.clone()))
        .collect()
}

/// A route as a diff cell describes it; `names` names its deployment's authorizers.
fn describe(route: &DeployedRoute, names: &HashMap<Uuid, String>) -> String {
    let mut text = summary(&route.integration);
    if route.api_key_required {
        text.push_str(" · API key required");
    }
    let authorization = authorization_summary(&route.authorization, |id| names.get(&id).cloned());
    if !authorization.is_empty() {
        text.push_str(" · ");
        text.push_str(&authorization);
    }
    text
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
    /// The row of `change`; `old_names` and `new_names` name each side's authorizers.
    pub(super) fn new(
        change: &Change<'_>,
        old_names: &HashMap<Uuid, String>,
        new_names: &HashMap<Uuid, String>,
    ) -> DiffRow {
        match change {
            Change::Added(new) => DiffRow {
                route_key: new.route_key.to_string(),
                kind: "added",
                before: String::new(),
                after: describe(new, new_names),
            },
            Change::Removed(old) => DiffRow {
                route_key: old.route_key.to_string(),
                kind: "removed",
                before: describe(old, old_names),
                after: String::new(),
            },
            Change::Changed { old, new } => DiffRow {
                route_key: new.route_key.to_string(),
                kind: "changed",
                before: describe(old, old_names),
                after: describe(new, new_names),
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
                let row = DiffRow::new(c, &HashMap::new(), &HashMap::new());
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
        let row = DiffRow::new(&changes[0], &HashMap::new(), &HashMap::new());
        assert_eq!(row.kind, "changed");
        assert_eq!(row.before, "MOCK 200");
        assert_eq!(row.after, "MOCK 200 · API key required");
    }

    fn secured(key: &str, authorizer: Uuid, scopes: &[&str]) -> DeployedRoute {
        serde_json::from_value(json!({
            "id": Uuid::now_v7(),
            "route_key": key,
            "authorization_type": "JWT",
            "authorizer_id": authorizer,
            "authorization_scopes": scopes,
            "integration": mock(200),
        }))
        .expect("route")
    }

    #[test]
    fn a_change_of_authorization_alone_is_a_change_and_names_the_authorizers() {
        let (idp, other) = (Uuid::now_v7(), Uuid::now_v7());
        let names: HashMap<Uuid, String> =
            [(idp, "idp".to_owned()), (other, "other".to_owned())].into();
        let open = [route("GET /a", mock(200), false)];
        let read = [secured("GET /a", idp, &["read"])];
        let write = [secured("GET /a", idp, &["write"])];
        let elsewhere = [secured("GET /a", other, &["read"])];
        let changes = diff(&open, &read);
        let row = DiffRow::new(&changes[0], &HashMap::new(), &names);
        assert_eq!(row.kind, "changed");
        assert_eq!(row.before, "MOCK 200");
        assert_eq!(row.after, "MOCK 200 · JWT idp (read)");
        let row = DiffRow::new(&diff(&read, &write)[0], &names, &names);
        assert_eq!(
            (row.before.as_str(), row.after.as_str()),
            ("MOCK 200 · JWT idp (read)", "MOCK 200 · JWT idp (write)")
        );
        assert_eq!(diff(&read, &elsewhere).len(), 1);
        assert!(diff(&read, &[secured("GET /a", idp, &["read"])]).is_empty());
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
