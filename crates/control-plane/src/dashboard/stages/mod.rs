//! A stage's page: where clients call it, which deployment it serves, its settings
//! (description, variables, default throttle, access log), the deployments it can roll
//! back (or forward) to, and its traffic, as a whole and per deployed route. Also the
//! form on the API's page that adds a stage on an existing deployment, without deploying.
//!
//! Every change goes through the admin API's `POST /apis/{id}/stages` and
//! `PATCH`/`DELETE /apis/{id}/stages/{stage}`.
//! The settings form is checked here first where the API could not say which line or
//! which number was wrong (variables typed as `name=value` lines, throttle numbers).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use gatehouse_model::{
    DeployedRoute, Protocol, StageName, StageVariables, Throttle, WebSocketLimits,
    DEFAULT_STAGE_THROTTLE,
};
use serde::Deserialize;
use uuid::Uuid;

use super::charts::{Range, RangeQuery, Traffic};
use super::dispatch::{self, Refusal};
use super::field_map::FieldMap;
use super::form::{AdminPosted, Errors, Fields};
use super::invoke;
use super::model_rules;
use super::render::{self, grouped, millis, when, Failure, Frame, PageResult, Section};
use super::session::SignedIn;
use crate::error::FieldError;
use crate::http::metrics::{self, Figures, RawQuery};
use crate::http::stages::{CreateStage, LimitsInput, UpdateStage};
use crate::repo::apis::Api;
use crate::repo::deployments::{self, Deployment};
use crate::repo::stages::{self, Stage};
use crate::AppState;

mod settings_form;
use settings_form::*;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis/{api_id}/stages", post(create))
        .route("/apis/{api_id}/stages/{stage}", get(show).post(save))
        .route("/apis/{api_id}/stages/{stage}/rollback", post(roll_back))
        .route("/apis/{api_id}/stages/{stage}/delete", post(delete))
}

/// Largest burst the API accepts.
const MAX_BURST: u32 = 1_000_000_000;
/// Longest piece of a bad line quoted back in an error.
const MAX_QUOTED: usize = 40;

#[derive(Template)]
#[template(path = "stage.html")]
struct StagePage {
    frame: Frame,
    api: Api,
    stage: Stage,
    /// The stage's own address: `/apis/{id}/stages/{name}`.
    path: String,
    invoke_url: String,
    /// WebSocket APIs: the `@connections` endpoint and the connection limits.
    websocket: Option<WebSocketFacts>,
    /// False while no proxy has polled and none is configured: the URL has a placeholder.
    proxy_known: bool,
    created: String,
    updated: String,
    throttle: String,
    /// The throttle a stage gets when both numbers are left empty.
    default_throttle: String,
    variables: Vec<(String, String)>,
    current: Option<DeploymentRow>,
    deployments: Vec<DeploymentRow>,
    routes: Vec<RouteRow>,
    /// The route whose traffic the charts show, when one is chosen.
    selected: Option<RouteRow>,
    traffic: Traffic,
    totals: Option<Totals>,
    fields: Fields,
    errors: Errors,
    /// Why the last roll back was refused.
    rollback_error: Option<String>,
    notice: Option<&'static str>,
}

impl StagePage {
    fn limit_fields(&self) -> &'static [(&'static str, &'static str)] {
        &LIMIT_FIELDS
    }
}

struct WebSocketFacts {
    connections_url: String,
    limits: WebSocketLimits,
}

/// The WebSocket limits the settings form edits: (field, label).
const LIMIT_FIELDS: [(&str, &str); 4] = [
    ("max_message_bytes", "Largest message, bytes"),
    ("max_frame_bytes", "Largest frame, bytes"),
    ("idle_timeout_seconds", "Idle timeout, seconds"),
    ("max_connection_seconds", "Longest connection, seconds"),
];

/// One deployment of the API, as the roll back table lists it.
#[derive(Clone)]
struct DeploymentRow {
    id: String,
    description: String,
    author: String,
    when: String,
    route_count: i32,
    current: bool,
    /// The button's label: "Roll back to this" for older ones, "Deploy this" for newer.
    action: &'static str,
}

/// One route of the deployment the stage serves.
#[derive(Clone)]
struct RouteRow {
    id: String,
    route_key: String,
    target: String,
    api_key_required: bool,
    totals: Option<Totals>,
    selected: bool,
}

/// Traffic over the page's range, formatted.
#[derive(Clone)]
struct Totals {
    requests: String,
    errors_4xx: String,
    errors_5xx: String,
    p99: String,
}

/// What the page shows besides the stored stage: the range and route of the charts, and
/// the state of its forms.
struct View {
    range: Range,
    route: Option<Uuid>,
    fields: Option<Fields>,
    errors: Errors,
    rollback_error: Option<String>,
    notice: Option<&'static str>,
}

