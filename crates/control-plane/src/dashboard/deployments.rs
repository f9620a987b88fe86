//! Deployments in the dashboard: the Deploy action (freeze the routes, then point a stage
//! at them), an API's deployment history, one deployment's frozen routes with what
//! changed against the one before it, or against any other, and deleting a deployment no
//! stage serves (the admin API refuses the others, and its reason is shown).
//!
//! Deploying is two admin API calls (create the deployment, then create or repoint the
//! stage), each its own transaction. When the second is refused, the deployment exists but
//! the stage still serves what it did before; the page that follows says exactly that.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use gatehouse_model::{DeployedRoute, StageName};
use serde::Deserialize;
use uuid::Uuid;

use super::apis::{api_page, explain, find_api, short_id, ApiForms};
use super::charts::Range;
use super::dispatch::{self, Refusal};
use super::form::{AdminPosted, Errors, Fields};
use super::render::{self, page_with, Failure, Frame, PageResult, Section};
use super::routes::summary;
use super::session::SignedIn;
use crate::error::FieldError;
use crate::http::deployments::CreateDeployment;
use crate::http::stages::{CreateStage, UpdateStage};
use crate::repo::apis::Api;
use crate::repo::deployments::{self, Deployment, DeploymentDetail};
use crate::repo::stages::{self, Stage};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis/{api_id}/deploy", post(deploy))
        .route("/apis/{api_id}/deployments", get(history))
        .route("/apis/{api_id}/deployments/{deployment_id}", get(show))
        .route(
            "/apis/{api_id}/deployments/{deployment_id}/delete",
            post(delete),
        )
}

// ---- What changed between two deployments ----

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
struct DiffRow {
    route_key: String,
    /// `added`, `removed` or `changed`: the label and the cells' class.
    kind: &'static str,
    before: String,
    after: String,
}

