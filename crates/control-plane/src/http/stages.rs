//! `/api/v1/apis/{id}/stages`: named environments pointing at a deployment. Creating,
//! repointing (deploy or roll back) or deleting a stage changes what proxies serve, so
//! each of these raises the config version in the same transaction.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_model::{
    DeployedRoute, Integration, StageName, StageVariables, Throttle, WebSocketLimits,
    DEFAULT_STAGE_THROTTLE,
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ApiResult, ErrorBody, FieldError};
use crate::http::openapi::Description;
use crate::http::{check_description, parse_id, Items};
use crate::json::JsonBody;
use crate::repo::stages::{self, NewStage, Stage};
use crate::repo::{apis, config_state, deployments};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis/{api_id}/stages", get(list).post(create))
        .route(
            "/apis/{api_id}/stages/{stage}",
            get(read).patch(update).delete(remove),
        )
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateStage {
    #[schema(value_type = StageName)]
    pub(crate) name: String,
    /// A deployment of this API.
    pub(crate) deployment_id: Uuid,
    #[serde(default)]
    #[schema(value_type = StageVariables)]
    pub(crate) variables: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(value_type = Description)]
    pub(crate) description: String,
    /// Throttle for all the stage's traffic; AWS's default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) throttle: Option<Throttle>,
    /// One JSON line per request in the proxies' access logs.
    #[serde(default)]
    pub(crate) access_log: bool,
    /// WebSocket APIs: limits of each connection; AWS's for any left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) websocket: Option<LimitsInput>,
}

/// WebSocket limits as sent: each one optional, the others kept.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsInput {
    #[schema(minimum = 1024, maximum = 16_777_216)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_message_bytes: Option<u32>,
    /// At most `max_message_bytes`.
    #[schema(minimum = 1024, maximum = 16_777_216)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_frame_bytes: Option<u32>,
    #[schema(minimum = 1, maximum = 86_400)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) idle_timeout_seconds: Option<u32>,
    #[schema(minimum = 1, maximum = 86_400)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_connection_seconds: Option<u32>,
}

impl LimitsInput {
    fn over(self, base: WebSocketLimits) -> WebSocketLimits {
        WebSocketLimits {
            max_message_bytes: self.max_message_bytes.unwrap_or(base.max_message_bytes),
            max_frame_bytes: self.max_frame_bytes.unwrap_or(base.max_frame_bytes),
            idle_timeout_seconds: self
                .idle_timeout_seconds
                .unwrap_or(base.idle_timeout_seconds),
            max_connection_seconds: self
                .max_connection_seconds
                .unwrap_or(base.max_connection_seconds),
        }
    }
}

fn check_limits(limits: &WebSocketLimits) -> ApiResult<()> {
    let errors: Vec<FieldError> = limits
        .problems()
        .into_iter()
        .map(|(field, reason)| FieldError::new(format!("websocket.{field}"), reason))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(errors))
    }
}

#[derive(Serialize, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateStage {
    /// Deploys (or rolls back to) this deployment of the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) deployment_id: Option<Uuid>,
    #[schema(value_type = Option<StageVariables>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) variables: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<Description>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) throttle: Option<Throttle>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) access_log: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) websocket: Option<LimitsInput>,
}

/// A stage with the path clients call it on.
#[derive(Serialize, ToSchema)]
pub struct StageView {
    #[serde(flatten)]
    stage: Stage,
    throttle: Throttle,
    websocket: WebSocketLimits,
    /// `/<api slug>/<stage>`, after the proxy's address.
    invoke_path: String,
}

fn view(stage: Stage, slug: &str) -> StageView {
    let invoke_path = format!("/{slug}/{}", stage.name);
    StageView {
        throttle: stage.throttle(),
        websocket: stage.websocket(),
        stage,
        invoke_path,
    }
}

/// Parses a stage name from the URL; anything that is not a valid name names no stage
/// (and never reaches the database: PostgreSQL refuses a NUL in text with an error).
fn parse_stage(raw: &str) -> ApiResult<StageName> {
    StageName::parse(raw).map_err(|_| ApiError::NotFound("stage"))
}

