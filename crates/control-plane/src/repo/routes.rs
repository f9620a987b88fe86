//! The `routes` table: the editable routes of an API, before they are deployed.

use chrono::{DateTime, Utc};
use gatehouse_model::{AuthorizationType, Integration, RouteAuthorization, RouteKey};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Route {
    pub id: Uuid,
    pub api_id: Uuid,
    #[schema(value_type = RouteKey)]
    pub route_key: String,
    pub api_key_required: bool,
    #[schema(value_type = AuthorizationType)]
    pub authorization_type: String,
    pub authorizer_id: Option<Uuid>,
    pub authorization_scopes: Vec<String>,
    #[schema(value_type = Integration)]
    pub integration: Json<Integration>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Route {
    /// The route's authorization, as the model has it.
    pub fn authorization(&self) -> RouteAuthorization {
        RouteAuthorization {
            authorization_type: match self.authorization_type.as_str() {
                "JWT" => AuthorizationType::Jwt,
                "CUSTOM" => AuthorizationType::Custom,
                _ => AuthorizationType::None,
            },
            authorizer_id: self.authorizer_id,
            authorization_scopes: self.authorization_scopes.clone(),
        }
    }
}

/// A route's content, whether new or changed.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub route_key: RouteKey,
    pub api_key_required: bool,
    pub authorization: RouteAuthorization,
    pub integration: Integration,
}

const COLUMNS: &str =
    "id, api_id, route_key, api_key_required, authorization_type, authorizer_id, \
     authorization_scopes, integration, created_at, updated_at";

pub async fn insert(
    db: impl PgExecutor<'_>,
    api_id: Uuid,
    spec: &RouteSpec,
) -> sqlx::Result<Route> {
    sqlx::query_as(&format!(
        "INSERT INTO routes (id, api_id, route_key, api_key_required, integration,
                             authorization_type, authorizer_id, authorization_scopes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(api_id)
    .bind(spec.route_key.to_string())
    .bind(spec.api_key_required)
    .bind(Json(&spec.integration))
    .bind(spec.authorization.authorization_type.as_str())
    .bind(spec.authorization.authorizer_id)
    .bind(&spec.authorization.authorization_scopes)
    .fetch_one(db)
    .await
}

pub async fn list(db: impl PgExecutor<'_>, api_id: Uuid) -> sqlx::Result<Vec<Route>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM routes WHERE api_id = $1 ORDER BY route_key"
    ))
    .bind(api_id)
    .fetch_all(db)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, api_id: Uuid, id: Uuid) -> sqlx::Result<Option<Route>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM routes WHERE api_id = $1 AND id = $2"
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
    spec: &RouteSpec,
) -> sqlx::Result<Option<Route>> {
    sqlx::query_as(&format!(
        "UPDATE routes SET route_key = $3, api_key_required = $4, integration = $5,
                authorization_type = $6, authorizer_id = $7, authorization_scopes = $8,
                updated_at = now()
         WHERE api_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(api_id)
    .bind(id)
    .bind(spec.route_key.to_string())
    .bind(spec.api_key_required)
    .bind(Json(&spec.integration))
    .bind(spec.authorization.authorization_type.as_str())
    .bind(spec.authorization.authorizer_id)
    .bind(&spec.authorization.authorization_scopes)
    .fetch_optional(db)
    .await
}

pub async fn delete(db: impl PgExecutor<'_>, api_id: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM routes WHERE api_id = $1 AND id = $2")
        .bind(api_id)
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

// ---- Dashboard reads (APIs area) ----

/// How many routes each API has (APIs without routes are absent).
pub async fn counts(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(Uuid, i64)>> {
    sqlx::query_as("SELECT api_id, count(*) FROM routes GROUP BY api_id")
        .fetch_all(db)
        .await
}
