//! The audit trail of the admin API: every change that succeeded, from a script's admin
//! token or from the dashboard (which sends its forms through the same API), is written to
//! `audit_log` with who made it, the route it went to and its body, secrets removed.
//!
//! The entry is written after the change committed, so a database failure between the two
//! can lose an entry, never a change: the log is a record, not a gate.

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::{DashboardActor, ADMIN_TOKEN_ACTOR};
use crate::error::ApiError;
use crate::repo::audit::{self, NewEntry};
use crate::AppState;

/// Bodies larger than this are noted by size only.
const MAX_DETAIL_BYTES: usize = 16 * 1024;

/// Field names whose values never reach the log.
const SECRET_FIELDS: [&str; 4] = ["value", "password", "token", "secret"];

pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let (actor, source) = match request.extensions().get::<DashboardActor>() {
        Some(actor) => (actor.name.clone(), "dashboard"),
        None => (ADMIN_TOKEN_ACTOR.to_owned(), "api"),
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("?", MatchedPath::as_str);
    let action = format!("{} {}", request.method(), without_prefix(route));
    let target = without_prefix(request.uri().path()).to_owned();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, state.config.max_body_bytes).await else {
        return ApiError::PayloadTooLarge.into_response();
    };
    let detail = describe(&bytes);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if response.status().is_success() {
        let entry = NewEntry {
            actor: &actor,
            source,
            action: &action,
            target: &target,
            status: response.status().as_u16(),
            detail: detail.as_ref(),
        };
        if let Err(e) = audit::record(&state.pool, &entry).await {
            tracing::error!(error = %e, action, target, "writing the audit log failed");
        }
    }
    response
}

fn without_prefix(path: &str) -> &str {
    path.strip_prefix("/api/v1").unwrap_or(path)
}

/// The body as JSON with secret fields masked; `None` without a body.
fn describe(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    if bytes.len() > MAX_DETAIL_BYTES {
        return Some(serde_json::json!({ "omitted_bytes": bytes.len() }));
    }
    let mut value = serde_json::from_slice::<Value>(bytes).ok()?;
    mask(&mut value);
    Some(value)
}

fn mask(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, inner) in map.iter_mut() {
                if SECRET_FIELDS.iter().any(|s| name.eq_ignore_ascii_case(s)) {
                    *inner = Value::String("(hidden)".to_owned());
                } else {
                    mask(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_fields_are_hidden_at_any_depth() {
        let body = br#"{"name":"ci","value":"k-123","nested":[{"Password":"p"}],"keep":1}"#;
        let described = describe(body).expect("a body");
        let text = described.to_string();
        assert!(!text.contains("k-123") && !text.contains("\"p\""), "{text}");
        assert_eq!(described["keep"], 1);
        assert_eq!(described["name"], "ci");
    }

    #[test]
    fn large_or_empty_bodies_are_described_by_size_or_not_at_all() {
        assert_eq!(describe(b""), None);
        let big = vec![b' '; MAX_DETAIL_BYTES + 1];
        assert_eq!(
            describe(&big),
            Some(serde_json::json!({ "omitted_bytes": MAX_DETAIL_BYTES + 1 }))
        );
    }
}
