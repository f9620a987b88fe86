//! Attaching keys to a plan and detaching them, from the plan's page.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::super::dispatch::{self, Refusal};
use super::super::form::{AdminPosted, Errors};
use super::super::render::PageResult;
use super::not_found;
use super::page::{plan_answer, Notes};
use crate::error::FieldError;
use crate::http::plans::AttachKey;
use crate::AppState;

pub(super) async fn attach(
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
            let body = AttachKey { key_id };
            match dispatch::call(&state, &user, Method::POST, &path, &body).await {
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

pub(super) async fn detach(
    State(state): State<AppState>,
    Path((plan_id, key_id)): Path<(String, String)>,
    posted: AdminPosted,
) -> Response {
    let user = &posted.user;
    let (Ok(id), Ok(key_id)) = (Uuid::parse_str(&plan_id), Uuid::parse_str(&key_id)) else {
        return not_found(user);
    };
    let path = format!("/usage-plans/{id}/keys/{key_id}");
    match dispatch::delete(&state, user, &path).await {
        Ok(_) => Redirect::to(&format!("/plans/{id}")).into_response(),
        Err(refusal) => refusal.into_page(user),
    }
}
