//! A stage's page: where clients call it, which deployment it serves, its settings
//! (description, variables, default throttle, access log), the deployments it can roll
//! back (or forward) to, and its traffic, as a whole and per deployed route. Also the
//! form on the API's page that adds a stage on an existing deployment, without deploying
//! ([`new_stage`]).
//!
//! Every change goes through the admin API's `POST /apis/{id}/stages` and
//! `PATCH`/`DELETE /apis/{id}/stages/{stage}`. The handlers are here; what the page shows
//! is read in [`page`]; the settings form is checked first in [`settings_form`], where
//! the API could not say which line or which number was wrong (variables typed as
//! `name=value` lines, throttle numbers).

mod new_stage;
mod page;
mod settings_form;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use gatehouse_model::StageName;
use serde::Deserialize;
use uuid::Uuid;

use self::page::{render_page, View};
use self::settings_form::{settings_body, SETTINGS_MAP};
use super::charts::{Range, RangeQuery};
use super::dispatch::{self, Refusal};
use super::form::{AdminPosted, Errors};
use super::render::{self, Failure, PageResult};
use super::session::SignedIn;
use crate::http::stages::UpdateStage;
use crate::repo::apis::Api;
use crate::repo::deployments;
use crate::repo::stages::{self, Stage};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis/{api_id}/stages", post(new_stage::create))
        .route("/apis/{api_id}/stages/{stage}", get(show).post(save))
        .route("/apis/{api_id}/stages/{stage}/rollback", post(roll_back))
        .route("/apis/{api_id}/stages/{stage}/delete", post(delete))
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

/// Saves the settings form; the stage's page follows, or the form again as typed with
/// what was wrong next to its fields.
async fn save(
    State(state): State<AppState>,
    Path((api_id, name)): Path<(String, String)>,
    posted: AdminPosted,
) -> PageResult {
    let user = &posted.user;
    let (api, stage) = find(&state, user, &api_id, &name).await?;
    let fields = posted.fields;
    let errors = match settings_body(&fields, api.protocol()) {
        Ok(body) => {
            let path = format!("/apis/{}/stages/{}", api.id, stage.name);
            match dispatch::call(&state, user, Method::PATCH, &path, &body).await {
                Ok(_) => return Ok(Redirect::to(&format!("{path}?done=settings")).into_response()),
                Err(Refusal::Invalid(errors)) => {
                    let mut errors = SETTINGS_MAP.place(errors);
                    if !errors.fields.is_empty() {
                        errors.summary = Some("Check the fields below.".to_owned());
                    }
                    errors
                }
                Err(Refusal::Page(page)) => return Ok(page),
            }
        }
        Err(errors) => Errors::new("Check the fields below.", errors),
    };
    let view = View {
        fields: Some(fields),
        errors,
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

/// A refusal's messages as one sentence.
fn sentence(errors: &Errors) -> String {
    let details = errors.fields.iter().map(|e| {
        if e.field.is_empty() {
            e.message.clone()
        } else {
            format!("{}: {}", e.field, e.message)
        }
    });
    errors
        .summary
        .iter()
        .cloned()
        .chain(details)
        .collect::<Vec<_>>()
        .join(". ")
}
