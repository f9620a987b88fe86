//! End to end: a control plane on a fresh database, proxies and a real upstream, each on
//! a loopback port, driven through the admin API like a user would.

use std::time::{Duration, Instant};

use gatehouse_proxy::RunningProxy;
use gatehouse_tests::serial::timed;
use gatehouse_tests::{
    client, config_version, eventually, http_proxy, id_of, mock, start_proxy, wait_for_version,
    ControlPlane, ScratchDatabase, Upstream,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

/// Sends `GET path` as typed, without any client-side path normalization; returns the
/// status line.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// An API `pets` with a pet route to the upstream, a greedy echo route, a mock and a
/// `$default`, deployed to `prod`. Returns (api id, deployment id).
async fn deploy_pets(cp: &ControlPlane, upstream: &Upstream) -> (String, String) {
    let admin = cp.admin();
    let api = admin.create_api("pets").await;
    let up = upstream.addr;
    admin
        .add_route(
            &api,
            "GET /pets/{id}",
            http_proxy(&format!("http://{up}/pets/{{id}}")),
        )
        .await;
    admin
        .add_route(
            &api,
            "ANY /echo/{proxy+}",
            http_proxy("http://${stageVariables.upstream}/echo/{proxy}"),
        )
        .await;
    admin
        .add_route(&api, "GET /hello", mock("hello from a mock"))
        .await;
    admin
        .add_route(
            &api,
            "$default",
            json!({"type": "MOCK", "status": 404, "body": "{\"message\":\"nothing here\"}"}),
        )
        .await;
    let deployment = admin.deploy(&api, "first").await;
    admin
        .create(
            &format!("/apis/{api}/stages"),
            json!({"name": "prod", "deployment_id": deployment, "variables": {"upstream": up.to_string()}}),
        )
        .await;
    (api, deployment)
}

/// What most tests start from: the demo upstream, a control plane, one proxy with a data
/// folder of its own, and the pets API deployed to `prod` and served by the proxy.
struct World {
    upstream: Upstream,
    cp: ControlPlane,
    data: tempfile::TempDir,
    proxy: RunningProxy,
    api: String,
    first_deployment: String,
}

async fn pets_world(pool: &PgPool) -> World {
    let upstream = Upstream::start().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = start_proxy(&cp.url(), data.path()).await;
    let (api, first_deployment) = deploy_pets(&cp, &upstream).await;
    wait_for_version(&proxy, config_version(pool).await, Duration::from_secs(5)).await;
    World {
        upstream,
        cp,
        data,
        proxy,
        api,
        first_deployment,
    }
}

/// Waits until the proxy has written the config it serves to its disk cache, then stops
/// the proxy and the control plane. Returns the control plane's address, where nothing
/// answers any more.
async fn stop_once_cached(proxy: RunningProxy, cp: ControlPlane, data: &std::path::Path) -> String {
    let cache = data.join("snapshot.json");
    let serving = proxy.config_version();
    // The file appears with the first config polled, which may predate the deployment;
    // the cache is written after the swap, so wait for the version being served.
    let written = eventually(Duration::from_secs(2), || async {
        let bytes = std::fs::read(&cache).ok()?;
        let cached = gatehouse_model::ConfigSnapshot::decode(&bytes).ok()?;
        (Some(cached.version) == serving).then_some(())
    })
    .await;
    assert!(written.is_some(), "the proxy never wrote its disk cache");
    let url = cp.url();
    proxy.stop().await;
    cp.stop().await;
    url
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_deployed_route_answers_through_the_proxy(pool: PgPool) {
    let World {
        cp,
        proxy,
        upstream: _upstream,
        data: _data,
        ..
    } = pets_world(&pool).await;
    let http = client();
    let base = format!("http://{}/pets/prod", proxy.addr);

    let response = http
        .get(format!("{base}/pets/2"))
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-request-id"));
    let pet: Value = response.json().await.expect("json");
    assert_eq!(pet["name"], "Tom");

    let echoed: Value = http
        .post(format!("{base}/echo/a/b?x=1&y=2"))
        .header("x-custom", "kept")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "dropped")
        .body("the body")
        .send()
        .await
        .expect("proxy answers")
        .json()
        .await
        .expect("json");
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/echo/a/b");
    assert_eq!(echoed["query"], "x=1&y=2");
    assert_eq!(echoed["body"], "the body");
    let headers = &echoed["headers"];
    assert_eq!(headers["x-custom"], "kept");
    assert!(
        headers.get("x-hop").is_none(),
        "hop-by-hop header forwarded: {headers}"
    );
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], proxy.addr.to_string());
    assert!(headers.get("x-request-id").is_some());

    let hello = http
        .get(format!("{base}/hello"))
        .send()
        .await
        .expect("mock answers");
    assert_eq!(hello.headers()["content-type"], "text/plain");
    assert_eq!(hello.text().await.expect("text"), "hello from a mock");

    let fallback = http
        .delete(format!("{base}/hello"))
        .send()
        .await
        .expect("default answers");
    assert_eq!(fallback.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        fallback.text().await.expect("text"),
        "{\"message\":\"nothing here\"}"
    );

    // Dot segments could climb out of a greedy route's upstream prefix; clients that
    // normalize paths never send them, so write the request by hand.
    for path in [
        "/pets/prod/echo/../../admin",
        "/pets/prod/echo/%2e%2E/admin",
    ] {
        assert_eq!(
            raw_get(proxy.addr, path).await,
            "HTTP/1.1 400 Bad Request",
            "{path}"
        );
    }

    for path in ["/pets/dev/pets/2", "/cats/prod/pets/2", "/", "/pets"] {
        let response = http
            .get(format!("http://{}{path}", proxy.addr))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(response.headers().contains_key("x-request-id"));
        assert_eq!(
            response.text().await.expect("text"),
            "{\"message\":\"Not Found\"}"
        );
    }
    proxy.stop().await;
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_redeploy_is_served_within_one_second_and_rollback_restores_the_old_one(pool: PgPool) {
    let _timed = timed().await;
    let World {
        cp,
        proxy,
        api,
        first_deployment: first,
        upstream: _upstream,
        data: _data,
    } = pets_world(&pool).await;
    let admin = cp.admin();
    let http = client();
    let url = format!("http://{}/pets/prod/hello", proxy.addr);
    assert_eq!(
        http.get(&url)
            .send()
            .await
            .expect("ok")
            .text()
            .await
            .expect("text"),
        "hello from a mock"
    );

    // Let the proxy settle into a held long poll, so the change must arrive by notification.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, routes) = admin.get(&format!("/apis/{api}/routes")).await;
    let hello = routes["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|r| r["route_key"] == "GET /hello")
        .map(id_of)
        .expect("route");
    let (status, _) = admin
        .patch(
            &format!("/apis/{api}/routes/{hello}"),
            json!({"integration": mock("hello, version two")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let second = admin.deploy(&api, "second").await;

    let deployed_at = Instant::now();
    admin.point_stage(&api, "prod", &second).await;
    let seen = eventually(Duration::from_secs(1), || async {
        let body = http.get(&url).send().await.ok()?.text().await.ok()?;
        (body == "hello, version two").then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "the new deployment was not served within 1 s"
    );
    let took = deployed_at.elapsed();
    println!("redeploy served after {took:?}");

    admin.point_stage(&api, "prod", &first).await;
    let rolled_back = eventually(Duration::from_secs(1), || async {
        let body = http.get(&url).send().await.ok()?.text().await.ok()?;
        (body == "hello from a mock").then_some(())
    })
    .await;
    assert!(rolled_back.is_some(), "rollback was not served within 1 s");
    proxy.stop().await;
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_proxy_keeps_serving_while_the_control_plane_is_stopped(pool: PgPool) {
    let _timed = timed().await;
    let World {
        cp,
        proxy,
        upstream: _upstream,
        data: _data,
        ..
    } = pets_world(&pool).await;
    cp.stop().await;

    let http = client();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut served = 0;
    while Instant::now() < deadline {
        let response = http
            .get(format!("http://{}/pets/prod/pets/1", proxy.addr))
            .send()
            .await
            .expect("proxy answers");
        assert_eq!(response.status(), StatusCode::OK);
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served > 10);
    let ready = http
        .get(format!("http://{}/readyz", proxy.status_addr))
        .send()
        .await
        .expect("status answers");
    assert_eq!(ready.status(), StatusCode::OK);
    proxy.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_restarted_proxy_serves_from_its_disk_cache_with_the_control_plane_down(pool: PgPool) {
    let _timed = timed().await;
    let World {
        upstream: _upstream,
        cp,
        data,
        proxy,
        ..
    } = pets_world(&pool).await;
    let version = config_version(&pool).await;
    let cp_url = stop_once_cached(proxy, cp, data.path()).await;

    let started = Instant::now();
    let second = start_proxy(&cp_url, data.path()).await;
    assert_eq!(
        second.config_version(),
        Some(version),
        "did not start from the disk cache"
    );
    let response = client()
        .get(format!("http://{}/pets/prod/pets/3", second.addr))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(1));
    second.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_damaged_disk_cache_is_refused_not_served(pool: PgPool) {
    let World {
        cp,
        data,
        proxy,
        upstream: _upstream,
        ..
    } = pets_world(&pool).await;
    stop_once_cached(proxy, cp, data.path()).await;
    let cache = data.path().join("snapshot.json");
    // A control plane that never answers, on a port this test holds: the stopped one's
    // port could be taken by another test's control plane, which would serve a config.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let cp_url = format!("http://{}", silent.local_addr().expect("addr"));

    let good = std::fs::read_to_string(&cache).expect("cache");
    for damaged in [
        good.replace("hello from a mock", "hello from a fake"),
        good[..good.len() / 2].to_owned(),
    ] {
        std::fs::write(&cache, damaged).expect("write");
        let proxy = start_proxy(&cp_url, data.path()).await;
        assert_eq!(proxy.config_version(), None);
        let ready = client()
            .get(format!("http://{}/readyz", proxy.status_addr))
            .send()
            .await
            .expect("answers");
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = client()
            .get(format!("http://{}/pets/prod/hello", proxy.addr))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        proxy.stop().await;
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn upstream_failures_become_502_504_and_413(pool: PgPool) {
    let _timed = timed().await;
    let upstream = Upstream::start().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = start_proxy(&cp.url(), data.path()).await;
    let admin = cp.admin();
    let api = admin.create_api("flaky").await;
    // A port that was just bound and released: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    admin
        .add_route(&api, "GET /down", http_proxy(&format!("http://{closed}/")))
        .await;
    let slow = json!({"type": "HTTP_PROXY", "uri": format!("http://{}/slow?ms=3000", upstream.addr), "timeout_ms": 200});
    admin.add_route(&api, "GET /slow", slow).await;
    admin
        .add_route(
            &api,
            "POST /upload",
            http_proxy(&format!("http://{}/echo", upstream.addr)),
        )
        .await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    wait_for_version(&proxy, config_version(&pool).await, Duration::from_secs(5)).await;
    let http = client();
    let base = format!("http://{}/flaky/prod", proxy.addr);

    let down = http
        .get(format!("{base}/down"))
        .send()
        .await
        .expect("answers");
    assert_eq!(down.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        down.text().await.expect("text"),
        "{\"message\":\"Bad Gateway\"}"
    );

    let started = Instant::now();
    let slow = http
        .get(format!("{base}/slow"))
        .send()
        .await
        .expect("answers");
    assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "timeout not enforced: {:?}",
        started.elapsed()
    );

    let big = vec![b'x'; 10 * 1024 * 1024 + 1];
    let too_large = http
        .post(format!("{base}/upload"))
        .body(big)
        .send()
        .await
        .expect("answers");
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // A streamed body of unknown length is cut off at the limit too.
    let chunks = (0..11).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1024 * 1024]));
    let streamed = http
        .post(format!("{base}/upload"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("answers");
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let ok: Value = http
        .post(format!("{base}/upload"))
        .body(vec![b'z'; 1024 * 1024])
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(ok["body_bytes"], 1024 * 1024);
    proxy.stop().await;
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn nodes_are_listed_with_the_config_version_they_serve(pool: PgPool) {
    let World {
        cp,
        proxy,
        upstream: _upstream,
        data: _data,
        ..
    } = pets_world(&pool).await;
    let version = config_version(&pool).await;
    let admin = cp.admin();
    let listed = eventually(Duration::from_secs(5), || async {
        let (_, nodes) = admin.get("/nodes").await;
        let node = nodes["items"].as_array()?.first()?.clone();
        (node["config_version"] == version).then_some(node)
    })
    .await;
    let (node, _) = listed.expect("node reported its config version");
    assert_eq!(node["status"], "live");
    assert_eq!(node["current_config_version"], version);
    assert_eq!(node["address"], proxy.addr.to_string());
    assert!(node["config_error"].is_null());
    proxy.stop().await;
    cp.stop().await;
}

/// A proxy that polls but serves an older configuration is `catching_up` in the admin API,
/// as on the dashboard, never `healthy`; the answer shows both versions.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_node_a_version_behind_is_catching_up_not_healthy(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    deploy_mock(&cp, "v1").await;
    let old = config_version(&pool).await;
    let admin = cp.admin();
    let more = admin.create_api("more").await;
    admin.add_route(&more, "GET /x", mock("x")).await;
    admin.deploy_stage(&more, "prod", json!({})).await;
    let current = config_version(&pool).await;
    assert!(current > old);
    let status = client()
        .get(format!(
            "{}/dp/v1/config?wait_ms=0&version={old}&active={old}",
            cp.url()
        ))
        .bearer_auth(gatehouse_tests::NODE_TOKEN)
        .header("x-gatehouse-node-id", "behind")
        .send()
        .await
        .expect("poll")
        .status();
    assert_eq!(status, StatusCode::OK);

    let (_, nodes) = admin.get("/nodes").await;
    let node = &nodes["items"][0];
    assert_eq!(node["id"], "behind");
    assert_eq!(node["status"], "catching_up", "{node}");
    assert_eq!(node["config_version"], old);
    assert_eq!(node["current_config_version"], current);

    // The document says so too.
    let document: Value = client()
        .get(format!("{}/api/v1/openapi.json", cp.url()))
        .send()
        .await
        .expect("document")
        .json()
        .await
        .expect("json");
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["NodeStatus"]["enum"],
        json!(["live", "catching_up", "refused_config", "stale"])
    );
    assert!(
        schemas["NodeView"]
            .to_string()
            .contains("current_config_version"),
        "{}",
        schemas["NodeView"]
    );
    cp.stop().await;
}

/// An API `svc` whose `GET /who` answers `body`, deployed to `prod`.
async fn deploy_mock(cp: &ControlPlane, body: &str) {
    let admin = cp.admin();
    let api = admin.create_api("svc").await;
    admin.add_route(&api, "GET /who", mock(body)).await;
    admin.deploy_stage(&api, "prod", json!({})).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_proxy_notices_a_database_restored_to_the_same_version_with_other_content(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let first = start_proxy(&cp.url(), data.path()).await;
    deploy_mock(&cp, "from the old database").await;
    let version = config_version(&pool).await;
    wait_for_version(&first, version, Duration::from_secs(5)).await;
    stop_once_cached(first, cp, data.path()).await;

    // Another database, brought by the same steps to the same version number.
    let restored_database = ScratchDatabase::create(&pool, "gatehouse_restored")
        .await
        .expect("database");
    let restored = restored_database.pool.clone();
    let cp = ControlPlane::start(restored.clone()).await;
    deploy_mock(&cp, "from the restored database").await;
    assert_eq!(config_version(&restored).await, version);

    let second = start_proxy(&cp.url(), data.path()).await;
    let url = format!("http://{}/svc/prod/who", second.addr);
    let switched = eventually(Duration::from_secs(2), || async {
        let body = client().get(&url).send().await.ok()?.text().await.ok()?;
        (body == "from the restored database").then_some(())
    })
    .await;
    assert!(
        switched.is_some(),
        "the proxy kept serving the old database's snapshot"
    );
    second.stop().await;
    cp.stop().await;
    restored_database.drop_now().await.expect("drop database");
}
