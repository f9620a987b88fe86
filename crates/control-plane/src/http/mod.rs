//! HTTP surface of the control plane: one `router()` per resource, merged here.

pub mod apis;
pub mod audit;
pub mod authorizers;
pub mod deployments;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod metrics_reports;
pub mod nodes;
pub mod openapi;
pub mod plans;
pub mod routes;
pub mod stages;
pub mod sync;
pub mod tokens;

use axum::extract::DefaultBodyLimit;
use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderValue;
use axum::routing::get;
use axum::{middleware, Router};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use uuid::Uuid;

use crate::auth;
use crate::error::{ApiError, FieldError};
use crate::telemetry;
use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::serve))
        .nest("/api/v1", admin_router(&state))
        .nest(
            "/dp/v1",
            sync::router()
                .merge(metrics_reports::router())
                .layer(middleware::from_extractor_with_state::<auth::Node, _>(
                    state.clone(),
                ))
                // Snapshots carry every key's hash.
                .layer(no_store()),
        )
        .merge(health::router())
        .merge(crate::dashboard::router())
        .route("/metrics", get(telemetry::metrics))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            telemetry::measure,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        // Errors are logged where they happen, with their cause (`error.rs`): a second,
        // causeless line per 5xx would only flood the log during a database outage.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .with_state(state)
}

/// The admin API (`/api/v1`, without the prefix), audited, and closed to anyone without a
/// token (unknown paths too). The dashboard sends its forms here too.
pub fn admin_router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(apis::router())
        .merge(routes::router())
        .merge(authorizers::router())
        .merge(deployments::router())
        .merge(stages::router())
        .merge(nodes::router())
        .merge(keys::router())
        .merge(plans::router())
        .merge(metrics::router())
        .merge(tokens::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), audit::record))
        .fallback(|| async { ApiError::NotFound("resource") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::guard_admin_api,
        ))
        // Created keys and issued tokens carry their value, and every other answer is the
        // admin's own data: no cache, shared or the browser's, may keep any of them.
        .layer(no_store())
}

/// Marks every answer `Cache-Control: no-store`, unless a handler says otherwise.
fn no_store() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

/// Parses an id from the URL; anything that is not a UUID names nothing that exists.
pub fn parse_id(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(what))
}

/// Longest name (of an API, a key, a usage plan) accepted.
pub const MAX_NAME_LEN: usize = 128;
/// Longest description (of an API, a stage, a deployment, a usage plan) accepted.
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// Notes in `errors` when `name` is empty, too long or holds control characters.
pub fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME_LEN
        || name.chars().any(char::is_control)
    {
        errors.push(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME_LEN} printable characters"),
        ));
    }
}

/// Notes in `errors` when `description` is too long.
pub fn check_description(description: &str, errors: &mut Vec<FieldError>) {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        errors.push(FieldError::new(
            "description",
            format!("at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
}

/// A list response: `{"items": [...]}`, leaving room for paging fields.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}
