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
use gatehouse_model::{
    AuthorizationType, Integration, Protocol, RouteAuthorization, RouteKey, RouteTable,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::{parse_id, Items};
use crate::json::JsonBody;
use crate::repo::routes::{self, Route, RouteSpec};
use crate::repo::{apis, authorizers};
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

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRoute {
    #[schema(value_type = RouteKey)]
    pub(crate) route_key: String,
    /// Whether clients must send an API key (on WebSocket APIs: `$connect` only).
    #[serde(default)]
    pub(crate) api_key_required: bool,
    /// NONE (default), JWT or CUSTOM (a REQUEST authorizer); HTTP APIs only.
    #[serde(default)]
    pub(crate) authorization_type: AuthorizationType,
    /// The API's authorizer, for JWT and CUSTOM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) authorizer_id: Option<Uuid>,
    /// JWT: the token must grant one of these scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) authorization_scopes: Vec<String>,
    pub(crate) integration: Integration,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateRoute {
    #[schema(value_type = Option<RouteKey>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) route_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) api_key_required: Option<bool>,
    /// A new type takes the `authorizer_id` and `authorization_scopes` sent with it (or
    /// none); without one, either may change alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) authorization_type: Option<AuthorizationType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) authorizer_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) authorization_scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) integration: Option<Integration>,
}

fn parse_key(protocol: Protocol, raw: &str) -> ApiResult<RouteKey> {
    RouteKey::parse_for(protocol, raw).map_err(|e| ApiError::invalid("route_key", e.to_string()))
}

/// Checks what the route's API protocol allows: path parameters its key defines, an API
/// key only on `$connect` of a WebSocket API (as AWS), WebSocket pass-through only on
/// HTTP APIs.
fn check_spec(protocol: Protocol, spec: &RouteSpec) -> ApiResult<()> {
    let key = &spec.route_key;
    if let Integration::HttpProxy(proxy) = &spec.integration {
        let params = key.param_names();
        if let Some(unknown) = proxy.uri.path_params().find(|p| !params.contains(p)) {
            let why = match protocol {
                Protocol::Http => format!("route key `{key}` does not define it"),
                Protocol::Websocket => "a WebSocket route has no path parameters; use a fixed path or `${stageVariables.name}`".to_owned(),
            };
            return Err(ApiError::invalid(
                "integration.uri",
                format!("uses `{{{unknown}}}`, but {why}"),
            ));
        }
        if proxy.websocket_upgrade && protocol == Protocol::Websocket {
            return Err(ApiError::invalid(
                "integration.websocket_upgrade",
                "only routes of HTTP APIs pass WebSocket upgrades through; a WebSocket API's routes carry messages",
            ));
        }
    }
    spec.authorization
        .check()
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    if protocol == Protocol::Websocket
        && spec.authorization.authorization_type != AuthorizationType::None
    {
        return Err(ApiError::invalid(
            "authorization_type",
            "authorizers protect HTTP APIs; a WebSocket API checks an API key on `$connect`",
        ));
    }
    if protocol == Protocol::Websocket && spec.api_key_required && *key != RouteKey::Connect {
        return Err(ApiError::invalid(
            "api_key_required",
            "a WebSocket API checks the API key once, on `$connect`; its messages count against the key's plan",
        ));
    }
    Ok(())
}

/// Checks that the authorizer `spec` names is one of the API's, of the kind its
/// authorization type calls for.
async fn check_authorizer(
    conn: &mut PgConnection,
    api_id: Uuid,
    spec: &RouteSpec,
) -> ApiResult<()> {
    let (Some(id), Some(wanted)) = (
        spec.authorization.authorizer_id,
        spec.authorization.authorization_type.authorizer_type(),
    ) else {
        return Ok(());
    };
    let authorizer = authorizers::get(&mut *conn, api_id, id)
        .await?
        .ok_or_else(|| ApiError::invalid("authorizer_id", "no such authorizer in this API"))?;
    let found = authorizer.definition.0.authorizer_type;
    if found != wanted {
        return Err(ApiError::invalid(
            "authorizer_id",
            format!(
                "authorization_type {} needs a {} authorizer; `{}` is {}",
                spec.authorization.authorization_type.as_str(),
                wanted.as_str(),
                authorizer.definition.0.name,
                found.as_str()
            ),
        ));
    }
    Ok(())
}

/// Checks that `spec` fits with the API's other routes (all but `replacing`).
async fn check_route_set(
    conn: &mut PgConnection,
    protocol: Protocol,
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
            RouteKey::try_from(other.route_key.clone())
                .map_err(|e| anyhow::anyhow!("stored route key: {e}"))?,
            (),
        ));
    }
    if protocol == Protocol::Websocket {
        // Message routes are picked by exact key: only a repeated key conflicts.
        if keys.iter().any(|(key, ())| *key == spec.route_key) {
            return Err(ApiError::conflict(
                "route_key",
                format!("route `{}` already exists", spec.route_key),
            ));
        }
        return Ok(());
    }
    keys.push((spec.route_key.clone(), ()));
    RouteTable::compile(keys).map_err(|e| ApiError::conflict("route_key", e.to_string()))?;
    Ok(())
}

