//! `/api/v1/usage-plans`: throttles and quotas for the keys attached to a plan, on the API
//! stages it covers. As in AWS, a key belongs to at most one plan per API stage, so a
//! request's plan is never ambiguous.
//!
//! Every change raises the config version first, which also takes the config row lock:
//! plan and key-membership changes are checked one at a time.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use gatehouse_model::{PlanStage, Quota, RouteKey, StageName, Throttle};
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::openapi::{Description, Name};
use crate::http::{check_description, check_name, parse_id, Items};
use crate::json::JsonBody;
use crate::repo::keys::{self, ApiKey};
use crate::repo::plans::{self, PlanSpec, PlanView};
use crate::repo::{apis, config_state, stages};
use crate::AppState;

/// Most API stages one plan may cover.
pub const MAX_STAGES_PER_PLAN: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/usage-plans", get(list).post(create))
        .route(
            "/usage-plans/{plan_id}",
            get(read).patch(update).delete(remove),
        )
        .route("/usage-plans/{plan_id}/keys", get(list_keys).post(attach))
        .route("/usage-plans/{plan_id}/keys/{key_id}", delete(detach))
}

/// An API stage the plan covers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StageRef {
    pub(crate) api_id: Uuid,
    #[schema(value_type = StageName)]
    pub(crate) stage: String,
    /// Route key of the API -> throttle, overriding the plan's for that route.
    #[serde(default)]
    pub(crate) route_throttles: BTreeMap<String, Throttle>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePlan {
    #[schema(value_type = Name)]
    pub(crate) name: String,
    #[serde(default)]
    #[schema(value_type = Description)]
    pub(crate) description: String,
    /// Per key; none when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) throttle: Option<Throttle>,
    /// Per key; none when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) quota: Option<Quota>,
    /// Each API stage once.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub(crate) stages: Vec<StageRef>,
}

/// `null` clears a field; an absent field keeps it.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// Absent fields are kept; `null` removes the throttle or the quota.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdatePlan {
    #[schema(value_type = Option<Name>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[schema(value_type = Option<Description>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Throttle>)]
    pub(crate) throttle: Option<Option<Throttle>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Quota>)]
    pub(crate) quota: Option<Option<Quota>>,
    /// Replaces the stages the plan covers.
    #[schema(max_items = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stages: Option<Vec<StageRef>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttachKey {
    pub(crate) key_id: Uuid,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PlanDetail {
    #[serde(flatten)]
    plan: PlanView,
    key_count: usize,
}

/// A key's membership of a plan.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyAttachment {
    plan_id: Uuid,
    key_id: Uuid,
}

/// Checks each stage exists, appears once, and that route throttles name valid route keys.
async fn resolve_stages(conn: &mut PgConnection, refs: Vec<StageRef>) -> ApiResult<Vec<PlanStage>> {
    if refs.len() > MAX_STAGES_PER_PLAN {
        return Err(ApiError::invalid(
            "stages",
            format!("a plan covers at most {MAX_STAGES_PER_PLAN} stages"),
        ));
    }
    let mut seen = HashSet::new();
    let mut resolved = Vec::with_capacity(refs.len());
    for (i, r) in refs.into_iter().enumerate() {
        let field = format!("stages[{i}]");
        let name = StageName::parse(&r.stage)
            .map_err(|e| ApiError::invalid(format!("{field}.stage"), e.to_string()))?;
        if !seen.insert((r.api_id, name.clone())) {
            return Err(ApiError::invalid(field, "this API stage is listed twice"));
        }
        let api = apis::get(&mut *conn, r.api_id).await?;
        let stage = stages::get(&mut *conn, r.api_id, name.as_str()).await?;
        let (Some(api), Some(_)) = (api, stage) else {
            return Err(ApiError::invalid(
                field,
                format!("API {} has no stage `{name}`", r.api_id),
            ));
        };
        // Keys are checked as the API's own routes are, so a throttle can match one.
        for key in r.route_throttles.keys() {
            RouteKey::parse_for(api.protocol(), key).map_err(|e| {
                ApiError::invalid(format!("{field}.route_throttles"), format!("`{key}`: {e}"))
            })?;
        }
        resolved.push(PlanStage {
            api_id: r.api_id,
            stage: name,
            route_throttles: r.route_throttles,
        });
    }
    Ok(resolved)
}

/// How many keys the plan has, as the API shows it.
async fn key_count(conn: &mut PgConnection, plan_id: Uuid) -> ApiResult<usize> {
    Ok(usize::try_from(plans::key_count(&mut *conn, plan_id).await?).unwrap_or(0))
}

