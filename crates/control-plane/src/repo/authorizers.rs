//! The `authorizers` table: an API's JWT and REQUEST authorizers, before they are
//! deployed.

use chrono::{DateTime, Utc};
use gatehouse_model::{AuthorizerSpec, DeployedAuthorizer};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Authorizer {
    pub id: Uuid,
    pub api_id: Uuid,
    #[serde(flatten)]
    #[schema(inline, value_type = AuthorizerSpec)]
    pub definition: Json<AuthorizerSpec>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Authorizer {
    pub fn deployed(&self) -> DeployedAuthorizer {
        DeployedAuthorizer {
            id: self.id,
            spec: self.definition.0.clone(),
        }
    }
}

const COLUMNS: &str = "id, api_id, definition, created_at, updated_at";

pub async fn insert(
    db: impl PgExecutor<'_>,
    api_id: Uuid,
    spec: &AuthorizerSpec,
) -> sqlx::Result<Authorizer> {
    sqlx::query_as(&format!(
        "INSERT INTO authorizers (id, api_id, name, definition) VALUES ($1, $2, $3, $4)
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(api_id)
    .bind(&spec.name)
    .bind(Json(spec))
    .fetch_one(db)
    .await
}

pub async fn list(db: impl PgExecutor<'_>, api_id: Uuid) -> sqlx::Result<Vec<Authorizer>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM authorizers WHERE api_id = $1 ORDER BY name"
    ))
    .bind(api_id)
    .fetch_all(db)
    .await
}

pub async fn get(
    db: impl PgExecutor<'_>,
    api_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Authorizer>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM authorizers WHERE api_id = $1 AND id = $2"
    ))
    .bind(api_id)
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn update(
    db: impl PgExecutor<'_>,
    api_id: Uuid,
    id: Uuid,
    spec: &AuthorizerSpec,
) -> sqlx::Result<Option<Authorizer>> {
    sqlx::query_as(&format!(
        "UPDATE authorizers SET name = $3, definition = $4, updated_at = now()
         WHERE api_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(api_id)
    .bind(id)
    .bind(&spec.name)
    .bind(Json(spec))
    .fetch_optional(db)
    .await
}

pub async fn delete(db: impl PgExecutor<'_>, api_id: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM authorizers WHERE api_id = $1 AND id = $2")
        .bind(api_id)
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The routes of the API that use the authorizer, by route key.
pub async fn users(db: impl PgExecutor<'_>, api_id: Uuid, id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT route_key FROM routes WHERE api_id = $1 AND authorizer_id = $2 ORDER BY route_key",
    )
    .bind(api_id)
    .bind(id)
    .fetch_all(db)
    .await
}