/// Adds a route to an API.
#[utoipa::path(
    post,
    path = "/apis/{api_id}/routes",
    operation_id = "create_route",
    tag = "routes",
    params(("api_id" = Uuid, Path, description = "The API's id")),
    request_body = CreateRoute,
    responses(
        (status = 201, description = "The route", body = Route,
            headers(("location" = String, description = "Where the route is"))),
        (status = 404, description = "No such API", body = ErrorBody),
        (status = 409, description = "The route key clashes with another route of the API",
            body = ErrorBody),
    )
)]
pub(crate) async fn create(
    _: Admin,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    JsonBody(body): JsonBody<CreateRoute>,
) -> ApiResult<Response> {
    let api_id = parse_id(&api_id, "API")?;
    let mut tx = state.pool.begin().await?;
    let protocol = apis::get_for_update(&mut *tx, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?
        .protocol();
    let spec = RouteSpec {
        route_key: parse_key(protocol, &body.route_key)?,
        api_key_required: body.api_key_required,
        authorization: RouteAuthorization {
            authorization_type: body.authorization_type,
            authorizer_id: body.authorizer_id,
            authorization_scopes: body.authorization_scopes,
        },
        integration: body.integration,
    };
    check_spec(protocol, &spec)?;
    check_authorizer(&mut tx, api_id, &spec).await?;
    check_route_set(&mut tx, protocol, api_id, None, &spec).await?;
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

/// Lists an API's routes.
#[utoipa::path(
    get,
    path = "/apis/{api_id}/routes",
    operation_id = "list_routes",
    tag = "routes",
    params(("api_id" = Uuid, Path, description = "The API's id")),
    responses(
        (status = 200, description = "The API's routes", body = Items<Route>),
        (status = 404, description = "No such API", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    _: Reader,
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

/// Reads a route.
#[utoipa::path(
    get,
    path = "/apis/{api_id}/routes/{route_id}",
    operation_id = "read_route",
    tag = "routes",
    params(("api_id" = Uuid, Path, description = "The API's id"), ("route_id" = Uuid, Path, description = "The route's id")),
    responses(
        (status = 200, description = "The route", body = Route),
        (status = 404, description = "No such route in this API", body = ErrorBody),
    )
)]
pub(crate) async fn read(
    _: Reader,
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

/// Changes a route: any of its fields.
#[utoipa::path(
    patch,
    path = "/apis/{api_id}/routes/{route_id}",
    operation_id = "update_route",
    tag = "routes",
    params(("api_id" = Uuid, Path, description = "The API's id"), ("route_id" = Uuid, Path, description = "The route's id")),
    request_body = UpdateRoute,
    responses(
        (status = 200, description = "The changed route", body = Route),
        (status = 404, description = "No such API, or no such route in it", body = ErrorBody),
        (status = 409, description = "The route key clashes with another route of the API",
            body = ErrorBody),
    )
)]
pub(crate) async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path((api_id, route_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateRoute>,
) -> ApiResult<Json<Route>> {
    let api_id = parse_id(&api_id, "API")?;
    let route_id = parse_id(&route_id, "route")?;
    let mut tx = state.pool.begin().await?;
    let protocol = apis::get_for_update(&mut *tx, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?
        .protocol();
    let new_key = body
        .route_key
        .as_deref()
        .map(|raw| parse_key(protocol, raw))
        .transpose()?;
    let current = routes::get(&mut *tx, api_id, route_id)
        .await?
        .ok_or(ApiError::NotFound("route"))?;
    let spec = RouteSpec {
        route_key: match new_key {
            Some(k) => k,
            None => RouteKey::try_from(current.route_key.clone())
                .map_err(|e| anyhow::anyhow!("stored route key: {e}"))?,
        },
        api_key_required: body.api_key_required.unwrap_or(current.api_key_required),
        authorization: match body.authorization_type {
            Some(authorization_type) => RouteAuthorization {
                authorization_type,
                authorizer_id: body.authorizer_id,
                authorization_scopes: body.authorization_scopes.unwrap_or_default(),
            },
            None => {
                let mut kept = current.authorization();
                if let Some(id) = body.authorizer_id {
                    kept.authorizer_id = Some(id);
                }
                if let Some(scopes) = body.authorization_scopes {
                    kept.authorization_scopes = scopes;
                }
                kept
            }
        },
        integration: body.integration.unwrap_or(current.integration.0),
    };
    check_spec(protocol, &spec)?;
    check_authorizer(&mut tx, api_id, &spec).await?;
    check_route_set(&mut tx, protocol, api_id, Some(route_id), &spec).await?;
    let route = routes::update(&mut *tx, api_id, route_id, &spec)
        .await?
        .ok_or(ApiError::NotFound("route"))?;
    tx.commit().await?;
    Ok(Json(route))
}

/// Deletes a route. Deployments keep their copy.
#[utoipa::path(
    delete,
    path = "/apis/{api_id}/routes/{route_id}",
    operation_id = "delete_route",
    tag = "routes",
    params(("api_id" = Uuid, Path, description = "The API's id"), ("route_id" = Uuid, Path, description = "The route's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such route in this API", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
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
