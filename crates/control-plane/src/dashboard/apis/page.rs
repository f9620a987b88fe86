//! An API's own page: its routes with who may call them, its authorizers and CORS form
//! (HTTP APIs), its stages with their invoke URLs, its recent deployments, the Deploy
//! form, the form that adds a stage on an existing deployment, and its traffic. The
//! deploy, new stage and CORS handlers show it again with their form as typed when the
//! admin API refuses it ([`ApiForms`]).

use askama::Template;
use axum::extract::{Path, Query, State};
use gatehouse_model::Protocol;

use super::super::authorizers::{self as api_authorizers, AuthorizerRow};
use super::super::charts::{Range, RangeQuery, Traffic};
use super::super::deployments::DeploymentRow;
use super::super::form::{Errors, Fields};
use super::super::invoke;
use super::super::render::{self, Failure, Frame, PageResult, Section};
use super::super::routes::RouteRow;
use super::super::session::SignedIn;
use super::{cors, find_api, short_id};
use crate::repo::apis::Api;
use crate::repo::{authorizers, deployments, routes, stages};
use crate::AppState;

/// Deployments the API's page lists; the rest are in the history.
const RECENT_DEPLOYMENTS: usize = 5;

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
pub(in crate::dashboard) struct ApiForms {
    pub deploy: Option<(Fields, Errors)>,
    /// The form that adds a stage on an existing deployment (fields `new.*`).
    pub new_stage: Option<(Fields, Errors)>,
    /// The CORS form (fields `cors_configuration.*`).
    pub cors: Option<(Fields, Errors)>,
}

/// The API's page; the Deploy form shows `deploy` and `errors` (after a refused deploy).
#[derive(Template)]
#[template(path = "api.html")]
pub(in crate::dashboard) struct ApiPage {
    frame: Frame,
    api: Api,
    routes: Vec<RouteRow>,
    /// HTTP APIs: their authorizers, by name.
    authorizers: Vec<AuthorizerRow>,
    /// Whether the API has a CORS configuration (else the form shows empty).
    has_cors: bool,
    cors: Fields,
    cors_errors: Errors,
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

/// Builds the API's page, its forms holding what `forms` says.
pub(in crate::dashboard) async fn api_page(
    state: &AppState,
    user: &SignedIn,
    api: Api,
    forms: ApiForms,
    range: Range,
) -> Result<ApiPage, Failure> {
    let api_authorizers = authorizers::list(&state.pool, api.id).await?;
    let names = api_authorizers::names(&api_authorizers);
    let route_rows = routes::list(&state.pool, api.id)
        .await?
        .iter()
        .map(|route| RouteRow::new(route, &names))
        .collect();
    let stored_cors = api.cors_configuration.as_ref().map(|c| &c.0);
    let (cors, cors_errors) = forms
        .cors
        .unwrap_or_else(|| (cors::fields_of(stored_cors), Errors::default()));
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
        authorizers: api_authorizers.iter().map(AuthorizerRow::new).collect(),
        has_cors: stored_cors.is_some(),
        cors,
        cors_errors,
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

pub(super) async fn show(
    user: SignedIn,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    Query(query): Query<RangeQuery>,
) -> PageResult {
    let api = find_api(&state, &user, &api_id).await?;
    let page = api_page(&state, &user, api, ApiForms::default(), query.range()).await?;
    Ok(render::page(&page))
}
