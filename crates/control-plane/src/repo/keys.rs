//! The `api_keys` table. Values are never stored: only their SHA-256 and a short prefix
//! that lets people tell keys apart.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, prefix, enabled, created_at, updated_at, last_used_at";

/// Which keys proxies are sent: enabled, and attached to a usage plan that covers a
/// stage (every stage points at a deployment). Only these can be used, so only these may
/// appear in what proxies report.
pub const SERVED: &str = "k.enabled AND EXISTS (
    SELECT 1 FROM usage_plan_keys pk JOIN usage_plan_stages ps ON ps.plan_id = pk.plan_id
    WHERE pk.key_id = k.id)";

/// Which of `ids` name keys proxies are sent ([`SERVED`]).
pub async fn served(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(&format!(
        "SELECT k.id FROM api_keys k WHERE k.id = ANY($1) AND {SERVED}"
    ))
    .bind(ids)
    .fetch_all(db)
    .await
}

/// Stores a key by its hash (hex).
pub async fn insert(
    db: impl PgExecutor<'_>,
    name: &str,
    prefix: &str,
    hash: &str,
    enabled: bool,
) -> sqlx::Result<ApiKey> {
    sqlx::query_as(&format!(
        "INSERT INTO api_keys (id, name, prefix, hash, enabled) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(prefix)
    .bind(hash)
    .bind(enabled)
    .fetch_one(db)
    .await
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<ApiKey>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
    ))
    .fetch_all(db)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<ApiKey>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn update(
    db: impl PgExecutor<'_>,
    id: Uuid,
    name: Option<&str>,
    enabled: Option<bool>,
) -> sqlx::Result<Option<ApiKey>> {
    sqlx::query_as(&format!(
        "UPDATE api_keys SET name = COALESCE($2, name), enabled = COALESCE($3, enabled), updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(name)
    .bind(enabled)
    .fetch_optional(db)
    .await
}

pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM api_keys WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The keys attached to a plan, in the order they were attached.
pub async fn in_plan(db: impl PgExecutor<'_>, plan_id: Uuid) -> sqlx::Result<Vec<ApiKey>> {
    sqlx::query_as(
        "SELECT k.id, k.name, k.prefix, k.enabled, k.created_at, k.updated_at, k.last_used_at
         FROM api_keys k JOIN usage_plan_keys pk ON pk.key_id = k.id
         WHERE pk.plan_id = $1 ORDER BY pk.created_at, pk.key_id",
    )
    .bind(plan_id)
    .fetch_all(db)
    .await
}

/// Ids of the usage plans a key is attached to.
pub async fn plan_ids(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT plan_id FROM usage_plan_keys WHERE key_id = $1 ORDER BY plan_id")
        .bind(id)
        .fetch_all(db)
        .await
}
