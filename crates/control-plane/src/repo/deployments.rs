//! The `deployments` table: immutable snapshots of an API's routes.

use chrono::{DateTime, Utc};
use gatehouse_model::{CorsConfiguration, DeployedAuthorizer, DeployedRoute};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

/// A deployment as listed: without its routes.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Deployment {
    pub id: Uuid,
    pub api_id: Uuid,
    pub description: String,
    pub author: String,
    pub route_count: i32,
    /// WebSocket APIs: the route selection expression, frozen with the routes.
    pub route_selection_expression: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A deployment with the routes, authorizers and CORS configuration it froze.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct DeploymentDetail {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub deployment: Deployment,
    #[schema(value_type = Vec<DeployedRoute>)]
    pub routes: Json<Vec<DeployedRoute>>,
    #[schema(value_type = Vec<DeployedAuthorizer>)]
    pub authorizers: Json<Vec<DeployedAuthorizer>>,
    #[schema(value_type = Option<CorsConfiguration>)]
    pub cors_configuration: Option<Json<CorsConfiguration>>,
}

/// What a deployment freezes of its API.
pub struct Frozen<'a> {
    pub routes: &'a [DeployedRoute],
    /// WebSocket APIs.
    pub route_selection_expression: Option<&'a str>,
    pub authorizers: &'a [DeployedAuthorizer],
    pub cors: Option<&'a CorsConfiguration>,
}

const DETAIL: &str = "routes, authorizers, cors_configuration";

const COLUMNS: &str =
    "id, api_id, description, author, jsonb_array_length(routes) AS route_count, route_selection_expression, created_at";

pub async fn insert(
    db: impl PgExecutor<'_>,
    api_id: Uuid,
    description: &str,
    author: &str,
    frozen: &Frozen<'_>,
) -> sqlx::Result<DeploymentDetail> {
    sqlx::query_as(&format!(
        "INSERT INTO deployments (id, api_id, description, author, routes, route_selection_expression,
                                  authorizers, cors_configuration)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING {COLUMNS}, {DETAIL}"
    ))
    .bind(Uuid::now_v7())
    .bind(api_id)
    .bind(description)
    .bind(author)
    .bind(Json(frozen.routes))
    .bind(frozen.route_selection_expression)
    .bind(Json(frozen.authorizers))
    .bind(frozen.cors.map(Json))
    .fetch_one(db)
    .await
}

pub async fn list(db: impl PgExecutor<'_>, api_id: Uuid) -> sqlx::Result<Vec<Deployment>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM deployments WHERE api_id = $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(api_id)
    .fetch_all(db)
    .await
}

pub async fn get(
    db: impl PgExecutor<'_>,
    api_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<DeploymentDetail>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS}, {DETAIL} FROM deployments WHERE api_id = $1 AND id = $2"
    ))
    .bind(api_id)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The route keys of every deployment a stage serves, each once, in one query.
pub async fn served_route_keys(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT route->>'route_key' \
         FROM stages JOIN deployments ON deployments.id = stages.deployment_id, \
              jsonb_array_elements(deployments.routes) AS route \
         WHERE route->>'route_key' IS NOT NULL",
    )
    .fetch_all(db)
    .await
}

/// Deletes a deployment no stage points at (the foreign key refuses otherwise).
pub async fn delete(db: impl PgExecutor<'_>, api_id: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM deployments WHERE api_id = $1 AND id = $2")
        .bind(api_id)
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
