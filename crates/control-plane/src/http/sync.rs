//! `GET /dp/v1/config`: the long poll proxies fetch their configuration with.
//!
//! A proxy sends the version it last received. If the deployed version differs, the
//! snapshot comes back at once; otherwise the request is held until a change is notified
//! or the wait runs out (304). Each poll also records the node: its id, software version,
//! address, the config version it serves and the last compile error, if any. A node id
//! belongs to the token that first polled with it ([`nodes`]): another token polling or
//! reporting under it is refused with a 409.

use std::sync::Mutex;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use gatehouse_model::usage::{UsageReport, UsageTotal, UsageTotals};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::auth::{bootstrap_node_digest, Node};
use crate::changes::stopped;
use crate::error::{ApiError, ApiResult};
use crate::json::JsonBody;
use crate::repo::nodes::{self, NodeReport};
use crate::repo::{config_state, usage};
use crate::AppState;

pub const NODE_ID_HEADER: &str = "x-gatehouse-node-id";
pub const NODE_VERSION_HEADER: &str = "x-gatehouse-node-version";
pub const NODE_ADDRESS_HEADER: &str = "x-gatehouse-node-address";
pub const CONFIG_VERSION_HEADER: &str = "x-gatehouse-config-version";
const MAX_HEADER_LEN: usize = 256;
const MAX_ERROR_LEN: usize = 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/config", get(poll))
        .route("/usage", get(current_usage).post(report_usage))
}

/// A snapshot as served: its version, hash and encoded bytes.
#[derive(Clone)]
struct Encoded {
    version: i64,
    hash: String,
    bytes: Bytes,
}

/// The newest snapshot built, reused while the version stays the same. After a deploy
/// every proxy asks at once; the build lock makes one of them build it.
#[derive(Default)]
pub struct SnapshotCache {
    last: Mutex<Option<Encoded>>,
    build: tokio::sync::Mutex<()>,
}

impl SnapshotCache {
    fn get(&self, version: i64) -> Option<Encoded> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref().filter(|e| e.version >= version).cloned()
    }

    fn put(&self, encoded: Encoded) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_ref().is_none_or(|e| e.version < encoded.version) {
            *last = Some(encoded);
        }
    }

    /// The snapshot of `version` or newer, from the cache or built.
    async fn at_least(&self, pool: &sqlx::PgPool, version: i64) -> ApiResult<Encoded> {
        if let Some(hit) = self.get(version) {
            return Ok(hit);
        }
        let _building = self.build.lock().await;
        if let Some(hit) = self.get(version) {
            return Ok(hit);
        }
        let snapshot = config_state::load_snapshot(pool).await?;
        let encoded = Encoded {
            version: snapshot.version,
            bytes: Bytes::from(snapshot.encode()),
            hash: snapshot.hash,
        };
        self.put(encoded.clone());
        Ok(encoded)
    }
}

/// Unknown parameters are ignored, so newer proxies can talk to older control planes.
#[derive(Debug, Deserialize)]
struct PollQuery {
    /// The version the proxy last received (served or refused).
    version: Option<i64>,
    /// The hash of the snapshot the proxy serves, when it serves the version it received:
    /// a database restored to an older state can reach the same version number again.
    hash: Option<String>,
    /// The version the proxy is serving.
    active: Option<i64>,
    /// Why the last snapshot was refused, if it was.
    error: Option<String>,
    /// How long to hold the request, in milliseconds (capped by the server's setting).
    wait_ms: Option<u64>,
}

pub fn header_text(headers: &HeaderMap, name: &str) -> ApiResult<Option<String>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => {
            let text = v
                .to_str()
                .ok()
                .filter(|t| !t.is_empty() && t.len() <= MAX_HEADER_LEN);
            text.map(|t| Some(t.to_owned())).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} must be 1 to {MAX_HEADER_LEN} visible characters"
                ))
            })
        }
    }
}

async fn poll(
    node: Node,
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PollQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let node_id = header_text(&headers, NODE_ID_HEADER)?
        .ok_or_else(|| ApiError::BadRequest(format!("{NODE_ID_HEADER} is required")))?;
    let report = NodeReport {
        id: node_id,
        version: header_text(&headers, NODE_VERSION_HEADER)?.unwrap_or_default(),
        address: header_text(&headers, NODE_ADDRESS_HEADER)?.unwrap_or_default(),
        config_version: query.active,
        config_error: query.error.map(|e| e.chars().take(MAX_ERROR_LEN).collect()),
    };
    let bootstrap = bootstrap_node_digest(&state);
    if !nodes::record(
        &state.pool,
        &report,
        &node.token_digest,
        bootstrap.as_ref().map(|d| d.as_slice()),
    )
    .await?
    {
        return Err(taken(&report.id));
    }

    let wait = query
        .wait_ms
        .map_or(state.config.long_poll_timeout, Duration::from_millis)
        .min(state.config.long_poll_timeout);
    let deadline = Instant::now() + wait;
    let mut changes = state.changes.clone();
    changes.borrow_and_update();
    loop {
        let current = config_state::current_version(&state.pool).await?;
        if query.version != Some(current) {
            return Ok(snapshot_response(
                state.snapshot_cache.at_least(&state.pool, current).await?,
            ));
        }
        if let Some(hash) = &query.hash {
            let served = state.snapshot_cache.at_least(&state.pool, current).await?;
            if served.version != current || served.hash != *hash {
                return Ok(snapshot_response(served));
            }
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    // The listener is gone; fall back to waiting out the poll.
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = stopped(state.shutdown.clone()) => {}
                    }
                    return Ok(StatusCode::NOT_MODIFIED.into_response());
                }
            }
            () = tokio::time::sleep_until(deadline) => return Ok(StatusCode::NOT_MODIFIED.into_response()),
            () = stopped(state.shutdown.clone()) => return Ok(StatusCode::NOT_MODIFIED.into_response()),
        }
    }
}