impl View {
    fn plain(range: Range) -> View {
        View {
            range,
            route: None,
            fields: None,
            errors: Errors::default(),
            rollback_error: None,
            notice: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct StageQuery {
    #[serde(default)]
    route: String,
    #[serde(default)]
    done: String,
}

impl StageQuery {
    /// The message for what the previous request did (`?done=` after a redirect).
    fn notice(&self) -> Option<&'static str> {
        match self.done.as_str() {
            "settings" => Some("Settings saved. Proxies use them within a second."),
            "deployment" => Some("The stage now serves the deployment you chose."),
            _ => None,
        }
    }
}

/// The stage's page.
async fn show(
    user: SignedIn,
    State(state): State<AppState>,
    Path((api_id, name)): Path<(String, String)>,
    Query(range): Query<RangeQuery>,
    Query(query): Query<StageQuery>,
) -> PageResult {
    let (api, stage) = find(&state, &user, &api_id, &name).await?;
    let route = match query.route.as_str() {
        "" => None,
        raw => Some(Uuid::parse_str(raw).map_err(|_| not_found(&user, "route"))?),
    };
    let view = View {
        route,
        notice: query.notice(),
        ..View::plain(range.range())
    };
    render_page(&state, &user, api, stage, view, StatusCode::OK).await
}

/// The fields of the new stage form (on the API's page), which the admin API's fields
/// map to with a `new.` in front.
const NEW_STAGE_FIELDS: [&str; 4] = [
    "new.name",
    "new.deployment_id",
    "new.description",
    "new.variables",
];

/// The new stage form's fields are the admin API's with `new.` in front.
const NEW_STAGE_MAP: FieldMap = FieldMap::prefixed("new.");

/// The settings form's fields are the admin API's; a throttle refused as a whole shows
/// by its rate.
const SETTINGS_MAP: FieldMap = FieldMap::new(&[("throttle", "throttle.rate")]);

/// The `POST /stages` request for the new stage form, or what is wrong with it, by field.
fn new_stage_body(fields: &Fields) -> Result<CreateStage, Vec<FieldError>> {
    let mut errors = Vec::new();
    let deployment_id = Uuid::parse_str(fields.trimmed("new.deployment_id"))
        .map_err(|_| {
            errors.push(FieldError::new(
                "new.deployment_id",
                "choose one of the API's deployments",
            ));
        })
        .ok();
    let variables = parse_variables(fields.get("new.variables"))
        .map_err(|e| errors.push(FieldError::new("new.variables", e)))
        .ok();
    let (Some(deployment_id), Some(variables), true) =
        (deployment_id, variables, errors.is_empty())
    else {
        return Err(errors);
    };
    Ok(CreateStage {
        name: fields.trimmed("new.name").to_owned(),
        deployment_id,
        variables,
        description: fields.trimmed("new.description").to_owned(),
        throttle: None,
        access_log: false,
        websocket: None,
    })
}

/// Adds a stage on an existing deployment; the new stage's page follows, or the API's
/// page with the form as typed and what was wrong next to its fields.
async fn create(
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let api = super::apis::find_api(&state, &user, &api_id).await?;
    let refused = match new_stage_body(&fields) {
        Ok(body) => {
            let path = format!("/apis/{}/stages", api.id);
            match dispatch::call(&state, &user, Method::POST, &path, &body).await {
                Ok(stage) => {
                    let name = stage["name"].as_str().unwrap_or_default();
                    return Ok(Redirect::to(&format!("{path}/{name}")).into_response());
                }
                Err(Refusal::Invalid(errors)) => NEW_STAGE_MAP.place(errors),
                Err(Refusal::Page(page)) => return Ok(page),
            }
        }
        Err(errors) => Errors::new("", errors),
    };
    let errors = super::apis::explain(refused, &NEW_STAGE_FIELDS, "The stage was not created.");
    let forms = super::apis::ApiForms {
        new_stage: Some((fields, errors)),
        ..super::apis::ApiForms::default()
    };
    let page = super::apis::api_page(&state, &user, api, forms, Range::default()).await?;
    Ok(render::page_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

/// Saves the settings form.
async fn save(
    State(state): State<AppState>,
    Path((api_id, name)): Path<(String, String)>,
    posted: AdminPosted,
) -> PageResult {
    let user = &posted.user;
    let (api, stage) = find(&state, user, &api_id, &name).await?;
    let fields = posted.fields;
    let again = |errors: Errors| View {
        fields: Some(fields.clone()),
        errors,
        ..View::plain(Range::default())
    };
    let body = match settings_body(&fields, api.protocol()) {
        Ok(body) => body,
        Err(errors) => {
            let view = again(Errors::new("Check the fields below.", errors));
            return render_page(
                &state,
                user,
                api,
                stage,
                view,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let path = format!("/apis/{}/stages/{}", api.id, stage.name);
    match dispatch::call(&state, user, Method::PATCH, &path, &body).await {
        Ok(_) => Ok(Redirect::to(&format!("{path}?done=settings")).into_response()),
        Err(Refusal::Invalid(errors)) => {
            let mut errors = SETTINGS_MAP.place(errors);
            if !errors.fields.is_empty() {
                errors.summary = Some("Check the fields below.".to_owned());
            }
            let view = again(errors);
            render_page(
                &state,
                user,
                api,
                stage,
                view,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(Refusal::Page(page)) => Ok(page),
    }
}

/// Points the stage at another deployment of its API.
async fn roll_back(
    State(state): State<AppState>,
    Path((api_id, name)): Path<(String, String)>,
    posted: AdminPosted,
) -> PageResult {
    let user = &posted.user;
    let (api, stage) = find(&state, user, &api_id, &name).await?;
    let Ok(deployment_id) = Uuid::parse_str(posted.fields.trimmed("deployment_id")) else {
        return Err(not_found(user, "deployment"));
    };
    if deployments::get(&state.pool, api.id, deployment_id)
        .await?
        .is_none()
    {
        return Err(not_found(user, "deployment"));
    }
    let path = format!("/apis/{}/stages/{}", api.id, stage.name);
    let body = UpdateStage {
        deployment_id: Some(deployment_id),
        ..UpdateStage::default()
    };
    match dispatch::call(&state, user, Method::PATCH, &path, &body).await {
        Ok(_) => Ok(Redirect::to(&format!("{path}?done=deployment")).into_response()),
        Err(Refusal::Invalid(errors)) => {
            let view = View {
                rollback_error: Some(sentence(&errors)),
                ..View::plain(Range::default())
            };
            render_page(
                &state,
                user,
                api,
                stage,
                view,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(Refusal::Page(page)) => Ok(page),
    }
}

/// Deletes the stage; its API's page follows.
async fn delete(
    State(state): State<AppState>,
    Path((api_id, name)): Path<(String, String)>,
    posted: AdminPosted,
) -> PageResult {
    let user = &posted.user;
    let (api, stage) = find(&state, user, &api_id, &name).await?;
    let path = format!("/apis/{}/stages/{}", api.id, stage.name);
    match dispatch::delete(&state, user, &path).await {
        Ok(_) => Ok(Redirect::to(&format!("/apis/{}", api.id)).into_response()),
        Err(refusal) => Ok(refusal.into_page(user)),
    }
}

fn not_found(user: &SignedIn, what: &str) -> Failure {
    Failure::from(render::not_found(Some(user), what))
}

/// The API and the stage a path names, or the friendly 404.
async fn find(
    state: &AppState,
    user: &SignedIn,
    api_id: &str,
    name: &str,
) -> Result<(Api, Stage), Failure> {
    let api = super::apis::find_api(state, user, api_id).await?;
    StageName::parse(name).map_err(|_| not_found(user, "stage"))?;
    let stage = stages::get(&state.pool, api.id, name)
        .await?
        .ok_or_else(|| not_found(user, "stage"))?;
    Ok((api, stage))
}

/// Reads what the page shows and renders it with `status`.
async fn render_page(
    state: &AppState,
    user: &SignedIn,
    api: Api,
    stage: Stage,
    view: View,
    status: StatusCode,
) -> PageResult {
    let api_id = api.id.to_string();
    let path = format!("/apis/{api_id}/stages/{}", stage.name);
    let base = invoke::base_url(state).await?;
    let protocol = api.protocol();
    let invoke_url = invoke::url(base.as_deref(), &api.slug, &stage.name, protocol);
    let websocket = (protocol == Protocol::Websocket).then(|| WebSocketFacts {
        connections_url: invoke::connections_url(base.as_deref(), &api.slug, &stage.name),
        limits: stage.websocket(),
    });
    let all = deployments::list(&state.pool, api.id).await?;
    let deployed = deployments::get(&state.pool, api.id, stage.deployment_id)
        .await?
        .map(|d| d.routes.0)
        .unwrap_or_default();
    let deployments = deployment_rows(&all, stage.deployment_id);
    let mut routes = Vec::with_capacity(deployed.len());
    for route in &deployed {
        let totals = totals(state, api.id, &stage.name, Some(route.id), view.range).await;
        routes.push(route_row(route, totals, view.route == Some(route.id)));
    }
    let selected = match view.route {
        Some(_) => match routes.iter().find(|r| r.selected) {
            Some(row) => Some(row.clone()),
            None => return Err(not_found(user, "route")),
        },
        None => None,
    };
    let mut series = vec![("api_id", api_id.as_str()), ("stage", stage.name.as_str())];
    if let Some(row) = &selected {
        series.push(("route_id", row.id.as_str()));
    }
    // The range tabs keep the chosen route.
    let page_path = match &selected {
        Some(row) => format!("{path}?route={}", row.id),
        None => path.clone(),
    };
    let traffic = Traffic::new(&page_path, &series, view.range);
    let stage_totals = totals(state, api.id, &stage.name, view.route, view.range).await;
    let page = StagePage {
        frame: user.frame(Section::Apis),
        path,
        invoke_url,
        websocket,
        proxy_known: base.is_some(),
        created: when(stage.created_at),
        updated: when(stage.updated_at),
        throttle: describe_throttle(stage.throttle()),
        default_throttle: throttle_text(DEFAULT_STAGE_THROTTLE),
        variables: stage
            .variables
            .0
            .as_map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        current: deployments.iter().find(|d| d.current).cloned(),
        deployments,
        routes,
        selected,
        traffic,
        totals: stage_totals,
        fields: view
            .fields
            .unwrap_or_else(|| stage_fields(&stage, protocol)),
        errors: view.errors,
        rollback_error: view.rollback_error,
        notice: view.notice,
        api,
        stage,
    };
    Ok(render::page_with(status, &page))
}

/// The API's deployments, newest first, each with what choosing it would do.
fn deployment_rows(all: &[Deployment], current: Uuid) -> Vec<DeploymentRow> {
    let current_at = all.iter().position(|d| d.id == current);
    all.iter()
        .enumerate()
        .map(|(i, d)| DeploymentRow {
            id: d.id.to_string(),
            description: d.description.clone(),
            author: d.author.clone(),
            when: when(d.created_at),
            route_count: d.route_count,
            current: d.id == current,
            action: match current_at {
                Some(at) if i < at => "Deploy this",
                _ => "Roll back to this",
            },
        })
        .collect()
}

fn route_row(route: &DeployedRoute, totals: Option<Totals>, selected: bool) -> RouteRow {
    let target = super::routes::summary(&route.integration);
    RouteRow {
        id: route.id.to_string(),
        route_key: route.route_key.to_string(),
        target,
        api_key_required: route.api_key_required,
        totals,
        selected,
    }
}

/// The stage's traffic (or one route's in it) over `range`; `None` when it cannot be read.
async fn totals(
    state: &AppState,
    api_id: Uuid,
    stage: &str,
    route: Option<Uuid>,
    range: Range,
) -> Option<Totals> {
    let raw = range.query(RawQuery {
        api_id: Some(api_id.to_string()),
        stage: Some(stage.to_owned()),
        route_id: route.map(|r| r.to_string()),
        ..RawQuery::default()
    });
    match metrics::answer(state, &raw).await {
        Ok(view) => Some(format_totals(&view.totals)),
        Err(e) => {
            tracing::warn!(error = %e, "reading a stage's traffic totals failed");
            None
        }
    }
}

fn format_totals(figures: &Figures) -> Totals {
    Totals {
        requests: grouped(figures.count),
        errors_4xx: grouped(figures.errors_4xx),
        errors_5xx: grouped(figures.errors_5xx),
        p99: millis(figures.latency_ms.as_ref().map(|l| l.p99)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_read_one_per_line_skipping_blank_ones() {
        let vars = parse_variables("host=10.0.0.5\r\n\n  port = 9000 \n").expect("valid");
        assert_eq!(vars.get("host").map(String::as_str), Some("10.0.0.5"));
        assert_eq!(vars.get("port").map(String::as_str), Some("9000"));
        assert_eq!(vars.len(), 2);
    }

    #[test]
    fn a_bad_variables_line_is_named() {
        let e = parse_variables("a=1\njust text").expect_err("invalid");
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse_variables("a=1\nbad name=2").expect_err("invalid");
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse_variables("a=1\na=2").expect_err("invalid");
        assert!(e.contains("set twice"), "{e}");
    }

    #[test]
    fn throttle_needs_both_numbers_or_neither() {
        let mut errors = Vec::new();
        assert_eq!(
            parse_throttle("", "", &mut errors),
            Some(DEFAULT_STAGE_THROTTLE)
        );
        assert_eq!(
            parse_throttle("0.5", "2", &mut errors),
            Some(Throttle {
                rate: 0.5,
                burst: 2
            })
        );
        assert!(errors.is_empty());
        assert_eq!(parse_throttle("10", "", &mut errors), None);
        assert_eq!(errors[0].field, "throttle.burst");
        errors.clear();
        assert_eq!(parse_throttle("fast", "0", &mut errors), None);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["throttle.rate", "throttle.burst"]);
    }
}
