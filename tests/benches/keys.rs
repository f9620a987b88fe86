//! `just bench` (keys): what a million API keys cost the proxy, against ten keys in the
//! same run. The proxy runs as its own process (the release `gatehouse proxy`, one worker
//! thread) so its memory can be read; the control plane and the load generator run here.
//!
//! Reports: throughput of a keyed route with 10 keys and with 1,000,000 keys, measured in
//! alternating rounds on two proxies (one frozen on the ten-key config; the ratio of
//! medians is the figure of merit), the time from a deploy to a million-key snapshot being served,
//! the proxy-side decode and compile time of that snapshot, the slowest request while it
//! was swapped in, and the proxy's memory before and after.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_model::ConfigSnapshot;
use gatehouse_proxy::CompiledConfig;
use gatehouse_proxy::QuotaLedger;
use gatehouse_tests::bench::{free_port, spawn_proxy, Process};
use gatehouse_tests::{
    bench_database, client, config_version, id_of, mock, ControlPlane, NODE_TOKEN,
};
use serde_json::json;
use sqlx::PgPool;

const KEYS: i64 = 1_000_000;
const CONCURRENCY: usize = 16;
const LOAD_SECONDS: u64 = 3;
/// Rounds of measurement on each proxy, alternating.
const ROUNDS: usize = 5;

fn start_proxy(cp: &str, data: &std::path::Path) -> Process {
    spawn_proxy(cp, data, None, &[])
}