impl DiffRow {
    fn new(change: &Change<'_>) -> DiffRow {
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

// ---- Deployments as tables list them ----

/// A deployment as tables list it, with the stages that point at it.
pub(super) struct DeploymentRow {
    pub id: String,
    pub short: String,
    pub when: String,
    pub author: String,
    pub description: String,
    pub route_count: i32,
    /// WebSocket APIs: the route selection expression frozen with the routes.
    pub route_selection_expression: Option<String>,
    pub stages: Vec<String>,
}

impl DeploymentRow {
    fn new(deployment: &Deployment, stages: &[Stage]) -> DeploymentRow {
        DeploymentRow {
            id: deployment.id.to_string(),
            short: short_id(deployment.id),
            when: render::when(deployment.created_at),
            author: deployment.author.clone(),
            description: deployment.description.clone(),
            route_count: deployment.route_count,
            route_selection_expression: deployment.route_selection_expression.clone(),
            stages: stages
                .iter()
                .filter(|s| s.deployment_id == deployment.id)
                .map(|s| s.name.clone())
                .collect(),
        }
    }

    pub(super) fn list(deployments: &[Deployment], stages: &[Stage]) -> Vec<DeploymentRow> {
        deployments
            .iter()
            .map(|d| DeploymentRow::new(d, stages))
            .collect()
    }
}

// ---- History ----

#[derive(Template)]
#[template(path = "deployments.html")]
struct HistoryPage {
    frame: Frame,
    api: Api,
    deployments: Vec<DeploymentRow>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    done: String,
}

async fn history(
    user: SignedIn,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> PageResult {
    let api = find_api(&state, &user, &api_id).await?;
    let all = deployments::list(&state.pool, api.id).await?;
    let stage_list = stages::list(&state.pool, api.id).await?;
    Ok(render::page(&HistoryPage {
        frame: user.frame(Section::Apis),
        deployments: DeploymentRow::list(&all, &stage_list),
        notice: (query.done == "deleted").then_some("The deployment was deleted."),
        api,
    }))
}

// ---- One deployment ----

/// A frozen route.
struct FrozenRow {
    route_key: String,
    integration: String,
    api_key_required: bool,
}

#[derive(Template)]
#[template(path = "deployment.html")]
struct DeploymentPage {
    frame: Frame,
    api: Api,
    deployment: DeploymentRow,
    routes: Vec<FrozenRow>,
    /// What the changes are measured against; `None` for the API's first deployment.
    against: Option<DeploymentRow>,
    /// Whether `against` is the deployment just before this one.
    against_previous: bool,
    changes: Vec<DiffRow>,
    /// The API's other deployments, to compare with.
    others: Vec<DeploymentRow>,
    /// Why the admin API refused to delete this deployment.
    delete_error: Option<String>,
}

#[derive(Deserialize)]
struct AgainstQuery {
    #[serde(default)]
    against: String,
}

async fn find_deployment(
    state: &AppState,
    user: &SignedIn,
    api: &Api,
    raw_id: &str,
) -> Result<DeploymentDetail, Failure> {
    let not_found = || Failure::from(render::not_found(Some(user), "deployment"));
    let id = Uuid::parse_str(raw_id).map_err(|_| not_found())?;
    deployments::get(&state.pool, api.id, id)
        .await?
        .ok_or_else(not_found)
}

async fn show(
    user: SignedIn,
    State(state): State<AppState>,
    Path((api_id, deployment_id)): Path<(String, String)>,
    Query(query): Query<AgainstQuery>,
) -> PageResult {
    let api = find_api(&state, &user, &api_id).await?;
    let this = find_deployment(&state, &user, &api, &deployment_id).await?;
    let page = deployment_page(&state, &user, api, this, query.against.trim(), None).await?;
    Ok(render::page(&page))
}

/// The deployment's page, its changes measured against the deployment `against` names
/// (the previous one when empty), saying why a delete was refused when it was.
async fn deployment_page(
    state: &AppState,
    user: &SignedIn,
    api: Api,
    this: DeploymentDetail,
    against: &str,
    delete_error: Option<String>,
) -> Result<DeploymentPage, Failure> {
    let all = deployments::list(&state.pool, api.id).await?;
    let stage_list = stages::list(&state.pool, api.id).await?;
    let id = this.deployment.id;
    // The list is newest first: the previous deployment is the next one in it.
    let previous = all.iter().skip_while(|d| d.id != id).nth(1).map(|d| d.id);
    let against_id = match against {
        "" => previous,
        raw => Some(find_deployment(state, user, &api, raw).await?.deployment.id),
    };
    let against = match against_id {
        Some(other) => deployments::get(&state.pool, api.id, other).await?,
        None => None,
    };
    let old_routes = against.as_ref().map_or(&[][..], |d| d.routes.0.as_slice());
    let changes = diff(old_routes, &this.routes.0)
        .iter()
        .map(DiffRow::new)
        .collect();
    let routes = this
        .routes
        .0
        .iter()
        .map(|r| FrozenRow {
            route_key: r.route_key.to_string(),
            integration: summary(&r.integration),
            api_key_required: r.api_key_required,
        })
        .collect();
    let others = all
        .iter()
        .filter(|d| d.id != id)
        .cloned()
        .collect::<Vec<_>>();
    Ok(DeploymentPage {
        frame: user.frame(Section::Apis),
        deployment: DeploymentRow::new(&this.deployment, &stage_list),
        routes,
        against_previous: against_id.is_some() && against_id == previous,
        against: against.map(|d| DeploymentRow::new(&d.deployment, &stage_list)),
        changes,
        others: DeploymentRow::list(&others, &stage_list),
        delete_error,
        api,
    })
}

// ---- Delete ----

/// Deletes a deployment no stage serves; the history follows. When a stage serves it,
/// the admin API refuses, and the deployment's page says why.
async fn delete(
    State(state): State<AppState>,
    Path((api_id, deployment_id)): Path<(String, String)>,
    posted: AdminPosted,
) -> PageResult {
    let user = &posted.user;
    let api = find_api(&state, user, &api_id).await?;
    let this = find_deployment(&state, user, &api, &deployment_id).await?;
    let path = format!("/apis/{}/deployments/{}", api.id, this.deployment.id);
    let reason = match dispatch::delete(&state, user, &path).await {
        Ok(_) => {
            let history = format!("/apis/{}/deployments?done=deleted", api.id);
            return Ok(Redirect::to(&history).into_response());
        }
        Err(Refusal::Invalid(errors)) => errors
            .fields
            .first()
            .map(|e| e.message.clone())
            .or(errors.summary)
            .unwrap_or_else(|| "the control plane refused".to_owned()),
        Err(Refusal::Page(page)) => return Ok(page),
    };
    let page = deployment_page(&state, user, api, this, "", Some(reason)).await?;
    Ok(page_with(StatusCode::CONFLICT, &page))
}

// ---- Deploy ----

/// The fields of the Deploy form.
const DEPLOY_FIELDS: [&str; 2] = ["description", "stage"];

#[derive(Template)]
#[template(path = "deployment_stage_failed.html")]
struct StageFailedPage {
    frame: Frame,
    api: Api,
    deployment_id: String,
    deployment_short: String,
    stage: String,
    /// Whether the stage was to be created (else moved).
    new_stage: bool,
    reason: String,
}

/// The API's page again, its Deploy form showing what was typed and what was wrong.
async fn deploy_refused(
    state: &AppState,
    user: &SignedIn,
    api: Api,
    fields: Fields,
    errors: Errors,
) -> PageResult {
    let errors = explain(errors, &DEPLOY_FIELDS, "Nothing was deployed.");
    let forms = ApiForms {
        deploy: Some((fields, errors)),
        ..ApiForms::default()
    };
    let page = api_page(state, user, api, forms, Range::default()).await?;
    Ok(page_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

/// Why pointing the stage failed, in words, and the status to answer with.
fn stage_refusal(refusal: Refusal) -> (StatusCode, String) {
    match refusal {
        Refusal::Invalid(errors) => {
            let detail = errors
                .fields
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            let reason = if detail.is_empty() {
                errors.summary.unwrap_or_default()
            } else {
                detail
            };
            (StatusCode::UNPROCESSABLE_ENTITY, reason)
        }
        Refusal::Page(page) => {
            let status = page.status();
            let reason = match status {
                StatusCode::NOT_FOUND => "the API or the stage no longer exists".to_owned(),
                StatusCode::FORBIDDEN => "your role may not change stages".to_owned(),
                _ => format!("the control plane answered {status}; see its log"),
            };
            (status, reason)
        }
    }
}

async fn deploy(
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let api = find_api(&state, &user, &api_id).await?;
    let stage = fields.trimmed("stage").to_owned();
    if let Err(e) = StageName::parse(&stage) {
        let errors = Errors::new("", vec![FieldError::new("stage", e.to_string())]);
        return deploy_refused(&state, &user, api, fields, errors).await;
    }
    let existing = stages::get(&state.pool, api.id, &stage).await?;
    let path = format!("/apis/{}/deployments", api.id);
    let body = CreateDeployment {
        description: fields.trimmed("description").to_owned(),
    };
    let created = match dispatch::call(&state, &user, Method::POST, &path, &body).await {
        Ok(created) => created,
        Err(Refusal::Invalid(errors)) => {
            return deploy_refused(&state, &user, api, fields, errors).await
        }
        Err(Refusal::Page(page)) => return Ok(page),
    };
    let Some(deployment_id) = created["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) else {
        return Ok(render::internal(&anyhow::anyhow!(
            "the admin API answered a deployment without an id"
        )));
    };
    let pointed = match existing {
        Some(_) => {
            let path = format!("/apis/{}/stages/{stage}", api.id);
            let body = UpdateStage {
                deployment_id: Some(deployment_id),
                ..UpdateStage::default()
            };
            dispatch::call(&state, &user, Method::PATCH, &path, &body).await
        }
        None => {
            let path = format!("/apis/{}/stages", api.id);
            let body = CreateStage {
                name: stage.clone(),
                deployment_id,
                variables: BTreeMap::new(),
                description: String::new(),
                throttle: None,
                access_log: false,
                websocket: None,
            };
            dispatch::call(&state, &user, Method::POST, &path, &body).await
        }
    };
    match pointed {
        Ok(_) => Ok(Redirect::to(&format!("/apis/{}/stages/{stage}", api.id)).into_response()),
        Err(refusal) => Ok(stage_failed(
            &user,
            api,
            deployment_id,
            stage,
            existing.is_none(),
            refusal,
        )),
    }
}

/// The page after a deployment was created but its stage could not be pointed at it.
fn stage_failed(
    user: &SignedIn,
    api: Api,
    deployment_id: Uuid,
    stage: String,
    new_stage: bool,
    refusal: Refusal,
) -> Response {
    let (status, reason) = stage_refusal(refusal);
    tracing::warn!(api = %api.id, %deployment_id, stage = %stage, reason = %reason, "deployed, but the stage was not changed");
    page_with(
        status,
        &StageFailedPage {
            frame: user.frame(Section::Apis),
            api,
            deployment_id: deployment_id.to_string(),
            deployment_short: short_id(deployment_id),
            stage,
            new_stage,
            reason,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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

    #[test]
    fn stage_refusals_say_which_field_was_refused() {
        let refusal = Refusal::Invalid(Errors::new(
            "Invalid request",
            vec![FieldError::new(
                "variables",
                "route `GET /a`: unknown variable",
            )],
        ));
        let (status, reason) = stage_refusal(refusal);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reason, "variables: route `GET /a`: unknown variable");
    }
}
