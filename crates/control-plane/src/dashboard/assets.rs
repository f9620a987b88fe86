//! The dashboard's stylesheet, script and icon, compiled into the binary so one file
//! serves them, offline.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::AppState;

const STYLESHEET: &str = include_str!("../../../../static/gatehouse.css");
const SCRIPT: &str = include_str!("../../../../static/dashboard.js");
const ICON: &str = include_str!("../../../../static/favicon.svg");

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/static/gatehouse.css",
            get(|| asset("text/css; charset=utf-8", STYLESHEET)),
        )
        .route(
            "/static/dashboard.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route("/static/favicon.svg", get(|| asset("image/svg+xml", ICON)))
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
}