fn rounds(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn served_version(status: SocketAddr) -> Option<i64> {
    let body: serde_json::Value = client()
        .get(format!("http://{status}/readyz"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["config_version"].as_i64()
}

async fn wait_version(status: SocketAddr, version: i64, limit: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if served_version(status).await.is_some_and(|v| v >= version) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("proxy did not serve version {version} within {limit:?}");
}

/// Requests per second of `CONCURRENCY` clients cycling through `keys`; also the slowest.
async fn load(url: &str, keys: &[String], seconds: u64) -> (f64, Duration) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for i in 0..CONCURRENCY {
        let (url, key) = (url.to_owned(), keys[i % keys.len()].clone());
        workers.push(tokio::spawn(async move {
            let http = client();
            let (mut done, mut slowest) = (0u64, Duration::ZERO);
            while Instant::now() < deadline {
                let started = Instant::now();
                let response = http
                    .get(&url)
                    .header("x-api-key", &key)
                    .send()
                    .await
                    .expect("request");
                assert!(response.status().is_success(), "{}", response.status());
                response.bytes().await.expect("body");
                slowest = slowest.max(started.elapsed());
                done += 1;
            }
            (done, slowest)
        }));
    }
    let (mut total, mut slowest) = (0, Duration::ZERO);
    for worker in workers {
        let (done, slow) = worker.await.expect("worker");
        total += done;
        slowest = slowest.max(slow);
    }
    (total as f64 / seconds as f64, slowest)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let database = bench_database("gatehouse_bench_keys").await?;
    let result = run(database.pool.clone()).await;
    database.drop_now().await?;
    result
}

async fn run(pool: PgPool) -> anyhow::Result<()> {
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let api = admin.create_api("bench").await;
    admin
        .create(
            &format!("/apis/{api}/routes"),
            json!({"route_key": "GET /k", "api_key_required": true, "integration": mock("ok")}),
        )
        .await;
    let deployment = admin.deploy(&api, "").await;
    let unlimited = json!({"rate": 1_000_000_000, "burst": 1_000_000_000});
    admin
        .create(
            &format!("/apis/{api}/stages"),
            json!({"name": "prod", "deployment_id": deployment, "throttle": unlimited}),
        )
        .await;
    let plan = id_of(
        &admin.create("/usage-plans", json!({"name": "bench", "throttle": unlimited, "stages": [{"api_id": api, "stage": "prod"}]})).await,
    );
    let mut keys = Vec::new();
    for i in 0..10 {
        let key = admin
            .create("/keys", json!({"name": format!("load {i}")}))
            .await;
        admin
            .create(
                &format!("/usage-plans/{plan}/keys"),
                json!({"key_id": id_of(&key)}),
            )
            .await;
        keys.push(key["value"].as_str().expect("value").to_owned());
    }
    let data = tempfile::tempdir()?;
    let proxy = start_proxy(&cp.url(), data.path());
    wait_version(
        proxy.status.expect("status port"),
        config_version(&pool).await,
        Duration::from_secs(20),
    )
    .await;
    let url = format!("http://{}/bench/prod/k", proxy.addr);

    // The reference: a second proxy frozen on this ten-key config. It starts from a copy
    // of the first proxy's disk cache and polls a control plane that is not there, so it
    // keeps serving ten keys while the first moves on to a million.
    // `gatehouse proxy` keeps its cache in <data dir>/proxy.
    let cache = data.path().join("proxy").join("snapshot.json");
    let started = Instant::now();
    while !cache.exists() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the proxy wrote no disk cache"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let frozen_data = tempfile::tempdir()?;
    std::fs::create_dir_all(frozen_data.path().join("proxy"))?;
    std::fs::copy(
        &cache,
        frozen_data.path().join("proxy").join("snapshot.json"),
    )?;
    let nowhere = format!("http://{}", free_port());
    let reference = start_proxy(&nowhere, frozen_data.path());
    let reference_url = format!("http://{}/bench/prod/k", reference.addr);
    let started = Instant::now();
    while served_version(reference.status.expect("status port"))
        .await
        .is_none()
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the reference proxy did not start from the cache"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = load(&reference_url, &keys, 1).await; // warm up, and proves it serves
    let _ = load(&url, &keys, 1).await;
    let rss_10 = reference.rss_mib();

    // A million more keys, straight into the tables, then one deploy-like bump.
    let inserted = Instant::now();
    sqlx::query(
        "INSERT INTO api_keys (id, name, prefix, hash)
         SELECT gen_random_uuid(), 'bulk', 'bulk', encode(sha256(convert_to('bulk-key-' || i, 'UTF8')), 'hex')
         FROM generate_series(1, $1) AS i",
    )
    .bind(KEYS)
    .execute(&pool)
    .await?;
    sqlx::query("INSERT INTO usage_plan_keys (plan_id, key_id) SELECT $1, id FROM api_keys WHERE name = 'bulk'")
        .bind(uuid::Uuid::parse_str(&plan)?)
        .execute(&pool)
        .await?;
    let insert_time = inserted.elapsed();

    // Traffic keeps flowing while the big snapshot is built, sent, compiled and swapped in.
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (url, keys, stop) = (url.clone(), keys.clone(), stop.clone());
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = http
                    .get(&url)
                    .header("x-api-key", &keys[0])
                    .send()
                    .await
                    .expect("request");
                assert!(
                    response.status().is_success(),
                    "request failed during the swap: {}",
                    response.status()
                );
                slowest = slowest.max(started.elapsed());
            }
            slowest
        })
    };
    let mut tx = pool.begin().await?;
    let version = gatehouse_control_plane::repo::config_state::bump(&mut tx).await?;
    tx.commit().await?;
    let propagation = wait_version(
        proxy.status.expect("status port"),
        version,
        Duration::from_secs(120),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let slowest_during_swap = background.await?;

    // The proxy-side share of that: decode, verify and compile the same bytes here.
    let snapshot_bytes = client()
        .get(format!("{}/dp/v1/config", cp.url()))
        .bearer_auth(NODE_TOKEN)
        .header("x-gatehouse-node-id", "bench")
        .send()
        .await?
        .bytes()
        .await?;
    let compile_started = Instant::now();
    let snapshot = ConfigSnapshot::decode(&snapshot_bytes)?;
    let decoded = compile_started.elapsed();
    let compiled = CompiledConfig::compile(
        &snapshot,
        None,
        &QuotaLedger::default(),
        None,
        &gatehouse_proxy::Authorizers::default(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let compile_total = compile_started.elapsed();
    assert_eq!(compiled.key_count(), KEYS as usize + 10);
    drop((compiled, snapshot));

    // Alternate between the two proxies, so drift of the machine hits both alike.
    let (mut with_10, mut with_1m) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        with_10.push(load(&reference_url, &keys, LOAD_SECONDS).await.0);
        with_1m.push(load(&url, &keys, LOAD_SECONDS).await.0);
    }
    let rss_1m = proxy.rss_mib();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (rps_10, rps_1m) = (median(with_10.clone()), median(with_1m.clone()));

    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!(
        "\nGatehouse API key benchmark ({} CPUs; proxy with 1 worker thread)\n",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!("Keyed route throughput, {CONCURRENCY} clients, {ROUNDS} alternating rounds of {LOAD_SECONDS} s on each proxy");
    println!(
        "  10 keys          median {rps_10:.0} req/s   (rounds: {})",
        rounds(&with_10)
    );
    println!(
        "  1,000,010 keys   median {rps_1m:.0} req/s   (rounds: {})",
        rounds(&with_1m)
    );
    println!("  1,000,010 keys / 10 keys   x{:.3}", rps_1m / rps_10);
    println!(
        "\nA million-key snapshot ({:.0} MiB on the wire)",
        snapshot_bytes.len() as f64 / 1_048_576.0
    );
    println!(
        "  deploy -> served by the proxy    {}  (control plane query and encoding included)",
        ms(propagation)
    );
    println!("  proxy decode and hash check      {}", ms(decoded));
    println!("  proxy decode + compile           {}", ms(compile_total));
    println!(
        "  slowest request during the swap  {}",
        ms(slowest_during_swap)
    );
    println!(
        "  (loading the keys into PostgreSQL took {})",
        ms(insert_time)
    );
    println!("\nProxy memory (RSS): {rss_10:.0} MiB with 10 keys, {rss_1m:.0} MiB with 1,000,010 keys: {:.0} bytes a key", (rss_1m - rss_10) * 1_048_576.0 / KEYS as f64);
    drop(reference);
    Ok(())
}
