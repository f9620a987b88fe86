//! The `apis` table.

use chrono::{DateTime, Utc};
use gatehouse_model::{ApiSlug, CorsConfiguration, Protocol, RouteSelection};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Api {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = ApiSlug)]
    pub slug: String,
    #[schema(value_type = Protocol)]
    pub protocol: String,
    /// WebSocket APIs only: how a message's route is chosen.
    pub route_selection_expression: Option<String>,
    pub description: String,
    /// HTTP APIs only: which browser origins may call the API.
    #[schema(value_type = Option<CorsConfiguration>)]
    pub cors_configuration: Option<Json<CorsConfiguration>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewApi {
    pub name: String,
    pub slug: ApiSlug,
    pub protocol: Protocol,
    pub route_selection: Option<RouteSelection>,
    pub description: String,
    pub cors: Option<CorsConfiguration>,
}

impl Api {
    pub fn protocol(&self) -> Protocol {
        Protocol::parse(&self.protocol).unwrap_or(Protocol::Http)
    }
}

const COLUMNS: &str = "id, name, slug, protocol, route_selection_expression, description, \
     cors_configuration, created_at, updated_at";

pub async fn insert(db: impl PgExecutor<'_>, new: &NewApi) -> sqlx::Result<Api> {
    sqlx::query_as(&format!(
        "INSERT INTO apis (id, name, slug, protocol, route_selection_expression, description,
                           cors_configuration)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(&new.name)
    .bind(new.slug.as_str())
    .bind(new.protocol.as_str())
    .bind(new.route_selection.as_ref().map(RouteSelection::as_str))
    .bind(&new.description)
    .bind(new.cors.as_ref().map(Json))
    .fetch_one(db)
    .await
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Api>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM apis ORDER BY slug"))
        .fetch_all(db)
        .await
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Api>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM apis WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Reads the API and locks its row until the transaction ends, so concurrent changes to
/// its routes are checked one after the other.
pub async fn get_for_update(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Api>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM apis WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

pub struct ApiChanges {
    pub name: Option<String>,
    pub slug: Option<ApiSlug>,
    pub description: Option<String>,
    /// Only for WebSocket APIs (the table refuses it on others).
    pub route_selection: Option<RouteSelection>,
    /// `Some(None)` removes the CORS configuration.
    pub cors: Option<Option<CorsConfiguration>>,
}

pub async fn update(
    db: impl PgExecutor<'_>,
    id: Uuid,
    changes: &ApiChanges,
) -> sqlx::Result<Option<Api>> {
    sqlx::query_as(&format!(
        "UPDATE apis SET name = COALESCE($2, name), slug = COALESCE($3, slug),
                description = COALESCE($4, description),
                route_selection_expression = COALESCE($5, route_selection_expression),
                cors_configuration = CASE WHEN $6 THEN $7 ELSE cors_configuration END,
                updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(changes.name.as_deref())
    .bind(changes.slug.as_ref().map(ApiSlug::as_str))
    .bind(changes.description.as_deref())
    .bind(changes.route_selection.as_ref().map(RouteSelection::as_str))
    .bind(changes.cors.is_some())
    .bind(changes.cors.as_ref().and_then(|c| c.as_ref()).map(Json))
    .fetch_optional(db)
    .await
}

pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM apis WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
