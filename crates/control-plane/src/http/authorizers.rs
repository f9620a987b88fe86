//! `/api/v1/apis/{id}/authorizers`: an API's JWT and REQUEST authorizers. Routes name
//! them; a deployment freezes them with the routes, so a change reaches traffic at the
//! next deployment, as AWS does.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_model::authorizer::{AuthorizerInput, MAX_AUTHORIZERS_PER_API};
use gatehouse_model::{AuthorizerSpec, Protocol};
use serde_json::Value;

use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::{parse_id, Items};
use crate::json::JsonBody;
use crate::repo::apis;
use crate::repo::authorizers::{self, Authorizer};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis/{api_id}/authorizers", get(list).post(create))
        .route(
            "/apis/{api_id}/authorizers/{authorizer_id}",
            get(read).patch(update).delete(remove),
        )
}

/// Checks an authorizer's definition, naming the field at fault.
pub(crate) fn check(input: AuthorizerInput) -> ApiResult<AuthorizerSpec> {
    AuthorizerSpec::try_from(input).map_err(|e| ApiError::invalid(e.field, e.message))
}

/// Adds an authorizer to an HTTP API.
#[utoipa::path(
    post,
    path = "/apis/{api_id}/authorizers",
    operation_id = "create_authorizer",
    tag = "authorizers",
    params(("api_id" = Uuid, Path, description = "The API's id")),
    request_body = AuthorizerInput,
    responses(
        (status = 201, description = "The authorizer", body = Authorizer,
            headers(("location" = String, description = "Where the authorizer is"))),
        (status = 404, description = "No such API", body = ErrorBody),
        (status = 409, description = "The API has an authorizer of this name", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    _: Admin,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    JsonBody(body): JsonBody<AuthorizerInput>,
) -> ApiResult<Response> {
    let api_id = parse_id(&api_id, "API")?;
    let spec = check(body)?;
    let mut tx = state.pool.begin().await?;
    let api = apis::get_for_update(&mut *tx, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    if api.protocol() != Protocol::Http {
        return Err(ApiError::invalid(
            "authorizer_type",
            "authorizers protect HTTP APIs; a WebSocket API checks an API key on `$connect`",
        ));
    }
    if authorizers::list(&mut *tx, api_id).await?.len() >= MAX_AUTHORIZERS_PER_API {
        return Err(ApiError::invalid(
            "name",
            format!("an API has at most {MAX_AUTHORIZERS_PER_API} authorizers"),
        ));
    }
    let authorizer = authorizers::insert(&mut *tx, api_id, &spec).await?;
    tx.commit().await?;
    let location = format!("/api/v1/apis/{api_id}/authorizers/{}", authorizer.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(authorizer),
    )
        .into_response())
}

/// Lists an API's authorizers.
#[utoipa::path(
    get,
    path = "/apis/{api_id}/authorizers",
    operation_id = "list_authorizers",
    tag = "authorizers",
    params(("api_id" = Uuid, Path, description = "The API's id")),
    responses(
        (status = 200, description = "The API's authorizers", body = Items<Authorizer>),
        (status = 404, description = "No such API", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    _: Reader,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
) -> ApiResult<Json<Items<Authorizer>>> {
    let api_id = parse_id(&api_id, "API")?;
    apis::get(&state.pool, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    Ok(Json(Items {
        items: authorizers::list(&state.pool, api_id).await?,
    }))
}

/// Reads an authorizer.
#[utoipa::path(
    get,
    path = "/apis/{api_id}/authorizers/{authorizer_id}",
    operation_id = "read_authorizer",
    tag = "authorizers",
    params(("api_id" = Uuid, Path, description = "The API's id"),
        ("authorizer_id" = Uuid, Path, description = "The authorizer's id")),
    responses(
        (status = 200, description = "The authorizer", body = Authorizer),
        (status = 404, description = "No such authorizer in this API", body = ErrorBody),
    )
)]
pub(crate) async fn read(
    _: Reader,
    State(state): State<AppState>,
    Path((api_id, authorizer_id)): Path<(String, String)>,
) -> ApiResult<Json<Authorizer>> {
    let api_id = parse_id(&api_id, "API")?;
    let id = parse_id(&authorizer_id, "authorizer")?;
    authorizers::get(&state.pool, api_id, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("authorizer"))
}

/// Changes an authorizer: any of its fields, the rest kept. The whole is checked again.
#[utoipa::path(
    patch,
    path = "/apis/{api_id}/authorizers/{authorizer_id}",
    operation_id = "update_authorizer",
    tag = "authorizers",
    params(("api_id" = Uuid, Path, description = "The API's id"),
        ("authorizer_id" = Uuid, Path, description = "The authorizer's id")),
    request_body(content = Object, description = "Any fields of an authorizer"),
    responses(
        (status = 200, description = "The changed authorizer", body = Authorizer),
        (status = 404, description = "No such authorizer in this API", body = ErrorBody),
        (status = 409, description = "The API has an authorizer of this name", body = ErrorBody),
    )
)]
pub(crate) async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path((api_id, authorizer_id)): Path<(String, String)>,
    JsonBody(changes): JsonBody<serde_json::Map<String, Value>>,
) -> ApiResult<Json<Authorizer>> {
    let api_id = parse_id(&api_id, "API")?;
    let id = parse_id(&authorizer_id, "authorizer")?;
    let mut tx = state.pool.begin().await?;
    apis::get_for_update(&mut *tx, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    let current = authorizers::get(&mut *tx, api_id, id)
        .await?
        .ok_or(ApiError::NotFound("authorizer"))?;
    let mut merged = serde_json::to_value(AuthorizerInput::from(&current.definition.0))
        .map_err(|e| anyhow::anyhow!("stored authorizer: {e}"))?;
    if changes
        .get("authorizer_type")
        .is_some_and(|t| Some(t) != merged.get("authorizer_type"))
    {
        return Err(ApiError::invalid(
            "authorizer_type",
            "an authorizer's type cannot change; create another",
        ));
    }
    if let Value::Object(fields) = &mut merged {
        for (name, value) in changes {
            fields.insert(name, value);
        }
    }
    let input: AuthorizerInput = crate::json::parse(merged.to_string().as_bytes())?;
    let spec = check(input)?;
    let authorizer = authorizers::update(&mut *tx, api_id, id, &spec)
        .await?
        .ok_or(ApiError::NotFound("authorizer"))?;
    tx.commit().await?;
    Ok(Json(authorizer))
}

/// Deletes an authorizer no route uses. Deployments keep their copy.
#[utoipa::path(
    delete,
    path = "/apis/{api_id}/authorizers/{authorizer_id}",
    operation_id = "delete_authorizer",
    tag = "authorizers",
    params(("api_id" = Uuid, Path, description = "The API's id"),
        ("authorizer_id" = Uuid, Path, description = "The authorizer's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such authorizer in this API", body = ErrorBody),
        (status = 409, description = "Routes use the authorizer", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path((api_id, authorizer_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let api_id = parse_id(&api_id, "API")?;
    let id = parse_id(&authorizer_id, "authorizer")?;
    let mut tx = state.pool.begin().await?;
    let users = authorizers::users(&mut *tx, api_id, id).await?;
    if !users.is_empty() {
        return Err(ApiError::conflict(
            "authorizer_id",
            format!("routes use this authorizer: {}", users.join(", ")),
        ));
    }
    if !authorizers::delete(&mut *tx, api_id, id).await? {
        return Err(ApiError::NotFound("authorizer"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
