//! The audit trail of the admin API: every change that succeeded, from a script's admin
//! token or from the dashboard (which sends its forms through the same API), is written to
//! `audit_log` with who made it, the route it went to and its body, secrets removed.
//!
//! The entry is written after the change committed, on a task of its own, so a database
//! failure between the two can lose an entry, never a change: the log is a record, not a
//! gate. Refused requests are not recorded.

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::{Admin, DashboardActor};
use crate::error::ApiError;
use crate::repo::audit::{self, NewEntry};
use crate::AppState;

/// Bodies larger than this are noted by size only.
const MAX_DETAIL_BYTES: usize = 16 * 1024;

/// Field names whose values never reach the log: `value` (an imported API key's) and any
/// name containing one of the others (`api_token`, `clientSecret`, ...).
const SECRET_FIELDS: [&str; 6] = ["value", "password", "passwd", "token", "secret", "auth"];

pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    // The admin API's gate (`auth::guard_admin_api`, outside this layer) has let only
    // admins through, and keeps who they are in the request: no second lookup here.
    let (mut parts, body) = request.into_parts();
    let Ok(admin) = Admin::from_request_parts(&mut parts, &state).await else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let source = if parts.extensions.get::<DashboardActor>().is_some() {
        "dashboard"
    } else {
        "api"
    };
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map_or("?", MatchedPath::as_str);
    let action = format!("{} {}", parts.method, without_prefix(route));
    let target = without_prefix(parts.uri.path()).to_owned();
    let Ok(bytes) = to_bytes(body, state.config.max_body_bytes).await else {
        return ApiError::PayloadTooLarge.into_response();
    };
    let detail = describe(&bytes);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if response.status().is_success() {
        let status = response.status().as_u16();
        // A task of its own: the entry is written even if the client goes away now.
        tokio::spawn(async move {
            let entry = NewEntry {
                actor: &admin.name,
                source,
                action: &action,
                target: &target,
                status,
                detail: detail.as_ref(),
            };
            if let Err(e) = audit::record(&state.pool, &entry).await {
                tracing::error!(error = %e, action, target, "writing the audit log failed");
            }
        });
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
                let lower = name.to_ascii_lowercase();
                if SECRET_FIELDS.iter().any(|s| lower.contains(s)) {
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
        let body = br#"{"name":"ci","value":"k-123","nested":[{"Password":"p"}],"keep":1,
            "variables":{"api_token":"t-9","host":"h"}}"#;
        let described = describe(body).expect("a body");
        let text = described.to_string();
        assert!(
            !text.contains("k-123") && !text.contains("\"p\"") && !text.contains("t-9"),
            "{text}"
        );
        assert_eq!(described["variables"]["host"], "h");
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
