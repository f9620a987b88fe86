//! The `stages` table: named environments of an API, each pointing at one deployment.

use chrono::{DateTime, Utc};
use gatehouse_model::{StageName, StageVariables, Throttle, WebSocketLimits};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Stage {
    pub api_id: Uuid,
    #[schema(value_type = StageName)]
    pub name: String,
    pub deployment_id: Uuid,
    #[schema(value_type = StageVariables)]
    pub variables: Json<StageVariables>,
    pub description: String,
    #[serde(skip)]
    pub throttle_rate: f64,
    #[serde(skip)]
    pub throttle_burst: i32,
    /// Whether proxies write an access log line per request of this stage.
    pub access_log: bool,
    #[serde(skip)]
    pub ws_max_message_bytes: i32,
    #[serde(skip)]
    pub ws_max_frame_bytes: i32,
    #[serde(skip)]
    pub ws_idle_timeout_seconds: i32,
    #[serde(skip)]
    pub ws_max_connection_seconds: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "api_id, name, deployment_id, variables, description, throttle_rate, throttle_burst, access_log,
     ws_max_message_bytes, ws_max_frame_bytes, ws_idle_timeout_seconds, ws_max_connection_seconds,
     created_at, updated_at";

pub struct NewStage {
    pub name: StageName,
    pub deployment_id: Uuid,
    pub variables: StageVariables,
    pub description: String,
    pub throttle: Throttle,
    pub access_log: bool,
    pub websocket: WebSocketLimits,
}

/// A limit as stored: checked to fit before it gets here (see `WebSocketLimits::problems`).
fn column(limit: u32) -> i32 {
    i32::try_from(limit).unwrap_or(i32::MAX)
}

pub async fn insert(db: impl PgExecutor<'_>, api_id: Uuid, new: &NewStage) -> sqlx::Result<Stage> {
    sqlx::query_as(&format!(
        "INSERT INTO stages (api_id, name, deployment_id, variables, description, throttle_rate, throttle_burst, access_log,
                             ws_max_message_bytes, ws_max_frame_bytes, ws_idle_timeout_seconds, ws_max_connection_seconds)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLUMNS}"
    ))
    .bind(api_id)
    .bind(new.name.as_str())
    .bind(new.deployment_id)
    .bind(Json(&new.variables))
    .bind(&new.description)
    .bind(new.throttle.rate)
    .bind(super::throttle_columns(new.throttle).1)
    .bind(new.access_log)
    .bind(column(new.websocket.max_message_bytes))
    .bind(column(new.websocket.max_frame_bytes))
    .bind(column(new.websocket.idle_timeout_seconds))
    .bind(column(new.websocket.max_connection_seconds))
    .fetch_one(db)
    .await
}

pub async fn list(db: impl PgExecutor<'_>, api_id: Uuid) -> sqlx::Result<Vec<Stage>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM stages WHERE api_id = $1 ORDER BY name"
    ))
    .bind(api_id)
    .fetch_all(db)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, api_id: Uuid, name: &str) -> sqlx::Result<Option<Stage>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM stages WHERE api_id = $1 AND name = $2"
    ))
    .bind(api_id)
    .bind(name)
    .fetch_optional(db)
    .await
}

/// The whole new state of a stage (the handler merges a PATCH into the current one).
pub async fn update(
    db: impl PgExecutor<'_>,
    api_id: Uuid,
    stage: &NewStage,
) -> sqlx::Result<Option<Stage>> {
    sqlx::query_as(&format!(
        "UPDATE stages SET deployment_id = $3, variables = $4, description = $5, throttle_rate = $6,
                throttle_burst = $7, access_log = $8, ws_max_message_bytes = $9,
                ws_max_frame_bytes = $10, ws_idle_timeout_seconds = $11,
                ws_max_connection_seconds = $12, updated_at = now()
         WHERE api_id = $1 AND name = $2 RETURNING {COLUMNS}"
    ))
    .bind(api_id)
    .bind(stage.name.as_str())
    .bind(stage.deployment_id)
    .bind(Json(&stage.variables))
    .bind(&stage.description)
    .bind(stage.throttle.rate)
    .bind(super::throttle_columns(stage.throttle).1)
    .bind(stage.access_log)
    .bind(column(stage.websocket.max_message_bytes))
    .bind(column(stage.websocket.max_frame_bytes))
    .bind(column(stage.websocket.idle_timeout_seconds))
    .bind(column(stage.websocket.max_connection_seconds))
    .fetch_optional(db)
    .await
}

impl Stage {
    pub fn throttle(&self) -> Throttle {
        super::throttle_from_columns(self.throttle_rate, self.throttle_burst)
    }

    pub fn websocket(&self) -> WebSocketLimits {
        let limit = |v: i32| u32::try_from(v).unwrap_or(0);
        WebSocketLimits {
            max_message_bytes: limit(self.ws_max_message_bytes),
            max_frame_bytes: limit(self.ws_max_frame_bytes),
            idle_timeout_seconds: limit(self.ws_idle_timeout_seconds),
            max_connection_seconds: limit(self.ws_max_connection_seconds),
        }
    }
}

pub async fn delete(db: impl PgExecutor<'_>, api_id: Uuid, name: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM stages WHERE api_id = $1 AND name = $2")
        .bind(api_id)
        .bind(name)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

// ---- Dashboard reads (APIs area) ----

/// Every stage of every API, by API then name: for the dashboard's list of APIs.
pub async fn list_all(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Stage>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM stages ORDER BY api_id, name"
    ))
    .fetch_all(db)
    .await
}
