//! `GET /api/v1/nodes`: the proxies polling this control plane and what they run.
//!
//! [`status`] decides what a node is doing, for this API and the dashboard's proxies page
//! alike, so the two never tell an operator different stories about the same proxy.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Reader;
use crate::error::ApiResult;
use crate::http::Items;
use crate::repo::config_state;
use crate::repo::nodes::{self, Node};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub(crate) struct NodeView {
    #[serde(flatten)]
    node: Node,
    status: NodeStatus,
    /// The configuration version proxies should serve now; `config_version` is the one
    /// this node serves.
    current_config_version: i64,
}

/// What a node is doing, as far as its polls tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Polling, and serving the current configuration.
    Live,
    /// Polling, but serving an older configuration (or none yet).
    CatchingUp,
    /// Polling, but it refused the last configuration it received (see `config_error`).
    RefusedConfig,
    /// Not seen for two long polls and more.
    Stale,
}

impl NodeStatus {
    /// How the dashboard words it.
    pub fn label(self) -> &'static str {
        match self {
            NodeStatus::Live => "live",
            NodeStatus::CatchingUp => "catching up",
            NodeStatus::RefusedConfig => "refused config",
            NodeStatus::Stale => "stale",
        }
    }

    /// The dashboard's badge: `ok`, `warn` or `bad`.
    pub fn health(self) -> &'static str {
        match self {
            NodeStatus::Live => "ok",
            NodeStatus::CatchingUp => "warn",
            NodeStatus::RefusedConfig | NodeStatus::Stale => "bad",
        }
    }
}

/// How long a node may go unseen before it is stale: a proxy polls at least once per long
/// poll, so two missed polls (and some slack for the network) make it stale.
pub fn stale_after(long_poll_timeout: Duration) -> chrono::Duration {
    chrono::Duration::from_std(long_poll_timeout * 2).unwrap_or(chrono::Duration::MAX)
        + chrono::Duration::seconds(10)
}

/// The status of `node` at `now`, when `current` is the configuration version to serve.
pub fn status(
    node: &Node,
    current: i64,
    now: DateTime<Utc>,
    stale_after: chrono::Duration,
) -> NodeStatus {
    if now - node.last_seen > stale_after {
        NodeStatus::Stale
    } else if node.config_error.is_some() {
        NodeStatus::RefusedConfig
    } else if node.config_version != Some(current) {
        NodeStatus::CatchingUp
    } else {
        NodeStatus::Live
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/nodes", get(list))
}

/// Lists the proxies that polled this control plane, with the configuration version each
/// serves and whether it keeps up.
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
    let current = config_state::current_version(&state.pool).await?;
    let now = Utc::now();
    let stale_after = stale_after(state.config.long_poll_timeout);
    let items = nodes::list(&state.pool)
        .await?
        .into_iter()
        .map(|node| NodeView {
            status: status(&node, current, now, stale_after),
            current_config_version: current,
            node,
        })
        .collect();
    Ok(Json(Items { items }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(config_version: Option<i64>, error: Option<&str>, seen_ago: i64) -> Node {
        let now = Utc::now();
        Node {
            id: "edge-1".into(),
            version: "1.0".into(),
            address: String::new(),
            config_version,
            config_error: error.map(str::to_owned),
            first_seen: now - chrono::Duration::hours(1),
            last_seen: now - chrono::Duration::seconds(seen_ago),
        }
    }

    #[test]
    fn a_node_a_version_behind_is_catching_up_not_live() {
        let stale = stale_after(Duration::from_secs(30));
        let now = Utc::now();
        let at = |n: &Node| status(n, 7, now, stale);
        assert_eq!(at(&node(Some(7), None, 1)), NodeStatus::Live);
        assert_eq!(at(&node(Some(6), None, 1)), NodeStatus::CatchingUp);
        assert_eq!(at(&node(None, None, 1)), NodeStatus::CatchingUp);
        assert_eq!(
            at(&node(Some(6), Some("bad"), 1)),
            NodeStatus::RefusedConfig
        );
        assert_eq!(at(&node(Some(7), None, 71)), NodeStatus::Stale);
        assert_eq!(NodeStatus::CatchingUp.label(), "catching up");
        assert_eq!(NodeStatus::CatchingUp.health(), "warn");
    }
}
