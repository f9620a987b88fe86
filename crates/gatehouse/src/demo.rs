//! A small demo upstream that `gatehouse up` starts beside the gateway, so the tutorial
//! has something real to route to: a pet store, an echo of whatever it receives, and a
//! deliberately slow endpoint to see timeouts with.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Value};

/// Longest `/slow` will wait.
const MAX_DELAY_MS: u64 = 60_000;

pub fn router() -> Router {
    Router::new()
        .route("/pets", get(pets))
        .route("/pets/{id}", get(pet))
        .route("/echo", any(echo))
        .route("/echo/{*rest}", any(echo))
        .route("/slow", get(slow))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
}

const PETS: [(u32, &str, &str); 3] = [(1, "Rex", "dog"), (2, "Tom", "cat"), (3, "Nemo", "fish")];

async fn pets() -> Json<Value> {
    Json(json!(PETS
        .iter()
        .map(|(id, name, kind)| json!({"id": id, "name": name, "type": kind}))
        .collect::<Vec<_>>()))
}

async fn pet(Path(id): Path<String>) -> impl IntoResponse {
    match PETS.iter().find(|(pid, ..)| pid.to_string() == id) {
        Some((id, name, kind)) => (
            StatusCode::OK,
            Json(json!({"id": id, "name": name, "type": kind})),
        ),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": format!("no pet {id}")})),
        ),
    }
}

/// Answers with what it received: method, path, query, headers and body.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query().unwrap_or(""),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "body_bytes": body.len(),
    }))
}

async fn slow(Query(query): Query<BTreeMap<String, String>>) -> Json<Value> {
    let ms = query
        .get("ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1000)
        .min(MAX_DELAY_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"slept_ms": ms}))
}
