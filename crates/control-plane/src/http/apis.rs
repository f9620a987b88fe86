//! `/api/v1/apis`: create, list, read, change and delete APIs.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_model::cors::CorsInput;
use gatehouse_model::{ApiSlug, CorsConfiguration, Protocol, RouteSelection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ApiResult, ErrorBody, FieldError};
use crate::http::openapi::{Description, Name};
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

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApi {
    #[schema(value_type = Name)]
    pub(crate) name: String,
    #[schema(value_type = ApiSlug)]
    pub(crate) slug: String,
    #[serde(default = "http_protocol")]
    #[schema(value_type = Protocol, default = "HTTP")]
    pub(crate) protocol: String,
    #[serde(default)]
    #[schema(value_type = Description)]
    pub(crate) description: String,
    /// WebSocket APIs: `$request.body.<field>`; `$request.body.action` when left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) route_selection_expression: Option<String>,
    /// HTTP APIs: which browser origins may call the API. The gateway answers their
    /// preflight requests and sets the CORS headers of every answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cors_configuration: Option<CorsInput>,
}

fn http_protocol() -> String {
    "HTTP".to_owned()
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateApi {
    #[schema(value_type = Option<Name>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// A new slug changes every invoke URL of the API.
    #[schema(value_type = Option<ApiSlug>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) slug: Option<String>,
    #[schema(value_type = Option<Description>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    /// WebSocket APIs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) route_selection_expression: Option<String>,
    /// HTTP APIs only; `null` removes it. Takes effect at the next deployment.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<CorsInput>, nullable)]
    pub(crate) cors_configuration: Option<Option<CorsInput>>,
}

/// A field that may be `null` on purpose: `Some(None)`, while absent stays `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<CorsInput>>, D::Error> {
    Option::<CorsInput>::deserialize(d).map(Some)
}

fn parse_cors(
    protocol: Option<Protocol>,
    input: Option<CorsInput>,
    errors: &mut Vec<FieldError>,
) -> Option<CorsConfiguration> {
    let input = input?;
    if protocol == Some(Protocol::Websocket) {
        errors.push(FieldError::new(
            "cors_configuration",
            "only HTTP APIs answer browsers' cross-origin requests",
        ));
        return None;
    }
    CorsConfiguration::try_from(input)
        .map_err(|e| {
            errors.push(FieldError::new(
                format!("cors_configuration.{}", e.field),
                e.message,
            ))
        })
        .ok()
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

/// Creates an API.
#[utoipa::path(
    post,
    path = "/apis",
    operation_id = "create_api",
    tag = "apis",
    request_body = CreateApi,
    responses(
        (status = 201, description = "The API", body = Api,
            headers(("location" = String, description = "Where the API is"))),
        (status = 409, description = "An API with this slug exists", body = ErrorBody),
    )
)]
pub(crate) async fn create(
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
    let cors = parse_cors(protocol, body.cors_configuration, &mut errors);
    let (Some(slug), Some(protocol), true) = (slug, protocol, errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let new = NewApi {
        name: body.name,
        slug,
        protocol,
        route_selection,
        description: body.description,
        cors,
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

/// Lists the APIs.
#[utoipa::path(
    get,
    path = "/apis",
    operation_id = "list_apis",
    tag = "apis",
    responses((status = 200, description = "Every API", body = Items<Api>))
)]
pub(crate) async fn list(_: Reader, State(state): State<AppState>) -> ApiResult<Json<Items<Api>>> {
    Ok(Json(Items {
        items: apis::list(&state.pool).await?,
    }))
}

/// Reads an API.
#[utoipa::path(
    get,
    path = "/apis/{api_id}",
    operation_id = "read_api",
    tag = "apis",
    params(("api_id" = Uuid, Path, description = "The API's id")),
    responses(
        (status = 200, description = "The API", body = Api),
        (status = 404, description = "No such API", body = ErrorBody),
    )
)]
pub(crate) async fn read(
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

/// Changes an API's name, slug, description or route selection expression.
#[utoipa::path(
    patch,
    path = "/apis/{api_id}",
    operation_id = "update_api",
    tag = "apis",
    params(("api_id" = Uuid, Path, description = "The API's id")),
    request_body = UpdateApi,
    responses(
        (status = 200, description = "The changed API", body = Api),
        (status = 404, description = "No such API", body = ErrorBody),
        (status = 409, description = "An API with this slug exists", body = ErrorBody),
    )
)]
pub(crate) async fn update(
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
    let mut cors = None;
    if route_selection.is_some() || body.cors_configuration.is_some() {
        let api = apis::get_for_update(&mut *tx, id)
            .await?
            .ok_or(ApiError::NotFound("API"))?;
        if route_selection.is_some() && api.protocol() != Protocol::Websocket {
            return Err(ApiError::invalid(
                "route_selection_expression",
                "only WEBSOCKET APIs route by expression",
            ));
        }
        if let Some(change) = body.cors_configuration {
            cors = Some(parse_cors(Some(api.protocol()), change, &mut errors));
            if !errors.is_empty() {
                return Err(ApiError::Invalid(errors));
            }
        }
    }
    let changes = ApiChanges {
        name: body.name,
        slug,
        description: body.description,
        route_selection,
        cors,
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

/// Deletes an API with its routes, deployments and stages.
#[utoipa::path(
    delete,
    path = "/apis/{api_id}",
    operation_id = "delete_api",
    tag = "apis",
    params(("api_id" = Uuid, Path, description = "The API's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such API", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
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
