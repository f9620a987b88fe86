//! The admin API request a plan form makes (`CreatePlan`, or `UpdatePlan` replacing every
//! field), built from the model's own `Throttle` and `Quota`: numbers that do not parse,
//! and values the model refuses, are caught here next to their field before anything is
//! sent. What the admin API still refuses shows by the field path it reports.

use std::collections::HashMap;

use gatehouse_model::{Protocol, Quota, QuotaPeriod, Throttle};
use uuid::Uuid;

use super::super::field_map::FieldMap;
use super::super::form::{Errors, Fields};
use super::super::model_rules;
use super::route_throttles::{route_throttles, TypedThrottles};
use crate::error::FieldError;
use crate::http::plans::{CreatePlan, StageRef, UpdatePlan};
use crate::repo::plans::PlanView;

pub(super) const NOT_SAVED: &str = "The plan was not saved: check the fields below.";

/// The form shows a throttle and a quota as their parts: what the admin API refuses of
/// one as a whole shows by its first part.
const FIELD_MAP: FieldMap =
    FieldMap::new(&[("throttle", "throttle.rate"), ("quota", "quota.limit")]);

/// A whole number typed by a person: `10,000` and `10_000` read as `10000`.
pub(super) fn whole_number(raw: &str) -> Option<i64> {
    raw.chars()
        .filter(|c| !matches!(c, ',' | '_'))
        .collect::<String>()
        .parse()
        .ok()
}

/// One number of a throttle or quota that is being filled in, or `None` with a message
/// for its field when it is empty or does not parse.
pub(super) fn read_number<T>(
    fields: &Fields,
    field: &str,
    parse: impl FnOnce(&str) -> Option<T>,
    (missing, unreadable): (&str, &str),
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let raw = fields.trimmed(field);
    let message = if raw.is_empty() {
        missing
    } else {
        match parse(raw) {
            Some(value) => return Some(value),
            None => unreadable,
        }
    };
    errors.push(FieldError::new(field, message));
    None
}

/// The throttle to send (`None` for none), from `throttle.rate` and `throttle.burst`.
fn throttle(fields: &Fields, errors: &mut Vec<FieldError>) -> Option<Throttle> {
    if fields.trimmed("throttle.rate").is_empty() && fields.trimmed("throttle.burst").is_empty() {
        return None;
    }
    let rate = read_number(
        fields,
        "throttle.rate",
        |raw| raw.parse::<f64>().ok().filter(|r| r.is_finite()),
        (
            "enter a rate too, or leave both empty for no throttle",
            "must be a number of requests per second, such as 100 or 0.5",
        ),
        errors,
    );
    let burst = read_number(
        fields,
        "throttle.burst",
        whole_number,
        (
            "enter a burst too, or leave both empty for no throttle",
            "must be a whole number of requests, such as 200",
        ),
        errors,
    );
    model_rules::throttle(rate?, burst?)
        .map_err(|parts| {
            for (part, message) in parts {
                errors.push(FieldError::new(
                    format!("throttle.{}", part.name()),
                    message,
                ));
            }
        })
        .ok()
}

/// The quota to send (`None` for none), from `quota.limit` and `quota.period`.
fn quota(fields: &Fields, errors: &mut Vec<FieldError>) -> Option<Quota> {
    let period = fields.trimmed("quota.period");
    if fields.trimmed("quota.limit").is_empty() && period.is_empty() {
        return None;
    }
    let limit = read_number(
        fields,
        "quota.limit",
        whole_number,
        (
            "enter a limit too, or choose “No quota”",
            "must be a whole number of requests, such as 10000",
        ),
        errors,
    );
    let period = QuotaPeriod::parse(period);
    if period.is_none() {
        errors.push(FieldError::new(
            "quota.period",
            "choose a period: per day, week or month",
        ));
    }
    model_rules::quota(limit?, period?)
        .map_err(|e| errors.push(FieldError::new("quota.limit", e)))
        .ok()
}