fn snapshot_response(encoded: Encoded) -> Response {
    let mut response = (StatusCode::OK, encoded.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(CONFIG_VERSION_HEADER, HeaderValue::from(encoded.version));
    response
}

/// The refusal of a node id that belongs to another token.
fn taken(node_id: &str) -> ApiError {
    tracing::warn!(node = %node_id, "a node id bound to another token was refused");
    ApiError::conflict(
        NODE_ID_HEADER,
        format!(
            "node {node_id:?} belongs to another node token; give this proxy a node id of its own"
        ),
    )
}

/// Checks that the caller may report as `node_id`: a node that polled with its token.
pub async fn reporting_node(state: &AppState, node: &Node, node_id: &str) -> ApiResult<()> {
    let bootstrap = bootstrap_node_digest(state);
    let bootstrap = bootstrap.as_ref().map(|d| d.as_slice());
    match nodes::may_act_as(&state.pool, node_id, &node.token_digest, bootstrap).await? {
        None => Err(ApiError::Forbidden(
            "unknown node: a proxy polls /dp/v1/config before it reports",
        )),
        Some(false) => Err(taken(node_id)),
        Some(true) => Ok(()),
    }
}

/// The answer to a usage report: the totals, with how many entries were counted and how
/// many were not (naming a key and plan no proxy is sent). Proxies read only the totals.
#[derive(Debug, Serialize)]
struct UsageReceipt {
    totals: Vec<UsageTotal>,
    accepted: usize,
    rejected: usize,
}

/// Most entries one usage report may carry.
pub const MAX_USAGE_ENTRIES: usize = 20_000;

/// `POST /dp/v1/usage`: a proxy's quota usage since its last report. Answers with the
/// totals, across all proxies, of every key, plan and period reported.
async fn report_usage(
    node: Node,
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(report): JsonBody<UsageReport>,
) -> ApiResult<Json<UsageReceipt>> {
    let node_id = header_text(&headers, NODE_ID_HEADER)?
        .ok_or_else(|| ApiError::BadRequest(format!("{NODE_ID_HEADER} is required")))?;
    reporting_node(&state, &node, &node_id).await?;
    if report.entries.len() > MAX_USAGE_ENTRIES {
        return Err(ApiError::invalid(
            "entries",
            format!("at most {MAX_USAGE_ENTRIES} per report"),
        ));
    }
    if report.used_keys.len() > MAX_USAGE_ENTRIES {
        return Err(ApiError::invalid(
            "used_keys",
            format!("at most {MAX_USAGE_ENTRIES} per report"),
        ));
    }
    let now = Utc::now();
    for (i, entry) in report.entries.iter().enumerate() {
        if entry.count == 0 || entry.count > 1_000_000_000 {
            return Err(ApiError::invalid(
                format!("entries[{i}].count"),
                "must be between 1 and 1000000000",
            ));
        }
        if entry.period_start > now + chrono::Duration::days(1)
            || entry.period_start < now - chrono::Duration::days(62)
        {
            return Err(ApiError::invalid(
                format!("entries[{i}].period_start"),
                "must be a current period",
            ));
        }
    }
    let recorded = usage::record(
        &state.pool,
        report.batch_id,
        &node_id,
        &report.entries,
        &report.used_keys,
    )
    .await?;
    if recorded.rejected > 0 {
        tracing::warn!(node = %node_id, batch = %report.batch_id, rejected = recorded.rejected, "usage entries of keys and plans no proxy is sent were not counted");
    }
    Ok(Json(UsageReceipt {
        totals: recorded.totals,
        accepted: recorded.accepted,
        rejected: recorded.rejected,
    }))
}

/// `GET /dp/v1/usage`: the totals of current periods, so a starting proxy knows how much
/// of each quota is gone.
async fn current_usage(_: Node, State(state): State<AppState>) -> ApiResult<Json<UsageTotals>> {
    Ok(Json(UsageTotals {
        totals: usage::current(&state.pool).await?,
    }))
}