/// Refuses a state where a key's plans overlap on an API stage.
async fn check_no_overlap(
    conn: &mut PgConnection,
    plan_id: Option<Uuid>,
    key_id: Option<Uuid>,
) -> ApiResult<()> {
    if let Some((key, api, stage)) =
        plans::overlapping_coverage(&mut *conn, plan_id, key_id).await?
    {
        let field = if key_id.is_some() { "key_id" } else { "stages" };
        return Err(ApiError::conflict(
            field,
            format!("key {key} would be in two plans covering stage `{stage}` of API {api}; a key has one plan per API stage"),
        ));
    }
    Ok(())
}

/// Creates a usage plan.
#[utoipa::path(
    post,
    path = "/usage-plans",
    operation_id = "create_usage_plan",
    tag = "usage-plans",
    request_body = CreatePlan,
    responses(
        (status = 201, description = "The plan", body = PlanDetail,
            headers(("location" = String, description = "Where the plan is")),
            links(
                ("ReadUsagePlan" = (operation_id = "read_usage_plan", parameters(("plan_id" = "$response.body#/id")))),
                ("UpdateUsagePlan" = (operation_id = "update_usage_plan", parameters(("plan_id" = "$response.body#/id")))),
                ("DeleteUsagePlan" = (operation_id = "delete_usage_plan", parameters(("plan_id" = "$response.body#/id")))),
                ("AttachKey" = (operation_id = "attach_usage_plan_key", parameters(("plan_id" = "$response.body#/id")))),
                ("ListKeys" = (operation_id = "list_usage_plan_keys", parameters(("plan_id" = "$response.body#/id")))),
            )),
        (status = 409, description = "A plan with this name exists", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreatePlan>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    check_name(&body.name, &mut errors);
    check_description(&body.description, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let mut tx = state.pool.begin().await?;
    config_state::bump(&mut tx).await?;
    let stages = resolve_stages(&mut tx, body.stages).await?;
    let spec = PlanSpec {
        name: body.name,
        description: body.description,
        throttle: body.throttle,
        quota: body.quota,
        stages,
    };
    let plan = plans::save(&mut tx, None, &spec).await?;
    tx.commit().await?;
    let location = format!("/api/v1/usage-plans/{}", plan.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(PlanDetail { plan, key_count: 0 }),
    )
        .into_response())
}

/// Lists the usage plans.
#[utoipa::path(
    get,
    path = "/usage-plans",
    operation_id = "list_usage_plans",
    tag = "usage-plans",
    responses((status = 200, description = "Every plan", body = Items<PlanView>))
)]
pub(crate) async fn list(
    _: Reader,
    State(state): State<AppState>,
) -> ApiResult<Json<Items<PlanView>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(Items {
        items: plans::list(&mut conn).await?,
    }))
}

/// Reads a usage plan.
#[utoipa::path(
    get,
    path = "/usage-plans/{plan_id}",
    operation_id = "read_usage_plan",
    tag = "usage-plans",
    params(("plan_id" = Uuid, Path, description = "The usage plan's id")),
    responses(
        (status = 200, description = "The plan", body = PlanDetail),
        (status = 404, description = "No such plan", body = ErrorBody),
    )
)]
pub(crate) async fn read(
    _: Reader,
    State(state): State<AppState>,
    Path(plan_id): Path<String>,
) -> ApiResult<Json<PlanDetail>> {
    let id = parse_id(&plan_id, "usage plan")?;
    let mut conn = state.pool.acquire().await?;
    let plan = plans::get(&mut conn, id)
        .await?
        .ok_or(ApiError::NotFound("usage plan"))?;
    let key_count = key_count(&mut conn, id).await?;
    Ok(Json(PlanDetail { plan, key_count }))
}

