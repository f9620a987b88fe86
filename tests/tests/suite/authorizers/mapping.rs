//! Parameter mapping, seen by a real upstream that echoes what it received: who called
//! (a JWT's claims), rewritten query strings and paths, a client's forged headers
//! replaced, and answers changed by status.

use gatehouse_tests::client;
use gatehouse_tests::identity::{Issuer, SigningKey};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use super::Gateway;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_backend_learns_who_called_and_gets_the_request_the_rules_describe(pool: PgPool) {
    let issuer = Issuer::start().await;
    let key = SigningKey::es256("k1");
    issuer.publish(vec![key.jwk.clone()]);
    let gw = Gateway::start(&pool).await;
    let authorizer = gw
        .authorizer(json!({"name": "idp", "authorizer_type": "JWT",
            "jwt_configuration": {"issuer": issuer.url, "audience": ["shop"]}}))
        .await;
    let up = gw.upstream.addr;
    gw.route(json!({"route_key": "GET /items/{id}", "authorization_type": "JWT", "authorizer_id": authorizer,
        "integration": {"type": "HTTP_PROXY", "uri": format!("http://{up}/echo/items/{{id}}"),
            "request_parameters": {
                "overwrite:header.x-user-id": "$context.authorizer.claims.sub",
                "append:header.x-via": "gatehouse ${context.stage}",
                "remove:header.x-internal": "",
                "append:querystring.caller": "$context.authorizer.claims.sub",
                "remove:querystring.debug": "",
                "overwrite:path": "/echo/v2/items/$request.path.id"
            },
            "response_parameters": {
                "200": {"append:header.x-served-by": "shop", "remove:header.x-upstream-secret": ""},
                "404": {"overwrite:statuscode": "410"}
            }}}))
        .await;
    gw.deploy().await;
    let token = key.sign(&issuer.claims("shop", json!({"sub": "alice"})));

    let response = client()
        .get(gw.url("/items/9?debug=1&page=2"))
        .bearer_auth(&token)
        .header("x-user-id", "mallory")
        .header("x-internal", "leak")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-served-by"], "shop");
    let seen: Value = response.json().await.expect("echo");
    assert_eq!(seen["path"], "/echo/v2/items/9");
    assert_eq!(
        seen["headers"]["x-user-id"], "alice",
        "a forged header is replaced"
    );
    assert_eq!(seen["headers"]["x-via"], "gatehouse prod");
    assert!(seen["headers"].get("x-internal").is_none(), "{seen}");
    let query = seen["query"].as_str().unwrap_or_default();
    assert!(
        query.contains("caller=alice") && query.contains("page=2") && !query.contains("debug"),
        "{query}"
    );

    // Nothing of a refused token reaches the backend: the request never does.
    let response = client()
        .get(gw.url("/items/9"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn reserved_headers_and_unknown_values_are_refused_by_field(pool: PgPool) {
    let gw = Gateway::start(&pool).await;
    let admin = gw.admin();
    for rules in [
        json!({"overwrite:header.authorization": "x"}),
        json!({"overwrite:header.host": "evil.example.com"}),
        json!({"append:header.x-forwarded-for": "1.2.3.4"}),
        json!({"overwrite:header.x-a": "$request.body.password"}),
        json!({"overwrite:path": "relative"}),
    ] {
        let (status, body) = admin
            .post(&format!("/apis/{}/routes", gw.api), json!({"route_key": "GET /x",
                "integration": {"type": "HTTP_PROXY", "uri": "http://127.0.0.1:1/x", "request_parameters": rules}}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{rules}: {body}");
        assert_eq!(
            gatehouse_tests::error_fields(&body),
            ["integration"],
            "{body}"
        );
    }
}
