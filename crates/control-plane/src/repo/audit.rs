//! The `audit_log` table: who changed what, when, and from where.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: String,
    pub status: i16,
    pub detail: Option<sqlx::types::Json<serde_json::Value>>,
}

pub struct NewEntry<'a> {
    pub actor: &'a str,
    pub source: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub status: u16,
    pub detail: Option<&'a serde_json::Value>,
}

pub async fn record(db: impl PgExecutor<'_>, entry: &NewEntry<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor, source, action, target, status, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(entry.actor)
    .bind(entry.source)
    .bind(entry.action)
    .bind(entry.target)
    .bind(i16::try_from(entry.status).unwrap_or(i16::MAX))
    .bind(entry.detail.map(sqlx::types::Json))
    .execute(db)
    .await?;
    Ok(())
}

/// The newest entries, `limit` of them, older than the entry `before` when given.
pub async fn page(
    db: impl PgExecutor<'_>,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<Entry>> {
    sqlx::query_as(
        "SELECT id, at, actor, source, action, target, status, detail FROM audit_log
         WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}
