//! Traffic metrics end to end: known traffic through a real proxy to a real upstream shows
//! up with exact counts in `GET /api/v1/metrics`, in the proxy's Prometheus `/metrics`
//! and in its access log; an outage of the control plane loses nothing; a batch sent
//! twice counts once; bad reports and bad queries are refused with reasons.

use std::time::Duration;

use chrono::{DurationRound, Utc};
use gatehouse_proxy::config::AccessLogTarget;
use gatehouse_tests::{
    client, config_version, eventually, http_proxy, id_of, mock, start_proxy_tuned,
    wait_for_version, ControlPlane, Upstream, NODE_TOKEN,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

/// The `shop` API on `prod` (access log on): routes to a real upstream that answer 200,
/// 404 and slowly, one to a closed port (502) and a keyed mock.
struct Shop {
    api: String,
    ok: String,
    slow: String,
    key_id: String,
    key: String,
}

async fn deploy_shop(cp: &ControlPlane, upstream: &Upstream) -> Shop {
    let admin = cp.admin();
    let api = admin.create_api("shop").await;
    let up = upstream.addr;
    let closed = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("addr")
    };
    let ok = admin
        .add_route(&api, "GET /ok", http_proxy(&format!("http://{up}/pets/1")))
        .await;
    admin
        .add_route(
            &api,
            "GET /missing",
            http_proxy(&format!("http://{up}/pets/99")),
        )
        .await;
    let slow = admin
        .add_route(
            &api,
            "GET /slow",
            http_proxy(&format!("http://{up}/slow?ms=300")),
        )
        .await;
    admin
        .add_route(
            &api,
            "GET /broken",
            http_proxy(&format!("http://{closed}/")),
        )
        .await;
    admin
        .create(
            &format!("/apis/{api}/routes"),
            json!({"route_key": "GET /keyed", "api_key_required": true, "integration": mock("for members")}),
        )
        .await;
    admin
        .deploy_stage(&api, "prod", json!({"access_log": true}))
        .await;
    let plan = admin
        .create(
            "/usage-plans",
            json!({"name": "gold", "stages": [{"api_id": api, "stage": "prod"}]}),
        )
        .await;
    let key = admin.create("/keys", json!({"name": "member"})).await;
    admin
        .create(
            &format!("/usage-plans/{}/keys", id_of(&plan)),
            json!({"key_id": id_of(&key)}),
        )
        .await;
    Shop {
        api,
        ok,
        slow,
        key_id: id_of(&key),
        key: key["value"].as_str().expect("key value").to_owned(),
    }
}

/// Sends the known mix of traffic; returns how many requests it sent.
async fn send_known_traffic(base: &str, key: &str) -> u64 {
    let http = client();
    let mut sent = 0;
    for (path, times, expected) in [
        ("/ok", 7, StatusCode::OK),
        ("/missing", 3, StatusCode::NOT_FOUND),
        ("/slow", 2, StatusCode::OK),
        ("/broken", 4, StatusCode::BAD_GATEWAY),
        ("/no-such-route", 2, StatusCode::NOT_FOUND),
    ] {
        for _ in 0..times {
            let response = http
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("send");
            assert_eq!(response.status(), expected, "{path}");
            response.bytes().await.expect("body");
            sent += 1;
        }
    }
    for _ in 0..5 {
        let response = http
            .get(format!("{base}/keyed"))
            .header("x-api-key", key)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.expect("body"), "for members");
        sent += 1;
    }
    sent
}

