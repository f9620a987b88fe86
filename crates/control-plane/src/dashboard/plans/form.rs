//! The plan form, as shown: the stages that can be covered, the quota periods, and the
//! route throttle rows, filled from what was typed or from the plan as stored.

use std::collections::BTreeSet;

use super::super::form::{Errors, Fields};
use super::super::render::Failure;
use crate::repo::plans::PlanView;
use crate::repo::{apis, deployments, stages};
use crate::AppState;

/// A checkbox of the stages fieldset: one (API, stage) pair that exists.
pub(super) struct StageChoice {
    /// `api_id:stage`.
    pub(super) value: String,
    pub(super) api_name: String,
    pub(super) stage: String,
    pub(super) checked: bool,
}

/// An option of the quota period select.
pub(super) struct PeriodChoice {
    pub(super) value: &'static str,
    pub(super) label: &'static str,
    pub(super) selected: bool,
}

/// One row of the route throttles fieldset, as typed (or as stored).
pub(super) struct ThrottleRow {
    pub(super) index: usize,
    /// `api_id:stage`, or "" for none chosen.
    pub(super) stage: String,
    pub(super) route: String,
    pub(super) rate: String,
    pub(super) burst: String,
    pub(super) remove: bool,
}

/// What the form partial (`plan_form.html`) shows.
pub(super) struct PlanForm {
    pub(super) action: String,
    pub(super) submit: &'static str,
    pub(super) fields: Fields,
    pub(super) errors: Errors,
    pub(super) choices: Vec<StageChoice>,
    pub(super) periods: Vec<PeriodChoice>,
    pub(super) throttles: Vec<ThrottleRow>,
    /// The route keys the stages serve, offered while typing one.
    pub(super) route_keys: BTreeSet<String>,
}

impl PlanForm {
    /// The name of field `part` of route throttle row `index`.
    pub(super) fn row_field(&self, index: &usize, part: &str) -> String {
        row_field(*index, part)
    }

    /// The error for field `part` of route throttle row `index`.
    pub(super) fn row_error(&self, index: &usize, part: &str) -> Option<&str> {
        self.errors.get(&row_field(*index, part))
    }
}

/// Most route throttle rows a form is read for.
const MAX_THROTTLE_ROWS: usize = 1000;

/// `rt.{index}.{part}`.
pub(super) fn row_field(index: usize, part: &str) -> String {
    format!("rt.{index}.{part}")
}

/// How many route throttle rows the form showed, or `None` for a form without them.
pub(super) fn row_count(fields: &Fields) -> Option<usize> {
    fields
        .trimmed("rt.rows")
        .parse::<usize>()
        .ok()
        .map(|n| n.min(MAX_THROTTLE_ROWS))
}

impl PlanForm {
    pub(super) async fn new(
        state: &AppState,
        action: String,
        submit: &'static str,
        fields: Fields,
        errors: Errors,
    ) -> Result<PlanForm, Failure> {
        let ticked: Vec<&str> = fields.all("stages").collect();
        let mut choices = Vec::new();
        let route_keys: BTreeSet<String> = deployments::served_route_keys(&state.pool)
            .await?
            .into_iter()
            .collect();
        for api in apis::list(&state.pool).await? {
            for stage in stages::list(&state.pool, api.id).await? {
                let value = format!("{}:{}", api.id, stage.name);
                choices.push(StageChoice {
                    checked: ticked.contains(&value.as_str()),
                    value,
                    api_name: api.name.clone(),
                    stage: stage.name,
                });
            }
        }
        let period = fields.get("quota.period");
        let periods = [
            ("", "No quota"),
            ("DAY", "per day"),
            ("WEEK", "per week"),
            ("MONTH", "per month"),
        ]
        .into_iter()
        .map(|(value, label)| PeriodChoice {
            value,
            label,
            selected: value == period,
        })
        .collect();
        // With one stage covered, an empty row offers it.
        let only_stage = match ticked.as_slice() {
            [only] => *only,
            _ => "",
        };
        // A form without rows yet (a new plan) shows one empty row.
        let throttles = (0..row_count(&fields).unwrap_or(1))
            .map(|index| {
                let mut row = ThrottleRow {
                    index,
                    stage: fields.trimmed(&row_field(index, "stage")).to_owned(),
                    route: fields.get(&row_field(index, "route")).to_owned(),
                    rate: fields.get(&row_field(index, "rate")).to_owned(),
                    burst: fields.get(&row_field(index, "burst")).to_owned(),
                    remove: fields.checked(&row_field(index, "remove")),
                };
                let empty = [&row.stage, &row.route, &row.rate, &row.burst]
                    .iter()
                    .all(|v| v.trim().is_empty());
                if empty {
                    only_stage.clone_into(&mut row.stage);
                }
                row
            })
            .collect();
        Ok(PlanForm {
            action,
            submit,
            fields,
            errors,
            choices,
            periods,
            throttles,
            route_keys,
        })
    }
}

/// The form's fields for an existing plan, as if the user had typed them.
pub(super) fn fields_of(plan: &PlanView) -> Fields {
    let mut pairs = vec![
        ("name", plan.name.clone()),
        ("description", plan.description.clone()),
    ];
    if let Some(t) = plan.throttle {
        pairs.push(("throttle.rate", t.rate.to_string()));
        pairs.push(("throttle.burst", t.burst.to_string()));
    }
    if let Some(q) = plan.quota {
        pairs.push(("quota.limit", q.limit.to_string()));
        pairs.push(("quota.period", q.period.as_str().to_owned()));
    }
    for s in &plan.stages {
        pairs.push(("stages", format!("{}:{}", s.api_id, s.stage)));
    }
    let mut rows: Vec<(String, String)> = Vec::new();
    for s in &plan.stages {
        for (route, throttle) in &s.route_throttles {
            let index = rows.len() / 4;
            rows.push((
                row_field(index, "stage"),
                format!("{}:{}", s.api_id, s.stage),
            ));
            rows.push((row_field(index, "route"), route.clone()));
            rows.push((row_field(index, "rate"), throttle.rate.to_string()));
            rows.push((row_field(index, "burst"), throttle.burst.to_string()));
        }
    }
    // The stored throttles, then an empty row to add one.
    let count = rows.len() / 4 + 1;
    let mut pairs: Vec<(&str, String)> = pairs;
    pairs.push(("rt.rows", count.to_string()));
    pairs.extend(
        rows.iter()
            .map(|(name, value)| (name.as_str(), value.clone())),
    );
    serde_urlencoded::to_string(&pairs)
        .ok()
        .and_then(|body| Fields::parse(body.as_bytes()))
        .unwrap_or_default()
}
