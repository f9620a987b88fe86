//! REQUEST authorizers: AWS's payload format 2.0 posted to a real endpoint, its simple
//! responses, its cache observed by counting calls, and an authorizer that denies, hangs,
//! crashes or answers garbage.

use std::time::{Duration, Instant};

use gatehouse_tests::client;
use gatehouse_tests::identity::{RequestAuthorizerServer, Verdict};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use super::Gateway;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

async fn call(url: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = client().get(url).header("user-agent", "shop-test");
    if let Some(token) = token {
        request = request.header("x-token", token);
    }
    let response = request.send().await.expect("proxy answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The shop whose `GET /orders/{id}` asks `server`, with answers kept `ttl` seconds.
async fn shop(pool: &PgPool, server: &RequestAuthorizerServer, ttl: u32) -> Gateway {
    let gw = Gateway::start(pool).await;
    let authorizer = gw
        .authorizer(json!({"name": "tokens", "authorizer_type": "REQUEST",
            "identity_source": ["$request.header.x-token"], "authorizer_uri": server.url,
            "authorizer_result_ttl_in_seconds": ttl}))
        .await;
    gw.route(json!({"route_key": "GET /orders/{id}", "authorization_type": "CUSTOM",
        "authorizer_id": authorizer,
        "integration": {"type": "HTTP_PROXY", "uri": format!("http://{}/echo/orders/{{id}}", gw.upstream.addr),
            "request_parameters": {"overwrite:header.x-customer": "$context.authorizer.customer"}}}))
        .await;
    gw.deploy().await;
    gw
}

fn allow(token: &str) -> Verdict {
    Verdict::Allow {
        allowed: token.to_owned(),
        context: json!({"customer": "c-42", "tier": 3}),
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn answers_are_asked_for_with_aws_payload_and_cached_by_identity(pool: PgPool) {
    let server = RequestAuthorizerServer::start(allow("good")).await;
    let gw = shop(&pool, &server, 300).await;
    let url = gw.url("/orders/7?expand=items&expand=notes");

    let (status, body) = call(&url, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body, json!({"message": "Unauthorized"}));
    assert_eq!(server.calls(), 0, "no identity, no call");

    let (status, body) = call(&url, Some("good")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["headers"]["x-customer"], "c-42",
        "the context reaches the backend"
    );
    assert_eq!(server.calls(), 1);
    let payload = server.last_payload();
    assert_eq!(payload["version"], "2.0");
    assert_eq!(payload["type"], "REQUEST");
    assert_eq!(payload["routeKey"], "GET /orders/{id}");
    assert_eq!(payload["rawPath"], "/shop/prod/orders/7");
    assert_eq!(payload["rawQueryString"], "expand=items&expand=notes");
    assert_eq!(payload["identitySource"], json!(["good"]));
    assert_eq!(payload["pathParameters"], json!({"id": "7"}));
    assert_eq!(payload["queryStringParameters"]["expand"], "items,notes");
    assert_eq!(payload["headers"]["x-token"], "good");
    assert_eq!(payload["requestContext"]["http"]["method"], "GET");
    assert_eq!(payload["requestContext"]["http"]["userAgent"], "shop-test");
    assert_eq!(payload["requestContext"]["stage"], "prod");

    for _ in 0..5 {
        let (status, _) = call(&url, Some("good")).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(server.calls(), 1, "a cached yes is not asked again");

    let (status, body) = call(&url, Some("bad")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, json!({"message": "Forbidden"}));
    let (status, _) = call(&url, Some("bad")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(server.calls(), 2, "a cached no is not asked again either");

    // A client's own copy of a mapped header never reaches the backend.
    let response = client()
        .get(&url)
        .header("x-token", "good")
        .header("x-customer", "someone-else")
        .send()
        .await
        .expect("answer");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["headers"]["x-customer"], "c-42");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn without_a_ttl_every_request_is_asked(pool: PgPool) {
    let server = RequestAuthorizerServer::start(allow("good")).await;
    let gw = shop(&pool, &server, 0).await;
    for _ in 0..3 {
        let (status, _) = call(&gw.url("/orders/1"), Some("good")).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(server.calls(), 3);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_authorizer_that_crashes_hangs_or_answers_garbage_refuses_with_500(pool: PgPool) {
    let server = RequestAuthorizerServer::start(Verdict::Crash).await;
    let gw = shop(&pool, &server, 0).await;
    let url = gw.url("/orders/1");
    for verdict in [Verdict::Crash, Verdict::Garbage] {
        server.set(verdict.clone());
        let (status, body) = call(&url, Some("good")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{verdict:?}");
        assert_eq!(
            body,
            json!({"message": "Internal Server Error"}),
            "{verdict:?}"
        );
    }
    server.set(Verdict::Hang(Duration::from_secs(15)));
    let started = Instant::now();
    let (status, body) = call(&url, Some("good")).await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(14),
        "gave up after {waited:?}"
    );
    // A failure is not cached: the next request asks again.
    server.set(allow("good"));
    let (status, _) = call(&url, Some("good")).await;
    assert_eq!(status, StatusCode::OK);
}
