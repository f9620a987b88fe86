//! The control plane's own pages: a landing page at `/` and its stylesheet. Templates are
//! askama files in `templates/` (escaped by default); assets in `static/` are compiled
//! into the binary, so a single file serves them, offline.

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::repo::nodes;
use crate::AppState;

const STYLESHEET: &str = include_str!("../../../../static/gatehouse.css");

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    version: &'static str,
    node_label: String,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/static/gatehouse.css", get(stylesheet))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'",
            ),
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
            HeaderValue::from_static("no-referrer"),
        ))
}

async fn index(State(state): State<AppState>) -> Response {
    // The count of proxies is all this page tells without signing in.
    let node_label = match nodes::list(&state.pool).await {
        Ok(list) if list.len() == 1 => "1 proxy".to_owned(),
        Ok(list) => format!("{} proxies", list.len()),
        Err(_) => "its proxies (the database is unreachable right now)".to_owned(),
    };
    let page = IndexPage {
        version: env!("CARGO_PKG_VERSION"),
        node_label,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering the landing page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").into_response()
        }
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}
