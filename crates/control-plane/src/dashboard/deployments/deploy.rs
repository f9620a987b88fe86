//! The Deploy form on the API's page: freeze the API's routes into a new deployment, then
//! create the stage it names or point it at the new deployment. A form the admin API
//! refuses comes back on the API's page; a stage it refuses after the deployment was
//! made gets a page of its own saying the deployment exists and the stage is unchanged.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_model::StageName;
use uuid::Uuid;

use super::super::apis::{api_page, explain, find_api, short_id, ApiForms};
use super::super::charts::Range;
use super::super::dispatch::{self, Refusal};
use super::super::form::{AdminPosted, Errors, Fields};
use super::super::render::{self, page_with, Frame, PageResult, Section};
use super::super::session::SignedIn;
use crate::error::FieldError;
use crate::http::deployments::CreateDeployment;
use crate::http::stages::{CreateStage, UpdateStage};
use crate::repo::apis::Api;
use crate::repo::stages;
use crate::AppState;

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
            let detail = errors.field_details();
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

pub(super) async fn deploy(
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