fn parse_variables(
    raw: BTreeMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> Option<StageVariables> {
    StageVariables::parse(raw)
        .map_err(|e| errors.push(FieldError::new("variables", e.to_string())))
        .ok()
}

/// The deployment must belong to this API, and its integration URIs must stay valid
/// with the stage's variables.
async fn check_deployment(
    conn: &mut PgConnection,
    api_id: Uuid,
    deployment_id: Uuid,
    variables: &StageVariables,
) -> ApiResult<()> {
    let deployment = deployments::get(&mut *conn, api_id, deployment_id)
        .await?
        .ok_or_else(|| {
            ApiError::invalid("deployment_id", "no deployment with this id in this API")
        })?;
    check_bindings(&deployment.routes.0, variables)
}

fn check_bindings(routes: &[DeployedRoute], variables: &StageVariables) -> ApiResult<()> {
    for route in routes {
        if let Integration::HttpProxy(proxy) = &route.integration {
            let params = route.route_key.param_names();
            proxy.uri.bind(variables, &params).map_err(|e| {
                ApiError::invalid("variables", format!("route `{}`: {e}", route.route_key))
            })?;
        }
    }
    Ok(())
}

/// Creates a stage on a deployment of the API.
#[utoipa::path(
    post,
    path = "/apis/{api_id}/stages",
    operation_id = "create_stage",
    tag = "stages",
    params(("api_id" = Uuid, Path, description = "The API's id")),
    request_body = CreateStage,
    responses(
        (status = 201, description = "The stage", body = StageView,
            headers(("location" = String, description = "Where the stage is")),
            links(
                ("ReadStage" = (operation_id = "read_stage", parameters(("api_id" = "$response.body#/api_id"), ("stage" = "$response.body#/name")))),
                ("UpdateStage" = (operation_id = "update_stage", parameters(("api_id" = "$response.body#/api_id"), ("stage" = "$response.body#/name")))),
                ("DeleteStage" = (operation_id = "delete_stage", parameters(("api_id" = "$response.body#/api_id"), ("stage" = "$response.body#/name")))),
                ("CreateUsagePlan" = (operation_id = "create_usage_plan",
                    request_body = json!({"stages": [
                        {"api_id": "$response.body#/api_id", "stage": "$response.body#/name"}
                    ]}))),
            )),
        (status = 404, description = "No such API", body = ErrorBody),
        (status = 409, description = "The API has a stage with this name", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    _: Admin,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    JsonBody(body): JsonBody<CreateStage>,
) -> ApiResult<Response> {
    let api_id = parse_id(&api_id, "API")?;
    let mut errors = Vec::new();
    let name = StageName::parse(&body.name)
        .map_err(|e| errors.push(FieldError::new("name", e.to_string())))
        .ok();
    let variables = parse_variables(body.variables, &mut errors);
    check_description(&body.description, &mut errors);
    let (Some(name), Some(variables), true) = (name, variables, errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let websocket = body.websocket.map_or_else(WebSocketLimits::default, |l| {
        l.over(WebSocketLimits::default())
    });
    check_limits(&websocket)?;
    let mut tx = state.pool.begin().await?;
    let api = apis::get_for_update(&mut *tx, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    check_deployment(&mut tx, api_id, body.deployment_id, &variables).await?;
    let new = NewStage {
        name,
        deployment_id: body.deployment_id,
        variables,
        description: body.description,
        throttle: body.throttle.unwrap_or(DEFAULT_STAGE_THROTTLE),
        access_log: body.access_log,
        websocket,
    };
    let stage = stages::insert(&mut *tx, api_id, &new).await?;
    config_state::bump(&mut tx).await?;
    tx.commit().await?;
    let location = format!("/api/v1/apis/{api_id}/stages/{}", stage.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view(stage, &api.slug)),
    )
        .into_response())
}

/// Lists an API's stages.
#[utoipa::path(
    get,
    path = "/apis/{api_id}/stages",
    operation_id = "list_stages",
    tag = "stages",
    params(("api_id" = Uuid, Path, description = "The API's id")),
    responses(
        (status = 200, description = "The API's stages", body = Items<StageView>),
        (status = 404, description = "No such API", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    _: Reader,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
) -> ApiResult<Json<Items<StageView>>> {
    let api_id = parse_id(&api_id, "API")?;
    let api = apis::get(&state.pool, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    let items = stages::list(&state.pool, api_id)
        .await?
        .into_iter()
        .map(|s| view(s, &api.slug))
        .collect();
    Ok(Json(Items { items }))
}

/// Reads a stage.
#[utoipa::path(
    get,
    path = "/apis/{api_id}/stages/{stage}",
    operation_id = "read_stage",
    tag = "stages",
    params(("api_id" = Uuid, Path, description = "The API's id"), ("stage" = StageName, Path, description = "The stage's name")),
    responses(
        (status = 200, description = "The stage", body = StageView),
        (status = 404, description = "No such API, or no such stage in it", body = ErrorBody),
    )
)]
pub(crate) async fn read(
    _: Reader,
    State(state): State<AppState>,
    Path((api_id, name)): Path<(String, String)>,
) -> ApiResult<Json<StageView>> {
    let api_id = parse_id(&api_id, "API")?;
    let name = parse_stage(&name)?;
    let api = apis::get(&state.pool, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    let stage = stages::get(&state.pool, api_id, name.as_str())
        .await?
        .ok_or(ApiError::NotFound("stage"))?;
    Ok(Json(view(stage, &api.slug)))
}

/// Changes a stage: deploys, rolls back, or changes its settings.
#[utoipa::path(
    patch,
    path = "/apis/{api_id}/stages/{stage}",
    operation_id = "update_stage",
    tag = "stages",
    params(("api_id" = Uuid, Path, description = "The API's id"), ("stage" = StageName, Path, description = "The stage's name")),
    request_body = UpdateStage,
    responses(
        (status = 200, description = "The changed stage", body = StageView),
        (status = 404, description = "No such API, or no such stage in it", body = ErrorBody),
        (status = 409, description = "The deployment left the API meanwhile", body = ErrorBody),
    )
)]
pub(crate) async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path((api_id, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateStage>,
) -> ApiResult<Json<StageView>> {
    let api_id = parse_id(&api_id, "API")?;
    let name = parse_stage(&name)?;
    let mut errors = Vec::new();
    let variables = body.variables.map(|v| parse_variables(v, &mut errors));
    if let Some(description) = &body.description {
        check_description(description, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let mut tx = state.pool.begin().await?;
    let api = apis::get_for_update(&mut *tx, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    let current = stages::get(&mut *tx, api_id, name.as_str())
        .await?
        .ok_or(ApiError::NotFound("stage"))?;
    let current_throttle = current.throttle();
    let current_websocket = current.websocket();
    let next = NewStage {
        name,
        deployment_id: body.deployment_id.unwrap_or(current.deployment_id),
        variables: variables.flatten().unwrap_or(current.variables.0),
        throttle: body.throttle.unwrap_or(current_throttle),
        access_log: body.access_log.unwrap_or(current.access_log),
        websocket: match body.websocket {
            Some(limits) => limits.over(current_websocket),
            None => current_websocket,
        },
        description: body.description.unwrap_or(current.description),
    };
    check_limits(&next.websocket)?;
    check_deployment(&mut tx, api_id, next.deployment_id, &next.variables).await?;
    let stage = stages::update(&mut *tx, api_id, &next)
        .await?
        .ok_or(ApiError::NotFound("stage"))?;
    config_state::bump(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(view(stage, &api.slug)))
}

/// Deletes a stage: its invoke URL stops answering.
#[utoipa::path(
    delete,
    path = "/apis/{api_id}/stages/{stage}",
    operation_id = "delete_stage",
    tag = "stages",
    params(("api_id" = Uuid, Path, description = "The API's id"), ("stage" = StageName, Path, description = "The stage's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such stage in this API", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path((api_id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let api_id = parse_id(&api_id, "API")?;
    let name = parse_stage(&name)?;
    let mut tx = state.pool.begin().await?;
    if !stages::delete(&mut *tx, api_id, name.as_str()).await? {
        return Err(ApiError::NotFound("stage"));
    }
    config_state::bump(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
