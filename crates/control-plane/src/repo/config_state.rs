//! The deployed-configuration version and the snapshot built from it.
//!
//! Every change to what proxies serve (a stage created, repointed or deleted, an API
//! renamed or deleted) calls [`bump`] in its own transaction: the version rises and a
//! `NOTIFY` goes out when, and only when, the transaction commits.

use gatehouse_model::{
    ApiSlug, ConfigSnapshot, DeployedRoute, DeployedStage, Protocol, StageName, StageVariables,
};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

/// The channel proxies' long polls are woken on.
pub const CHANNEL: &str = "gatehouse_config";

pub async fn current_version(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT version FROM config_state")
        .fetch_one(db)
        .await
}

/// Raises the version and queues the notification; call inside the changing transaction.
pub async fn bump(tx: &mut PgConnection) -> sqlx::Result<i64> {
    let version: i64 =
        sqlx::query_scalar("UPDATE config_state SET version = version + 1 RETURNING version")
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(version.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(version)
}

#[derive(sqlx::FromRow)]
struct StageRow {
    api_id: Uuid,
    slug: String,
    protocol: String,
    name: String,
    deployment_id: Uuid,
    variables: Json<StageVariables>,
    routes: Json<Vec<DeployedRoute>>,
}

/// Builds the snapshot of everything deployed, reading the version and the stages in one
/// consistent view of the database.
pub async fn load_snapshot(pool: &PgPool) -> anyhow::Result<ConfigSnapshot> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let version = current_version(&mut *tx).await?;
    let rows: Vec<StageRow> = sqlx::query_as(
        "SELECT a.id AS api_id, a.slug, a.protocol, s.name, s.deployment_id, s.variables, d.routes
         FROM stages s JOIN apis a ON a.id = s.api_id JOIN deployments d ON d.id = s.deployment_id
         ORDER BY a.slug, s.name",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut stages = Vec::with_capacity(rows.len());
    for row in rows {
        stages.push(DeployedStage {
            api_id: row.api_id,
            api_slug: ApiSlug::parse(&row.slug)?,
            protocol: Protocol::parse(&row.protocol)
                .ok_or_else(|| anyhow::anyhow!("unknown protocol {}", row.protocol))?,
            stage: StageName::parse(&row.name)?,
            deployment_id: row.deployment_id,
            variables: row.variables.0,
            routes: row.routes.0,
        });
    }
    Ok(ConfigSnapshot::new(version, stages))
}
