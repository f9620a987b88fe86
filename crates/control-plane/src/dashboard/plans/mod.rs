//! The usage plans pages: the list, the form that creates a plan, and each plan's page
//! with its details, its edit form (throttle, quota, stages covered and the throttles of
//! single routes on them), the keys attached and a way to attach more. Changes go through
//! the admin API's `/usage-plans`; numbers that do not parse are caught here, next to
//! their field, before anything is sent.
//!
//! Route throttles are rows of the form, `rt.{n}.stage`, `rt.{n}.route`, `rt.{n}.rate`,
//! `rt.{n}.burst` and `rt.{n}.remove`, with `rt.rows` saying how many the page showed: the
//! plan's own, then an empty one to add another. A form without `rt.rows` (a page from
//! before route throttles were editable) keeps the plan's route throttles as they are.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use gatehouse_model::{Quota, QuotaPeriod, Throttle};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::dispatch::{self, Refusal};
use super::form::{AdminPosted, Errors, Fields};
use super::keys::PlanLink;
use super::render::{self, grouped, when, Failure, Frame, PageResult, Section};
use super::session::SignedIn;
use crate::error::FieldError;
use crate::repo::plans::{self, PlanView};
use crate::repo::{apis, deployments, keys, stages};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plans", get(list))
        .route("/plans/new", get(new_form).post(create))
        .route("/plans/{plan_id}", get(show).post(save))
        .route("/plans/{plan_id}/keys", post(attach))
        .route("/plans/{plan_id}/keys/{key_id}/detach", post(detach))
        .route("/plans/{plan_id}/delete", post(delete))
}

// ---- How plans read ----

/// `100 requests/s, burst 200`, or `none`.
pub(super) fn throttle_text(throttle: Option<Throttle>) -> String {
    throttle.map_or_else(
        || "none".to_owned(),
        |t| {
            format!(
                "{} requests/s, burst {}",
                t.rate,
                grouped(u64::from(t.burst))
            )
        },
    )
}

/// `10,000 per day`, or `none`.
pub(super) fn quota_text(quota: Option<Quota>) -> String {
    quota.map_or_else(
        || "none".to_owned(),
        |q| {
            let period = match q.period {
                QuotaPeriod::Day => "day",
                QuotaPeriod::Week => "week",
                QuotaPeriod::Month => "month",
            };
            format!("{} per {period}", grouped(q.limit))
        },
    )
}

/// An API stage a plan covers, named for people.
struct CoveredStage {
    api_id: Uuid,
    api_name: String,
    stage: String,
    /// The routes of the stage with a throttle of their own in this plan, as
    /// (route key, throttle) text.
    route_throttles: Vec<(String, String)>,
}

fn covered(plan: &PlanView, api_names: &HashMap<Uuid, String>) -> Vec<CoveredStage> {
    plan.stages
        .iter()
        .map(|s| CoveredStage {
            api_id: s.api_id,
            api_name: api_names
                .get(&s.api_id)
                .cloned()
                .unwrap_or_else(|| s.api_id.to_string()),
            stage: s.stage.as_str().to_owned(),
            route_throttles: s
                .route_throttles
                .iter()
                .map(|(key, throttle)| (key.clone(), throttle_text(Some(*throttle))))
                .collect(),
        })
        .collect()
}

async fn api_names(state: &AppState) -> sqlx::Result<HashMap<Uuid, String>> {
    Ok(apis::list(&state.pool)
        .await?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect())
}

// ---- The list ----

struct PlanRow {
    id: Uuid,
    name: String,
    throttle: String,
    quota: String,
    stages: Vec<CoveredStage>,
    keys: String,
}

#[derive(Template)]
#[template(path = "plans.html")]
struct PlansPage {
    frame: Frame,
    plans: Vec<PlanRow>,
}

