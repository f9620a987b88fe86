//! `just bench`: how fast a deploy reaches a proxy, and what the proxy adds to a request,
//! measured against calling the upstream directly in the same run.
//!
//! Needs `DATABASE_URL` (the justfile provides a private PostgreSQL); works in a database
//! of its own, dropped at the end.

use std::time::{Duration, Instant};

use gatehouse_tests::{
    bench_database, client, config_version, http_proxy, mock, start_proxy, wait_for_version,
    ControlPlane, Upstream,
};
use serde_json::json;
use sqlx::PgPool;

const REDEPLOYS: usize = 30;
const SEQUENTIAL_REQUESTS: usize = 2000;
const CONCURRENCY: usize = 16;
const LOAD_SECONDS: u64 = 3;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn sequential_latencies(http: &reqwest::Client, url: &str) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(SEQUENTIAL_REQUESTS);
    for _ in 0..SEQUENTIAL_REQUESTS {
        let started = Instant::now();
        let response = http.get(url).send().await.expect("request");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.bytes().await.expect("body");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

async fn throughput(url: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(LOAD_SECONDS);
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let url = url.to_owned();
        workers.push(tokio::spawn(async move {
            let http = client();
            let mut done = 0u64;
            while Instant::now() < deadline {
                let response = http.get(&url).send().await.expect("request");
                assert!(response.status().is_success());
                response.bytes().await.expect("body");
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker");
    }
    total as f64 / LOAD_SECONDS as f64
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let database = bench_database("gatehouse_bench").await?;
    let result = run(database.pool.clone()).await;
    database.drop_now().await?;
    result
}

async fn run(pool: PgPool) -> anyhow::Result<()> {
    let upstream = Upstream::start().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir()?;
    let proxy = start_proxy(&cp.url(), data.path()).await;
    let admin = cp.admin();

    let api = admin.create_api("bench").await;
    admin
        .add_route(
            &api,
            "GET /pets/{id}",
            http_proxy(&format!("http://{}/pets/{{id}}", upstream.addr)),
        )
        .await;
    let version_route = admin.add_route(&api, "GET /version", mock("v0")).await;
    let first = admin.deploy(&api, "v0").await;
    admin
        .create(
            &format!("/apis/{api}/stages"),
            json!({"name": "prod", "deployment_id": first, "throttle": {"rate": 1_000_000_000, "burst": 1_000_000_000}}),
        )
        .await;
    wait_for_version(&proxy, config_version(&pool).await, Duration::from_secs(5)).await;
    let http = client();

    // 1. Deploy propagation: stage repointed -> the proxy serves the new deployment.
    let version_url = format!("http://{}/bench/prod/version", proxy.addr);
    let mut propagation = Vec::with_capacity(REDEPLOYS);
    for i in 1..=REDEPLOYS {
        let body = format!("v{i}");
        admin
            .patch(
                &format!("/apis/{api}/routes/{version_route}"),
                json!({"integration": mock(&body)}),
            )
            .await;
        let deployment = admin.deploy(&api, &body).await;
        // Let the proxy's poll settle into waiting, as in a quiet system.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        admin.point_stage(&api, "prod", &deployment).await;
        loop {
            let served = http.get(&version_url).send().await?.text().await?;
            if served == body {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "deployment {i} never served"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        propagation.push(started.elapsed());
    }
    propagation.sort();

    // 2. Overhead: the same upstream call, direct and through the proxy.
    let direct_url = format!("http://{}/pets/1", upstream.addr);
    let proxied_url = format!("http://{}/bench/prod/pets/1", proxy.addr);
    let _ = sequential_latencies(&http, &proxied_url).await; // warm up pools
    let direct = sequential_latencies(&http, &direct_url).await;
    let proxied = sequential_latencies(&http, &proxied_url).await;
    let direct_rps = throughput(&direct_url).await;
    let proxied_rps = throughput(&proxied_url).await;

    println!(
        "\nGatehouse benchmark ({} CPUs; load generator, proxy and upstream share them)\n",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "Deploy propagation, stage PATCH sent -> new deployment served ({REDEPLOYS} redeploys)"
    );
    println!(
        "  p50 {}   p90 {}   max {}",
        ms(percentile(&propagation, 0.5)),
        ms(percentile(&propagation, 0.9)),
        ms(percentile(&propagation, 1.0))
    );
    println!("\nRequest latency, {SEQUENTIAL_REQUESTS} sequential keep-alive GETs of a 1-pet JSON");
    println!(
        "  direct to upstream   p50 {}   p99 {}",
        ms(percentile(&direct, 0.5)),
        ms(percentile(&direct, 0.99))
    );
    println!(
        "  through the proxy    p50 {}   p99 {}",
        ms(percentile(&proxied, 0.5)),
        ms(percentile(&proxied, 0.99))
    );
    println!(
        "  proxied / direct     p50 x{:.2}   p99 x{:.2}",
        percentile(&proxied, 0.5).as_secs_f64() / percentile(&direct, 0.5).as_secs_f64(),
        percentile(&proxied, 0.99).as_secs_f64() / percentile(&direct, 0.99).as_secs_f64()
    );
    println!("\nThroughput, {CONCURRENCY} concurrent keep-alive clients for {LOAD_SECONDS} s");
    println!(
        "  direct {direct_rps:.0} req/s   proxied {proxied_rps:.0} req/s   proxied / direct x{:.2}",
        proxied_rps / direct_rps
    );
    proxy.stop().await;
    cp.stop().await;
    Ok(())
}
