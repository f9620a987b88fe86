//! `GET /api/v1/nodes`: the proxies polling this control plane and what they run.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde::Serialize;

use crate::auth::Reader;
use crate::error::ApiResult;
use crate::http::Items;
use crate::repo::nodes::{self, Node};
use crate::AppState;

/// A node not seen for this long is shown as stale (a healthy one polls at least every
/// long-poll timeout, 30 s by default).
const STALE_AFTER_SECS: i64 = 75;

#[derive(Serialize)]
struct NodeView {
    #[serde(flatten)]
    node: Node,
    status: &'static str,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/nodes", get(list))
}

async fn list(_: Reader, State(state): State<AppState>) -> ApiResult<Json<Items<NodeView>>> {
    let now = Utc::now();
    let items = nodes::list(&state.pool)
        .await?
        .into_iter()
        .map(|node| {
            let stale = (now - node.last_seen).num_seconds() > STALE_AFTER_SECS;
            NodeView {
                status: if stale { "stale" } else { "healthy" },
                node,
            }
        })
        .collect();
    Ok(Json(Items { items }))
}