async fn list(user: SignedIn, State(state): State<AppState>) -> PageResult {
    let names = api_names(&state).await?;
    let mut conn = state.pool.acquire().await?;
    let all = plans::list(&mut conn).await?;
    let mut key_counts: HashMap<Uuid, u64> = HashMap::new();
    for (plan_id, _) in plans::memberships(&mut *conn).await? {
        *key_counts.entry(plan_id).or_default() += 1;
    }
    let rows = all
        .into_iter()
        .map(|plan| PlanRow {
            stages: covered(&plan, &names),
            throttle: throttle_text(plan.throttle),
            quota: quota_text(plan.quota),
            keys: grouped(key_counts.get(&plan.id).copied().unwrap_or(0)),
            id: plan.id,
            name: plan.name,
        })
        .collect();
    Ok(render::page(&PlansPage {
        frame: user.frame(Section::Plans),
        plans: rows,
    }))
}

// ---- The plan form ----

/// A checkbox of the stages fieldset: one (API, stage) pair that exists.
struct StageChoice {
    /// `api_id:stage`.
    value: String,
    api_name: String,
    stage: String,
    checked: bool,
}

/// An option of the quota period select.
struct PeriodChoice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

/// One row of the route throttles fieldset, as typed (or as stored).
struct ThrottleRow {
    index: usize,
    /// `api_id:stage`, or "" for none chosen.
    stage: String,
    route: String,
    rate: String,
    burst: String,
    remove: bool,
}

/// What the form partial (`plan_form.html`) shows.
struct PlanForm {
    action: String,
    submit: &'static str,
    fields: Fields,
    errors: Errors,
    choices: Vec<StageChoice>,
    periods: Vec<PeriodChoice>,
    throttles: Vec<ThrottleRow>,
    /// The route keys the stages serve, offered while typing one.
    route_keys: BTreeSet<String>,
}

impl PlanForm {
    /// The name of field `part` of route throttle row `index`.
    fn row_field(&self, index: &usize, part: &str) -> String {
        row_field(*index, part)
    }

    /// The error for field `part` of route throttle row `index`.
    fn row_error(&self, index: &usize, part: &str) -> Option<&str> {
        self.errors.get(&row_field(*index, part))
    }
}

/// Most route throttle rows a form is read for.
const MAX_THROTTLE_ROWS: usize = 1000;

/// `rt.{index}.{part}`.
fn row_field(index: usize, part: &str) -> String {
    format!("rt.{index}.{part}")
}

/// How many route throttle rows the form showed, or `None` for a form without them.
fn row_count(fields: &Fields) -> Option<usize> {
    fields
        .trimmed("rt.rows")
        .parse::<usize>()
        .ok()
        .map(|n| n.min(MAX_THROTTLE_ROWS))
}

