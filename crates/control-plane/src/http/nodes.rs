//! `GET /api/v1/nodes`: the proxies polling this control plane and what they run.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Reader;
use crate::error::ApiResult;
use crate::http::Items;
use crate::repo::nodes::{self, Node};
use crate::AppState;

/// A node not seen for this long is shown as stale (a healthy one polls at least every
/// long-poll timeout, 30 s by default).
const STALE_AFTER_SECS: i64 = 75;

#[derive(Serialize, ToSchema)]
pub(crate) struct NodeView {
    #[serde(flatten)]
    node: Node,
    status: NodeStatus,
}

/// Whether a node polled lately.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NodeStatus {
    Healthy,
    /// Not seen for more than 75 seconds.
    Stale,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/nodes", get(list))
}

/// Lists the proxies that polled this control plane.
#[utoipa::path(
    get,
    path = "/nodes",
    operation_id = "list_nodes",
    tag = "nodes",
    responses((status = 200, description = "Every node", body = Items<NodeView>))
)]
pub(crate) async fn list(
    _: Reader,
    State(state): State<AppState>,
) -> ApiResult<Json<Items<NodeView>>> {
    let now = Utc::now();
    let items = nodes::list(&state.pool)
        .await?
        .into_iter()
        .map(|node| {
            let stale = (now - node.last_seen).num_seconds() > STALE_AFTER_SECS;
            NodeView {
                status: if stale {
                    NodeStatus::Stale
                } else {
                    NodeStatus::Healthy
                },
                node,
            }
        })
        .collect();
    Ok(Json(Items { items }))
}
