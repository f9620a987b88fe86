//! `/api/v1/keys`: API keys. A key's value is shown once, in the response that creates it;
//! afterwards only its prefix is. Every change reaches proxies through the config version.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_model::usage::{hash_key, is_valid_key, UsageTotal, MAX_KEY_LEN, MIN_KEY_LEN};
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ApiResult, ErrorBody, FieldError};
use crate::http::openapi::Name;
use crate::http::{check_name, parse_id, Items};
use crate::json::JsonBody;
use crate::repo::keys::{self, ApiKey};
use crate::repo::{config_state, usage};
use crate::AppState;

/// Generated keys: this prefix, then 40 random letters and digits (238 bits).
const GENERATED_PREFIX: &str = "ghk_";
const GENERATED_LEN: usize = 40;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/keys", get(list).post(create))
        .route("/keys/{key_id}", get(read).patch(update).delete(remove))
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    #[schema(value_type = Name)]
    pub(crate) name: String,
    /// An existing key to import; generated when absent.
    #[schema(min_length = 20, max_length = 128, pattern = "^[A-Za-z0-9._~-]+$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<String>,
    #[serde(default = "enabled_by_default")]
    pub(crate) enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateKey {
    #[schema(value_type = Option<Name>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// A disabled key is refused by every proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) enabled: Option<bool>,
}

/// The one response that carries the key's value.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedKey {
    #[serde(flatten)]
    key: ApiKey,
    value: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct KeyDetail {
    #[serde(flatten)]
    key: ApiKey,
    plan_ids: Vec<Uuid>,
    /// Quota use per plan and period, newest first, as counted from proxy reports.
    usage: Vec<UsageTotal>,
}

/// What identifies a key in listings without revealing it: a quarter of it, at most 8
/// characters (after the `ghk_` of generated keys).
fn display_prefix(value: &str) -> String {
    let skip = if value.starts_with(GENERATED_PREFIX) {
        GENERATED_PREFIX.len()
    } else {
        0
    };
    let shown = (value.len() / 4).min(8);
    value[..skip + shown].to_owned()
}

/// Creates a key, or imports an existing one. The response is the only one that holds
/// the key's value.
#[utoipa::path(
    post,
    path = "/keys",
    operation_id = "create_key",
    tag = "keys",
    request_body = CreateKey,
    responses(
        (status = 201, description = "The key with its value", body = CreatedKey,
            headers(("location" = String, description = "Where the key is"))),
        (status = 409, description = "This key exists already", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateKey>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    check_name(&body.name, &mut errors);
    if let Some(value) = &body.value {
        if !is_valid_key(value.as_bytes()) {
            errors.push(FieldError::new(
                "value",
                format!(
                    "must be {MIN_KEY_LEN} to {MAX_KEY_LEN} letters, digits or -_.~ (no spaces)"
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let value = body.value.unwrap_or_else(|| {
        let random = Alphanumeric.sample_string(&mut rand::rngs::OsRng, GENERATED_LEN);
        format!("{GENERATED_PREFIX}{random}")
    });
    let hash = hex::encode(hash_key(value.as_bytes()));
    let mut tx = state.pool.begin().await?;
    let key = keys::insert(
        &mut *tx,
        &body.name,
        &display_prefix(&value),
        &hash,
        body.enabled,
    )
    .await?;
    config_state::bump(&mut tx).await?;
    tx.commit().await?;
    let location = format!("/api/v1/keys/{}", key.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(CreatedKey { key, value }),
    )
        .into_response())
}

/// Lists the keys (without their values).
#[utoipa::path(
    get,
    path = "/keys",
    operation_id = "list_keys",
    tag = "keys",
    responses((status = 200, description = "Every key", body = Items<ApiKey>))
)]
pub(crate) async fn list(
    _: Reader,
    State(state): State<AppState>,
) -> ApiResult<Json<Items<ApiKey>>> {
    Ok(Json(Items {
        items: keys::list(&state.pool).await?,
    }))
}

/// Reads a key with its plans and its quota use.
#[utoipa::path(
    get,
    path = "/keys/{key_id}",
    operation_id = "read_key",
    tag = "keys",
    params(("key_id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key", body = KeyDetail),
        (status = 404, description = "No such key", body = ErrorBody),
    )
)]
pub(crate) async fn read(
    _: Reader,
    State(state): State<AppState>,
    Path(key_id): Path<String>,
) -> ApiResult<Json<KeyDetail>> {
    let id = parse_id(&key_id, "key")?;
    let key = keys::get(&state.pool, id)
        .await?
        .ok_or(ApiError::NotFound("key"))?;
    let plan_ids = keys::plan_ids(&state.pool, id).await?;
    let usage = usage::of_key(&state.pool, id).await?;
    Ok(Json(KeyDetail {
        key,
        plan_ids,
        usage,
    }))
}

/// Renames, enables or disables a key.
#[utoipa::path(
    patch,
    path = "/keys/{key_id}",
    operation_id = "update_key",
    tag = "keys",
    params(("key_id" = Uuid, Path, description = "The key's id")),
    request_body = UpdateKey,
    responses(
        (status = 200, description = "The changed key", body = ApiKey),
        (status = 404, description = "No such key", body = ErrorBody),
    )
)]
pub(crate) async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    JsonBody(body): JsonBody<UpdateKey>,
) -> ApiResult<Json<ApiKey>> {
    let id = parse_id(&key_id, "key")?;
    let mut errors = Vec::new();
    if let Some(name) = &body.name {
        check_name(name, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let mut tx = state.pool.begin().await?;
    let key = keys::update(&mut *tx, id, body.name.as_deref(), body.enabled)
        .await?
        .ok_or(ApiError::NotFound("key"))?;
    config_state::bump(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(key))
}

/// Deletes a key: proxies refuse it from their next configuration on.
#[utoipa::path(
    delete,
    path = "/keys/{key_id}",
    operation_id = "delete_key",
    tag = "keys",
    params(("key_id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such key", body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    _: Admin,
    State(state): State<AppState>,
    Path(key_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&key_id, "key")?;
    let mut tx = state.pool.begin().await?;
    if !keys::delete(&mut *tx, id).await? {
        return Err(ApiError::NotFound("key"));
    }
    config_state::bump(&mut tx).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::display_prefix;

    #[test]
    fn the_prefix_shows_a_small_part_of_the_key() {
        assert_eq!(
            display_prefix("ghk_abcdefghijklmnopqrstuvwxyz0123456789ABCD"),
            "ghk_abcdefgh"
        );
        assert_eq!(display_prefix("abcdefghijklmnopqrst"), "abcde");
    }
}
