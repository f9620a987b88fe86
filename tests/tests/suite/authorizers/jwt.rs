//! JWT authorizers: tokens from a real issuer, signed by two libraries with six
//! algorithms, each check's refusal as AWS answers it, and the issuer's keys rotating,
//! failing and being attacked with made-up key ids.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use gatehouse_tests::identity::{python_tokens, Issuer, JwksMode, SigningKey};
use gatehouse_tests::{client, proxy_metric_total};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use super::Gateway;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;
const AUDIENCE: &str = "shop-api";

/// The shop with a JWT authorizer of `issuer`: `GET /orders/{id}` needs `read:orders`,
/// `GET /admin` needs `admin`, `GET /open` needs nothing.
async fn shop(pool: &PgPool, issuer: &Issuer) -> Gateway {
    let gw = Gateway::start(pool).await;
    let authorizer = gw
        .authorizer(json!({"name": "idp", "authorizer_type": "JWT",
            "jwt_configuration": {"issuer": issuer.url, "audience": [AUDIENCE]}}))
        .await;
    gw.route(
        json!({"route_key": "GET /orders/{id}", "integration": gw.echo("/orders/{id}"),
        "authorization_type": "JWT", "authorizer_id": authorizer,
        "authorization_scopes": ["read:orders"]}),
    )
    .await;
    gw.route(json!({"route_key": "GET /admin", "integration": gw.echo("/admin"),
        "authorization_type": "JWT", "authorizer_id": authorizer, "authorization_scopes": ["admin"]}))
        .await;
    gw.route(json!({"route_key": "GET /open", "integration": gw.echo("/open")}))
        .await;
    gw.deploy().await;
    gw
}

