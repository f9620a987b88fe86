//! API keys and usage plans end to end: keys checked and throttled by a real proxy, plans
//! and keys managed through the admin API.

use std::time::Duration;

use gatehouse_tests::serial::timed;
use gatehouse_tests::{
    client, config_version, eventually, http_proxy, id_of, mock, start_proxy, wait_for_version,
    ControlPlane,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

/// An API `shop` with a keyed route `GET /orders` and an open route `GET /open`, deployed
/// to `prod` with the given stage throttle. Returns the API id.
async fn shop(cp: &ControlPlane, stage_throttle: Value) -> String {
    let admin = cp.admin();
    let api = admin.create_api("shop").await;
    admin
        .create(&format!("/apis/{api}/routes"), json!({"route_key": "GET /orders", "api_key_required": true, "integration": mock("orders")}))
        .await;
    admin.add_route(&api, "GET /open", mock("open")).await;
    let deployment = admin.deploy(&api, "").await;
    admin
        .create(
            &format!("/apis/{api}/stages"),
            json!({"name": "prod", "deployment_id": deployment, "throttle": stage_throttle}),
        )
        .await;
    api
}

/// A control plane, one proxy (with its data folder) and the `shop` API deployed with the
/// given stage throttle.
struct Shop {
    cp: ControlPlane,
    proxy: gatehouse_proxy::RunningProxy,
    api: String,
    _data: tempfile::TempDir,
}

impl Shop {
    async fn start(pool: &PgPool, stage_throttle: Value) -> Shop {
        let cp = ControlPlane::start(pool.clone()).await;
        let data = tempfile::tempdir().expect("tempdir");
        let proxy = start_proxy(&cp.url(), data.path()).await;
        let api = shop(&cp, stage_throttle).await;
        Shop {
            cp,
            proxy,
            api,
            _data: data,
        }
    }
}

/// Attaches key `key_id` to usage plan `plan`.
async fn attach(cp: &ControlPlane, plan: &str, key_id: &str) {
    cp.admin()
        .create(
            &format!("/usage-plans/{plan}/keys"),
            json!({"key_id": key_id}),
        )
        .await;
}

async fn new_key(cp: &ControlPlane, name: &str) -> (String, String) {
    let key = cp.admin().create("/keys", json!({"name": name})).await;
    (
        id_of(&key),
        key["value"].as_str().expect("value shown once").to_owned(),
    )
}

async fn new_plan(cp: &ControlPlane, api: &str, throttle: Value) -> String {
    let plan = cp
        .admin()
        .create("/usage-plans", json!({"name": "gold", "throttle": throttle, "stages": [{"api_id": api, "stage": "prod"}]}))
        .await;
    id_of(&plan)
}

/// Waits until `proxy` serves the configuration as it is now; returns its orders URL.
async fn orders_once_served(pool: &PgPool, proxy: &gatehouse_proxy::RunningProxy) -> String {
    wait_for_version(proxy, config_version(pool).await, Duration::from_secs(5)).await;
    format!("http://{}/shop/prod/orders", proxy.addr)
}

async fn status_with_key(url: &str, key: Option<&str>) -> StatusCode {
    let mut request = client().get(url);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    request.send().await.expect("proxy answers").status()
}

/// An admitted request spent its throttle token (and quota) whatever the upstream does:
/// when the forward fails, the gateway's 502 still says where the key stands.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_keyed_request_whose_upstream_fails_still_gets_its_ratelimit_headers(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = start_proxy(&cp.url(), data.path()).await;
    let admin = cp.admin();
    let api = admin.create_api("shop").await;
    // Nothing listens on the discard port: the connection is refused.
    let refused = http_proxy("http://127.0.0.1:9/orders");
    admin
        .create(
            &format!("/apis/{api}/routes"),
            json!({"route_key": "GET /orders", "api_key_required": true, "integration": refused}),
        )
        .await;
    let deployment = admin.deploy(&api, "").await;
    admin
        .create(
            &format!("/apis/{api}/stages"),
            json!({"name": "prod", "deployment_id": deployment}),
        )
        .await;
    let plan = new_plan(&cp, &api, json!({"rate": 100, "burst": 50})).await;
    let (key_id, key) = new_key(&cp, "mobile").await;
    attach(&cp, &plan, &key_id).await;
    let url = orders_once_served(&pool, &proxy).await;

    let failed = client()
        .get(&url)
        .header("x-api-key", &key)
        .send()
        .await
        .expect("answers");
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        failed.headers()["ratelimit-policy"],
        "\"throttle\";q=50;w=1"
    );
    assert_eq!(failed.headers()["ratelimit"], "\"throttle\";r=49;t=1");
    assert_eq!(
        status_with_key(&url, None).await,
        StatusCode::FORBIDDEN,
        "the key is still checked first"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn only_an_enabled_key_in_a_plan_for_the_stage_gets_through(pool: PgPool) {
    let Shop {
        cp,
        proxy,
        api,
        _data,
    } = Shop::start(&pool, json!({"rate": 1000, "burst": 1000})).await;
    let admin = cp.admin();
    let plan = new_plan(&cp, &api, json!({"rate": 100, "burst": 50})).await;
    let (key_id, key) = new_key(&cp, "mobile").await;
    let (_, outsider) = new_key(&cp, "not in any plan").await;
    attach(&cp, &plan, &key_id).await;
    let url = orders_once_served(&pool, &proxy).await;

    let ok = client()
        .get(&url)
        .header("x-api-key", &key)
        .send()
        .await
        .expect("answers");
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["ratelimit-policy"], "\"throttle\";q=50;w=1");
    assert_eq!(ok.headers()["ratelimit"], "\"throttle\";r=49;t=1");

    let upper = key.to_uppercase();
    // Whitespace around a header value is not part of it (RFC 9110); inside, it is.
    let spaced = format!("{} {}", &key[..10], &key[10..]);
    let long = "k".repeat(129);
    for (what, value) in [
        ("no key", None),
        ("unknown key", Some("abcdefghijklmnopqrstuvwxyz")),
        ("key in the wrong case", Some(upper.as_str())),
        ("key with whitespace", Some(spaced.as_str())),
        ("oversized key", Some(long.as_str())),
        ("key in no plan for this stage", Some(outsider.as_str())),
    ] {
        let response = client()
            .get(&url)
            .headers(value.map(key_header).unwrap_or_default())
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert_eq!(
            response.text().await.expect("text"),
            "{\"message\":\"Forbidden\"}",
            "{what}"
        );
    }
    // A route that needs no key ignores the header.
    assert_eq!(
        status_with_key(&format!("http://{}/shop/prod/open", proxy.addr), None).await,
        StatusCode::OK
    );

    // Use is reported even on a plan without a quota.
    let seen = eventually(Duration::from_secs(5), || async {
        let (_, detail) = admin.get(&format!("/keys/{key_id}")).await;
        (!detail["last_used_at"].is_null()).then_some(())
    })
    .await;
    assert!(seen.is_some(), "last_used_at never set");

    let (status, _) = admin
        .patch(&format!("/keys/{key_id}"), json!({"enabled": false}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let refused = eventually(Duration::from_secs(1), || async {
        (status_with_key(&url, Some(&key)).await == StatusCode::FORBIDDEN).then_some(())
    })
    .await;
    assert!(refused.is_some(), "a disabled key still passed after 1 s");

    admin
        .patch(&format!("/keys/{key_id}"), json!({"enabled": true}))
        .await;
    let back = eventually(Duration::from_secs(1), || async {
        (status_with_key(&url, Some(&key)).await == StatusCode::OK).then_some(())
    })
    .await;
    assert!(back.is_some(), "a re-enabled key did not pass within 1 s");

    let (status, _) = admin.delete(&format!("/keys/{key_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = eventually(Duration::from_secs(1), || async {
        (status_with_key(&url, Some(&key)).await == StatusCode::FORBIDDEN).then_some(())
    })
    .await;
    assert!(gone.is_some(), "a deleted key still passed after 1 s");
    proxy.stop().await;
    cp.stop().await;
}

fn key_header(value: &str) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(v) = reqwest::header::HeaderValue::from_str(value) {
        headers.insert("x-api-key", v);
    }
    headers
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_burst_of_exactly_burst_requests_passes_and_the_next_is_throttled(pool: PgPool) {
    let Shop {
        cp,
        proxy,
        api,
        _data,
    } = Shop::start(&pool, json!({"rate": 10000, "burst": 5000})).await;
    let admin = cp.admin();
    // A slow refill (one request every 100 s) makes the count exact however slow the test.
    let plan = new_plan(&cp, &api, json!({"rate": 0.01, "burst": 5})).await;
    let (key_id, key) = new_key(&cp, "bursty").await;
    attach(&cp, &plan, &key_id).await;
    let url = orders_once_served(&pool, &proxy).await;

    for i in 0..5 {
        assert_eq!(
            status_with_key(&url, Some(&key)).await,
            StatusCode::OK,
            "request {i} of the burst"
        );
    }
    let throttled = client()
        .get(&url)
        .header("x-api-key", &key)
        .send()
        .await
        .expect("answers");
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.headers()["retry-after"], "100");
    assert_eq!(throttled.headers()["ratelimit"], "\"throttle\";r=0;t=500");
    assert_eq!(
        throttled.text().await.expect("text"),
        "{\"message\":\"Too Many Requests\"}"
    );

    // A config change does not hand out a fresh burst.
    admin
        .patch(
            &format!("/usage-plans/{plan}"),
            json!({"description": "changed"}),
        )
        .await;
    wait_for_version(&proxy, config_version(&pool).await, Duration::from_secs(5)).await;
    assert_eq!(
        status_with_key(&url, Some(&key)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    proxy.stop().await;
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_stage_throttle_limits_all_traffic_and_route_throttles_override_the_plan(pool: PgPool) {
    let Shop {
        cp,
        proxy,
        api,
        _data,
    } = Shop::start(&pool, json!({"rate": 0.01, "burst": 8})).await;
    let admin = cp.admin();
    let plan = admin
        .create(
            "/usage-plans",
            json!({"name": "routes", "throttle": {"rate": 1000, "burst": 1000},
                   "stages": [{"api_id": api, "stage": "prod", "route_throttles": {"GET /orders": {"rate": 0.01, "burst": 2}}}]}),
        )
        .await;
    let (key_id, key) = new_key(&cp, "k").await;
    admin
        .create(
            &format!("/usage-plans/{}/keys", id_of(&plan)),
            json!({"key_id": key_id}),
        )
        .await;
    let orders = orders_once_served(&pool, &proxy).await;
    let open = format!("http://{}/shop/prod/open", proxy.addr);

    // The route throttle (burst 2) applies to GET /orders, not the plan's 1000.
    assert_eq!(status_with_key(&orders, Some(&key)).await, StatusCode::OK);
    assert_eq!(status_with_key(&orders, Some(&key)).await, StatusCode::OK);
    assert_eq!(
        status_with_key(&orders, Some(&key)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The stage's burst of 8 covers every request, keyed or not: 2 used above.
    for i in 0..6 {
        assert_eq!(
            status_with_key(&open, None).await,
            StatusCode::OK,
            "open request {i}"
        );
    }
    assert_eq!(
        status_with_key(&open, None).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    proxy.stop().await;
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn keys_and_plans_refuse_bad_input_and_write_nothing(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let api = shop(&cp, json!({"rate": 10, "burst": 10})).await;

    for (body, field) in [
        (json!({"name": "k", "value": "too short"}), "value"),
        (
            json!({"name": "k", "value": "has a space in it somewhere"}),
            "value",
        ),
        (
            json!({"name": "", "value": "abcdefghijklmnopqrstu"}),
            "name",
        ),
    ] {
        let (status, answer) = admin.post("/keys", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(answer["errors"][0]["field"], field, "{answer}");
    }
    let imported = admin
        .create(
            "/keys",
            json!({"name": "imported", "value": "abcdefghijklmnopqrstu"}),
        )
        .await;
    assert_eq!(imported["prefix"], "abcde");
    let (status, answer) = admin
        .post(
            "/keys",
            json!({"name": "again", "value": "abcdefghijklmnopqrstu"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (_, listed) = admin.get("/keys").await;
    assert!(
        !listed.to_string().contains("abcdefghijklmnopqrstu"),
        "a key value is listed: {listed}"
    );
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE hash LIKE '%abcdefghij%'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(count, 0, "key stored in clear");

    let stage = json!([{"api_id": api, "stage": "prod"}]);
    for (body, field) in [
        (
            json!({"name": "p", "throttle": {"rate": 0, "burst": 1}}),
            "throttle",
        ),
        (
            json!({"name": "p", "throttle": {"rate": -5, "burst": 1}}),
            "throttle",
        ),
        (
            json!({"name": "p", "throttle": {"rate": 5, "burst": 0}}),
            "throttle",
        ),
        (
            json!({"name": "p", "quota": {"limit": 10, "period": "YEAR"}}),
            "quota.period",
        ),
        (
            json!({"name": "p", "quota": {"limit": 0, "period": "DAY"}}),
            "quota",
        ),
        (
            json!({"name": "p", "stages": [{"api_id": api, "stage": "nope"}]}),
            "stages[0]",
        ),
        (
            json!({"name": "p", "stages": [{"api_id": api, "stage": "prod", "route_throttles": {"get /x": {"rate": 1, "burst": 1}}}]}),
            "stages[0].route_throttles",
        ),
    ] {
        let (status, answer) = admin.post("/usage-plans", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {answer}"
        );
        assert_eq!(answer["errors"][0]["field"], field, "{body} -> {answer}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_plans")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(count, 0);

    let gold = id_of(
        &admin
            .create("/usage-plans", json!({"name": "gold", "stages": stage}))
            .await,
    );
    let silver = id_of(
        &admin
            .create("/usage-plans", json!({"name": "silver", "stages": stage}))
            .await,
    );
    let key = id_of(&imported);
    admin
        .create(&format!("/usage-plans/{gold}/keys"), json!({"key_id": key}))
        .await;
    let (status, answer) = admin
        .post(&format!("/usage-plans/{gold}/keys"), json!({"key_id": key}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "attached twice: {answer}");
    let (status, answer) = admin
        .post(
            &format!("/usage-plans/{silver}/keys"),
            json!({"key_id": key}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "two plans on one stage: {answer}"
    );
    let (status, answer) = admin.delete(&format!("/usage-plans/{gold}")).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "deleted a plan in use: {answer}"
    );
    let (status, _) = admin
        .delete(&format!("/usage-plans/{gold}/keys/{key}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin.delete(&format!("/usage-plans/{gold}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_used_up_quota_answers_limit_exceeded_and_survives_a_proxy_restart(pool: PgPool) {
    let Shop {
        cp,
        proxy,
        api,
        _data,
    } = Shop::start(&pool, json!({"rate": 1000, "burst": 1000})).await;
    let admin = cp.admin();
    let (key_id, key) = metered_key(&cp, &api, 5).await;
    let url = orders_once_served(&pool, &proxy).await;

    let first = client()
        .get(&url)
        .header("x-api-key", &key)
        .send()
        .await
        .expect("answers");
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["ratelimit-policy"], "\"quota\";q=5;w=86400");
    assert!(first.headers()["ratelimit"]
        .to_str()
        .expect("ascii")
        .starts_with("\"quota\";r=4;t="));
    for i in 1..5 {
        assert_eq!(
            status_with_key(&url, Some(&key)).await,
            StatusCode::OK,
            "request {i} within the quota"
        );
    }
    let over = client()
        .get(&url)
        .header("x-api-key", &key)
        .send()
        .await
        .expect("answers");
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = over.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=86_400).contains(&retry_after));
    assert_eq!(
        over.text().await.expect("text"),
        "{\"message\":\"Limit Exceeded\"}"
    );

    // The control plane learns the use from the proxy's report.
    let counted = eventually(Duration::from_secs(5), || async {
        let (_, detail) = admin.get(&format!("/keys/{key_id}")).await;
        (detail["usage"][0]["used"] == 5 && !detail["last_used_at"].is_null()).then_some(())
    })
    .await;
    assert!(counted.is_some(), "usage never reached the control plane");
    proxy.stop().await;

    // A new proxy, with no state of its own, still refuses the key.
    let fresh = tempfile::tempdir().expect("tempdir");
    let restarted = start_proxy(&cp.url(), fresh.path()).await;
    wait_for_version(
        &restarted,
        config_version(&pool).await,
        Duration::from_secs(5),
    )
    .await;
    let url = format!("http://{}/shop/prod/orders", restarted.addr);
    assert_eq!(
        status_with_key(&url, Some(&key)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    restarted.stop().await;
    cp.stop().await;
}

/// A key on a plan of `limit` requests a day, over the `shop` API; returns the key value.
async fn metered_key(cp: &ControlPlane, api: &str, limit: u64) -> (String, String) {
    let plan = cp
        .admin()
        .create("/usage-plans", json!({"name": "metered", "quota": {"limit": limit, "period": "DAY"}, "stages": [{"api_id": api, "stage": "prod"}]}))
        .await;
    let (key_id, key) = new_key(cp, "shared").await;
    attach(cp, &id_of(&plan), &key_id).await;
    (key_id, key)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_proxies_sharing_a_quota_through_redis_never_admit_more_than_the_limit(pool: PgPool) {
    let _timed = timed().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = gatehouse_tests::start_proxy_with(
        &cp.url(),
        a_dir.path(),
        Some(gatehouse_tests::redis_url()),
    )
    .await;
    let b = gatehouse_tests::start_proxy_with(
        &cp.url(),
        b_dir.path(),
        Some(gatehouse_tests::redis_url()),
    )
    .await;
    let api = shop(&cp, json!({"rate": 10000, "burst": 5000})).await;
    let (_, key) = metered_key(&cp, &api, 25).await;
    let version = config_version(&pool).await;
    wait_for_version(&a, version, Duration::from_secs(5)).await;
    wait_for_version(&b, version, Duration::from_secs(5)).await;
    // Both proxies hold a Redis connection before the count starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let urls = [
        format!("http://{}/shop/prod/orders", a.addr),
        format!("http://{}/shop/prod/orders", b.addr),
    ];
    let mut tasks = Vec::new();
    for i in 0..80 {
        let url = urls[i % 2].clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            status_with_key(&url, Some(&key)).await
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        if task.await.expect("request") == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(
        admitted, 25,
        "Redis-shared quota let {admitted} of 80 through, limit 25"
    );
    a.stop().await;
    b.stop().await;
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn without_redis_a_second_proxy_overruns_at_most_one_report_interval(pool: PgPool) {
    let _timed = timed().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = start_proxy(&cp.url(), a_dir.path()).await;
    let b = start_proxy(&cp.url(), b_dir.path()).await;
    let api = shop(&cp, json!({"rate": 10000, "burst": 5000})).await;
    let (_, key) = metered_key(&cp, &api, 10).await;
    let version = config_version(&pool).await;
    wait_for_version(&a, version, Duration::from_secs(5)).await;
    wait_for_version(&b, version, Duration::from_secs(5)).await;

    let a_url = format!("http://{}/shop/prod/orders", a.addr);
    for _ in 0..10 {
        assert_eq!(status_with_key(&a_url, Some(&key)).await, StatusCode::OK);
    }
    assert_eq!(
        status_with_key(&a_url, Some(&key)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Proxy B has not heard of A's use yet: it admits until its own first report comes
    // back with the total. At 20 requests a second, one 1 s interval is about 20.
    let b_url = format!("http://{}/shop/prod/orders", b.addr);
    let mut admitted_by_b = 0;
    let mut refused_in_a_row = 0;
    for _ in 0..80 {
        if status_with_key(&b_url, Some(&key)).await == StatusCode::OK {
            admitted_by_b += 1;
            refused_in_a_row = 0;
        } else {
            refused_in_a_row += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        admitted_by_b <= 10,
        "B admitted {admitted_by_b}: more than its own view of the quota allows"
    );
    assert!(
        refused_in_a_row >= 40,
        "B kept admitting after learning the total ({refused_in_a_row} refusals at the end)"
    );
    a.stop().await;
    b.stop().await;
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn requests_the_stage_throttle_refuses_do_not_use_up_the_quota(pool: PgPool) {
    let Shop {
        cp,
        proxy,
        api,
        _data,
    } = Shop::start(&pool, json!({"rate": 0.01, "burst": 2})).await;
    let admin = cp.admin();
    let (key_id, key) = metered_key(&cp, &api, 100).await;
    let url = orders_once_served(&pool, &proxy).await;
    let statuses = [
        status_with_key(&url, Some(&key)).await,
        status_with_key(&url, Some(&key)).await,
        status_with_key(&url, Some(&key)).await,
        status_with_key(&url, Some(&key)).await,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let counted = eventually(Duration::from_secs(5), || async {
        let (_, detail) = admin.get(&format!("/keys/{key_id}")).await;
        detail["usage"][0]["used"].as_u64()
    })
    .await;
    let (used, _) = counted.expect("usage reported");
    // Give a late report the chance to (wrongly) add the throttled ones.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, detail) = admin.get(&format!("/keys/{key_id}")).await;
    assert_eq!((used, detail["usage"][0]["used"].as_u64()), (2, Some(2)));
    proxy.stop().await;
    cp.stop().await;
}

/// A node token may report usage only of keys proxies are sent, on the plans they are sent
/// with: an entry for a key on no plan, for a plan the key is not on, or for a plan that
/// covers no stage is not counted but rejected, so no node can spend another key's quota.
/// Traffic reports are held to the same keys.
#[sqlx::test(migrator = "MIGRATOR")]
async fn usage_reports_count_only_keys_and_plans_proxies_are_sent(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let api = shop(&cp, json!({"rate": 1000, "burst": 1000})).await;
    let plan = |name: &str, stages: Value| {
        let admin = admin.clone();
        let body =
            json!({"name": name, "quota": {"limit": 1000, "period": "DAY"}, "stages": stages});
        async move { id_of(&admin.create("/usage-plans", body).await) }
    };
    let gold = plan("gold", json!([{"api_id": api, "stage": "prod"}])).await;
    let idle = plan("idle", json!([])).await;
    let key = |name: &str| {
        let admin = admin.clone();
        let name = name.to_owned();
        async move { id_of(&admin.create("/keys", json!({"name": name})).await) }
    };
    let (served, loose, parked) = (key("served").await, key("loose").await, key("parked").await);
    for (plan, key) in [(&gold, &served), (&idle, &parked)] {
        admin
            .create(&format!("/usage-plans/{plan}/keys"), json!({"key_id": key}))
            .await;
    }
    let node = format!("node-{}", uuid::Uuid::new_v4());
    let poll = client()
        .get(format!("{}/dp/v1/config?wait_ms=0", cp.url()))
        .bearer_auth(gatehouse_tests::NODE_TOKEN)
        .header("x-gatehouse-node-id", &node)
        .send()
        .await
        .expect("poll");
    assert_eq!(poll.status(), StatusCode::OK);

    let today = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let entry = |key: &str, plan: &str, count: u64| json!({"key_id": key, "plan_id": plan, "period_start": today, "count": count});
    let report = json!({
        "batch_id": uuid::Uuid::new_v4(),
        "entries": [
            entry(&served, &gold, 5),
            entry(&loose, &gold, 900),
            entry(&parked, &idle, 900),
            entry(&served, &idle, 900),
        ],
        "used_keys": [served, loose, parked],
    });
    let answer: Value = client()
        .post(format!("{}/dp/v1/usage", cp.url()))
        .bearer_auth(gatehouse_tests::NODE_TOKEN)
        .header("x-gatehouse-node-id", &node)
        .json(&report)
        .send()
        .await
        .expect("report")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["rejected"], 3, "{answer}");
    assert_eq!(
        answer["totals"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    assert_eq!(answer["totals"][0]["key_id"], served.as_str());
    assert_eq!(answer["totals"][0]["used"], 5);
    let counted: Vec<(uuid::Uuid, i64)> = sqlx::query_as("SELECT key_id, used FROM quota_usage")
        .fetch_all(&pool)
        .await
        .expect("usage");
    assert_eq!(counted, [(uuid::Uuid::parse_str(&served).expect("id"), 5)]);
    // Only the served key is marked used.
    for (key, used) in [(&served, true), (&loose, false), (&parked, false)] {
        let (_, detail) = admin.get(&format!("/keys/{key}")).await;
        assert_eq!(!detail["last_used_at"].is_null(), used, "{detail}");
    }

    // A traffic report's key entries too.
    use chrono::DurationRound as _;
    let minute = chrono::Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .expect("minute");
    let traffic = |key: &str| {
        json!({
            "minute": minute, "api_id": api, "stage": "prod", "route_id": null, "key_id": key,
            "count": 1, "errors_4xx": 0, "errors_5xx": 0, "bytes_in": 0, "bytes_out": 0,
            "latency": {"buckets": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                        "sum_us": 30, "min_us": 29, "max_us": 31},
            "integration": {"buckets": [], "sum_us": 0, "min_us": 0, "max_us": 0}
        })
    };
    let receipt: Value = client()
        .post(format!("{}/dp/v1/metrics", cp.url()))
        .bearer_auth(gatehouse_tests::NODE_TOKEN)
        .header("x-gatehouse-node-id", &node)
        .json(&json!({"batch_id": uuid::Uuid::new_v4(), "entries": [traffic(&served), traffic(&loose)]}))
        .send()
        .await
        .expect("report")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (receipt["accepted"].clone(), receipt["rejected"].clone()),
        (json!(1), json!(1)),
        "{receipt}"
    );
    cp.stop().await;
}
