//! The overview: traffic across all APIs, the busiest APIs and the proxies.

use askama::Template;
use axum::routing::get;
use axum::Router;

use super::render::{self, Frame, PageResult, Section};
use super::session::SignedIn;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(overview))
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    frame: Frame,
}

async fn overview(user: SignedIn) -> PageResult {
    Ok(render::page(&OverviewPage {
        frame: user.frame(Section::Overview),
    }))
}
