//! One deployment's page: its frozen routes, authorizers and CORS configuration, what
//! changed against the deployment before it (or any other the reader picks), and
//! deleting it, which shows the page again with the admin API's reason when a stage
//! still serves it.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use gatehouse_model::{AuthorizerType, CorsConfiguration, DeployedAuthorizer};
use serde::Deserialize;

use super::super::apis::find_api;
use super::super::dispatch::{self, Refusal};
use super::super::form::AdminPosted;
use super::super::render::{self, page_with, Failure, Frame, PageResult, Section};
use super::super::routes::{authorization_summary, summary};
use super::super::session::SignedIn;
use super::diff::{authorizer_names, diff, DiffRow};
use super::{find_deployment, DeploymentRow};
use crate::repo::apis::Api;
use crate::repo::deployments::{self, DeploymentDetail};
use crate::repo::stages;
use crate::AppState;

/// A frozen route.
struct FrozenRow {
    route_key: String,
    integration: String,
    api_key_required: bool,
    /// Who may call it: `JWT idp (read:pets)`, or empty for anyone.
    authorization: String,
}

/// A frozen authorizer.
struct FrozenAuthorizer {
    name: String,
    /// `JWT` or `REQUEST`.
    kind: &'static str,
    /// A JWT authorizer's issuer, a REQUEST authorizer's URI.
    target: String,
    /// A JWT authorizer's audiences, a REQUEST authorizer's identity sources.
    detail: String,
}

impl FrozenAuthorizer {
    fn new(authorizer: &DeployedAuthorizer) -> FrozenAuthorizer {
        let spec = &authorizer.spec;
        let (target, detail) = match (spec.authorizer_type, &spec.jwt_configuration) {
            (AuthorizerType::Jwt, Some(jwt)) => (
                jwt.issuer.clone(),
                format!("audiences: {}", jwt.audience.join(", ")),
            ),
            _ => (
                spec.authorizer_uri.clone().unwrap_or_default(),
                format!(
                    "identity: {}",
                    spec.identity_source
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        };
        FrozenAuthorizer {
            name: spec.name.clone(),
            kind: spec.authorizer_type.as_str(),
            target,
            detail,
        }
    }
}

#[derive(Template)]
#[template(path = "deployment.html")]
struct DeploymentPage {
    frame: Frame,
    api: Api,
    deployment: DeploymentRow,
    routes: Vec<FrozenRow>,
    authorizers: Vec<FrozenAuthorizer>,
    /// The frozen CORS configuration; `None` when the gateway does not answer CORS.
    cors: Option<CorsConfiguration>,
    /// Against the other deployment: whether its authorizers, or its CORS, differ.
    authorizers_changed: bool,
    cors_changed: bool,
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
pub(super) struct AgainstQuery {
    #[serde(default)]
    against: String,
}

pub(super) async fn show(
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
    let old_authorizers = against
        .as_ref()
        .map_or(&[][..], |d| d.authorizers.0.as_slice());
    let (old_names, names) = (
        authorizer_names(old_authorizers),
        authorizer_names(&this.authorizers.0),
    );
    let changes = diff(old_routes, &this.routes.0)
        .iter()
        .map(|change| DiffRow::new(change, &old_names, &names))
        .collect();
    let cors = this.cors_configuration.map(|c| c.0);
    let (authorizers_changed, cors_changed) = match &against {
        Some(other) => (
            other.authorizers.0 != this.authorizers.0,
            other.cors_configuration.as_ref().map(|c| &c.0) != cors.as_ref(),
        ),
        None => (false, false),
    };
    let routes = this
        .routes
        .0
        .iter()
        .map(|r| FrozenRow {
            route_key: r.route_key.to_string(),
            integration: summary(&r.integration),
            api_key_required: r.api_key_required,
            authorization: authorization_summary(&r.authorization, |id| names.get(&id).cloned()),
        })
        .collect();
    let authorizers = this
        .authorizers
        .0
        .iter()
        .map(FrozenAuthorizer::new)
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
        authorizers,
        cors,
        authorizers_changed,
        cors_changed,
        against_previous: against_id.is_some() && against_id == previous,
        against: against.map(|d| DeploymentRow::new(&d.deployment, &stage_list)),
        changes,
        others: DeploymentRow::list(&others, &stage_list),
        delete_error,
        api,
    })
}

/// Deletes a deployment no stage serves; the history follows. When a stage serves it,
/// the admin API refuses, and the deployment's page says why.
pub(super) async fn delete(
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
