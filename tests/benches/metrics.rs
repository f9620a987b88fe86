//! `just bench` (metrics): what traffic metrics and access logs cost, and how the control
//! plane keeps up with them.
//!
//! 1. Proxy overhead. Two release proxies with one worker thread each, pinned to CPU 0:
//!    one measuring every request and writing an access log line for each, one started
//!    with `--no-metrics`. `wrk` (pinned to CPU 1, beside the upstream and the control
//!    plane) loads them in turns, A B A B, and the medians are compared: throughput, and
//!    proxy CPU time per request from `/proc`. Every request the measured proxy served
//!    must then show up, exactly, in `GET /api/v1/metrics` and in its access log.
//! 2. Ingest. 100 simulated proxies each report 20 routes and 10 keys every 10 s to the
//!    control plane (its own process); its CPU over the run is reported as a share of
//!    one core.
//! 3. Queries. A day of minute data for a busy API (20 routes), then the one-day graph
//!    queries the dashboard makes, timed.

use std::time::{Duration, Instant};

use chrono::{DurationRound, Utc};
use gatehouse_control_plane::repo::traffic::{self, Additions, Series};
use gatehouse_model::metrics::{MetricsReport, Traffic, TrafficEntry};
use gatehouse_tests::bench::{
    median, range, spawn_control_plane, spawn_proxy, spawn_upstream, wait_until_ok, wrk,
};
use gatehouse_tests::{bench_database, client, id_of, Admin, NODE_TOKEN};
use serde_json::{json, Value};
use uuid::Uuid;

const ROUNDS: usize = 6;
const LOAD_SECONDS: u64 = 3;
const CONNECTIONS: u32 = 16;
const SIMULATED_PROXIES: usize = 100;
const REPORT_EVERY: Duration = Duration::from_secs(10);
const INGEST_SECONDS: u64 = 30;
const BUSY_ROUTES: usize = 20;
const QUERY_RUNS: usize = 20;
/// The proxy under test runs here; everything else on the other CPU.
const PROXY_CPU: Option<usize> = Some(0);
const OTHERS_CPU: Option<usize> = Some(1);

/// One variant's rounds: requests per second, and proxy CPU microseconds per request.
#[derive(Default)]
struct Samples {
    rps: Vec<f64>,
    cpu: Vec<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let database = bench_database("gatehouse_bench_metrics").await?;
    let result = run(&database).await;
    database.drop_now().await?;
    result
}