/// The ticked API stages, each with the route throttles typed for it, or (for a form
/// without route throttle rows) those `current` has.
fn stages(
    fields: &Fields,
    current: Option<&PlanView>,
    typed: Option<&TypedThrottles>,
    errors: &mut Vec<FieldError>,
) -> Vec<StageRef> {
    let mut refs = Vec::new();
    for value in fields.all("stages") {
        let parsed = value
            .split_once(':')
            .and_then(|(api, stage)| Some((Uuid::parse_str(api).ok()?, stage)));
        let Some((api_id, stage)) = parsed else {
            errors.push(FieldError::new(
                "stages",
                "a choice was not understood; reload the page and try again",
            ));
            continue;
        };
        let route_throttles = match typed {
            Some(typed) => typed.by_stage.get(value).cloned().unwrap_or_default(),
            None => current
                .and_then(|plan| {
                    plan.stages
                        .iter()
                        .find(|s| s.api_id == api_id && s.stage.as_str() == stage)
                })
                .map(|s| s.route_throttles.clone())
                .unwrap_or_default(),
        };
        refs.push(StageRef {
            api_id,
            stage: stage.to_owned(),
            route_throttles,
        });
    }
    refs
}

/// The request of a create, or what to fix before sending it. `current` is the plan being
/// edited; `protocols` are the APIs', by id, to check route keys as the admin API will.
pub(super) fn plan_body(
    fields: &Fields,
    current: Option<&PlanView>,
    protocols: &HashMap<Uuid, Protocol>,
) -> Result<CreatePlan, Errors> {
    let mut errors = Vec::new();
    let throttle = throttle(fields, &mut errors);
    let quota = quota(fields, &mut errors);
    let typed = route_throttles(fields, protocols, &mut errors);
    let stages = stages(fields, current, typed.as_ref(), &mut errors);
    if !errors.is_empty() {
        return Err(Errors::new(NOT_SAVED, errors));
    }
    Ok(CreatePlan {
        name: fields.trimmed("name").to_owned(),
        description: fields.trimmed("description").to_owned(),
        throttle,
        quota,
        stages,
    })
}

/// The same request as a full update: every field replaced, `None`s cleared.
pub(super) fn update_body(plan: CreatePlan) -> UpdatePlan {
    UpdatePlan {
        name: Some(plan.name),
        description: Some(plan.description),
        throttle: Some(plan.throttle),
        quota: Some(plan.quota),
        stages: Some(plan.stages),
    }
}

