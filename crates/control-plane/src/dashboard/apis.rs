//! APIs in the dashboard: the list, the forms that create, edit and delete an API, and an
//! API's own page (its routes, its stages with their invoke URLs, recent deployments, the
//! Deploy form, the form that adds a stage on an existing deployment, and its traffic),
//! which the other API pages link back to.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use gatehouse_model::Protocol;
use uuid::Uuid;

use super::charts::{Range, RangeQuery, Traffic};
use super::deployments::DeploymentRow;
use super::dispatch::{self, Refusal};
use super::form::{AdminPosted, Errors, Fields};
use super::invoke;
use super::render::{self, page_with, Failure, Frame, PageResult, Section};
use super::routes::RouteRow;
use super::session::SignedIn;
use crate::http::apis::{CreateApi, UpdateApi};
use crate::repo::apis::{self, Api};
use crate::repo::{deployments, routes, stages};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis", get(list))
        .route("/apis/new", get(new_form).post(create))
        .route("/apis/{api_id}", get(show))
        .route("/apis/{api_id}/edit", get(edit_form).post(save))
        .route("/apis/{api_id}/delete", post(delete))
}

/// Deployments the API's page lists; the rest are in the history.
const RECENT_DEPLOYMENTS: usize = 5;

/// The fields of the API form the page shows errors next to.
const FORM_FIELDS: [&str; 5] = [
    "name",
    "slug",
    "protocol",
    "route_selection_expression",
    "description",
];

/// The route selection expression the form sent, for a WebSocket API; `null` leaves the
/// API's own (or the default) in place.
fn selection_of(fields: &Fields, protocol: &str) -> Option<String> {
    match fields.trimmed("route_selection_expression") {
        "" => None,
        _ if protocol != "WEBSOCKET" => None,
        raw => Some(raw.to_owned()),
    }
}

/// The API `raw_id` names, or the friendly 404 (for a malformed id too).
pub(super) async fn find_api(
    state: &AppState,
    user: &SignedIn,
    raw_id: &str,
) -> Result<Api, Failure> {
    let not_found = || Failure::from(render::not_found(Some(user), "API"));
    let id = Uuid::parse_str(raw_id).map_err(|_| not_found())?;
    apis::get(&state.pool, id).await?.ok_or_else(not_found)
}

/// Errors ready for a form: a summary that starts with `what`, then says where to look,
/// or names the fields the form does not show (they would otherwise go unseen).
pub(super) fn explain(errors: Errors, shown: &[&str], what: &str) -> Errors {
    let hidden: Vec<String> = errors
        .fields
        .iter()
        .filter(|e| !shown.contains(&e.field.as_str()))
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    let summary = if errors.fields.is_empty() {
        let said = errors.summary.unwrap_or_default();
        format!("{what} {said}").trim_end().to_owned()
    } else if hidden.is_empty() {
        format!("{what} Check the fields below.")
    } else {
        format!("{what} {}.", hidden.join("; "))
    };
    Errors {
        summary: Some(summary),
        fields: errors.fields,
    }
}

/// A short form of an id for tables: its last 8 hex digits (the first ones of a v7 UUID
/// are a timestamp, alike for ids made the same minute).
pub(super) fn short_id(id: Uuid) -> String {
    let hex = id.simple().to_string();
    hex[hex.len() - 8..].to_owned()
}

// ---- The list ----

struct ApiRow {
    id: String,
    name: String,
    slug: String,
    protocol: String,
    routes: i64,
    stages: Vec<String>,
    updated: String,
}

#[derive(Template)]
#[template(path = "apis.html")]
struct ApisPage {
    frame: Frame,
    apis: Vec<ApiRow>,
}

async fn list(user: SignedIn, State(state): State<AppState>) -> PageResult {
    let all = apis::list(&state.pool).await?;
    let counts: HashMap<Uuid, i64> = routes::counts(&state.pool).await?.into_iter().collect();
    let mut stage_names: HashMap<Uuid, Vec<String>> = HashMap::new();
    for stage in stages::list_all(&state.pool).await? {
        stage_names
            .entry(stage.api_id)
            .or_default()
            .push(stage.name);
    }
    let apis = all
        .into_iter()
        .map(|api| ApiRow {
            id: api.id.to_string(),
            routes: counts.get(&api.id).copied().unwrap_or(0),
            stages: stage_names.remove(&api.id).unwrap_or_default(),
            updated: render::when(api.updated_at),
            name: api.name,
            slug: api.slug,
            protocol: api.protocol,
        })
        .collect();
    Ok(render::page(&ApisPage {
        frame: user.frame(Section::Apis),
        apis,
    }))
}

// ---- Create and edit ----

#[derive(Template)]
#[template(path = "api_form.html")]
struct ApiFormPage {
    frame: Frame,
    /// The API being edited; `None` for a new one.
    api: Option<Api>,
    fields: Fields,
    errors: Errors,
}