async fn run(database: &gatehouse_tests::ScratchDatabase) -> anyhow::Result<()> {
    let cp = spawn_control_plane(&database.url(), OTHERS_CPU);
    let cp_url = format!("http://{}", cp.addr);
    wait_until_ok(&format!("{cp_url}/readyz"), Duration::from_secs(30)).await;
    let upstream = spawn_upstream(OTHERS_CPU);
    wait_until_ok(
        &format!("http://{}/healthz", upstream.addr),
        Duration::from_secs(10),
    )
    .await;
    let admin = Admin {
        base: format!("{cp_url}/api/v1"),
        http: client(),
    };

    // 1. Proxy overhead.
    let api = admin.create_api("bench").await;
    admin
        .add_route(
            &api,
            "GET /pets/{id}",
            gatehouse_tests::http_proxy(&format!("http://{}/pets/{{id}}", upstream.addr)),
        )
        .await;
    let deployment = admin.deploy(&api, "v1").await;
    let unlimited = json!({"rate": 1_000_000_000, "burst": 1_000_000_000});
    // The same deployment on two stages: `logged` keeps an access log, `quiet` does not.
    for (stage, access_log) in [("logged", true), ("quiet", false)] {
        admin
            .create(
                &format!("/apis/{api}/stages"),
                json!({"name": stage, "deployment_id": deployment, "throttle": unlimited, "access_log": access_log}),
            )
            .await;
    }
    let data = tempfile::tempdir()?;
    let log = data.path().join("access.log");
    let measured = spawn_proxy(
        &cp_url,
        &data.path().join("measured"),
        PROXY_CPU,
        &["--access-log", &log.to_string_lossy()],
    );
    let bare = spawn_proxy(
        &cp_url,
        &data.path().join("bare"),
        PROXY_CPU,
        &["--no-metrics"],
    );
    for proxy in [&measured, &bare] {
        proxy.wait_ready(Duration::from_secs(30)).await;
    }
    let variants = [
        ("--no-metrics", &bare, "quiet"),
        ("metrics", &measured, "quiet"),
        ("metrics + access log", &measured, "logged"),
    ];
    let mut results: Vec<Samples> = variants.iter().map(|_| Samples::default()).collect();
    let mut errors = 0;
    for round in 0..=ROUNDS {
        for ((_, proxy, stage), samples) in variants.iter().zip(results.iter_mut()) {
            let url = format!("http://{}/bench/{stage}/pets/1", proxy.addr);
            // Round 0 warms pools, caches and histograms up; it is not counted.
            let seconds = if round == 0 { 1 } else { LOAD_SECONDS };
            let before = proxy.cpu_seconds();
            let load = wrk(&url, CONNECTIONS, seconds, OTHERS_CPU);
            let used = proxy.cpu_seconds() - before;
            anyhow::ensure!(load.requests > 0, "wrk sent nothing to {url}");
            errors += load.errors;
            if round > 0 {
                samples.rps.push(load.per_second);
                samples.cpu.push(used * 1e6 / load.requests as f64);
            }
        }
    }
    // Each round's figure over the bare proxy's in the same round, then the median.
    let ratio = |i: usize, of: fn(&Samples) -> &Vec<f64>| {
        let ratios: Vec<f64> = of(&results[i])
            .iter()
            .zip(of(&results[0]))
            .map(|(a, b)| a / b)
            .collect();
        median(&ratios)
    };

    // Every request the measured proxy served (its own count, which includes requests
    // still in flight when wrk stopped its clock), counted once, in the control plane;
    // every one of the logged stage, in the access log.
    let served = served_requests(&measured, "").await?;
    let served_logged = served_requests(&measured, "stage=\"logged\"").await?;
    let counted_started = Instant::now();
    let counted = loop {
        let (_, body) = admin.get(&format!("/metrics?api_id={api}&step=1h")).await;
        let count = body["totals"]["count"].as_u64().unwrap_or(0);
        if count >= served || counted_started.elapsed() > Duration::from_secs(30) {
            break count;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let logged_started = Instant::now();
    let logged = loop {
        let lines = std::fs::read_to_string(&log)
            .map(|t| t.lines().count() as u64)
            .unwrap_or(0);
        if lines >= served_logged || logged_started.elapsed() > Duration::from_secs(10) {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let names: Vec<&str> = variants.iter().map(|v| v.0).collect();
    drop(measured);
    drop(bare);

    // 2. Ingest from simulated proxies.
    let busy = admin.create_api("busy").await;
    let mut routes = Vec::with_capacity(BUSY_ROUTES);
    for i in 0..BUSY_ROUTES {
        routes.push(
            admin
                .add_route(&busy, &format!("GET /r{i}"), gatehouse_tests::mock("x"))
                .await
                .parse::<Uuid>()?,
        );
    }
    // Keys count only when proxies are sent them: on a plan of a deployed stage.
    admin.deploy_stage(&busy, "prod", json!({})).await;
    let plan = admin
        .create(
            "/usage-plans",
            json!({"name": "busy", "stages": [{"api_id": busy, "stage": "prod"}]}),
        )
        .await;
    let mut keys = Vec::new();
    for i in 0..10 {
        let key = admin
            .create("/keys", json!({"name": format!("k{i}")}))
            .await;
        admin
            .create(
                &format!("/usage-plans/{}/keys", id_of(&plan)),
                json!({"key_id": id_of(&key)}),
            )
            .await;
        keys.push(id_of(&key).parse::<Uuid>()?);
    }
    let busy_id: Uuid = busy.parse()?;
    let nodes = register_nodes(&cp_url).await?;
    let cpu_before = cp.cpu_seconds();
    let ingest_started = Instant::now();
    let mut reports = 0u64;
    let mut refused = 0u64;
    let http = client();
    while ingest_started.elapsed() < Duration::from_secs(INGEST_SECONDS) {
        let round = Instant::now();
        for (i, node) in nodes.iter().enumerate() {
            let report = simulated_report(busy_id, &routes, &keys, i);
            let status = http
                .post(format!("{cp_url}/dp/v1/metrics"))
                .bearer_auth(NODE_TOKEN)
                .header("x-gatehouse-node-id", node)
                .json(&report)
                .send()
                .await?
                .status();
            reports += 1;
            refused += u64::from(!status.is_success());
            // Spread the proxies over the interval, as real ones drift apart.
            let due = REPORT_EVERY.mul_f64((i + 1) as f64 / nodes.len() as f64);
            if let Some(wait) = due.checked_sub(round.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let ingest_seconds = ingest_started.elapsed().as_secs_f64();
    let ingest_share = (cp.cpu_seconds() - cpu_before) / ingest_seconds;

    // 3. One-day graph queries over a busy API.
    seed_day(&database.pool, busy_id, &routes).await?;
    let day_ago = (Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let mut query_rows = Vec::new();
    for (what, query) in [
        (
            "API, 1 day by 5 min",
            format!("api_id={busy}&from={day_ago}&step=5m"),
        ),
        (
            "API, 1 day by minute",
            format!("api_id={busy}&from={day_ago}&step=1m"),
        ),
        (
            "route, 1 day by 5 min",
            format!(
                "api_id={busy}&route_id={}&from={day_ago}&step=5m",
                routes[0]
            ),
        ),
        ("all APIs, 1 day by hour", format!("from={day_ago}&step=1h")),
    ] {
        let url = format!("{cp_url}/api/v1/metrics?{}", query.replace('+', "%2B"));
        let mut times = Vec::with_capacity(QUERY_RUNS);
        let mut points = 0;
        for _ in 0..QUERY_RUNS {
            let started = Instant::now();
            let response = http
                .get(&url)
                .bearer_auth(gatehouse_tests::ADMIN_TOKEN)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{what}: {}",
                response.status()
            );
            let body: Value = response.json().await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            points = body["points"].as_array().map_or(0, Vec::len);
        }
        query_rows.push((what, points, times));
    }

    println!(
        "\nTraffic metrics benchmark ({} CPUs)\n",
        gatehouse_tests::bench::cpus()
    );
    println!(
        "Proxy overhead: one worker on CPU 0, wrk -t1 -c{CONNECTIONS} on CPU 1, {ROUNDS} rounds of {LOAD_SECONDS} s, variants in turn"
    );
    for (i, (name, Samples { rps, cpu })) in names.iter().zip(&results).enumerate() {
        let against = if i == 0 {
            String::new()
        } else {
            format!(
                "   throughput x{:.3}, CPU/request x{:.3}",
                ratio(i, |s| &s.rps),
                ratio(i, |s| &s.cpu)
            )
        };
        println!(
            "  {name:<22} {:>7.0} req/s ({})  {:>5.1} µs CPU/request ({}){against}",
            median(rps),
            range(rps, 0),
            median(cpu),
            range(cpu, 1)
        );
    }
    println!("  failed requests: {errors}");
    println!(
        "  the measured proxy served {served}: counted in /api/v1/metrics {counted}; of {served_logged} to the logged stage, access log lines {logged}"
    );
    println!(
        "\nIngest: {SIMULATED_PROXIES} simulated proxies, each {BUSY_ROUTES} routes + {} keys every {} s, for {ingest_seconds:.0} s",
        keys.len(),
        REPORT_EVERY.as_secs()
    );
    println!(
        "  {reports} reports ({refused} refused); control plane CPU {:.1}% of one core",
        ingest_share * 100.0
    );
    println!("\nQueries over a day of minute data ({BUSY_ROUTES} routes), {QUERY_RUNS} runs each");
    for (what, points, times) in &query_rows {
        println!(
            "  {what:<26} {points:>5} points   p50 {:>6.1} ms   max {:>6.1} ms",
            median(times),
            times.iter().copied().fold(0.0, f64::max)
        );
    }
    anyhow::ensure!(errors == 0, "{errors} requests failed under load");
    anyhow::ensure!(refused == 0, "{refused} reports were refused");
    anyhow::ensure!(
        counted == served && logged == served_logged,
        "of {served} requests served, {counted} were counted; of {served_logged}, {logged} logged"
    );
    Ok(())
}

/// Requests `proxy` served (of the series whose labels hold `label`), from its
/// Prometheus endpoint.
async fn served_requests(
    proxy: &gatehouse_tests::bench::Process,
    label: &str,
) -> anyhow::Result<u64> {
    let status = proxy.status.expect("status port");
    let text = client()
        .get(format!("http://{status}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("gatehouse_proxy_requests_total{") && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// Node ids that have polled, as proxies do before they report.
async fn register_nodes(cp_url: &str) -> anyhow::Result<Vec<String>> {
    let http = client();
    let mut nodes = Vec::with_capacity(SIMULATED_PROXIES);
    for i in 0..SIMULATED_PROXIES {
        let node = format!("simulated-{i}");
        let status = http
            .get(format!("{cp_url}/dp/v1/config?wait_ms=0"))
            .bearer_auth(NODE_TOKEN)
            .header("x-gatehouse-node-id", &node)
            .send()
            .await?
            .status();
        anyhow::ensure!(status.is_success(), "poll as {node}: {status}");
        nodes.push(node);
    }
    Ok(nodes)
}

/// Traffic of a busy route for one interval: `n` requests spread over 0.5 to 50 ms.
fn busy_traffic(n: u64, seed: usize) -> Traffic {
    let mut t = Traffic::default();
    for i in 0..n {
        let spread = ((i as usize * 7919 + seed * 104_729) % 1000) as u64;
        let latency_us = 500 + spread * spread / 20;
        let status = if i % 50 == 0 {
            500
        } else if i % 20 == 0 {
            404
        } else {
            200
        };
        t.record(status, latency_us, Some(latency_us * 9 / 10));
        t.bytes_in += 100;
        t.bytes_out += 1000;
    }
    t
}

fn simulated_report(api: Uuid, routes: &[Uuid], keys: &[Uuid], node: usize) -> MetricsReport {
    let minute = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or_else(|_| Utc::now());
    let entry = |route_id, key_id, traffic| TrafficEntry {
        minute,
        api_id: api,
        stage: "prod".into(),
        route_id,
        key_id,
        traffic,
    };
    let mut entries: Vec<TrafficEntry> = routes
        .iter()
        .enumerate()
        .map(|(i, r)| entry(Some(*r), None, busy_traffic(200, node + i)))
        .collect();
    entries.extend(
        keys.iter()
            .enumerate()
            .map(|(i, k)| entry(None, Some(*k), busy_traffic(50, node * 31 + i))),
    );
    MetricsReport {
        batch_id: Uuid::now_v7(),
        entries,
    }
}

/// A day of minute buckets for `api`, its stage, its routes and all traffic.
async fn seed_day(pool: &sqlx::PgPool, api: Uuid, routes: &[Uuid]) -> anyhow::Result<()> {
    let now = Utc::now().duration_trunc(chrono::Duration::minutes(1))?;
    for hour in 0..24 {
        let mut additions = Additions::new();
        for m in 0..60 {
            let minute = now - chrono::Duration::minutes(hour * 60 + m + 1);
            for (i, route) in routes.iter().enumerate() {
                let t = busy_traffic(100, (hour * 60 + m) as usize + i);
                let series = vec![
                    Series::all(),
                    Series::api(api),
                    Series::stage(api, "prod"),
                    Series::route(api, "prod", *route),
                ];
                traffic::add(&mut additions, series, minute, &t);
            }
        }
        let mut tx = pool.begin().await?;
        traffic::add_minutes(&mut tx, &additions).await?;
        tx.commit().await?;
    }
    Ok(())
}
