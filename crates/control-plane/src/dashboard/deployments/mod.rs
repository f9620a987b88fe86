//! Deployments in the dashboard: the Deploy action (freeze the routes, then point a stage
//! at them), an API's deployment history, one deployment's frozen routes with what
//! changed against the one before it, or against any other, and deleting a deployment no
//! stage serves (the admin API refuses the others, and its reason is shown).
//!
//! Deploying is two admin API calls (create the deployment, then create or repoint the
//! stage), each its own transaction ([`deploy`]). When the second is refused, the
//! deployment exists but the stage still serves what it did before; the page that
//! follows says exactly that. What changed between two deployments is worked out in
//! [`diff`].

mod deploy;
mod diff;
mod history;
mod page;

use axum::routing::{get, post};
use axum::Router;
use uuid::Uuid;

use super::apis::short_id;
use super::render::{self, Failure};
use super::session::SignedIn;
use crate::repo::apis::Api;
use crate::repo::deployments::{self, Deployment, DeploymentDetail};
use crate::repo::stages::Stage;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis/{api_id}/deploy", post(deploy::deploy))
        .route("/apis/{api_id}/deployments", get(history::history))
        .route(
            "/apis/{api_id}/deployments/{deployment_id}",
            get(page::show),
        )
        .route(
            "/apis/{api_id}/deployments/{deployment_id}/delete",
            post(page::delete),
        )
}

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

/// The deployment of `api` that `raw_id` names, or the friendly 404.
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
