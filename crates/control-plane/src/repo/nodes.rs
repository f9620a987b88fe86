//! The `nodes` table: the proxies that poll this control plane, as last seen, each bound
//! to the token it first polled with, so no other token can poll or report in its name.
//!
//! The bootstrap node token (`GATEHOUSE_NODE_TOKEN`) is one identity like any token: the
//! proxies that share it (the one of `gatehouse up`, the tests' several) may each poll
//! under a name of their own and cannot take names held by a working issued token, but
//! nothing tells them apart from one another. A proxy whose name must be its own gets a
//! node token of its own (`POST /api/v1/tokens` with role `node`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Node {
    pub id: String,
    pub version: String,
    pub address: String,
    pub config_version: Option<i64>,
    pub config_error: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// What a proxy tells about itself on each poll.
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub id: String,
    pub version: String,
    pub address: String,
    pub config_version: Option<i64>,
    pub config_error: Option<String>,
}

/// Whether the token of digest `$2` may act as the node of the row at hand: it holds the
/// node's id already, or nobody does (a node seen before ids were bound), or whoever held
/// it no longer works (a revoked or expired token, or a bootstrap token replaced in the
/// configuration; the bootstrap token's digest is `$3`), or the token succeeded the holder
/// by rotation (one or more: chains are followed 32 deep).
const MAY_ACT_AS: &str = "(nodes.token_digest IS NULL OR nodes.token_digest = $2
    OR NOT (COALESCE(nodes.token_digest = $3, false) OR EXISTS (
        SELECT 1 FROM api_tokens t
        WHERE t.digest = nodes.token_digest AND t.role = 'node' AND t.revoked_at IS NULL
          AND (t.expires_at IS NULL OR t.expires_at > now())))
    OR EXISTS (
        WITH RECURSIVE chain (digest, rotated_from, depth) AS (
            SELECT digest, rotated_from, 0 FROM api_tokens WHERE digest = $2
            UNION ALL
            SELECT t.digest, t.rotated_from, c.depth + 1
            FROM api_tokens t JOIN chain c ON t.id = c.rotated_from WHERE c.depth < 32)
        SELECT 1 FROM chain WHERE chain.digest = nodes.token_digest))";

/// Records a poll of the node of `report.id` by the token of `token_digest`, binding the id
/// to that token when it is new (or free: see [`MAY_ACT_AS`]). False, and nothing
/// written, when the id belongs to another token that still works: one proxy cannot pass
/// itself off as another. `bootstrap` is the digest of the configured bootstrap token.
pub async fn record(
    pool: &PgPool,
    report: &NodeReport,
    token_digest: &[u8],
    bootstrap: Option<&[u8]>,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO nodes (id, token_digest, version, address, config_version, config_error)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&report.id)
    .bind(token_digest)
    .bind(&report.version)
    .bind(&report.address)
    .bind(report.config_version)
    .bind(report.config_error.as_deref())
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(true);
    }
    // The row is locked while its condition is checked again, so two tokens racing for a
    // free id cannot both take it.
    let updated = sqlx::query(&format!(
        "UPDATE nodes SET token_digest = $2, version = $4, address = $5, config_version = $6,
             config_error = $7, last_seen = now()
         WHERE id = $1 AND {MAY_ACT_AS}"
    ))
    .bind(&report.id)
    .bind(token_digest)
    .bind(bootstrap)
    .bind(&report.version)
    .bind(&report.address)
    .bind(report.config_version)
    .bind(report.config_error.as_deref())
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Node>> {
    sqlx::query_as(
        "SELECT id, version, address, config_version, config_error, first_seen, last_seen
         FROM nodes ORDER BY last_seen DESC, id",
    )
    .fetch_all(db)
    .await
}

/// Whether the token of `token_digest` may report as node `id`: `None` when no node of
/// that id has polled, else whether the id is this token's (as [`record`] decides).
pub async fn may_act_as(
    db: impl PgExecutor<'_>,
    id: &str,
    token_digest: &[u8],
    bootstrap: Option<&[u8]>,
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar(&format!("SELECT {MAY_ACT_AS} FROM nodes WHERE id = $1"))
        .bind(id)
        .bind(token_digest)
        .bind(bootstrap)
        .fetch_optional(db)
        .await
}
