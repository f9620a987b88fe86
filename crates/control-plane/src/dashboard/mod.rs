//! The browser dashboard: server-rendered askama pages over the same store and the same
//! admin API as scripts use. Reads go to the repositories; every change is sent through
//! the admin API's router ([`dispatch`]), so the two can never disagree.
//!
//! Every page is sent with a Content-Security-Policy that allows only this origin's own
//! stylesheet, script and images (no inline script or style), and may not be framed.

pub mod accounts;
mod apis;
mod assets;
mod audit;
mod authorizers;
pub mod chart;
pub mod charts;
mod deployments;
pub mod dispatch;
mod field_map;
pub mod form;
pub mod form_token;
pub mod invoke;
mod keys;
mod model_rules;
mod nodes;
mod overview;
pub mod passwords;
mod plans;
pub mod render;
mod routes;
pub mod session;
pub mod signin;
mod stages;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::AppState;

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(signin::router())
        .merge(overview::router())
        .merge(charts::router())
        .merge(apis::router())
        .merge(routes::router())
        .merge(authorizers::router())
        .merge(stages::router())
        .merge(deployments::router())
        .merge(keys::router())
        .merge(plans::router())
        .merge(nodes::router())
        .merge(audit::router())
        .merge(assets::router())
        .fallback(not_found)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// The friendly 404 for any path nothing else serves.
async fn not_found(State(state): State<AppState>, mut parts: Parts) -> Response {
    let user = session::SignedIn::from_request_parts(&mut parts, &state)
        .await
        .ok();
    render::not_found(user.as_ref(), "page")
}