async fn call(url: &str, authorization: Option<&str>) -> (StatusCode, Option<String>, Value) {
    let mut request = client().get(url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.expect("proxy answers");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("text").to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn tokens_of_every_accepted_algorithm_pass_and_every_bad_token_is_refused_as_aws_does(
    pool: PgPool,
) {
    let issuer = Issuer::start().await;
    let es = SigningKey::es256("rust-es256");
    let ed = SigningKey::eddsa("rust-eddsa");
    let good = issuer.claims(AUDIENCE, json!({"scope": "read:orders write:orders"}));
    let (python_keys, python) = python_tokens("py", &good);
    let mut keys = vec![es.jwk.clone(), ed.jwk.clone()];
    keys.extend(python_keys);
    issuer.publish(keys);
    let gw = shop(&pool, &issuer).await;
    let orders = gw.url("/orders/7");

    // Good tokens, from both libraries, with and without the Bearer scheme.
    let mut accepted = vec![es.sign(&good), ed.sign(&good)];
    for alg in ["RS256", "PS256", "ES384"] {
        accepted.push(python[alg].clone());
    }
    for token in &accepted {
        let (status, _, body) = call(&orders, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["path"], "/echo/orders/7", "the upstream answered");
    }
    let (status, ..) = call(&orders, Some(&accepted[0])).await;
    assert_eq!(status, StatusCode::OK, "a token without the Bearer scheme");
    let client_id = issuer.claims(
        AUDIENCE,
        json!({"aud": null, "client_id": AUDIENCE, "scope": "read:orders"}),
    );
    let (status, ..) = call(&orders, Some(&format!("Bearer {}", es.sign(&client_id)))).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "client_id stands in for aud, as AWS"
    );
    let scp = issuer.claims(AUDIENCE, json!({"scp": ["admin"]}));
    let (status, ..) = call(
        &gw.url("/admin"),
        Some(&format!("Bearer {}", es.sign(&scp))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "scopes in an scp array");

    // Missing: 401 with a plain Bearer challenge.
    let (status, challenge, body) = call(&orders, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"message": "Unauthorized"}));
    assert_eq!(challenge.as_deref(), Some("Bearer"));

    // Invalid: 401 invalid_token, never the upstream's answer.
    let now = chrono::Utc::now().timestamp();
    let stranger = SigningKey::es256("rust-es256");
    let payload = |claims: &Value| URL_SAFE_NO_PAD.encode(claims.to_string());
    let good_token = es.sign(&good);
    let mut parts = good_token.split('.');
    let (head, _, signature) = (
        parts.next().expect("head"),
        parts.next(),
        parts.next().expect("sig"),
    );
    let refused: Vec<(&str, String)> = vec![
        (
            "expired",
            es.sign(&issuer.claims(AUDIENCE, json!({"exp": now - 3600, "scope": "read:orders"}))),
        ),
        (
            "no exp",
            es.sign(&issuer.claims(AUDIENCE, json!({"exp": null, "scope": "read:orders"}))),
        ),
        (
            "other issuer",
            es.sign(&issuer.claims(
                AUDIENCE,
                json!({"iss": "https://evil.example.com", "scope": "read:orders"}),
            )),
        ),
        (
            "other audience",
            es.sign(&issuer.claims("other-api", json!({"scope": "read:orders"}))),
        ),
        (
            "not yet valid",
            es.sign(&issuer.claims(AUDIENCE, json!({"nbf": now + 3600, "scope": "read:orders"}))),
        ),
        (
            "issued in the future",
            es.sign(&issuer.claims(AUDIENCE, json!({"iat": now + 3600, "scope": "read:orders"}))),
        ),
        ("a stranger's key under a known kid", stranger.sign(&good)),
        ("an unknown kid", SigningKey::eddsa("nobody").sign(&good)),
        (
            "HS256 keyed with the public key",
            es.sign_hs256_with_public_key(&good),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"rust-es256"}"#),
                payload(&good)
            ),
        ),
        (
            "a changed payload",
            format!(
                "{head}.{}.{signature}",
                payload(&issuer.claims(AUDIENCE, json!({"sub": "admin", "scope": "read:orders"})))
            ),
        ),
        ("garbage", "abc".to_owned()),
        ("three empty parts", "..".to_owned()),
        ("huge", "a".repeat(9000)),
    ];
    for (what, token) in &refused {
        let (status, challenge, body) = call(&orders, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(body, json!({"message": "Unauthorized"}), "{what}");
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Bearer error="invalid_token""#),
            "{what}"
        );
    }
    // Two Authorization headers: which would a backend believe? Neither.
    let response = client()
        .get(&orders)
        .header("authorization", format!("Bearer {good_token}"))
        .header("authorization", "Bearer abc")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Valid but without the route's scope: 403.
    let (status, challenge, body) =
        call(&gw.url("/admin"), Some(&format!("Bearer {good_token}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, json!({"message": "Forbidden"}));
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="insufficient_scope""#)
    );

    // A route without authorization is untouched.
    let (status, ..) = call(&gw.url("/open"), None).await;
    assert_eq!(status, StatusCode::OK);

    let refusals =
        proxy_metric_total(gw.proxy.status_addr, "gatehouse_authorizer_refusals_total").await;
    assert!(refusals >= refused.len() as f64, "{refusals}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn keys_rotate_made_up_kids_cannot_make_the_proxy_hammer_the_issuer_and_an_issuer_outage_keeps_the_last_keys(
    pool: PgPool,
) {
    let issuer = Issuer::start().await;
    let first = SigningKey::es256("k1");
    issuer.publish(vec![first.jwk.clone()]);
    let gw = shop(&pool, &issuer).await;
    let orders = gw.url("/orders/1");
    let claims = issuer.claims(AUDIENCE, json!({"scope": "read:orders"}));

    let (status, ..) = call(&orders, Some(&format!("Bearer {}", first.sign(&claims)))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        issuer.discovery_fetches(),
        1,
        "keys found through discovery"
    );
    assert_eq!(issuer.jwks_fetches(), 1, "fetched once, on first use");
    for _ in 0..5 {
        let fresh = first.sign(&issuer.claims(
            AUDIENCE,
            json!({"scope": "read:orders", "jti": uuid::Uuid::new_v4().to_string()}),
        ));
        let (status, ..) = call(&orders, Some(&format!("Bearer {fresh}"))).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(issuer.jwks_fetches(), 1, "known keys are not fetched again");

    // Made-up kids: refused, and the issuer is asked at most once per few seconds.
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let before = issuer.jwks_fetches();
    let attacks: Vec<_> = (0..30)
        .map(|i| {
            let token = SigningKey::eddsa(&format!("made-up-{i}")).sign(&claims);
            let url = orders.clone();
            tokio::spawn(async move { call(&url, Some(&format!("Bearer {token}"))).await.0 })
        })
        .collect();
    for attack in attacks {
        assert_eq!(attack.await.expect("task"), StatusCode::UNAUTHORIZED);
    }
    let during = issuer.jwks_fetches() - before;
    assert!(during <= 1, "{during} fetches for 30 made-up kids");

    // The issuer rotates to a new key: a token naming it is let through at once (after
    // the gap since the last fetch).
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let second = SigningKey::eddsa("k2");
    issuer.publish(vec![second.jwk.clone()]);
    let (status, ..) = call(&orders, Some(&format!("Bearer {}", second.sign(&claims)))).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a rotated key is fetched when a token names it"
    );

    // The issuer breaks in every way: the last good keys stay in use.
    for mode in [JwksMode::Fail, JwksMode::Garbage, JwksMode::Huge] {
        tokio::time::sleep(Duration::from_millis(5200)).await;
        issuer.set_mode(mode);
        let unknown = SigningKey::es256(&format!("during-{mode:?}")).sign(&claims);
        let fetches = issuer.jwks_fetches();
        let (status, ..) = call(&orders, Some(&format!("Bearer {unknown}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{mode:?}");
        assert_eq!(
            issuer.jwks_fetches(),
            fetches + 1,
            "{mode:?}: the fetch was tried"
        );
        let fresh = second.sign(&issuer.claims(
            AUDIENCE,
            json!({"scope": "read:orders", "jti": format!("{mode:?}")}),
        ));
        let (status, ..) = call(&orders, Some(&format!("Bearer {fresh}"))).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{mode:?}: the last good keys still verify"
        );
    }
    let fetches = proxy_metric_total(gw.proxy.status_addr, "gatehouse_jwks_fetches_total").await;
    assert_eq!(
        fetches,
        issuer.jwks_fetches() as f64,
        "every fetch is counted"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_route_cannot_name_another_apis_authorizer_or_one_of_the_wrong_kind(pool: PgPool) {
    let issuer = Issuer::start().await;
    let gw = Gateway::start(&pool).await;
    let admin = gw.admin();
    let jwt = gw
        .authorizer(json!({"name": "idp", "authorizer_type": "JWT",
            "jwt_configuration": {"issuer": issuer.url, "audience": [AUDIENCE]}}))
        .await;
    let other = admin.create_api("other").await;
    let routes = format!("/apis/{other}/routes");
    let (status, body) = admin
        .post(
            &routes,
            json!({"route_key": "GET /x", "integration": gw.echo("/x"),
            "authorization_type": "JWT", "authorizer_id": jwt}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(gatehouse_tests::error_fields(&body), ["authorizer_id"]);
    let (status, body) = admin
        .post(
            &format!("/apis/{}/routes", gw.api),
            json!({"route_key": "GET /x", "integration": gw.echo("/x"),
            "authorization_type": "CUSTOM", "authorizer_id": jwt}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = admin
        .post(
            &format!("/apis/{}/routes", gw.api),
            json!({"route_key": "GET /x", "integration": gw.echo("/x"),
            "authorization_type": "NONE", "authorization_scopes": ["a"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // In use: the authorizer cannot be deleted; unused, it can.
    gw.route(json!({"route_key": "GET /y", "integration": gw.echo("/y"),
        "authorization_type": "JWT", "authorizer_id": jwt}))
        .await;
    let (status, body) = admin
        .delete(&format!("/apis/{}/authorizers/{jwt}", gw.api))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.to_string().contains("GET /y"), "{body}");
    // Bad definitions are refused by field.
    for (bad, field) in [
        (
            json!({"name": "a", "authorizer_type": "JWT", "jwt_configuration": {"issuer": "http://idp.example.com", "audience": ["x"]}}),
            "jwt_configuration.issuer",
        ),
        (
            json!({"name": "a", "authorizer_type": "JWT", "jwt_configuration": {"issuer": "https://idp.example.com", "audience": []}}),
            "jwt_configuration.audience",
        ),
        (
            json!({"name": "a", "authorizer_type": "REQUEST", "identity_source": ["$request.header.x"], "authorizer_uri": "ftp://x"}),
            "authorizer_uri",
        ),
        (
            json!({"name": "a", "authorizer_type": "SAML"}),
            "authorizer_type",
        ),
        (
            json!({"name": "idp", "authorizer_type": "JWT", "jwt_configuration": {"issuer": issuer.url, "audience": ["x"]}}),
            "name",
        ),
    ] {
        let (status, body) = admin
            .post(&format!("/apis/{}/authorizers", gw.api), bad.clone())
            .await;
        assert!(status.is_client_error(), "{bad}: {status} {body}");
        assert_eq!(
            gatehouse_tests::error_fields(&body),
            [field],
            "{bad}: {body}"
        );
    }
    // Deleting the API takes its routes and authorizers with it, in use or not.
    let (status, body) = admin.delete(&format!("/apis/{}", gw.api)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}
