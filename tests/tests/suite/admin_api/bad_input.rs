//! The admin API's answers to bad input: a JSON error naming the field, the right status,
//! and nothing written.

use gatehouse_tests::{
    client, config_version, error_fields, http_proxy, mock, row_count, ControlPlane, ADMIN_TOKEN,
};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

#[sqlx::test(migrator = "MIGRATOR")]
async fn calls_without_the_admin_token_are_refused(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let http = client();
    let url = format!("{}/api/v1/apis", cp.url());
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic dGVzdA=="),
        Some("Bearer"),
    ] {
        let mut request = http.get(&url);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.expect("answers");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    let ok = http
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answers");
    assert_eq!(ok.status(), StatusCode::OK);
    // Proxies' sync endpoint takes the node token, not the admin token.
    let sync = http
        .get(format!("{}/dp/v1/config", cp.url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answers");
    assert_eq!(sync.status(), StatusCode::UNAUTHORIZED);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_apis_are_refused_naming_each_field(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let (status, body) = admin
        .post(
            "/apis",
            json!({"name": "", "slug": "Not A Slug", "protocol": "SOAP"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&body), vec!["name", "slug", "protocol"]);

    let (status, body) = admin
        .post("/apis", json!({"name": "a", "slug": "a", "colour": "red"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("colour")),
        "{body}"
    );

    let (status, body) = admin.post("/apis", json!({"name": 5, "slug": "a"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&body), vec!["name"]);

    admin.create_api("taken").await;
    let (status, body) = admin
        .post("/apis", json!({"name": "again", "slug": "taken"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_fields(&body), vec!["slug"]);
    assert_eq!(row_count(&pool, "apis").await, 1);

    let http = client();
    let url = format!("{}/api/v1/apis", cp.url());
    let not_json = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("answers");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let wrong_type = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .body("name=x")
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(
        "{{\"name\":\"{}\",\"slug\":\"huge\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let too_big = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("answers");
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = admin.get("/apis/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin.get(&format!("/apis/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_routes_are_refused_and_nothing_is_written(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let api = admin.create_api("pets").await;
    admin.add_route(&api, "GET /pets/{id}", mock("x")).await;
    let path = format!("/apis/{api}/routes");
    let cases = [
        (
            json!({"route_key": "get /pets", "integration": mock("x")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "route_key",
        ),
        (
            json!({"route_key": "GET /pets/{name}", "integration": mock("x")}),
            StatusCode::CONFLICT,
            "route_key",
        ),
        (
            json!({"route_key": "GET /pets/{id}", "integration": mock("x")}),
            StatusCode::CONFLICT,
            "route_key",
        ),
        (
            json!({"route_key": "GET /a", "integration": http_proxy("ftp://host/")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "integration",
        ),
        (
            json!({"route_key": "GET /a", "integration": http_proxy("http://host/{id}")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "integration.uri",
        ),
        (
            json!({"route_key": "GET /a", "integration": {"type": "LAMBDA"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "integration.type",
        ),
        (
            json!({"route_key": "GET /a", "integration": mock("x"), "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "extra",
        ),
        (
            json!({"route_key": "GET /a"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "body",
        ),
    ];
    for (body, expected, field) in cases {
        let (status, answer) = admin.post(&path, body.clone()).await;
        assert_eq!(status, expected, "{body} -> {answer}");
        assert_eq!(
            error_fields(&answer),
            vec![field.to_owned()],
            "{body} -> {answer}"
        );
    }
    assert_eq!(row_count(&pool, "routes").await, 1);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn stages_only_point_at_their_own_apis_deployments(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let pets = admin.create_api("pets").await;
    let cats = admin.create_api("cats").await;
    admin
        .add_route(
            &cats,
            "GET /x",
            http_proxy("http://${stageVariables.host}/x"),
        )
        .await;
    let cats_deployment = admin.deploy(&cats, "").await;
    let version = config_version(&pool).await;

    let (status, body) = admin
        .post(
            &format!("/apis/{pets}/stages"),
            json!({"name": "prod", "deployment_id": cats_deployment}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&body), vec!["deployment_id"]);

    let (status, body) = admin
        .post(
            &format!("/apis/{cats}/stages"),
            json!({"name": "prod", "deployment_id": cats_deployment, "variables": {"host": "a b"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&body), vec!["variables"]);

    let (status, body) = admin
        .post(
            &format!("/apis/{cats}/stages"),
            json!({"name": "prod", "deployment_id": cats_deployment}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a missing host variable leaves no host: {body}"
    );

    let (status, body) = admin
        .post(
            &format!("/apis/{cats}/stages"),
            json!({"name": "pr od", "deployment_id": cats_deployment}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&body), vec!["name"]);
    assert_eq!(row_count(&pool, "stages").await, 0);
    assert_eq!(
        config_version(&pool).await,
        version,
        "a refused change bumped the config version"
    );

    admin
        .create(&format!("/apis/{cats}/stages"), json!({"name": "prod", "deployment_id": cats_deployment, "variables": {"host": "127.0.0.1:9"}}))
        .await;
    assert_eq!(config_version(&pool).await, version + 1);
    let (status, body) = admin
        .post(
            &format!("/apis/{cats}/stages"),
            json!({"name": "prod", "deployment_id": cats_deployment, "variables": {"host": "h"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_fields(&body), vec!["name"]);

    let (status, body) = admin
        .delete(&format!("/apis/{cats}/deployments/{cats_deployment}"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, stage) = admin.get(&format!("/apis/{cats}/stages/prod")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stage["invoke_path"], "/cats/prod");
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn deleting_an_api_removes_everything_of_it_and_tells_proxies(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let api = admin.create_api("gone").await;
    admin.add_route(&api, "GET /x", mock("x")).await;
    let deployment = admin.deploy(&api, "").await;
    admin
        .create(
            &format!("/apis/{api}/stages"),
            json!({"name": "prod", "deployment_id": deployment}),
        )
        .await;
    let version = config_version(&pool).await;
    let (status, _) = admin.delete(&format!("/apis/{api}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(config_version(&pool).await, version + 1);
    for table in ["apis", "routes", "deployments", "stages"] {
        assert_eq!(row_count(&pool, table).await, 0, "{table}");
    }
    let (status, _) = admin.delete(&format!("/apis/{api}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    cp.stop().await;
}

/// `gatehouse migrate` on an empty database: it names every migration it applied, and says
/// "up to date" only on the next run, when there is nothing left to apply.
#[sqlx::test(migrations = false)]
async fn migrating_an_empty_database_names_each_migration_and_only_then_is_up_to_date(
    pool: PgPool,
) {
    use gatehouse::database::{migrate, summary};

    let applied = migrate(&pool).await.expect("migrates");
    let versions: Vec<i64> = applied.iter().map(|m| m.version).collect();
    let embedded: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    assert_eq!(versions, embedded);
    let said = summary(&applied);
    assert!(!said.contains("up to date"), "{said}");
    for m in MIGRATOR.iter() {
        let line = format!("{} {}", m.version, m.description);
        assert!(said.contains(&line), "{line:?} missing from {said}");
    }

    let again = migrate(&pool).await.expect("migrates again");
    assert!(again.is_empty(), "{again:?}");
    assert!(summary(&again).contains("up to date"));
}

/// A client of the control plane whose connections come from `address` (any of
/// 127.0.0.0/8 reaches a loopback listener).
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(Some(address.parse().expect("address")))
        .build()
        .expect("client")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_burst_of_token_guesses_is_checked_at_most_thirty_times_and_others_go_on(pool: PgPool) {
    use gatehouse_control_plane::auth_failures::MAX_FAILURES;
    let cp = ControlPlane::start(pool).await;
    let url = format!("{}/api/v1/apis", cp.url());
    let guesser = client_from("127.0.0.1");
    // 100 guesses at once, of the bootstrap token and of issued ones, on both APIs.
    let guesses = (0..100).map(|i| {
        let (guesser, url) = (guesser.clone(), url.clone());
        let sync = format!("{}/dp/v1/config", cp.url());
        async move {
            let (target, token) = match i % 3 {
                0 => (url, format!("guess-{i}")),
                1 => (url, format!("ght_{i:0>43}")),
                _ => (sync, format!("node-guess-{i}")),
            };
            let answer = guesser
                .get(target)
                .bearer_auth(token)
                .send()
                .await
                .expect("answers");
            let status = answer.status();
            let retry = answer.headers().get("retry-after").cloned();
            let body: serde_json::Value = answer.json().await.unwrap_or_default();
            (status, retry, body)
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    println!("100 guesses at once: {checked} checked");
    assert!(
        checked <= MAX_FAILURES as usize,
        "{checked} guesses were checked"
    );
    for (status, retry, body) in &answers {
        if *status == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry.is_some(), "429 without Retry-After");
            assert!(
                body["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Too many failed")),
                "{body}"
            );
        } else {
            assert_eq!(*status, StatusCode::UNAUTHORIZED);
        }
    }
    // The guessing address is held off, even with the right token...
    let answer = guesser
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    // ...while another address is served, and its own wrong guesses are checked.
    let other = client_from("127.0.0.2");
    let answer = other
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.status(), StatusCode::OK);
    let answer = other
        .get(&url)
        .bearer_auth("another guess")
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    cp.stop().await;
}
