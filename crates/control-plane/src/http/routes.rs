//! `/api/v1/apis/{id}/routes`: the routes of an API and their integrations.
//!
//! Every change is checked against the API's other routes in the same transaction, with
//! the API row locked, using the proxy's own route compiler: a route set the API accepts
//! is one every proxy can serve.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_model::{Integration, RouteKey, RouteTable};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::http::{parse_id, Items};
use crate::json::JsonBody;
use crate::repo::apis;
use crate::repo::routes::{self, Route, RouteSpec};
use crate::AppState;

/// Most routes one API may have.
pub const MAX_ROUTES_PER_API: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis/{api_id}/routes", get(list).post(create))
        .route(
            "/apis/{api_id}/routes/{route_id}",
            get(read).patch(update).delete(remove),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoute {
    route_key: String,
    #[serde(default)]
    api_key_required: bool,
    integration: Integration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRoute {
    route_key: Option<String>,
    api_key_required: Option<bool>,
    integration: Option<Integration>,
}

fn parse_key(raw: &str) -> ApiResult<RouteKey> {
    RouteKey::parse(raw).map_err(|e| ApiError::invalid("route_key", e.to_string()))
}

/// The integration may only use path parameters its route key defines.
fn check_integration(key: &RouteKey, integration: &Integration) -> ApiResult<()> {
    if let Integration::HttpProxy(proxy) = integration {
        let params = key.param_names();
        if let Some(unknown) = proxy.uri.path_params().find(|p| !params.contains(p)) {
            return Err(ApiError::invalid(
                "integration.uri",
                format!("uses `{{{unknown}}}`, which route key `{key}` does not define"),
            ));
        }
    }
    Ok(())
}

/// Checks that `spec` fits with the API's other routes (all but `replacing`).
async fn check_route_set(
    conn: &mut PgConnection,
    api_id: Uuid,
    replacing: Option<Uuid>,
    spec: &RouteSpec,
) -> ApiResult<()> {
    let others = routes::list(&mut *conn, api_id).await?;
    let others: Vec<&Route> = others.iter().filter(|r| Some(r.id) != replacing).collect();
    if replacing.is_none() && others.len() >= MAX_ROUTES_PER_API {
        return Err(ApiError::invalid(
            "route_key",
            format!("an API has at most {MAX_ROUTES_PER_API} routes"),
        ));
    }
    let mut keys = Vec::with_capacity(others.len() + 1);
    for other in others {
        keys.push((
            RouteKey::parse(&other.route_key)
                .map_err(|e| anyhow::anyhow!("stored route key: {e}"))?,
            (),
        ));
    }
    keys.push((spec.route_key.clone(), ()));
    RouteTable::compile(keys).map_err(|e| ApiError::conflict("route_key", e.to_string()))?;
    Ok(())
}

async fn create(
    _: Admin,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    JsonBody(body): JsonBody<CreateRoute>,
) -> ApiResult<Response> {
    let api_id = parse_id(&api_id, "API")?;
    let spec = RouteSpec {
        route_key: parse_key(&body.route_key)?,
        api_key_required: body.api_key_required,
        integration: body.integration,
    };
    check_integration(&spec.route_key, &spec.integration)?;
    let mut tx = state.pool.begin().await?;
    apis::get_for_update(&mut *tx, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    check_route_set(&mut tx, api_id, None, &spec).await?;
    let route = routes::insert(&mut *tx, api_id, &spec).await?;
    tx.commit().await?;
    let location = format!("/api/v1/apis/{api_id}/routes/{}", route.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(route),
    )
        .into_response())
}

async fn list(
    _: Admin,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
) -> ApiResult<Json<Items<Route>>> {
    let api_id = parse_id(&api_id, "API")?;
    apis::get(&state.pool, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    Ok(Json(Items {
        items: routes::list(&state.pool, api_id).await?,
    }))
}

async fn read(
    _: Admin,
    State(state): State<AppState>,
    Path((api_id, route_id)): Path<(String, String)>,
) -> ApiResult<Json<Route>> {
    let api_id = parse_id(&api_id, "API")?;
    let route_id = parse_id(&route_id, "route")?;
    routes::get(&state.pool, api_id, route_id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("route"))
}

async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path((api_id, route_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateRoute>,
) -> ApiResult<Json<Route>> {
    let api_id = parse_id(&api_id, "API")?;
    let route_id = parse_id(&route_id, "route")?;
    let new_key = body.route_key.as_deref().map(parse_key).transpose()?;
    let mut tx = state.pool.begin().await?;
    apis::get_for_update(&mut *tx, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    let current = routes::get(&mut *tx, api_id, route_id)
        .await?
        .ok_or(ApiError::NotFound("route"))?;
    let spec = RouteSpec {
        route_key: match new_key {
            Some(k) => k,
            None => RouteKey::parse(&current.route_key)
                .map_err(|e| anyhow::anyhow!("stored route key: {e}"))?,
        },
        api_key_required: body.api_key_required.unwrap_or(current.api_key_required),
        integration: body.integration.unwrap_or(current.integration.0),
    };
    check_integration(&spec.route_key, &spec.integration)?;
    check_route_set(&mut tx, api_id, Some(route_id), &spec).await?;
    let route = routes::update(&mut *tx, api_id, route_id, &spec)
        .await?
        .ok_or(ApiError::NotFound("route"))?;
    tx.commit().await?;
    Ok(Json(route))
}

async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path((api_id, route_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let api_id = parse_id(&api_id, "API")?;
    let route_id = parse_id(&route_id, "route")?;
    if routes::delete(&state.pool, api_id, route_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("route"))
    }
}
