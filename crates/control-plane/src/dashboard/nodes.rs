//! The proxies page: every proxy that polls this control plane, what it runs and whether
//! it is keeping up. A proxy that has not polled for a while, or serves an old or refused
//! configuration, stands out.

use askama::Template;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::Utc;

use super::render::{self, ago, when, Frame, PageResult, Section};
use super::session::SignedIn;
use crate::http::nodes::{stale_after, status};
use crate::repo::{config_state, nodes};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/nodes", get(list))
}

/// A proxy as the pages show it.
pub struct NodeRow {
    pub id: String,
    pub address: String,
    pub version: String,
    pub config_version: String,
    pub config_error: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub last_seen_ago: String,
    /// `ok`, `warn` or `bad`, for the badge and the row.
    pub health: &'static str,
    pub status: &'static str,
}

/// Reads the proxies with their status against the current config version.
pub async fn rows(state: &AppState) -> sqlx::Result<Vec<NodeRow>> {
    let current = config_state::current_version(&state.pool).await?;
    let now = Utc::now();
    let stale_after = stale_after(state.config.long_poll_timeout);
    Ok(nodes::list(&state.pool)
        .await?
        .into_iter()
        .map(|node| {
            let status = status(&node, current, now, stale_after);
            NodeRow {
                config_version: node
                    .config_version
                    .map_or_else(|| "none yet".to_owned(), |v| v.to_string()),
                first_seen: when(node.first_seen),
                last_seen: when(node.last_seen),
                last_seen_ago: ago(node.last_seen, now),
                health: status.health(),
                status: status.label(),
                id: node.id,
                address: node.address,
                version: node.version,
                config_error: node.config_error,
            }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "nodes.html")]
struct NodesPage {
    frame: Frame,
    nodes: Vec<NodeRow>,
    current: i64,
}

async fn list(user: SignedIn, State(state): State<AppState>) -> PageResult {
    let nodes = rows(&state).await?;
    let current = config_state::current_version(&state.pool).await?;
    Ok(render::page(&NodesPage {
        frame: user.frame(Section::Nodes),
        nodes,
        current,
    }))
}
