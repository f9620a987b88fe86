//! The one error type of the admin and sync APIs, and how each case looks to a client.
//!
//! Policy: every error is JSON `{"message": ..., "errors": [{"field", "message"}]}`.
//! Input problems name the field (422, or 409 for a clash with existing data); a
//! malformed body is 400; a database outage is 503. Anything unexpected is a 500 with a
//! fixed message: the cause goes to the log, never to the client. Unique and foreign-key
//! violations are mapped to fields by constraint name, so a race that slips past the
//! checks in a handler still gets a precise answer.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct FieldError {
    /// Where in the request: `name`, `integration.timeout_ms`, `stages[0].stage`, or a
    /// query parameter.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    /// Bad query parameters: a 400 naming each.
    #[error("invalid query parameters")]
    BadParameters(Vec<FieldError>),
    #[error("conflict")]
    Conflict(FieldError),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("payload too large")]
    PayloadTooLarge,
    /// The client's address failed to authenticate too often lately.
    #[error("too many failed authentications")]
    TooManyFailures,
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Conflict(FieldError::new(field, message))
    }
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    message: &'a str,
    /// Each bad field, when the error is about the request's content.
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    #[schema(required = false)]
    errors: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, errors): (StatusCode, String, Vec<FieldError>) = match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized".into(), vec![]),
            ApiError::Forbidden(why) => (StatusCode::FORBIDDEN, why.into(), vec![]),
            ApiError::NotFound(what) => {
                (StatusCode::NOT_FOUND, format!("{what} not found"), vec![])
            }
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m, vec![]),
            ApiError::Invalid(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid request".into(),
                errors,
            ),
            ApiError::BadParameters(errors) => (
                StatusCode::BAD_REQUEST,
                "Invalid query parameters".into(),
                errors,
            ),
            ApiError::Conflict(e) => (StatusCode::CONFLICT, e.message.clone(), vec![e]),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected Content-Type: application/json".into(),
                vec![],
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large".into(),
                vec![],
            ),
            ApiError::TooManyFailures => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed authentications from this address; try again later".into(),
                vec![],
            ),
            ApiError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Database unavailable, try again".into(),
                    vec![],
                )
            }
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error".into(),
                    vec![],
                )
            }
        };
        let mut response = (
            status,
            Json(ErrorBody {
                message: &message,
                errors: &errors,
            }),
        )
            .into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = crate::auth_failures::WINDOW.as_secs().to_string();
            if let Ok(wait) = HeaderValue::from_str(&wait) {
                response.headers_mut().insert(header::RETRY_AFTER, wait);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Field a constraint protects, and what to say when it is violated.
fn constraint_error(constraint: &str) -> Option<ApiError> {
    Some(match constraint {
        "apis_slug_key" => ApiError::conflict("slug", "an API with this slug already exists"),
        "routes_api_route_key_key" => {
            ApiError::conflict("route_key", "this API already has a route with this key")
        }
        "authorizers_api_name_key" => {
            ApiError::conflict("name", "this API already has an authorizer with this name")
        }
        "routes_authorizer_fkey" => ApiError::conflict(
            "authorizer_id",
            "no such authorizer in this API, or routes still use it",
        ),
        "stages_pkey" => ApiError::conflict("name", "this API already has a stage with this name"),
        "stages_deployment_fkey" => ApiError::conflict(
            "deployment_id",
            "the deployment does not belong to this API or is in use by a stage",
        ),
        "api_keys_hash_key" => ApiError::conflict("value", "this key already exists"),
        "usage_plans_name_key" => {
            ApiError::conflict("name", "a usage plan with this name already exists")
        }
        "usage_plan_keys_pkey" => {
            ApiError::conflict("key_id", "the key is already attached to this plan")
        }
        "usage_plan_keys_plan_fkey" => {
            ApiError::conflict("id", "keys use this plan; detach them first")
        }
        "usage_plan_stages_stage_fkey" => ApiError::invalid("stages", "no such API stage"),
        _ => return None,
    })
}

/// SQLSTATEs of a server that is going away or not ready: connection exceptions (class
/// 08), shutdowns and start-up (57P01 to 57P03).
fn is_outage(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        match &e {
            sqlx::Error::Database(db) => {
                if let Some(mapped) = db.constraint().and_then(constraint_error) {
                    return mapped;
                }
                if db.code().is_some_and(|code| is_outage(&code)) {
                    return ApiError::Unavailable(e);
                }
                ApiError::Internal(e.into())
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => ApiError::Unavailable(e),
            _ => ApiError::Internal(e.into()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
