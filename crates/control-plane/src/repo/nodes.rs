//! The `nodes` table: the proxies that poll this control plane, as last seen.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
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

pub async fn record(db: impl PgExecutor<'_>, report: &NodeReport) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO nodes (id, version, address, config_version, config_error) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, address = EXCLUDED.address,
             config_version = EXCLUDED.config_version, config_error = EXCLUDED.config_error, last_seen = now()",
    )
    .bind(&report.id)
    .bind(&report.version)
    .bind(&report.address)
    .bind(report.config_version)
    .bind(report.config_error.as_deref())
    .execute(db)
    .await?;
    Ok(())
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Node>> {
    sqlx::query_as(
        "SELECT id, version, address, config_version, config_error, first_seen, last_seen
         FROM nodes ORDER BY last_seen DESC, id",
    )
    .fetch_all(db)
    .await
}

/// True when a node with this id has polled.
pub async fn exists(db: impl PgExecutor<'_>, id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM nodes WHERE id = $1)")
        .bind(id)
        .fetch_one(db)
        .await
}