impl PlanForm {
    async fn new(
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
fn fields_of(plan: &PlanView) -> Fields {
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

/// A whole number typed by a person: `10,000` and `10_000` read as `10000`.
fn whole_number(raw: &str) -> Option<i64> {
    raw.chars()
        .filter(|c| !matches!(c, ',' | '_'))
        .collect::<String>()
        .parse()
        .ok()
}

/// One number of a throttle or quota that is being filled in, or `None` with a message
/// for its field when it is empty or does not parse.
fn read_number<T>(
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

/// The throttle to send (`null` for none), from `throttle.rate` and `throttle.burst`.
fn throttle_body(fields: &Fields, errors: &mut Vec<FieldError>) -> Value {
    if fields.trimmed("throttle.rate").is_empty() && fields.trimmed("throttle.burst").is_empty() {
        return Value::Null;
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
    json!({ "rate": rate, "burst": burst })
}

/// The quota to send (`null` for none), from `quota.limit` and `quota.period`.
fn quota_body(fields: &Fields, errors: &mut Vec<FieldError>) -> Value {
    let period = fields.trimmed("quota.period");
    if fields.trimmed("quota.limit").is_empty() && period.is_empty() {
        return Value::Null;
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
    json!({ "limit": limit, "period": period.map(QuotaPeriod::as_str) })
}

/// The route throttles typed in the form's rows, by stage (`api_id:stage`) and route key.
#[derive(Debug, Default)]
struct TypedThrottles {
    by_stage: BTreeMap<String, BTreeMap<String, Value>>,
    /// Which row each throttle came from: (stage, route key, row index).
    rows: Vec<(String, String, usize)>,
}

/// Reads the route throttle rows, or `None` for a form without them. An empty row, or one
/// ticked for removal, is left out; what is wrong with a row goes next to its field.
fn route_throttles(fields: &Fields, errors: &mut Vec<FieldError>) -> Option<TypedThrottles> {
    let count = row_count(fields)?;
    let ticked: Vec<&str> = fields.all("stages").collect();
    let mut typed = TypedThrottles::default();
    for index in 0..count {
        let field = |part: &str| row_field(index, part);
        let stage = fields.trimmed(&field("stage"));
        let route = fields.trimmed(&field("route"));
        let blank = route.is_empty()
            && fields.trimmed(&field("rate")).is_empty()
            && fields.trimmed(&field("burst")).is_empty();
        if blank || fields.checked(&field("remove")) {
            continue;
        }
        let before = errors.len();
        if stage.is_empty() {
            errors.push(FieldError::new(field("stage"), "choose the API stage"));
        } else if !ticked.contains(&stage) {
            errors.push(FieldError::new(
                field("stage"),
                "tick this stage under “API stages covered”, or remove the throttle",
            ));
        }
        if route.is_empty() {
            errors.push(FieldError::new(
                field("route"),
                "enter a route key of the stage, such as GET /pets/{id}",
            ));
        } else if typed.rows.iter().any(|(s, r, _)| s == stage && r == route) {
            errors.push(FieldError::new(
                field("route"),
                "this stage has a throttle for this route already",
            ));
        }
        let rate = read_number(
            fields,
            &field("rate"),
            |raw| raw.parse::<f64>().ok().filter(|r| r.is_finite()),
            (
                "enter a rate too",
                "must be a number of requests per second, such as 100 or 0.5",
            ),
            errors,
        );
        let burst = read_number(
            fields,
            &field("burst"),
            whole_number,
            (
                "enter a burst too",
                "must be a whole number of requests, such as 200",
            ),
            errors,
        );
        let (Some(rate), Some(burst)) = (rate, burst) else {
            continue;
        };
        // The model's own rules (highest rate, longest refill), worded as the API words them.
        let throttle = json!({ "rate": rate, "burst": burst });
        if let Err(e) = serde_json::from_value::<Throttle>(throttle.clone()) {
            let message = e.to_string();
            let part = if message.starts_with("burst") {
                "burst"
            } else {
                "rate"
            };
            errors.push(FieldError::new(field(part), message));
            continue;
        }
        if errors.len() > before {
            continue;
        }
        typed
            .by_stage
            .entry(stage.to_owned())
            .or_default()
            .insert(route.to_owned(), throttle);
        typed.rows.push((stage.to_owned(), route.to_owned(), index));
    }
    Some(typed)
}

/// The ticked API stages, each with the route throttles typed for it, or (for a form
/// without route throttle rows) those `current` has.
fn stages_body(
    fields: &Fields,
    current: Option<&PlanView>,
    typed: Option<&TypedThrottles>,
    errors: &mut Vec<FieldError>,
) -> Value {
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
            Some(typed) => json!(typed.by_stage.get(value).cloned().unwrap_or_default()),
            None => current
                .and_then(|plan| {
                    plan.stages
                        .iter()
                        .find(|s| s.api_id == api_id && s.stage.as_str() == stage)
                })
                .map_or_else(|| json!({}), |s| json!(s.route_throttles)),
        };
        refs.push(json!({ "api_id": api_id, "stage": stage, "route_throttles": route_throttles }));
    }
    Value::Array(refs)
}

/// A plan's JSON body, with what it takes to put the admin API's errors about it back
/// next to the form's fields.
#[derive(Debug)]
struct PlanBody {
    body: Value,
    /// The `stages` sent, in order, as `api_id:stage`.
    stages: Vec<String>,
    typed: TypedThrottles,
}

/// The JSON body of a create or a full update, or what to fix before sending it.
fn plan_body(fields: &Fields, current: Option<&PlanView>) -> Result<PlanBody, Errors> {
    let mut errors = Vec::new();
    let mut body = Map::new();
    body.insert("name".into(), json!(fields.trimmed("name")));
    body.insert("description".into(), json!(fields.trimmed("description")));
    body.insert("throttle".into(), throttle_body(fields, &mut errors));
    body.insert("quota".into(), quota_body(fields, &mut errors));
    let typed = route_throttles(fields, &mut errors);
    body.insert(
        "stages".into(),
        stages_body(fields, current, typed.as_ref(), &mut errors),
    );
    if errors.is_empty() {
        Ok(PlanBody {
            body: Value::Object(body),
            stages: fields.all("stages").map(str::to_owned).collect(),
            typed: typed.unwrap_or_default(),
        })
    } else {
        Err(Errors::new(NOT_SAVED, errors))
    }
}

const NOT_SAVED: &str = "The plan was not saved: check the fields below.";

impl PlanBody {
    /// Where the admin API's error about `stages[i].route_throttles` goes: the route field
    /// of the row the key it names came from, else the stages fieldset.
    fn route_throttle_field(&self, field: &str, message: &str) -> Option<String> {
        let index: usize = field
            .strip_prefix("stages[")?
            .strip_suffix("].route_throttles")?
            .parse()
            .ok()?;
        let stage = self.stages.get(index)?;
        let key = message
            .strip_prefix('`')
            .and_then(|rest| rest.split_once("`: "))
            .map(|(key, _)| key);
        let row = self
            .typed
            .rows
            .iter()
            .find(|(s, r, _)| s == stage && Some(r.as_str()) == key);
        Some(row.map_or_else(
            || "stages".to_owned(),
            |(_, _, row)| row_field(*row, "route"),
        ))
    }
}

/// Puts the admin API's errors next to the form's fields: it names a throttle or quota
/// as a whole (`throttle`) when its parts disagree, and says which part in the message;
/// a bad route key of a route throttle goes next to its row.
fn placed(errors: Errors, sent: Option<&PlanBody>) -> Errors {
    let fields: Vec<FieldError> = errors
        .fields
        .into_iter()
        .map(|e| {
            let field = match e.field.as_str() {
                "throttle" if e.message.starts_with("burst") => "throttle.burst".to_owned(),
                "throttle" => "throttle.rate".to_owned(),
                "quota" if e.message.contains("period") => "quota.period".to_owned(),
                "quota" => "quota.limit".to_owned(),
                other => sent
                    .and_then(|sent| sent.route_throttle_field(other, &e.message))
                    .unwrap_or(e.field),
            };
            FieldError::new(field, e.message)
        })
        .collect();
    let summary = match errors.summary {
        Some(summary) if summary != "Invalid request" => summary,
        _ => NOT_SAVED.to_owned(),
    };
    Errors::new(summary, fields)
}

// ---- Creating a plan ----

#[derive(Template)]
#[template(path = "plan_new.html")]
struct NewPlanPage {
    frame: Frame,
    form: PlanForm,
}

async fn new_plan_page(
    state: &AppState,
    user: &SignedIn,
    status: StatusCode,
    fields: Fields,
    errors: Errors,
) -> PageResult {
    let form = PlanForm::new(
        state,
        "/plans/new".to_owned(),
        "Create plan",
        fields,
        errors,
    )
    .await?;
    Ok(render::page_with(
        status,
        &NewPlanPage {
            frame: user.frame(Section::Plans),
            form,
        },
    ))
}

async fn new_form(user: SignedIn, State(state): State<AppState>) -> PageResult {
    if !user.is_admin() {
        return Ok(render::viewer_denied(&user));
    }
    new_plan_page(
        &state,
        &user,
        StatusCode::OK,
        Fields::default(),
        Errors::default(),
    )
    .await
}

async fn create(State(state): State<AppState>, posted: AdminPosted) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let again = |errors| {
        new_plan_page(
            &state,
            &user,
            StatusCode::UNPROCESSABLE_ENTITY,
            fields.clone(),
            errors,
        )
    };
    let sent = match plan_body(&fields, None) {
        Ok(sent) => sent,
        Err(errors) => return again(errors).await,
    };
    let body = Some(sent.body.clone());
    match dispatch::call(&state, &user, Method::POST, "/usage-plans", body).await {
        Ok(plan) => {
            let id = plan["id"].as_str().unwrap_or_default();
            Ok(Redirect::to(&format!("/plans/{id}")).into_response())
        }
        Err(Refusal::Invalid(errors)) => again(placed(errors, Some(&sent))).await,
        Err(Refusal::Page(page)) => Ok(page),
    }
}

// ---- A plan's page ----

struct AttachedKey {
    id: Uuid,
    name: String,
    prefix: String,
    enabled: bool,
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    frame: Frame,
    plan: PlanView,
    throttle: String,
    quota: String,
    created: String,
    updated: String,
    stages: Vec<CoveredStage>,
    keys: Vec<AttachedKey>,
    /// Keys not attached yet, for the attach form.
    candidates: Vec<PlanLink>,
    /// Whether any key exists at all (to say what to do when none can be attached).
    any_keys: bool,
    form: PlanForm,
    attach_errors: Errors,
    /// Why the plan could not be deleted.
    delete_error: Option<String>,
}

/// What a plan's page shows besides the plan: the edit form as typed, and refusals.
#[derive(Default)]
struct Notes {
    /// The edit form as the user sent it; the plan's own values when `None`.
    fields: Option<Fields>,
    errors: Errors,
    attach_errors: Errors,
    delete_error: Option<String>,
}

/// The plan's page with `notes`, or `None` when there is no such plan.
async fn plan_page(
    state: &AppState,
    user: &SignedIn,
    id: Uuid,
    notes: Notes,
) -> Result<Option<PlanPage>, Failure> {
    let mut conn = state.pool.acquire().await?;
    let Some(plan) = plans::get(&mut conn, id).await? else {
        return Ok(None);
    };
    let attached = keys::in_plan(&mut *conn, id).await?;
    let all_keys = keys::list(&mut *conn).await?;
    drop(conn);
    let names = api_names(state).await?;
    let candidates = all_keys
        .iter()
        .filter(|k| !attached.iter().any(|a| a.id == k.id))
        .map(|k| PlanLink {
            id: k.id,
            name: format!("{} ({}…)", k.name, k.prefix),
        })
        .collect();
    let fields = notes.fields.unwrap_or_else(|| fields_of(&plan));
    let form = PlanForm::new(
        state,
        format!("/plans/{id}"),
        "Save changes",
        fields,
        notes.errors,
    )
    .await?;
    Ok(Some(PlanPage {
        frame: user.frame(Section::Plans),
        throttle: throttle_text(plan.throttle),
        quota: quota_text(plan.quota),
        created: when(plan.created_at),
        updated: when(plan.updated_at),
        stages: covered(&plan, &names),
        keys: attached
            .into_iter()
            .map(|k| AttachedKey {
                id: k.id,
                name: k.name,
                prefix: k.prefix,
                enabled: k.enabled,
            })
            .collect(),
        candidates,
        any_keys: !all_keys.is_empty(),
        plan,
        form,
        attach_errors: notes.attach_errors,
        delete_error: notes.delete_error,
    }))
}

/// Renders the plan's page with `status`, or the 404 page.
async fn plan_answer(
    state: &AppState,
    user: &SignedIn,
    id: Uuid,
    status: StatusCode,
    notes: Notes,
) -> PageResult {
    Ok(match plan_page(state, user, id, notes).await? {
        Some(page) => render::page_with(status, &page),
        None => not_found(user),
    })
}

fn not_found(user: &SignedIn) -> Response {
    render::not_found(Some(user), "usage plan")
}

async fn show(
    user: SignedIn,
    State(state): State<AppState>,
    Path(plan_id): Path<String>,
) -> PageResult {
    let Ok(id) = Uuid::parse_str(&plan_id) else {
        return Ok(not_found(&user));
    };
    plan_answer(&state, &user, id, StatusCode::OK, Notes::default()).await
}

async fn save(
    State(state): State<AppState>,
    Path(plan_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let Ok(id) = Uuid::parse_str(&plan_id) else {
        return Ok(not_found(&user));
    };
    let mut conn = state.pool.acquire().await?;
    let Some(current) = plans::get(&mut conn, id).await? else {
        return Ok(not_found(&user));
    };
    drop(conn);
    let refused = match plan_body(&fields, Some(&current)) {
        Ok(sent) => {
            let path = format!("/usage-plans/{id}");
            let body = Some(sent.body.clone());
            match dispatch::call(&state, &user, Method::PATCH, &path, body).await {
                Ok(_) => return Ok(Redirect::to(&format!("/plans/{id}")).into_response()),
                Err(Refusal::Invalid(errors)) => placed(errors, Some(&sent)),
                Err(Refusal::Page(page)) => return Ok(page),
            }
        }
        Err(errors) => errors,
    };
    let notes = Notes {
        fields: Some(fields),
        errors: refused,
        ..Notes::default()
    };
    plan_answer(&state, &user, id, StatusCode::UNPROCESSABLE_ENTITY, notes).await
}

async fn attach(
    State(state): State<AppState>,
    Path(plan_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let Ok(id) = Uuid::parse_str(&plan_id) else {
        return Ok(not_found(&user));
    };
    let refused = match Uuid::parse_str(fields.trimmed("key_id")) {
        Ok(key_id) => {
            let path = format!("/usage-plans/{id}/keys");
            let body = json!({ "key_id": key_id });
            match dispatch::call(&state, &user, Method::POST, &path, Some(body)).await {
                Ok(_) => return Ok(Redirect::to(&format!("/plans/{id}")).into_response()),
                Err(Refusal::Invalid(errors)) => errors,
                Err(Refusal::Page(page)) => return Ok(page),
            }
        }
        Err(_) => Errors::new(
            "The key was not attached.",
            vec![FieldError::new("key_id", "choose a key")],
        ),
    };
    let notes = Notes {
        attach_errors: refused,
        ..Notes::default()
    };
    plan_answer(&state, &user, id, StatusCode::UNPROCESSABLE_ENTITY, notes).await
}

async fn detach(
    State(state): State<AppState>,
    Path((plan_id, key_id)): Path<(String, String)>,
    posted: AdminPosted,
) -> Response {
    let user = &posted.user;
    let (Ok(id), Ok(key_id)) = (Uuid::parse_str(&plan_id), Uuid::parse_str(&key_id)) else {
        return not_found(user);
    };
    let path = format!("/usage-plans/{id}/keys/{key_id}");
    match dispatch::call(&state, user, Method::DELETE, &path, None).await {
        Ok(_) => Redirect::to(&format!("/plans/{id}")).into_response(),
        Err(refusal) => refusal.into_page(user),
    }
}

async fn delete(
    State(state): State<AppState>,
    Path(plan_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let user = &posted.user;
    let Ok(id) = Uuid::parse_str(&plan_id) else {
        return Ok(not_found(user));
    };
    let path = format!("/usage-plans/{id}");
    let refused = match dispatch::call(&state, user, Method::DELETE, &path, None).await {
        Ok(_) => return Ok(Redirect::to("/plans").into_response()),
        Err(Refusal::Invalid(errors)) => errors,
        Err(Refusal::Page(page)) => return Ok(page),
    };
    let notes = Notes {
        delete_error: Some(
            refused
                .summary
                .unwrap_or_else(|| "The plan was not deleted.".to_owned()),
        ),
        ..Notes::default()
    };
    plan_answer(&state, user, id, StatusCode::CONFLICT, notes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Fields {
        Fields::parse(body.as_bytes()).expect("form")
    }

    #[test]
    fn empty_throttle_and_quota_fields_mean_none() {
        let body = plan_body(&form("name=gold"), None).expect("valid").body;
        assert_eq!(body["throttle"], Value::Null);
        assert_eq!(body["quota"], Value::Null);
        assert_eq!(body["stages"], json!([]));
    }

    #[test]
    fn numbers_that_do_not_parse_are_refused_by_field() {
        let errors = plan_body(
            &form(
                "name=gold&throttle.rate=abc&throttle.burst=1.5&quota.limit=lots&quota.period=DAY",
            ),
            None,
        )
        .expect_err("invalid");
        for field in ["throttle.rate", "throttle.burst", "quota.limit"] {
            assert!(errors.get(field).is_some(), "{field}");
        }
        assert!(errors.get("quota.period").is_none());
    }

    #[test]
    fn half_a_throttle_or_quota_asks_for_the_other_half() {
        let errors = plan_body(&form("name=gold&throttle.rate=5&quota.period=WEEK"), None)
            .expect_err("invalid");
        assert!(errors.get("throttle.burst").is_some());
        assert!(errors.get("quota.limit").is_some());
    }

    #[test]
    fn typed_numbers_and_stages_become_the_api_body() {
        let api = Uuid::now_v7();
        let body = plan_body(
            &form(&format!(
                "name=gold&throttle.rate=0.5&throttle.burst=10&quota.limit=10%2C000&quota.period=MONTH&stages={api}%3Aprod"
            )),
            None,
        )
        .expect("valid")
        .body;
        assert_eq!(body["throttle"], json!({"rate": 0.5, "burst": 10}));
        assert_eq!(body["quota"], json!({"limit": 10000, "period": "MONTH"}));
        assert_eq!(body["stages"][0]["api_id"], json!(api));
        assert_eq!(body["stages"][0]["stage"], "prod");
    }

    #[test]
    fn route_throttle_rows_become_each_stages_map_leaving_out_empty_and_removed_rows() {
        let api = Uuid::now_v7();
        let stage = format!("{api}%3Aprod");
        let sent = plan_body(
            &form(&format!(
                "name=gold&stages={stage}&rt.rows=3\
                 &rt.0.stage={stage}&rt.0.route=GET+%2Fa&rt.0.rate=1&rt.0.burst=2\
                 &rt.1.stage={stage}&rt.1.route=GET+%2Fb&rt.1.rate=1&rt.1.burst=2&rt.1.remove=on\
                 &rt.2.stage={stage}&rt.2.route=&rt.2.rate=&rt.2.burst="
            )),
            None,
        )
        .expect("valid");
        assert_eq!(
            sent.body["stages"][0]["route_throttles"],
            json!({"GET /a": {"rate": 1.0, "burst": 2}})
        );
        // Without rows, a form keeps the plan's own (none for a new plan).
        let old_form = plan_body(&form(&format!("name=gold&stages={stage}")), None).expect("valid");
        assert_eq!(old_form.body["stages"][0]["route_throttles"], json!({}));
    }

    #[test]
    fn the_apis_error_about_a_route_key_lands_next_to_its_row() {
        let api = Uuid::now_v7();
        let stage = format!("{api}%3Aprod");
        let sent = plan_body(
            &form(&format!(
                "name=gold&stages={stage}&rt.rows=2\
                 &rt.0.stage={stage}&rt.0.route=GET+%2Fa&rt.0.rate=1&rt.0.burst=2\
                 &rt.1.stage={stage}&rt.1.route=FETCH+x&rt.1.rate=1&rt.1.burst=2"
            )),
            None,
        )
        .expect("valid");
        let refused = Errors::new(
            "Invalid request",
            vec![FieldError::new(
                "stages[0].route_throttles",
                "`FETCH x`: unknown method",
            )],
        );
        let placed = placed(refused, Some(&sent));
        assert_eq!(placed.get("rt.1.route"), Some("`FETCH x`: unknown method"));
        assert_eq!(placed.get("rt.0.route"), None);
    }

    #[test]
    fn the_apis_errors_about_a_whole_throttle_land_next_to_the_right_part() {
        let placed = placed(
            Errors::new(
                "Invalid request",
                vec![
                    FieldError::new("throttle", "burst must be between 1 and 1000000000"),
                    FieldError::new("quota", "limit must be above 0"),
                ],
            ),
            None,
        );
        assert_eq!(placed.summary.as_deref(), Some(NOT_SAVED));
        assert!(placed.get("throttle.burst").is_some());
        assert!(placed.get("throttle.rate").is_none());
        assert!(placed.get("quota.limit").is_some());
    }
}