/// The admin API's errors about a plan, next to the form's fields.
pub(super) fn placed(errors: Errors) -> Errors {
    let placed = FIELD_MAP.place(errors);
    let summary = match placed.summary {
        Some(summary) if summary != "Invalid request" => summary,
        _ => NOT_SAVED.to_owned(),
    };
    Errors::new(summary, placed.fields)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn form(body: &str) -> Fields {
        Fields::parse(body.as_bytes()).expect("form")
    }

    /// The JSON the dashboard sends for `fields`.
    fn sent(fields: &Fields, protocols: &HashMap<Uuid, Protocol>) -> Value {
        let body = plan_body(fields, None, protocols).expect("valid");
        serde_json::to_value(body).expect("serializable")
    }

    #[test]
    fn empty_throttle_and_quota_fields_mean_none() {
        let body = sent(&form("name=gold"), &HashMap::new());
        assert_eq!(body.get("throttle"), None);
        assert_eq!(body.get("quota"), None);
        assert_eq!(body["stages"], json!([]));
        let update =
            update_body(plan_body(&form("name=gold"), None, &HashMap::new()).expect("valid"));
        let update = serde_json::to_value(update).expect("serializable");
        assert_eq!(update["throttle"], Value::Null);
        assert_eq!(update["quota"], Value::Null);
    }

    #[test]
    fn numbers_that_do_not_parse_are_refused_by_field() {
        let errors = plan_body(
            &form(
                "name=gold&throttle.rate=abc&throttle.burst=1.5&quota.limit=lots&quota.period=DAY",
            ),
            None,
            &HashMap::new(),
        )
        .expect_err("invalid");
        for field in ["throttle.rate", "throttle.burst", "quota.limit"] {
            assert!(errors.get(field).is_some(), "{field}");
        }
        assert!(errors.get("quota.period").is_none());
    }

    #[test]
    fn half_a_throttle_or_quota_asks_for_the_other_half() {
        let errors = plan_body(
            &form("name=gold&throttle.rate=5&quota.period=WEEK"),
            None,
            &HashMap::new(),
        )
        .expect_err("invalid");
        assert!(errors.get("throttle.burst").is_some());
        assert!(errors.get("quota.limit").is_some());
    }

    #[test]
    fn numbers_the_model_refuses_are_named_by_their_part() {
        let errors = plan_body(
            &form("name=gold&throttle.rate=-1&throttle.burst=20&quota.limit=0&quota.period=DAY"),
            None,
            &HashMap::new(),
        )
        .expect_err("invalid");
        assert!(errors
            .get("throttle.rate")
            .is_some_and(|m| m.starts_with("rate must be above 0")));
        assert!(errors.get("throttle.burst").is_none());
        assert!(errors.get("quota.limit").is_some());
    }

    #[test]
    fn typed_numbers_and_stages_become_the_api_body() {
        let api = Uuid::now_v7();
        let body = sent(
            &form(&format!(
                "name=gold&throttle.rate=0.5&throttle.burst=10&quota.limit=10%2C000&quota.period=MONTH&stages={api}%3Aprod"
            )),
            &HashMap::new(),
        );
        assert_eq!(body["throttle"], json!({"rate": 0.5, "burst": 10}));
        assert_eq!(body["quota"], json!({"limit": 10000, "period": "MONTH"}));
        assert_eq!(body["stages"][0]["api_id"], json!(api));
        assert_eq!(body["stages"][0]["stage"], "prod");
    }

    #[test]
    fn route_throttle_rows_become_each_stages_map_leaving_out_empty_and_removed_rows() {
        let api = Uuid::now_v7();
        let stage = format!("{api}%3Aprod");
        let body = sent(
            &form(&format!(
                "name=gold&stages={stage}&rt.rows=3\
                 &rt.0.stage={stage}&rt.0.route=GET+%2Fa&rt.0.rate=1&rt.0.burst=2\
                 &rt.1.stage={stage}&rt.1.route=GET+%2Fb&rt.1.rate=1&rt.1.burst=2&rt.1.remove=on\
                 &rt.2.stage={stage}&rt.2.route=&rt.2.rate=&rt.2.burst="
            )),
            &HashMap::new(),
        );
        assert_eq!(
            body["stages"][0]["route_throttles"],
            json!({"GET /a": {"rate": 1.0, "burst": 2}})
        );
        // Without rows, a form keeps the plan's own (none for a new plan).
        let old_form = sent(&form(&format!("name=gold&stages={stage}")), &HashMap::new());
        assert_eq!(old_form["stages"][0]["route_throttles"], json!({}));
    }

    #[test]
    fn a_route_key_the_api_could_not_have_is_refused_next_to_its_row() {
        let api = Uuid::now_v7();
        let stage = format!("{api}%3Aprod");
        let errors = plan_body(
            &form(&format!(
                "name=gold&stages={stage}&rt.rows=2\
                 &rt.0.stage={stage}&rt.0.route=GET+%2Fa&rt.0.rate=1&rt.0.burst=2\
                 &rt.1.stage={stage}&rt.1.route=FETCH+x&rt.1.rate=1&rt.1.burst=2"
            )),
            None,
            &HashMap::from([(api, Protocol::Http)]),
        )
        .expect_err("invalid");
        assert!(errors
            .get("rt.1.route")
            .is_some_and(|m| m.starts_with("`FETCH x`: ")));
        assert_eq!(errors.get("rt.0.route"), None);
    }

    #[test]
    fn the_apis_errors_about_a_whole_throttle_show_by_its_first_part() {
        let placed = placed(Errors::new(
            "Invalid request",
            vec![
                FieldError::new("throttle", "burst / rate must be at most 1e9 seconds"),
                FieldError::new("quota", "limit must be above 0"),
                FieldError::new("stages[0].route_throttles", "`FETCH x`: unknown method"),
            ],
        ));
        assert_eq!(placed.summary.as_deref(), Some(NOT_SAVED));
        assert!(placed.get("throttle.rate").is_some());
        assert!(placed.get("quota.limit").is_some());
        assert!(placed.get("stages").is_some());
    }
}
