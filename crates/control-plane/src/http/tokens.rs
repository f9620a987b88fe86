//! `/api/v1/tokens`: admin, viewer and node tokens. A token's value is in the one response
//! that issues it (creation or rotation) and nowhere else: the database keeps its SHA-256
//! and a short prefix. Revocation works from the next request on; rotation issues a
//! successor and lets the old token work until the end of an overlap.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Admin, IssuedToken, Reader};
use crate::error::{ApiError, ApiResult, ErrorBody, FieldError};
use crate::http::openapi::Name;
use crate::http::{check_name, parse_id, Items};
use crate::json::JsonBody;
use crate::repo::tokens::{self, NewToken, Token, TokenRole, TokenStatus};
use crate::AppState;

/// Longest lifetime a token can be given: ten years. The OpenAPI bounds of the
/// `expires_in_seconds` fields repeat it (utoipa takes literals only; a test compares).
const MAX_LIFETIME_SECS: i64 = 10 * 365 * 24 * 3600;
/// How long a rotated token keeps working unless told otherwise: an hour.
const DEFAULT_OVERLAP_SECS: i64 = 3600;
/// Longest overlap of a rotation: seven days; repeated in `RotateToken`'s schema.
const MAX_OVERLAP_SECS: i64 = 7 * 24 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list).post(create))
        .route("/tokens/{token_id}", get(read).delete(revoke))
        .route("/tokens/{token_id}/rotate", post(rotate))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    #[schema(value_type = Name)]
    name: String,
    #[schema(value_type = TokenRole)]
    role: String,
    /// Lifetime in seconds (ten years at most); the token never expires without it.
    #[schema(minimum = 1, maximum = 315_360_000)]
    expires_in_seconds: Option<i64>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateToken {
    /// How long the old token keeps working, in seconds (seven days at most); an hour
    /// when left out.
    #[schema(minimum = 0, maximum = 604_800)]
    overlap_seconds: Option<i64>,
    /// Lifetime of the new token in seconds (ten years at most); it never expires without
    /// it.
    #[schema(minimum = 1, maximum = 315_360_000)]
    expires_in_seconds: Option<i64>,
}

/// The one response that carries a token's value.
#[derive(Serialize, ToSchema)]
#[schema(as = IssuedToken)]
pub(crate) struct IssuedView {
    #[serde(flatten)]
    token: Token,
    value: String,
    /// The token this one replaces, with the end of its overlap, after a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<Token>,
}

fn check_lifetime(seconds: Option<i64>, errors: &mut Vec<FieldError>) {
    if seconds.is_some_and(|s| !(1..=MAX_LIFETIME_SECS).contains(&s)) {
        errors.push(FieldError::new(
            "expires_in_seconds",
            format!("must be 1 to {MAX_LIFETIME_SECS} seconds (ten years)"),
        ));
    }
}

/// 201 with a new token and its value, the one answer that holds it; `previous` is the
/// token it replaces, when rotated.
fn issued(token: Token, value: String, previous: Option<Token>) -> Response {
    let location = format!("/api/v1/tokens/{}", token.id);
    let view = IssuedView {
        token,
        value,
        previous,
    };
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response()
}

/// Issues a token. The response is the only one that holds its value.
#[utoipa::path(
    post,
    path = "/tokens",
    operation_id = "create_token",
    tag = "tokens",
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token with its value", body = IssuedView,
            headers(("location" = String, description = "Where the token is")),
            links(
                ("ReadToken" = (operation_id = "read_token", parameters(("token_id" = "$response.body#/id")))),
                ("RotateToken" = (operation_id = "rotate_token", parameters(("token_id" = "$response.body#/id")))),
                ("RevokeToken" = (operation_id = "revoke_token", parameters(("token_id" = "$response.body#/id")))),
            )),
    )
)]
pub(crate) async fn create(
    admin: Admin,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateToken>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    check_name(&body.name, &mut errors);
    let role = TokenRole::parse(&body.role);
    if role.is_none() {
        errors.push(FieldError::new("role", "must be admin, viewer or node"));
    }
    check_lifetime(body.expires_in_seconds, &mut errors);
    let (Some(role), true) = (role, errors.is_empty()) else {
        return Err(ApiError::Invalid(errors));
    };
    let issued_token = IssuedToken::generate();
    let token = tokens::insert(
        &state.pool,
        &NewToken {
            name: &body.name,
            role,
            digest: &issued_token.digest,
            prefix: &issued_token.prefix,
            created_by: &admin.name,
            expires_in_seconds: body.expires_in_seconds,
            rotated_from: None,
        },
    )
    .await?;
    Ok(issued(token, issued_token.value, None))
}

/// Lists the tokens, revoked and expired ones too (without their values).
#[utoipa::path(
    get,
    path = "/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    responses((status = 200, description = "Every token", body = Items<Token>))
)]
pub(crate) async fn list(
    _: Reader,
    State(state): State<AppState>,
) -> ApiResult<Json<Items<Token>>> {
    Ok(Json(Items {
        items: tokens::list(&state.pool).await?,
    }))
}

