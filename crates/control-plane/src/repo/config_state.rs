//! The deployed-configuration version and the snapshot built from it.
//!
//! Every change to what proxies serve (a stage created, repointed or deleted, an API
//! renamed or deleted) calls [`bump`] in its own transaction: the version rises and a
//! `NOTIFY` goes out when, and only when, the transaction commits.

use gatehouse_model::{
    ApiSlug, ConfigSnapshot, CorsConfiguration, DeployedAuthorizer, DeployedKey, DeployedPlan,
    DeployedRoute, DeployedStage, Protocol, RouteSelection, StageName, StageVariables,
    WebSocketLimits,
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
    throttle_rate: f64,
    throttle_burst: i32,
    access_log: bool,
    route_selection_expression: Option<String>,
    ws_max_message_bytes: i32,
    ws_max_frame_bytes: i32,
    ws_idle_timeout_seconds: i32,
    ws_max_connection_seconds: i32,
    routes: Json<Vec<DeployedRoute>>,
    authorizers: Json<Vec<DeployedAuthorizer>>,
    cors_configuration: Option<Json<CorsConfiguration>>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: Uuid,
    hash: String,
    plans: Vec<Uuid>,
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
        "SELECT a.id AS api_id, a.slug, a.protocol, s.name, s.deployment_id, s.variables, s.throttle_rate,
                s.throttle_burst, s.access_log, d.routes, d.authorizers, d.cors_configuration,
                COALESCE(d.route_selection_expression, a.route_selection_expression) AS route_selection_expression,
                s.ws_max_message_bytes, s.ws_max_frame_bytes, s.ws_idle_timeout_seconds,
                s.ws_max_connection_seconds
         FROM stages s JOIN apis a ON a.id = s.api_id JOIN deployments d ON d.id = s.deployment_id
         ORDER BY a.slug, s.name",
    )
    .fetch_all(&mut *tx)
    .await?;
    let keys: Vec<KeyRow> = sqlx::query_as(
        "SELECT k.id, k.hash, COALESCE(array_agg(pk.plan_id ORDER BY pk.plan_id) FILTER (WHERE pk.plan_id IS NOT NULL), '{}') AS plans
         FROM api_keys k LEFT JOIN usage_plan_keys pk ON pk.key_id = k.id
         WHERE k.enabled GROUP BY k.id ORDER BY k.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let plans = crate::repo::plans::list(&mut tx).await?;
    tx.commit().await?;
    let mut stages = Vec::with_capacity(rows.len());
    for row in rows {
        let limit = |v: i32| u32::try_from(v).unwrap_or(0);
        let route_selection = row
            .route_selection_expression
            .as_deref()
            .map(RouteSelection::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("stored route selection expression: {e}"))?;
        stages.push(DeployedStage {
            api_id: row.api_id,
            api_slug: ApiSlug::parse(&row.slug)?,
            protocol: Protocol::parse(&row.protocol)
                .ok_or_else(|| anyhow::anyhow!("unknown protocol {}", row.protocol))?,
            stage: StageName::parse(&row.name)?,
            deployment_id: row.deployment_id,
            variables: row.variables.0,
            throttle: crate::repo::throttle_from_columns(row.throttle_rate, row.throttle_burst),
            access_log: row.access_log,
            route_selection,
            websocket: WebSocketLimits {
                max_message_bytes: limit(row.ws_max_message_bytes),
                max_frame_bytes: limit(row.ws_max_frame_bytes),
                idle_timeout_seconds: limit(row.ws_idle_timeout_seconds),
                max_connection_seconds: limit(row.ws_max_connection_seconds),
            },
            routes: row.routes.0,
            authorizers: row.authorizers.0,
            cors: row.cors_configuration.map(|c| c.0),
        });
    }
    let keys = keys
        .into_iter()
        .map(|k| DeployedKey {
            id: k.id,
            hash: k.hash,
            plans: k.plans,
        })
        .collect();
    let plans = plans
        .into_iter()
        .map(|p| DeployedPlan {
            id: p.id,
            throttle: p.throttle,
            quota: p.quota,
            stages: p.stages,
        })
        .collect();
    Ok(ConfigSnapshot::new(version, stages, keys, plans))
}