/// `GET /api/v1/metrics?query`, insisting on 200.
async fn metrics(cp: &ControlPlane, query: &str) -> Value {
    let (status, body) = cp.admin().get(&format!("/metrics?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits until the totals of `query` count `count` requests; returns the answer.
async fn metrics_once_counted(cp: &ControlPlane, query: &str, count: u64) -> Value {
    let found = eventually(Duration::from_secs(15), || async {
        let answer = metrics(cp, query).await;
        (answer["totals"]["count"].as_u64() == Some(count)).then_some(answer)
    })
    .await;
    match found {
        Some((answer, _)) => answer,
        None => panic!(
            "metrics of `{query}` never counted {count}: {}",
            metrics(cp, query).await
        ),
    }
}

/// The value of the Prometheus sample whose line holds every one of `parts`.
fn sample(text: &str, name: &str, parts: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && parts.iter().all(|p| l.contains(p)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn known_traffic_shows_up_with_exact_counts_everywhere(pool: PgPool) {
    let upstream = Upstream::start().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let log_path = data.path().join("access.log");
    let log_target = AccessLogTarget::File(log_path.clone());
    let proxy = start_proxy_tuned(&cp.url(), data.path(), |c| c.access_log = log_target).await;
    let shop = deploy_shop(&cp, &upstream).await;
    wait_for_version(&proxy, config_version(&pool).await, Duration::from_secs(5)).await;

    let sent = send_known_traffic(&format!("http://{}/shop/prod", proxy.addr), &shop.key).await;
    assert_eq!(sent, 23);

    let stage = metrics_once_counted(&cp, &format!("api_id={}&stage=prod", shop.api), 23).await;
    let totals = &stage["totals"];
    assert_eq!(
        totals["errors_4xx"], 5,
        "3 upstream 404s and 2 without a route: {totals}"
    );
    assert_eq!(totals["errors_5xx"], 4, "{totals}");
    assert!(totals["bytes_out"].as_u64().expect("bytes") > 0);
    let max_ms = totals["latency_ms"]["max"].as_f64().expect("max");
    assert!(
        (300.0..5_000.0).contains(&max_ms),
        "the slow route is the slowest: {totals}"
    );
    let p50 = totals["latency_ms"]["p50"].as_f64().expect("p50");
    assert!(p50 < 300.0, "most requests are fast: {totals}");
    // Steps are minutes, and the traffic is in the last one or two.
    let points = stage["points"].as_array().expect("points");
    assert_eq!(points.len(), 61);
    let counted: u64 = points
        .iter()
        .map(|p| p["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(counted, 23);

    let slow = metrics(&cp, &format!("api_id={}&route_id={}", shop.api, shop.slow)).await;
    let slow = &slow["totals"];
    assert_eq!(slow["count"], 2, "{slow}");
    let p50 = slow["latency_ms"]["p50"].as_f64().expect("p50");
    let integration = slow["integration_latency_ms"]["p50"].as_f64().expect("p50");
    assert!((300.0..5_000.0).contains(&p50), "{slow}");
    assert!((300.0..=p50).contains(&integration), "{slow}");

    let ok = metrics(
        &cp,
        &format!("api_id={}&stage=prod&route_id={}", shop.api, shop.ok),
    )
    .await;
    assert_eq!(ok["totals"]["count"], 7);
    assert!(ok["totals"]["integration_latency_ms"]["p99"].is_number());
    let keyed = metrics_once_counted(&cp, &format!("key_id={}", shop.key_id), 5).await;
    assert_eq!(keyed["totals"]["errors_4xx"], 0);
    assert!(
        keyed["totals"]["integration_latency_ms"].is_null(),
        "a mock has no integration"
    );
    assert_eq!(metrics(&cp, "").await["totals"]["count"], 23);
    assert_eq!(
        metrics(&cp, &format!("api_id={}", shop.api)).await["totals"]["count"],
        23
    );

    // The proxy's Prometheus endpoint counts the same requests, by route and status class.
    let scrape = client()
        .get(format!("http://{}/metrics", proxy.status_addr))
        .send()
        .await
        .expect("scrape");
    assert!(scrape.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/plain"));
    let text = scrape.text().await.expect("text");
    let ok_label = format!("route=\"{}\"", shop.ok);
    let requests = "gatehouse_proxy_requests_total";
    assert_eq!(
        sample(&text, requests, &[&ok_label, "status=\"2xx\""]),
        Some(7.0)
    );
    assert_eq!(
        sample(&text, requests, &["route=\"none\"", "status=\"4xx\""]),
        Some(2.0)
    );
    let slow_label = format!("route=\"{}\"", shop.slow);
    let slow_count = "gatehouse_proxy_request_duration_seconds_count";
    assert_eq!(sample(&text, slow_count, &[&slow_label]), Some(2.0));
    let fast_bucket = "gatehouse_proxy_request_duration_seconds_bucket";
    assert_eq!(
        sample(&text, fast_bucket, &[&slow_label, "le=\"0.262144\""]),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, fast_bucket, &[&slow_label, "le=\"+Inf\""]),
        Some(2.0)
    );
    for family in [
        "gatehouse_proxy_config_version",
        "gatehouse_proxy_config_age_seconds",
        "gatehouse_proxy_config_sync_errors_total",
        "gatehouse_proxy_upstream_connections",
        "process_resident_memory_bytes",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(family)),
            "{family} missing"
        );
    }
    let opened = sample(&text, "gatehouse_proxy_upstream_connects_total", &[]);
    assert!(opened.is_some_and(|n| n >= 1.0), "{opened:?}");
    let open = sample(&text, "gatehouse_proxy_upstream_connections", &[]);
    assert!(
        open.is_some_and(|n| n >= 1.0 && n <= opened.unwrap_or(0.0)),
        "{open:?}"
    );
    assert!(
        !text.contains(&shop.key),
        "a key value never shows in metrics"
    );
    assert!(
        !text.contains("/no-such-route"),
        "raw paths never label metrics"
    );

    // The control plane's own endpoint, unauthenticated, as Prometheus scrapes it.
    let cp_text = client()
        .get(format!("{}/metrics", cp.url()))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(
        sample(&cp_text, "gatehouse_metrics_reports_total", &["accepted"]).unwrap_or(0.0) >= 1.0
    );
    assert!(cp_text.contains("route=\"/api/v1/metrics\""));

    // One access log line per request of the stage, keyed ones naming their key.
    let (lines, _) = eventually(Duration::from_secs(5), || async {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect();
        (lines.len() == 23).then_some(lines)
    })
    .await
    .expect("23 access log lines");
    let slow_line = lines
        .iter()
        .find(|l| l["path"] == "/shop/prod/slow")
        .expect("slow");
    assert_eq!(slow_line["routeKey"], "GET /slow");
    assert_eq!(slow_line["status"], 200);
    assert_eq!(slow_line["httpMethod"], "GET");
    assert_eq!(slow_line["ip"], "127.0.0.1");
    assert!(slow_line["responseLatency"].as_f64().expect("latency") >= 300.0);
    assert!(slow_line["integrationLatency"].as_f64().expect("latency") >= 300.0);
    assert!(slow_line["requestId"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    let broken = lines.iter().find(|l| l["status"] == 502).expect("502");
    assert_eq!(broken["errorMessage"], "Bad Gateway");
    let keyed: Vec<_> = lines
        .iter()
        .filter(|l| l["routeKey"] == "GET /keyed")
        .collect();
    assert_eq!(keyed.len(), 5);
    assert!(keyed.iter().all(|l| l["apiKeyId"] == shop.key_id.as_str()));
    let unrouted = lines
        .iter()
        .find(|l| l["path"] == "/shop/prod/no-such-route")
        .expect("404");
    assert_eq!(
        (&unrouted["routeKey"], &unrouted["status"]),
        (&json!(""), &json!(404))
    );

    proxy.stop().await;
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_control_plane_outage_loses_no_counts_even_across_a_proxy_restart(pool: PgPool) {
    let upstream = Upstream::start().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = start_proxy_tuned(&cp.url(), data.path(), |_| {}).await;
    let admin = cp.admin();
    let api = admin.create_api("shop").await;
    admin
        .add_route(
            &api,
            "GET /ok",
            http_proxy(&format!("http://{}/pets/1", upstream.addr)),
        )
        .await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    wait_for_version(&proxy, config_version(&pool).await, Duration::from_secs(5)).await;
    let http = client();
    let url = format!("http://{}/shop/prod/ok", proxy.addr);
    let send = |n: usize| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            for _ in 0..n {
                let status = http.get(&url).send().await.expect("send").status();
                assert_eq!(status, StatusCode::OK);
            }
        }
    };

    send(10).await;
    let query = format!("api_id={api}");
    metrics_once_counted(&cp, &query, 10).await;

    let addr = cp.addr;
    cp.stop().await;
    send(25).await;
    // Several report intervals pass with the control plane away.
    tokio::time::sleep(Duration::from_secs(3)).await;
    send(5).await;
    // The proxy restarts while the control plane is still away: what it could not send is
    // kept in its data folder, and the new run serves from its disk cache meanwhile.
    let cp_url = format!("http://{addr}");
    proxy.stop().await;
    let proxy = start_proxy_tuned(&cp_url, data.path(), |_| {}).await;
    let url = format!("http://{}/shop/prod/ok", proxy.addr);
    for _ in 0..3 {
        let status = http.get(&url).send().await.expect("send").status();
        assert_eq!(status, StatusCode::OK);
    }
    let cp = ControlPlane::start_on(pool.clone(), addr).await;
    metrics_once_counted(&cp, &query, 43).await;
    // Nothing arrives twice: the count stays put.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(metrics(&cp, &query).await["totals"]["count"], 43);
    proxy.stop().await;
    cp.stop().await;
}

/// Posts a metrics report as node `node`, with `token`.
async fn post_report(
    cp: &ControlPlane,
    node: &str,
    token: &str,
    report: &Value,
) -> (StatusCode, Value) {
    let response = client()
        .post(format!("{}/dp/v1/metrics", cp.url()))
        .bearer_auth(token)
        .header("x-gatehouse-node-id", node)
        .json(report)
        .send()
        .await
        .expect("send");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A node that has polled, as a proxy does before it reports.
async fn known_node(cp: &ControlPlane) -> String {
    let node = format!("node-{}", uuid::Uuid::new_v4());
    let status = client()
        .get(format!("{}/dp/v1/config?wait_ms=0", cp.url()))
        .bearer_auth(NODE_TOKEN)
        .header("x-gatehouse-node-id", &node)
        .send()
        .await
        .expect("poll")
        .status();
    assert_eq!(status, StatusCode::OK);
    node
}

fn entry(api: &str, minute: chrono::DateTime<Utc>, count: u64) -> Value {
    json!({
        "minute": minute, "api_id": api, "stage": "prod", "route_id": null, "key_id": null,
        "count": count, "errors_4xx": 0, "errors_5xx": 1, "bytes_in": 0, "bytes_out": 10,
        // Bucket 15 holds 28 to 31 µs.
        "latency": {"buckets": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, count],
                    "sum_us": 30 * count, "min_us": 29, "max_us": 31},
        "integration": {"buckets": [], "sum_us": 0, "min_us": 0, "max_us": 0}
    })
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_batch_sent_twice_counts_once_and_bad_reports_are_refused(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let api = cp.admin().create_api("shop").await;
    let node = known_node(&cp).await;
    let minute = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .expect("minute");
    let report = json!({"batch_id": uuid::Uuid::now_v7(), "entries": [entry(&api, minute, 3)]});

    let (status, receipt) = post_report(&cp, &node, NODE_TOKEN, &report).await;
    assert_eq!(
        (status, &receipt["accepted"], &receipt["duplicate"]),
        (StatusCode::OK, &json!(1), &json!(false))
    );
    let (status, receipt) = post_report(&cp, &node, NODE_TOKEN, &report).await;
    assert_eq!(
        (status, &receipt["duplicate"]),
        (StatusCode::OK, &json!(true))
    );
    let totals = metrics(&cp, &format!("api_id={api}")).await["totals"].clone();
    assert_eq!(
        (&totals["count"], &totals["errors_5xx"]),
        (&json!(3), &json!(1))
    );
    assert_eq!(totals["latency_ms"]["max"], 0.031);

    // Refused whole: bad token, a node that never polled, a body of the wrong shape.
    let fresh = |entries: Value| json!({"batch_id": uuid::Uuid::now_v7(), "entries": entries});
    let one = fresh(json!([entry(&api, minute, 1)]));
    assert_eq!(
        post_report(&cp, &node, "wrong", &one).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_report(&cp, "stranger", NODE_TOKEN, &one).await.0,
        StatusCode::FORBIDDEN
    );
    let mut negative = entry(&api, minute, 1);
    negative["count"] = json!(-5);
    let (status, body) = post_report(&cp, &node, NODE_TOKEN, &fresh(json!([negative]))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "entries[0]", "{body}");

    // Dropped one by one, the rest kept: a minute far ahead, an API that does not exist,
    // more errors than requests.
    let mut lying = entry(&api, minute, 1);
    lying["errors_5xx"] = json!(2);
    let mixed = fresh(json!([
        entry(&api, minute + chrono::Duration::days(1), 1),
        entry(&uuid::Uuid::now_v7().to_string(), minute, 1),
        lying,
        entry(&api, minute, 2),
    ]));
    let (status, receipt) = post_report(&cp, &node, NODE_TOKEN, &mixed).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&receipt["accepted"], &receipt["rejected"]),
        (&json!(1), &json!(3))
    );
    assert_eq!(
        metrics(&cp, &format!("api_id={api}")).await["totals"]["count"],
        5
    );
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_metric_queries_get_a_400_naming_the_parameter(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    let admin = cp.admin();
    for (query, field) in [
        ("step=30", "step"),
        ("step=1w", "step"),
        ("from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "step"),
        ("from=yesterday", "from"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
        ("api_id=42", "api_id"),
        ("stage=prod", "api_id"),
        (
            "key_id=0193b3b0-0000-7000-8000-000000000000&stage=prod",
            "stage",
        ),
    ] {
        let (status, body) = admin.get(&format!("/metrics?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    let status = client()
        .get(format!("{}/api/v1/metrics", cp.url()))
        .send()
        .await
        .expect("send")
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    cp.stop().await;
}

/// The control plane's `/metrics`: its size in bytes, and how many series of requests it
/// holds (counters, and duration histograms by their count).
async fn control_plane_series(cp: &ControlPlane) -> (usize, usize) {
    let text = client()
        .get(format!("{}/metrics", cp.url()))
        .send()
        .await
        .expect("metrics reachable")
        .text()
        .await
        .expect("metrics text");
    let series = text
        .lines()
        .filter(|l| {
            l.starts_with("gatehouse_http_requests_total{")
                || l.starts_with("gatehouse_http_request_duration_seconds_count{")
        })
        .count();
    (text.len(), series)
}

/// Sends `count` requests, without a token, each with its own made-up method, path and
/// host, starting at number `from`.
async fn junk_requests(cp: &ControlPlane, from: usize, count: usize) {
    let http = client();
    for i in from..from + count {
        let method = reqwest::Method::from_bytes(format!("JUNK{i}").as_bytes()).expect("token");
        let path = ["/api/v1/x", "/dp/v1/x", "/x", "/static/x"][i % 4];
        let answer = http
            .request(method, format!("{}{path}{i}", cp.url()))
            .header("host", format!("host{i}.example"))
            .send()
            .await
            .expect("control plane reachable");
        assert!(answer.status().is_client_error(), "{}", answer.status());
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn made_up_methods_paths_and_hosts_add_no_series_to_the_control_planes_metrics(pool: PgPool) {
    let cp = ControlPlane::start(pool).await;
    // A first few junk requests make every series junk can reach; a first scrape makes
    // the scrape's own.
    junk_requests(&cp, 0, 40).await;
    control_plane_series(&cp).await;
    let (size_before, series_before) = control_plane_series(&cp).await;
    junk_requests(&cp, 40, 2000).await;
    let (size_after, series_after) = control_plane_series(&cp).await;
    println!(
        "2,000 junk requests: series {series_before} -> {series_after}, /metrics {size_before} -> {size_after} bytes"
    );
    assert_eq!(series_after, series_before, "junk added series");
    assert!(
        size_after < size_before + 1024,
        "/metrics grew from {size_before} to {size_after} bytes"
    );
    cp.stop().await;
}