impl ApiFormPage {
    fn action(&self) -> String {
        match &self.api {
            Some(api) => format!("/apis/{}/edit", api.id),
            None => "/apis/new".to_owned(),
        }
    }
}

fn form_page(user: &SignedIn, api: Option<Api>, fields: Fields, errors: Errors) -> ApiFormPage {
    ApiFormPage {
        frame: user.frame(Section::Apis),
        api,
        fields,
        errors,
    }
}

async fn new_form(user: SignedIn) -> PageResult {
    if !user.is_admin() {
        return Ok(render::viewer_denied(&user));
    }
    let fields = Fields::default().with("protocol", "HTTP");
    Ok(render::page(&form_page(
        &user,
        None,
        fields,
        Errors::default(),
    )))
}

async fn create(State(state): State<AppState>, posted: AdminPosted) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let protocol = match fields.trimmed("protocol") {
        "" => "HTTP",
        chosen => chosen,
    };
    let body = CreateApi {
        name: fields.trimmed("name").to_owned(),
        slug: fields.trimmed("slug").to_owned(),
        protocol: protocol.to_owned(),
        route_selection_expression: selection_of(&fields, protocol),
        description: fields.trimmed("description").to_owned(),
    };
    match dispatch::call(&state, &user, Method::POST, "/apis", &body).await {
        Ok(api) => {
            let id = api["id"].as_str().unwrap_or_default();
            Ok(Redirect::to(&format!("/apis/{id}")).into_response())
        }
        Err(Refusal::Invalid(errors)) => {
            let errors = explain(errors, &FORM_FIELDS, "The API was not created.");
            let page = form_page(&user, None, fields, errors);
            Ok(page_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(Refusal::Page(page)) => Ok(page),
    }
}

async fn edit_form(
    user: SignedIn,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
) -> PageResult {
    let api = find_api(&state, &user, &api_id).await?;
    if !user.is_admin() {
        return Ok(render::viewer_denied(&user));
    }
    let fields = Fields::default()
        .with("name", api.name.clone())
        .with("slug", api.slug.clone())
        .with("description", api.description.clone())
        .with("protocol", api.protocol.clone())
        .with(
            "route_selection_expression",
            api.route_selection_expression.clone().unwrap_or_default(),
        );
    Ok(render::page(&form_page(
        &user,
        Some(api),
        fields,
        Errors::default(),
    )))
}

async fn save(
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let api = find_api(&state, &user, &api_id).await?;
    let body = UpdateApi {
        name: Some(fields.trimmed("name").to_owned()),
        slug: Some(fields.trimmed("slug").to_owned()),
        description: Some(fields.trimmed("description").to_owned()),
        route_selection_expression: selection_of(&fields, &api.protocol),
    };
    let path = format!("/apis/{}", api.id);
    match dispatch::call(&state, &user, Method::PATCH, &path, &body).await {
        Ok(_) => Ok(Redirect::to(&path).into_response()),
        Err(Refusal::Invalid(errors)) => {
            let errors = explain(errors, &FORM_FIELDS, "The API was not saved.");
            let fields = fields.with("protocol", api.protocol.clone());
            let page = form_page(&user, Some(api), fields, errors);
            Ok(page_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(Refusal::Page(page)) => Ok(page),
    }
}

async fn delete(
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let user = posted.user;
    let api = find_api(&state, &user, &api_id).await?;
    let path = format!("/apis/{}", api.id);
    match dispatch::delete(&state, &user, &path).await {
        Ok(_) => Ok(Redirect::to("/apis").into_response()),
        Err(refusal) => Ok(refusal.into_page(&user)),
    }
}

// ---- The API's page ----

/// A stage as the API's page lists it.
struct StageRow {
    name: String,
    deployment_id: String,
    deployment_short: String,
    deployment_description: String,
    invoke_url: String,
    /// WebSocket APIs: where backends reach the stage's connections.
    connections_url: Option<String>,
}

/// A deployment as the new stage form offers it.
struct DeploymentChoice {
    id: String,
    /// `1a2b3c4d · 2 minutes ago · description`.
    label: String,
}

/// The API page's forms as typed, with what was wrong, after one was refused; `None`
/// shows a form with its defaults.
#[derive(Default)]
pub(super) struct ApiForms {
    pub deploy: Option<(Fields, Errors)>,
    /// The form that adds a stage on an existing deployment (fields `new.*`).
    pub new_stage: Option<(Fields, Errors)>,
}

/// The API's page; the Deploy form shows `deploy` and `errors` (after a refused deploy).
#[derive(Template)]
#[template(path = "api.html")]
pub(super) struct ApiPage {
    frame: Frame,
    api: Api,
    routes: Vec<RouteRow>,
    stages: Vec<StageRow>,
    /// The newest deployments, at most [`RECENT_DEPLOYMENTS`].
    deployments: Vec<DeploymentRow>,
    deployment_count: usize,
    /// Whether invoke URLs name a real proxy (else they hold a placeholder).
    proxy_known: bool,
    deploy: Fields,
    errors: Errors,
    /// Every deployment, newest first, for the new stage form.
    deployment_choices: Vec<DeploymentChoice>,
    new_stage: Fields,
    new_stage_errors: Errors,
    traffic: Traffic,
}

impl ApiPage {}

/// Builds the API's page, its forms holding what `forms` says.
pub(super) async fn api_page(
    state: &AppState,
    user: &SignedIn,
    api: Api,
    forms: ApiForms,
    range: Range,
) -> Result<ApiPage, Failure> {
    let route_rows = routes::list(&state.pool, api.id)
        .await?
        .iter()
        .map(RouteRow::new)
        .collect();
    let stage_list = stages::list(&state.pool, api.id).await?;
    let all_deployments = deployments::list(&state.pool, api.id).await?;
    let base = invoke::base_url(state).await?;
    let protocol = api.protocol();
    let stage_rows = stage_list
        .iter()
        .map(|stage| {
            let deployment = all_deployments.iter().find(|d| d.id == stage.deployment_id);
            StageRow {
                name: stage.name.clone(),
                deployment_id: stage.deployment_id.to_string(),
                deployment_short: short_id(stage.deployment_id),
                deployment_description: deployment
                    .map(|d| d.description.clone())
                    .unwrap_or_default(),
                invoke_url: invoke::url(base.as_deref(), &api.slug, &stage.name, protocol),
                connections_url: (protocol == Protocol::Websocket)
                    .then(|| invoke::connections_url(base.as_deref(), &api.slug, &stage.name)),
            }
        })
        .collect();
    let (deploy, errors) = forms.deploy.unwrap_or_else(|| {
        // With one stage, deploying to it is the likely wish; otherwise make them choose.
        let stage = match stage_list.as_slice() {
            [only] => only.name.clone(),
            _ => String::new(),
        };
        (Fields::default().with("stage", stage), Errors::default())
    });
    let (new_stage, new_stage_errors) = forms.new_stage.unwrap_or_else(|| {
        let newest = all_deployments
            .first()
            .map(|d| d.id.to_string())
            .unwrap_or_default();
        (
            Fields::default().with("new.deployment_id", newest),
            Errors::default(),
        )
    });
    let deployment_choices = all_deployments
        .iter()
        .map(|d| {
            let mut label = format!("{} · {}", short_id(d.id), render::when(d.created_at));
            if !d.description.is_empty() {
                label = format!("{label} · {}", d.description);
            }
            DeploymentChoice {
                id: d.id.to_string(),
                label,
            }
        })
        .collect();
    let id = api.id.to_string();
    Ok(ApiPage {
        frame: user.frame(Section::Apis),
        routes: route_rows,
        stages: stage_rows,
        deployment_count: all_deployments.len(),
        deployments: DeploymentRow::list(
            &all_deployments[..all_deployments.len().min(RECENT_DEPLOYMENTS)],
            &stage_list,
        ),
        proxy_known: base.is_some(),
        deploy,
        errors,
        deployment_choices,
        new_stage,
        new_stage_errors,
        traffic: Traffic::new(&format!("/apis/{id}"), &[("api_id", id.as_str())], range),
        api,
    })
}

async fn show(
    user: SignedIn,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    Query(query): Query<RangeQuery>,
) -> PageResult {
    let api = find_api(&state, &user, &api_id).await?;
    let page = api_page(&state, &user, api, ApiForms::default(), query.range()).await?;
    Ok(render::page(&page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldError;

    #[test]
    fn short_ids_are_the_random_end_of_the_id() {
        let id = Uuid::parse_str("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").expect("uuid");
        assert_eq!(short_id(id), "2e3f4a5b");
    }

    #[test]
    fn explained_errors_name_fields_the_form_does_not_show() {
        let shown = explain(
            Errors::new("Invalid request", vec![FieldError::new("slug", "taken")]),
            &FORM_FIELDS,
            "Not created.",
        );
        assert_eq!(
            shown.summary.as_deref(),
            Some("Not created. Check the fields below.")
        );
        assert_eq!(shown.get("slug"), Some("taken"));
        let hidden = explain(
            Errors::new("Invalid request", vec![FieldError::new("extra", "unknown")]),
            &FORM_FIELDS,
            "Not created.",
        );
        assert_eq!(
            hidden.summary.as_deref(),
            Some("Not created. extra: unknown.")
        );
        let message_only = explain(Errors::new("Busy", vec![]), &FORM_FIELDS, "Not created.");
        assert_eq!(message_only.summary.as_deref(), Some("Not created. Busy"));
    }
}
