//! `/api/v1/apis`: create, list, read, change and delete APIs.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_model::{ApiSlug, Protocol};
use serde::Deserialize;

use crate::auth::Admin;
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
    let protocol = match Protocol::parse(&body.protocol) {
        Some(Protocol::Http) => Some(Protocol::Http),
        Some(Protocol::Websocket) => {
            errors.push(FieldError::new(
                "protocol",
                "WEBSOCKET APIs are not available yet; use HTTP",
            ));
            None
        }
        None => {
            errors.push(FieldError::new("protocol", "must be HTTP or WEBSOCKET"));
            None
        }
    };
    let (Some(slug), Some(protocol), true) = (slug, protocol, errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let new = NewApi {
        name: body.name,
        slug,
        protocol,
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

async fn list(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Items<Api>>> {
    Ok(Json(Items {
        items: apis::list(&state.pool).await?,
    }))
}

async fn read(
    _: Admin,
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
    let slug_changes = slug.is_some();
    let changes = ApiChanges {
        name: body.name,
        slug,
        description: body.description,
    };
    let mut tx = state.pool.begin().await?;
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
