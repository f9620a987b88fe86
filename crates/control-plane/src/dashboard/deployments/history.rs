//! An API's deployment history: every deployment, newest first, with the stages that
//! serve it; where a deleted deployment's page leads.

use askama::Template;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::super::apis::find_api;
use super::super::render::{self, Frame, PageResult, Section};
use super::super::session::SignedIn;
use super::DeploymentRow;
use crate::repo::apis::Api;
use crate::repo::{deployments, stages};
use crate::AppState;

#[derive(Template)]
#[template(path = "deployments.html")]
struct HistoryPage {
    frame: Frame,
    api: Api,
    deployments: Vec<DeploymentRow>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub(super) struct HistoryQuery {
    #[serde(default)]
    done: String,
}

pub(super) async fn history(
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
