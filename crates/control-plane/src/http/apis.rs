//! `/api/v1/apis`: create, list, read, change and delete APIs.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_model::{ApiSlug, Protocol, RouteSelection};
use serde::Deserialize;

use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::{check_description, check_name, parse_id, Items};
use crate::json::JsonBody;
use crate::repo::apis::{self, Api, ApiChanges, NewApi};
use crate::repo::config_state;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis", get(list).post(create))
        .route("/apis/{api_id}", get(read).patch(update).delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApi {
    name: String,
    slug: String,
    #[serde(default = "http_protocol")]
    protocol: String,
    #[serde(default)]
    description: String,
    /// WebSocket APIs: `$request.body.<field>`; `$request.body.action` when left out.
    route_selection_expression: Option<String>,
}

fn http_protocol() -> String {
    "HTTP".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateApi {
    name: Option<String>,
    slug: Option<String>,
    description: Option<String>,
    route_selection_expression: Option<String>,
}

fn parse_selection(raw: &str, errors: &mut Vec<FieldError>) -> Option<RouteSelection> {
    RouteSelection::parse(raw)
        .map_err(|e| errors.push(FieldError::new("route_selection_expression", e)))
        .ok()
}

fn parse_slug(slug: &str, errors: &mut Vec<FieldError>) -> Option<ApiSlug> {
    ApiSlug::parse(slug)
        .map_err(|e| errors.push(FieldError::new("slug", e.to_string())))
        .ok()
}

async fn create(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateApi>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    check_name(&body.name, &mut errors);
    check_description(&body.description, &mut errors);
    let slug = parse_slug(&body.slug, &mut errors);
    let protocol = Protocol::parse(&body.protocol);
    if protocol.is_none() {
        errors.push(FieldError::new("protocol", "must be HTTP or WEBSOCKET"));
    }
    let route_selection = match (protocol, body.route_selection_expression.as_deref()) {
        (Some(Protocol::Websocket), Some(raw)) => parse_selection(raw, &mut errors),
        (Some(Protocol::Websocket), None) => Some(RouteSelection::default()),
        (_, Some(_)) => {
            errors.push(FieldError::new(
                "route_selection_expression",
                "only WEBSOCKET APIs route by expression",
            ));
            None
        }
        (_, None) => None,
    };
    let (Some(slug), Some(protocol), true) = (slug, protocol, errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let new = NewApi {
        name: body.name,
        slug,
        protocol,
        route_selection,
        description: body.description,
    };
    let api = apis::insert(&state.pool, &new).await?;
    let location = format!("/api/v1/apis/{}", api.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(api),
    )
        .into_response())
}

async fn list(_: Reader, State(state): State<AppState>) -> ApiResult<Json<Items<Api>>> {
    Ok(Json(Items {
        items: apis::list(&state.pool).await?,
    }))
}

async fn read(
    _: Reader,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
) -> ApiResult<Json<Api>> {
    let id = parse_id(&api_id, "API")?;
    apis::get(&state.pool, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("API"))
}

async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    JsonBody(body): JsonBody<UpdateApi>,
) -> ApiResult<Json<Api>> {
    let id = parse_id(&api_id, "API")?;
    let mut errors = Vec::new();
    if let Some(name) = &body.name {
        check_name(name, &mut errors);
    }
    if let Some(description) = &body.description {
        check_description(description, &mut errors);
    }
    let slug = body
        .slug
        .as_deref()
        .and_then(|s| parse_slug(s, &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let route_selection = body
        .route_selection_expression
        .as_deref()
        .and_then(|raw| parse_selection(raw, &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let slug_changes = slug.is_some();
    let mut tx = state.pool.begin().await?;
    if route_selection.is_some() {
        let api = apis::get_for_update(&mut *tx, id)
            .await?
            .ok_or(ApiError::NotFound("API"))?;
        if api.protocol() != Protocol::Websocket {
            return Err(ApiError::invalid(
                "route_selection_expression",
                "only WEBSOCKET APIs route by expression",
            ));
        }
    }
    let changes = ApiChanges {
        name: body.name,
        slug,
        description: body.description,
        route_selection,
    };
    let api = apis::update(&mut *tx, id, &changes)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    if slug_changes {
        // The slug is part of every invoke URL: proxies must learn the new one.
        config_state::bump(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(Json(api))
}

async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&api_id, "API")?;
    let mut tx = state.pool.begin().await?;
    if !apis::delete(&mut *tx, id).await? {
        return Err(ApiError::NotFound("API"));
    }
    config_state::bump(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