/// Changes a usage plan.
#[utoipa::path(
    patch,
    path = "/usage-plans/{plan_id}",
    operation_id = "update_usage_plan",
    tag = "usage-plans",
    params(("plan_id" = Uuid, Path, description = "The usage plan's id")),
    request_body = UpdatePlan,
    responses(
        (status = 200, description = "The changed plan", body = PlanDetail),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "A plan with this name exists, or a key of the plan \
            would be in two plans covering one API stage", body = ErrorBody),
    )
)]
pub(crate) async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(plan_id): Path<String>,
    JsonBody(body): JsonBody<UpdatePlan>,
) -> ApiResult<Json<PlanDetail>> {
    let id = parse_id(&plan_id, "usage plan")?;
    let mut tx = state.pool.begin().await?;
    config_state::bump(&mut tx).await?;
    let current = plans::get(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("usage plan"))?;
    let name = body.name.unwrap_or(current.name);
    let description = body.description.unwrap_or(current.description);
    let mut errors = Vec::new();
    check_name(&name, &mut errors);
    check_description(&description, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let stages = match body.stages {
        Some(refs) => resolve_stages(&mut tx, refs).await?,
        None => current.stages,
    };
    let spec = PlanSpec {
        name,
        description,
        throttle: body.throttle.unwrap_or(current.throttle),
        quota: body.quota.unwrap_or(current.quota),
        stages,
    };
    let plan = plans::save(&mut tx, Some(id), &spec).await?;
    check_no_overlap(&mut tx, Some(id), None).await?;
    let key_count = key_count(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(PlanDetail { plan, key_count }))
}

/// Deletes a usage plan without keys.
#[utoipa::path(
    delete,
    path = "/usage-plans/{plan_id}",
    operation_id = "delete_usage_plan",
    tag = "usage-plans",
    params(("plan_id" = Uuid, Path, description = "The usage plan's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "Keys use the plan", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path(plan_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&plan_id, "usage plan")?;
    let mut tx = state.pool.begin().await?;
    config_state::bump(&mut tx).await?;
    let attached = key_count(&mut tx, id).await?;
    if attached > 0 {
        return Err(ApiError::conflict(
            "id",
            format!("{attached} keys use this plan; detach them first"),
        ));
    }
    if !plans::delete(&mut *tx, id).await? {
        return Err(ApiError::NotFound("usage plan"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the keys of a usage plan.
#[utoipa::path(
    get,
    path = "/usage-plans/{plan_id}/keys",
    operation_id = "list_usage_plan_keys",
    tag = "usage-plans",
    params(("plan_id" = Uuid, Path, description = "The usage plan's id")),
    responses(
        (status = 200, description = "The plan's keys", body = Items<ApiKey>),
        (status = 404, description = "No such plan", body = ErrorBody),
    )
)]
pub(crate) async fn list_keys(
    _: Reader,
    State(state): State<AppState>,
    Path(plan_id): Path<String>,
) -> ApiResult<Json<Items<ApiKey>>> {
    let id = parse_id(&plan_id, "usage plan")?;
    let mut conn = state.pool.acquire().await?;
    plans::get(&mut conn, id)
        .await?
        .ok_or(ApiError::NotFound("usage plan"))?;
    Ok(Json(Items {
        items: keys::in_plan(&mut *conn, id).await?,
    }))
}

/// Attaches a key to a usage plan.
#[utoipa::path(
    post,
    path = "/usage-plans/{plan_id}/keys",
    operation_id = "attach_usage_plan_key",
    tag = "usage-plans",
    params(("plan_id" = Uuid, Path, description = "The usage plan's id")),
    request_body = AttachKey,
    responses(
        (status = 201, description = "Attached", body = KeyAttachment,
            headers(("location" = String, description = "The plan's keys")),
            links(
                ("DetachKey" = (operation_id = "detach_usage_plan_key", parameters(("plan_id" = "$response.body#/plan_id"), ("key_id" = "$response.body#/key_id")))),
            )),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "The key is in the plan already, or in another plan \
            covering one of its API stages", body = ErrorBody),
    )
)]
pub(crate) async fn attach(
    _: Admin,
    State(state): State<AppState>,
    Path(plan_id): Path<String>,
    JsonBody(body): JsonBody<AttachKey>,
) -> ApiResult<Response> {
    let id = parse_id(&plan_id, "usage plan")?;
    let mut tx = state.pool.begin().await?;
    config_state::bump(&mut tx).await?;
    plans::get(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("usage plan"))?;
    keys::get(&mut *tx, body.key_id)
        .await?
        .ok_or_else(|| ApiError::invalid("key_id", "no key with this id"))?;
    plans::attach_key(&mut *tx, id, body.key_id).await?;
    check_no_overlap(&mut tx, None, Some(body.key_id)).await?;
    tx.commit().await?;
    let location = format!("/api/v1/usage-plans/{id}/keys");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(KeyAttachment {
            plan_id: id,
            key_id: body.key_id,
        }),
    )
        .into_response())
}

/// Detaches a key from a usage plan.
#[utoipa::path(
    delete,
    path = "/usage-plans/{plan_id}/keys/{key_id}",
    operation_id = "detach_usage_plan_key",
    tag = "usage-plans",
    params(("plan_id" = Uuid, Path, description = "The usage plan's id"), ("key_id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Detached"),
        (status = 404, description = "The key is not in this plan", body = ErrorBody),
    )
)]
pub(crate) async fn detach(
    _: Admin,
    State(state): State<AppState>,
    Path((plan_id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&plan_id, "usage plan")?;
    let key_id = parse_id(&key_id, "key")?;
    let mut tx = state.pool.begin().await?;
    config_state::bump(&mut tx).await?;
    if !plans::detach_key(&mut *tx, id, key_id).await? {
        return Err(ApiError::NotFound("key in this usage plan"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
