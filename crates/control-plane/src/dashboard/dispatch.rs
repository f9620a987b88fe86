//! Sends a dashboard change through the admin API's own router, in process, acting for the
//! signed-in user. The browser can then do exactly what a script can, with the same
//! validation, transactions and audit trail, and nothing is written twice.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower::ServiceExt;

use super::form::Errors;
use super::render;
use super::session::SignedIn;
use crate::auth::DashboardActor;
use crate::error::FieldError;
use crate::AppState;

/// Largest admin API answer read back (the biggest are deployments with many routes).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Why the admin API did not do what the form asked.
pub enum Refusal {
    /// Bad input: show the form again with these errors.
    Invalid(Errors),
    /// Anything else: a page that says what happened.
    Page(Response),
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
    #[serde(default)]
    errors: Vec<FieldError>,
}

/// Calls `method path` of the admin API (path without `/api/v1`) as `user`, sending
/// `body`: one of the admin API's own request structs, so a form can only send what the
/// handler reads. Returns the JSON answer (`null` for 204) or why it was refused.
pub async fn call<B: Serialize>(
    state: &AppState,
    user: &SignedIn,
    method: Method,
    path: &str,
    body: &B,
) -> Result<Value, Refusal> {
    let json = match serde_json::to_vec(body) {
        Ok(json) => json,
        Err(e) => return Err(Refusal::Page(render::internal(&anyhow::Error::new(e)))),
    };
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    send(state, user, request, Body::from(json)).await
}

/// Deletes `path` of the admin API (path without `/api/v1`) as `user`.
pub async fn delete(state: &AppState, user: &SignedIn, path: &str) -> Result<Value, Refusal> {
    let request = Request::builder().method(Method::DELETE).uri(path);
    send(state, user, request, Body::empty()).await
}

async fn send(
    state: &AppState,
    user: &SignedIn,
    request: axum::http::request::Builder,
    body: Body,
) -> Result<Value, Refusal> {
    let Ok(mut request) = request.body(body) else {
        return Err(Refusal::Page(render::not_found(Some(user), "page")));
    };
    request.extensions_mut().insert(DashboardActor {
        name: user.user.name.clone(),
        role: user.user.role,
    });
    let router = crate::http::admin_router(state).with_state(state.clone());
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let bytes = to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .unwrap_or_default();
    if status.is_success() {
        return Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
    }
    let error: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
        message: "The change was refused".to_owned(),
        errors: Vec::new(),
    });
    Err(match status {
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT | StatusCode::BAD_REQUEST => {
            Refusal::Invalid(Errors::new(error.message, error.errors))
        }
        StatusCode::NOT_FOUND => Refusal::Page(render::not_found(Some(user), &error.message)),
        StatusCode::FORBIDDEN => Refusal::Page(render::viewer_denied(user)),
        _ => Refusal::Page(render::problem(
            status,
            Some(user),
            "The change could not be made",
            &error.message,
        )),
    })
}

impl Refusal {
    /// The page for a refusal where no form can show the errors.
    pub fn into_page(self, user: &SignedIn) -> Response {
        match self {
            Refusal::Page(page) => page,
            Refusal::Invalid(errors) => {
                let detail = errors.field_details();
                let message = match (errors.summary, detail.is_empty()) {
                    (Some(summary), true) => summary,
                    (Some(summary), false) => format!("{summary}: {detail}"),
                    (None, _) => detail,
                };
                render::problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some(user),
                    "The change was refused",
                    &message,
                )
            }
        }
    }
}