/// Reads a token (without its value).
#[utoipa::path(
    get,
    path = "/tokens/{token_id}",
    operation_id = "read_token",
    tag = "tokens",
    params(("token_id" = Uuid, Path, description = "The token's id")),
    responses(
        (status = 200, description = "The token", body = Token),
        (status = 404, description = "No such token", body = ErrorBody),
    )
)]
pub(crate) async fn read(
    _: Reader,
    State(state): State<AppState>,
    Path(token_id): Path<String>,
) -> ApiResult<Json<Token>> {
    let id = parse_id(&token_id, "token")?;
    tokens::get(&state.pool, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("token"))
}

/// Revokes at once; revoking a revoked token changes nothing. A revoked token is still
/// listed and read, with its status `revoked`, to show what was issued.
#[utoipa::path(
    delete,
    path = "/tokens/{token_id}",
    operation_id = "revoke_token",
    tag = "tokens",
    params(("token_id" = Uuid, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked: it stays readable, with status `revoked`"),
        (status = 404, description = "No such token", body = ErrorBody),
    )
)]
pub(crate) async fn revoke(
    _: Admin,
    State(state): State<AppState>,
    Path(token_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&token_id, "token")?;
    if !tokens::revoke(&state.pool, id).await? {
        return Err(ApiError::NotFound("token"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a successor with the same name and role; the old token stops at the end of the
/// overlap (or sooner, if it was to expire sooner). The body is optional.
#[utoipa::path(
    post,
    path = "/tokens/{token_id}/rotate",
    operation_id = "rotate_token",
    tag = "tokens",
    params(("token_id" = Uuid, Path, description = "The token's id")),
    request_body(content = Option<RotateToken>,
        description = "Optional: without it, the old token works for another hour and the new \
            one never expires"),
    responses(
        (status = 201, description = "The new token with its value, and the old one in \
            `previous`", body = IssuedView,
            headers(("location" = String, description = "Where the new token is")),
            links(
                ("ReadToken" = (operation_id = "read_token", parameters(("token_id" = "$response.body#/id")))),
                ("RevokeToken" = (operation_id = "revoke_token", parameters(("token_id" = "$response.body#/id")))),
            )),
        (status = 404, description = "No such token", body = ErrorBody),
        (status = 409, description = "The token is revoked or expired", body = ErrorBody),
    )
)]
pub(crate) async fn rotate(
    admin: Admin,
    State(state): State<AppState>,
    Path(token_id): Path<String>,
    body: Option<JsonBody<RotateToken>>,
) -> ApiResult<Response> {
    let id = parse_id(&token_id, "token")?;
    let body = body.map(|JsonBody(body)| body).unwrap_or_default();
    let overlap = body.overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECS);
    let mut errors = Vec::new();
    if !(0..=MAX_OVERLAP_SECS).contains(&overlap) {
        errors.push(FieldError::new(
            "overlap_seconds",
            format!("must be 0 to {MAX_OVERLAP_SECS} seconds (seven days)"),
        ));
    }
    check_lifetime(body.expires_in_seconds, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let mut tx = state.pool.begin().await?;
    let old = tokens::get_for_update(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("token"))?;
    if old.status != TokenStatus::Active {
        return Err(ApiError::conflict(
            "id",
            format!(
                "the token is {}: create a new one instead",
                old.status.as_str()
            ),
        ));
    }
    let issued_token = IssuedToken::generate();
    let token = tokens::insert(
        &mut *tx,
        &NewToken {
            name: &old.name,
            role: old.role,
            digest: &issued_token.digest,
            prefix: &issued_token.prefix,
            created_by: &admin.name,
            expires_in_seconds: body.expires_in_seconds,
            rotated_from: Some(old.id),
        },
    )
    .await?;
    let previous = tokens::expire_within(&mut *tx, old.id, overlap).await?;
    tx.commit().await?;
    Ok(issued(token, issued_token.value, previous))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::{MAX_LIFETIME_SECS, MAX_OVERLAP_SECS};

    /// The bounds the OpenAPI document gives `field` of the schema `schema`.
    fn bounds(schema: &str, field: &str) -> (Value, Value) {
        let document = serde_json::to_value(crate::http::openapi::document()).expect("serializes");
        let property = &document["components"]["schemas"][schema]["properties"][field];
        (property["minimum"].clone(), property["maximum"].clone())
    }

    #[test]
    fn the_documented_bounds_are_the_ones_the_handlers_check() {
        for schema in ["CreateToken", "RotateToken"] {
            assert_eq!(
                bounds(schema, "expires_in_seconds"),
                (1.into(), MAX_LIFETIME_SECS.into()),
                "{schema}"
            );
        }
        assert_eq!(
            bounds("RotateToken", "overlap_seconds"),
            (0.into(), MAX_OVERLAP_SECS.into())
        );
    }
}
