//! The proxy against a control plane that sends it broken snapshots: a damaged one and one
//! whose routes conflict. Neither may replace the good snapshot, and the proxy must say
//! why on its next poll.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use gatehouse_model::{ConfigSnapshot, DeployedStage};
use gatehouse_tests::{client, eventually, start_proxy, NODE_TOKEN};
use serde_json::json;
use tokio::net::TcpListener;

fn stage(routes: serde_json::Value) -> DeployedStage {
    serde_json::from_value(json!({
        "api_id": "00000000-0000-0000-0000-000000000001", "api_slug": "pets", "protocol": "HTTP",
        "stage": "prod", "deployment_id": "00000000-0000-0000-0000-000000000002", "variables": {},
        "routes": routes,
    }))
    .expect("valid stage")
}

fn snapshot(version: i64, stages: Vec<DeployedStage>) -> ConfigSnapshot {
    ConfigSnapshot::new(version, stages, Vec::new(), Vec::new())
}

fn route(key: &str, body: &str) -> serde_json::Value {
    json!({"id": "00000000-0000-0000-0000-000000000003", "route_key": key,
           "integration": {"type": "MOCK", "status": 200, "body": body}})
}

/// The `version` and `error` a proxy sent on one poll.
type Poll = (Option<i64>, Option<String>);

#[derive(Clone, Default)]
struct Seen {
    /// (version, error) of every poll.
    polls: Arc<Mutex<Vec<Poll>>>,
}

async fn config(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {NODE_TOKEN}"))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let version = q.get("version").and_then(|v| v.parse::<i64>().ok());
    seen.polls
        .lock()
        .expect("lock")
        .push((version, q.get("error").cloned()));
    let body = match version {
        None => snapshot(1, vec![stage(json!([route("GET /hello", "good")]))]).encode(),
        Some(1) => {
            let mut damaged = snapshot(2, vec![stage(json!([route("GET /hello", "evil")]))]);
            damaged.hash = "0".repeat(64);
            damaged.encode()
        }
        Some(2) => snapshot(
            3,
            vec![stage(json!([
                route("GET /a/{x}", "one"),
                route("GET /a/{y}", "two")
            ]))],
        )
        .encode(),
        Some(_) => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            return StatusCode::NOT_MODIFIED.into_response();
        }
    };
    let version_header = match version {
        None => 1,
        Some(v) => v + 1,
    };
    (
        [
            ("content-type", "application/json"),
            ("x-gatehouse-config-version", &version_header.to_string()),
        ],
        body,
    )
        .into_response()
}

#[tokio::test]
async fn broken_snapshots_never_replace_a_good_one_and_are_reported() {
    let seen = Seen::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new()
        .route("/dp/v1/config", get(config))
        .with_state(seen.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = start_proxy(&format!("http://{addr}"), data.path()).await;

    let reported = eventually(Duration::from_secs(5), || async {
        let polls = seen.polls.lock().expect("lock").clone();
        polls
            .iter()
            .any(|(v, e)| {
                *v == Some(3)
                    && e.as_deref()
                        .is_some_and(|e| e.contains("matches the same requests"))
            })
            .then_some(polls)
    })
    .await;
    let (polls, _) = reported.expect("the proxy reported both refusals");
    assert!(
        polls
            .iter()
            .any(|(v, e)| *v == Some(2) && e.as_deref().is_some_and(|e| e.contains("hash"))),
        "damaged snapshot not reported: {polls:?}"
    );
    assert_eq!(proxy.config_version(), Some(1));
    let body = client()
        .get(format!("http://{}/pets/prod/hello", proxy.addr))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    assert_eq!(body, "good");
    proxy.stop().await;
    server.abort();
}
