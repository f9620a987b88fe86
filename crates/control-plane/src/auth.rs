//! Who may call what: admin tokens on `/api/v1`, node tokens on `/dp/v1`. Tokens are
//! compared by their SHA-256 digests in constant time, so neither their content nor their
//! length leaks through timing.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::repo::users::Role;
use crate::AppState;

/// A secret string that never shows in `Debug` or `Display` output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with what a caller presented.
    pub fn matches(&self, presented: &str) -> bool {
        same_secret(&self.0, presented)
    }
}

/// Whether two secrets are equal, compared by their SHA-256 digests in constant time, so
/// neither their content nor their length leaks through timing.
pub fn same_secret(a: &str, b: &str) -> bool {
    let a = Sha256::digest(a.as_bytes());
    let b = Sha256::digest(b.as_bytes());
    a.ct_eq(&b).into()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Succeeds when the request carries `expected` as its bearer token.
fn authorize(parts: &Parts, expected: Option<&Secret>) -> Result<(), ApiError> {
    match (bearer(parts), expected) {
        (Some(presented), Some(token)) if token.matches(presented) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// An authenticated admin. Its `name` is recorded as the author of deployments and in
/// the audit log.
#[derive(Debug, Clone)]
pub struct Admin {
    pub name: String,
}

/// The dashboard user a request acts for. Only the dashboard's own dispatch of a form to
/// the admin API sets it (as a request extension, which nothing on the wire can set), so
/// every change made in the browser goes through the same checks as the admin API.
#[derive(Debug, Clone)]
pub struct DashboardActor {
    pub name: String,
    pub role: Role,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(actor) = parts.extensions.get::<DashboardActor>() {
            return match actor.role {
                Role::Admin => Ok(Admin {
                    name: actor.name.clone(),
                }),
                Role::Viewer => Err(ApiError::Forbidden("viewers cannot change anything")),
            };
        }
        authorize(parts, state.config.admin_token.as_ref())?;
        Ok(Admin {
            name: ADMIN_TOKEN_ACTOR.to_owned(),
        })
    }
}

/// How the audit log and deployments name whoever used the configured admin token.
pub const ADMIN_TOKEN_ACTOR: &str = "admin-token";

/// An authenticated proxy.
#[derive(Debug, Clone, Copy)]
pub struct Node;

impl FromRequestParts<AppState> for Node {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authorize(parts, state.config.node_token.as_ref())?;
        Ok(Node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_the_same_value_and_never_print() {
        let s = Secret::new("abc");
        assert!(s.matches("abc"));
        assert!(!s.matches("abcd"));
        assert!(!s.matches(""));
        assert_eq!(format!("{s:?}"), "Secret(****)");
    }
}
