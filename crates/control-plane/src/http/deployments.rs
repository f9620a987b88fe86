//! `/api/v1/apis/{id}/deployments`: freeze the API's current routes into an immutable
//! deployment that stages can point at.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_model::{DeployedAuthorizer, DeployedRoute, Protocol, RouteKey, RouteTable};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::openapi::Description;
use crate::http::{parse_id, Items, MAX_DESCRIPTION_LEN};
use crate::json::JsonBody;
use crate::repo::authorizers::{self, Authorizer};
use crate::repo::deployments::{self, Deployment, DeploymentDetail};
use crate::repo::{apis, routes, stages};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis/{api_id}/deployments", get(list).post(create))
        .route(
            "/apis/{api_id}/deployments/{deployment_id}",
            get(read).delete(remove),
        )
}

#[derive(Serialize, Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateDeployment {
    #[serde(default)]
    #[schema(value_type = Description)]
    pub(crate) description: String,
}

/// Freezes the API's current routes into a new deployment.
#[utoipa::path(
    post,
    path = "/apis/{api_id}/deployments",
    operation_id = "create_deployment",
    tag = "deployments",
    params(("api_id" = Uuid, Path, description = "The API's id")),
    request_body = CreateDeployment,
    responses(
        (status = 201, description = "The deployment with its routes", body = DeploymentDetail,
            headers(("location" = String, description = "Where the deployment is")),
            links(
                ("ReadDeployment" = (operation_id = "read_deployment", parameters(("api_id" = "$response.body#/api_id"), ("deployment_id" = "$response.body#/id")))),
                ("DeleteDeployment" = (operation_id = "delete_deployment", parameters(("api_id" = "$response.body#/api_id"), ("deployment_id" = "$response.body#/id")))),
                ("CreateStage" = (operation_id = "create_stage",
                    parameters(("api_id" = "$response.body#/api_id")),
                    request_body = json!({"deployment_id": "$response.body#/id"}))),
            )),
        (status = 404, description = "No such API", body = ErrorBody),
        (status = 409, description = "The API's routes clash with each other", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    admin: Admin,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    JsonBody(body): JsonBody<CreateDeployment>,
) -> ApiResult<Response> {
    let api_id = parse_id(&api_id, "API")?;
    if body.description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ApiError::invalid(
            "description",
            format!("at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    let mut tx = state.pool.begin().await?;
    let api = apis::get_for_update(&mut *tx, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    let mut frozen = Vec::new();
    for route in routes::list(&mut *tx, api_id).await? {
        let authorization = route.authorization();
        frozen.push(DeployedRoute {
            id: route.id,
            route_key: RouteKey::try_from(route.route_key)
                .map_err(|e| anyhow::anyhow!("stored route key: {e}"))?,
            api_key_required: route.api_key_required,
            authorization,
            integration: route.integration.0,
        });
    }
    // Route changes are checked one by one; this guards the set as a whole. WebSocket
    // routes are unique by key, which the table ensures.
    if api.protocol() == Protocol::Http {
        RouteTable::compile(frozen.iter().map(|r| (r.route_key.clone(), ())))
            .map_err(|e| ApiError::conflict("routes", e.to_string()))?;
    }
    let frozen_authorizers: Vec<DeployedAuthorizer> = authorizers::list(&mut *tx, api_id)
        .await?
        .iter()
        .map(Authorizer::deployed)
        .collect();
    let deployment = deployments::insert(
        &mut *tx,
        api_id,
        &body.description,
        &admin.name,
        &deployments::Frozen {
            routes: &frozen,
            route_selection_expression: api.route_selection_expression.as_deref(),
            authorizers: &frozen_authorizers,
            cors: api.cors_configuration.as_ref().map(|c| &c.0),
        },
    )
    .await?;
    tx.commit().await?;
    let location = format!(
        "/api/v1/apis/{api_id}/deployments/{}",
        deployment.deployment.id
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(deployment),
    )
        .into_response())
}

/// Lists an API's deployments, without their routes.
#[utoipa::path(
    get,
    path = "/apis/{api_id}/deployments",
    operation_id = "list_deployments",
    tag = "deployments",
    params(("api_id" = Uuid, Path, description = "The API's id")),
    responses(
        (status = 200, description = "The API's deployments", body = Items<Deployment>),
        (status = 404, description = "No such API", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    _: Reader,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
) -> ApiResult<Json<Items<Deployment>>> {
    let api_id = parse_id(&api_id, "API")?;
    apis::get(&state.pool, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    Ok(Json(Items {
        items: deployments::list(&state.pool, api_id).await?,
    }))
}

/// Reads a deployment with the routes it froze.
#[utoipa::path(
    get,
    path = "/apis/{api_id}/deployments/{deployment_id}",
    operation_id = "read_deployment",
    tag = "deployments",
    params(("api_id" = Uuid, Path, description = "The API's id"), ("deployment_id" = Uuid, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "The deployment with its routes", body = DeploymentDetail),
        (status = 404, description = "No such deployment in this API", body = ErrorBody),
    )
)]
pub(crate) async fn read(
    _: Reader,
    State(state): State<AppState>,
    Path((api_id, deployment_id)): Path<(String, String)>,
) -> ApiResult<Json<DeploymentDetail>> {
    let api_id = parse_id(&api_id, "API")?;
    let id = parse_id(&deployment_id, "deployment")?;
    deployments::get(&state.pool, api_id, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("deployment"))
}

/// Deletes a deployment no stage points at.
#[utoipa::path(
    delete,
    path = "/apis/{api_id}/deployments/{deployment_id}",
    operation_id = "delete_deployment",
    tag = "deployments",
    params(("api_id" = Uuid, Path, description = "The API's id"), ("deployment_id" = Uuid, Path, description = "The deployment's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such API, or no such deployment in it", body = ErrorBody),
        (status = 409, description = "A stage points at the deployment", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path((api_id, deployment_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let api_id = parse_id(&api_id, "API")?;
    let id = parse_id(&deployment_id, "deployment")?;
    let mut tx = state.pool.begin().await?;
    apis::get_for_update(&mut *tx, api_id)
        .await?
        .ok_or(ApiError::NotFound("API"))?;
    if let Some(stage) = stages::list(&mut *tx, api_id)
        .await?
        .into_iter()
        .find(|s| s.deployment_id == id)
    {
        return Err(ApiError::conflict(
            "deployment_id",
            format!(
                "stage `{}` points at this deployment; point it elsewhere first",
                stage.name
            ),
        ));
    }
    if !deployments::delete(&mut *tx, api_id, id).await? {
        return Err(ApiError::NotFound("deployment"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
