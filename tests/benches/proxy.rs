//! `just bench` (proxy): what the proxy costs, side by side with nginx as a plain reverse
//! proxy in the same run, on the same machine, for the same work.
//!
//! The contestants, each one process with one worker, pinned to CPU 0: nginx
//! (`proxy_pass` with upstream keep-alive, `X-Forwarded-*` and a request id, as Gatehouse
//! does), and Gatehouse as G0 (a plain proxy route), G1 (plus an API key check), G2 (plus
//! a usage plan's throttle and quota, set so high nothing is refused) and G3 (G2 plus
//! traffic metrics and an access log). G0 to G2 run on a proxy started with
//! `--no-metrics`, G3 on one measuring. The upstream (nginx answering 1 KiB, keep-alive),
//! the load generators and the control plane share CPU 1.
//!
//! 1. Throughput: `wrk`, closed loop, contestants interleaved A B A B; requests per second
//!    and proxy CPU time per request (from `/proc`) over nginx's in the same round.
//! 2. Latency: `open_loop` (tests/src/bin), open loop at 25%, 50% and 75% of nginx's throughput with latency
//!    correction; p50, p99 and p99.9 added over a direct call to the upstream at that rate.
//! 3. Propagation: 100 deploys under load at 25%, from the admin API call to the first
//!    response showing the new deployment; the load's p99 and errors meanwhile.
//! 4. Memory and routing: the idle proxy's resident memory, a proxy's with 10,000 routes
//!    and 1,000,000 keys, and CPU per request on a 10,000-route API over a 10-route one.
//!
//! Every request must succeed; a failed one fails the run. Prints a table and writes the
//! raw results to `bench/results/proxy-<time>.json`. `--quick` runs a short version.
//!
//! Needs `DATABASE_URL`, `wrk` and nginx (`just bench` provides them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gatehouse_tests::bench::{
    cpu_seconds, median, nginx_binary, open_loop, range, spawn_control_plane, spawn_nginx,
    spawn_proxy, wait_listening, wait_until_ok, wrk_with, OpenLoop, Process,
};
use gatehouse_tests::{bench_database, client, http_proxy, id_of, mock, Admin, ScratchDatabase};
use serde::Serialize;
use serde_json::{json, Value};

/// The proxy under test runs here; everything else on the other CPU.
const PROXY_CPU: Option<usize> = Some(0);
const OTHERS_CPU: Option<usize> = Some(1);
const CONNECTIONS: u32 = 32;
/// Open-loop connections: enough that none waits on another at 75% load.
const OPEN_LOOP_CONNECTIONS: u32 = 32;
const KEYS: i64 = 1_000_000;
const WIDE_ROUTES: i64 = 10_000;
/// The share of nginx's throughput deploys are made under: below where paced arrivals
/// saturate a proxy on this kind of machine, so a swap's cost shows in the tail.
const PROPAGATION_LOAD: f64 = 0.25;
const NARROW_ROUTES: i64 = 10;
/// The stage both routing APIs are deployed to.
const ROUTING_STAGE: &str = "prod";

/// How long and how often each part runs.
struct Plan {
    quick: bool,
    rounds: usize,
    load_seconds: u64,
    latency_rounds: usize,
    latency_seconds: u64,
    load_shares: &'static [f64],
    deploys: usize,
    deploy_every: Duration,
    routing_rounds: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                rounds: 2,
                load_seconds: 2,
                latency_rounds: 1,
                latency_seconds: 3,
                load_shares: &[PROPAGATION_LOAD],
                deploys: 20,
                deploy_every: Duration::from_millis(150),
                routing_rounds: 2,
            }
        } else {
            Plan {
                quick,
                rounds: 5,
                load_seconds: 5,
                latency_rounds: 3,
                latency_seconds: 5,
                load_shares: &[0.25, 0.5, 0.75],
                deploys: 100,
                deploy_every: Duration::from_millis(200),
                routing_rounds: 5,
            }
        }
    }
}

/// One thing loaded: a URL, the headers its requests carry, and the process that serves
/// it (whose CPU time is read), if it is a contestant.
struct Target {
    name: &'static str,
    url: String,
    headers: Vec<String>,
    pid: Option<u32>,
}

#[derive(Serialize, Default)]
struct Throughput {
    rps: Vec<f64>,
    cpu_us_per_request: Vec<f64>,
    /// Each round's figures over nginx's in the same round.
    rps_ratio: Vec<f64>,
    cpu_ratio: Vec<f64>,
}

#[derive(Serialize)]
struct Latency {
    target: &'static str,
    load_share: f64,
    rate: f64,
    rounds: Vec<OpenLoop>,
    /// Each round's percentiles minus the direct call's in the same round, microseconds.
    added_p50_us: Vec<f64>,
    added_p99_us: Vec<f64>,
    added_p999_us: Vec<f64>,
}

#[derive(Serialize)]
struct Propagation {
    deploys: usize,
    millis: Vec<f64>,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    load: OpenLoop,
    /// The same load's p99 without deploys, from the latency part.
    steady_p99_us: Option<f64>,
}

#[derive(Serialize)]
struct Memory {
    idle_mib: f64,
    loaded_mib: f64,
    loaded_routes: i64,
    loaded_keys: i64,
}

#[derive(Serialize)]
struct Routing {
    wide_routes: i64,
    narrow_routes: i64,
    wide_cpu_us: Vec<f64>,
    narrow_cpu_us: Vec<f64>,
    cpu_ratio: Vec<f64>,
}

#[derive(Serialize)]
struct Results {
    time: String,
    quick: bool,
    machine: Value,
    throughput: Vec<(String, Throughput)>,
    latency: Vec<Latency>,
    propagation: Propagation,
    memory: Memory,
    routing: Routing,
    failed_requests: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let database = bench_database("gatehouse_bench_proxy").await?;
    let result = run(&database, Plan::new(quick)).await;
    database.drop_now().await?;
    result
}

async fn run(database: &ScratchDatabase, plan: Plan) -> anyhow::Result<()> {
    let generator = Path::new(env!("CARGO_BIN_EXE_open_loop"));
    let work = tempfile::tempdir()?;
    let cp = spawn_control_plane(&database.url(), OTHERS_CPU);
    let cp_url = format!("http://{}", cp.addr);
    wait_until_ok(&format!("{cp_url}/readyz"), Duration::from_secs(30)).await;
    let upstream = spawn_nginx(
        &work.path().join("upstream"),
        OTHERS_CPU,
        None,
        &format!(
            "    location / {{ default_type text/plain; return 200 '{}'; }}",
            "x".repeat(1024)
        ),
    );
    let nginx = spawn_nginx(
        &work.path().join("nginx"),
        PROXY_CPU,
        Some(upstream.addr),
        "    location /nginx/ {\n      proxy_pass http://backend/;\n      proxy_http_version 1.1;\n\
         \x20     proxy_set_header Connection \"\";\n\
         \x20     proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         \x20     proxy_set_header X-Forwarded-Proto $scheme;\n\
         \x20     proxy_set_header X-Forwarded-Host $host;\n\
         \x20     proxy_set_header X-Request-Id $request_id;\n\
         \x20     add_header X-Request-Id $request_id;\n    }",
    );
    for process in [&upstream, &nginx] {
        wait_listening(process.addr, Duration::from_secs(10)).await;
    }
    let admin = Admin {
        base: format!("{cp_url}/api/v1"),
        http: client(),
    };
    let setup = set_up(&admin, &upstream).await?;
    let bare = spawn_proxy(
        &cp_url,
        &work.path().join("bare"),
        PROXY_CPU,
        &["--no-metrics"],
    );
    let log = work.path().join("access.log");
    let measured = spawn_proxy(
        &cp_url,
        &work.path().join("measured"),
        PROXY_CPU,
        &["--access-log", &log.to_string_lossy()],
    );
    for proxy in [&bare, &measured] {
        proxy.wait_ready(Duration::from_secs(30)).await;
    }
    // Idle: config loaded, nothing served yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_mib = bare.rss_mib();

    let key_header = vec![format!("x-api-key: {}", setup.key)];
    let gatehouse = |name, proxy: &Process, path: &str, headers: &Vec<String>| Target {
        name,
        url: format!("http://{}/bench/{path}", proxy.addr),
        headers: headers.clone(),
        pid: Some(proxy.pid()),
    };
    let contestants = vec![
        Target {
            name: "nginx",
            url: format!("http://{}/nginx/item", nginx.addr),
            headers: Vec::new(),
            pid: Some(nginx.pid()),
        },
        gatehouse("G0", &bare, "g0/item", &Vec::new()),
        gatehouse("G1", &bare, "g1/keyed/item", &key_header),
        gatehouse("G2", &bare, "g2/keyed/item", &key_header),
        gatehouse("G3", &measured, "g3/keyed/item", &key_header),
    ];
    let mut failed = 0u64;

    // 1. Throughput.
    let mut throughput: Vec<Throughput> =
        contestants.iter().map(|_| Throughput::default()).collect();
    for round in 0..=plan.rounds {
        // Round 0 warms pools and caches up; it is not counted.
        let seconds = if round == 0 { 1 } else { plan.load_seconds };
        let mut nginx_round = (0.0, 0.0);
        for (i, target) in contestants.iter().enumerate() {
            let pid = target.pid.expect("contestants have a process");
            let before = cpu_seconds(pid);
            let load = wrk_with(
                &target.url,
                &target.headers,
                CONNECTIONS,
                seconds,
                OTHERS_CPU,
            );
            let used = cpu_seconds(pid) - before;
            anyhow::ensure!(load.requests > 0, "wrk sent nothing to {}", target.url);
            failed += load.errors;
            if round == 0 {
                continue;
            }
            let cpu_us = used * 1e6 / load.requests as f64;
            if i == 0 {
                nginx_round = (load.per_second, cpu_us);
            }
            let t = &mut throughput[i];
            t.rps.push(load.per_second);
            t.cpu_us_per_request.push(cpu_us);
            t.rps_ratio.push(load.per_second / nginx_round.0);
            t.cpu_ratio.push(cpu_us / nginx_round.1);
        }
    }
    let nginx_max = median(&throughput[0].rps);

    // 2. Latency at fixed rates, over a direct call.
    let direct = Target {
        name: "direct",
        url: format!("http://{}/item", upstream.addr),
        headers: Vec::new(),
        pid: None,
    };
    let mut latency = Vec::new();
    for &share in plan.load_shares {
        let rate = (nginx_max * share).round();
        let mut per_target: Vec<Latency> = std::iter::once(&direct)
            .chain(&contestants)
            .map(|t| Latency {
                target: t.name,
                load_share: share,
                rate,
                rounds: Vec::new(),
                added_p50_us: Vec::new(),
                added_p99_us: Vec::new(),
                added_p999_us: Vec::new(),
            })
            .collect();
        for _ in 0..plan.latency_rounds {
            let mut base = None;
            for (target, result) in std::iter::once(&direct)
                .chain(&contestants)
                .zip(&mut per_target)
            {
                let run = open_loop(
                    generator,
                    &target.url,
                    &target.headers,
                    rate,
                    plan.latency_seconds,
                    OPEN_LOOP_CONNECTIONS,
                    OTHERS_CPU,
                )?;
                failed += run.failed;
                let base = *base.get_or_insert(run);
                result.added_p50_us.push(run.p50_us - base.p50_us);
                result.added_p99_us.push(run.p99_us - base.p99_us);
                result.added_p999_us.push(run.p999_us - base.p999_us);
                result.rounds.push(run);
            }
        }
        latency.extend(per_target);
    }

    // 3. Propagation under load.
    let rate = (nginx_max * PROPAGATION_LOAD).round();
    let steady_p99_us = latency
        .iter()
        .find(|l| l.target == "G0" && l.load_share == PROPAGATION_LOAD)
        .map(|l| median(&l.rounds.iter().map(|r| r.p99_us).collect::<Vec<_>>()));
    let load_seconds =
        (plan.deploys as u64 * plan.deploy_every.as_millis() as u64).div_ceil(1000) + 2;
    let load = {
        let (url, headers) = (contestants[1].url.clone(), Vec::new());
        tokio::task::spawn_blocking(move || {
            open_loop(
                generator,
                &url,
                &headers,
                rate,
                load_seconds,
                OPEN_LOOP_CONNECTIONS,
                OTHERS_CPU,
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let version_url = format!("http://{}/bench/g0/version", bare.addr);
    let millis = propagate(&admin, &setup, &version_url, &plan).await?;
    let load = load.await??;
    failed += load.failed;
    let propagation = Propagation {
        deploys: plan.deploys,
        p50_ms: percentile(&millis, 0.5),
        p99_ms: percentile(&millis, 0.99),
        max_ms: percentile(&millis, 1.0),
        millis,
        load,
        steady_p99_us,
    };
    drop(measured);

    // 4. Memory with 10,000 routes and 1,000,000 keys, and what 10,000 routes cost.
    let keys = if plan.quick { 0 } else { KEYS };
    load_many(&admin, database, &setup, keys).await?;
    let big = spawn_proxy(
        &cp_url,
        &work.path().join("big"),
        PROXY_CPU,
        &["--no-metrics"],
    );
    big.wait_ready(Duration::from_secs(120)).await;
    let wide = format!("http://{}/wide/{ROUTING_STAGE}/r5000/items/7", big.addr);
    let narrow = format!("http://{}/narrow/{ROUTING_STAGE}/r5/items/7", big.addr);
    let mut routing = Routing {
        wide_routes: WIDE_ROUTES,
        narrow_routes: NARROW_ROUTES,
        wide_cpu_us: Vec::new(),
        narrow_cpu_us: Vec::new(),
        cpu_ratio: Vec::new(),
    };
    for round in 0..=plan.routing_rounds {
        let seconds = if round == 0 { 1 } else { plan.load_seconds };
        let mut cpu = [0.0; 2];
        for (i, url) in [&narrow, &wide].into_iter().enumerate() {
            let before = big.cpu_seconds();
            let load = wrk_with(url, &[], CONNECTIONS, seconds, OTHERS_CPU);
            anyhow::ensure!(load.requests > 0, "wrk sent nothing to {url}");
            failed += load.errors;
            cpu[i] = (big.cpu_seconds() - before) * 1e6 / load.requests as f64;
        }
        if round > 0 {
            routing.narrow_cpu_us.push(cpu[0]);
            routing.wide_cpu_us.push(cpu[1]);
            routing.cpu_ratio.push(cpu[1] / cpu[0]);
        }
    }
    let memory = Memory {
        idle_mib,
        loaded_mib: big.rss_mib(),
        loaded_routes: WIDE_ROUTES + NARROW_ROUTES,
        loaded_keys: keys,
    };

    let results = Results {
        time: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        quick: plan.quick,
        machine: machine(),
        throughput: contestants
            .iter()
            .map(|t| t.name.to_owned())
            .zip(throughput)
            .collect(),
        latency,
        propagation,
        memory,
        routing,
        failed_requests: failed,
    };
    print_table(&results);
    let file = write_results(&results)?;
    println!("\nRaw results: {}", file.display());
    anyhow::ensure!(failed == 0, "{failed} requests failed during the run");
    Ok(())
}

/// What the run set up: the G APIs and their stages, and a key.
struct Setup {
    g0_api: String,
    version_route: String,
    key: String,
    upstream: String,
}

async fn set_up(admin: &Admin, upstream: &Process) -> anyhow::Result<Setup> {
    let upstream = format!("http://{}/item", upstream.addr);
    let unlimited = json!({"rate": 1_000_000_000, "burst": 1_000_000_000});
    let api = admin.create_api("bench").await;
    admin
        .add_route(&api, "GET /item", http_proxy(&upstream))
        .await;
    admin
        .create(
            &format!("/apis/{api}/routes"),
            json!({"route_key": "GET /keyed/item", "api_key_required": true, "integration": http_proxy(&upstream)}),
        )
        .await;
    let version_route = admin.add_route(&api, "GET /version", mock("v0")).await;
    let deployment = admin.deploy(&api, "v0").await;
    for stage in ["g0", "g1", "g2", "g3"] {
        admin
            .create(
                &format!("/apis/{api}/stages"),
                json!({"name": stage, "deployment_id": deployment, "throttle": unlimited, "access_log": stage == "g3"}),
            )
            .await;
    }
    let key = admin.create("/keys", json!({"name": "bench"})).await;
    // G1: a plan that only grants access; G2 and G3: a throttle and a quota as well.
    let plans = [
        json!({"name": "access", "stages": [{"api_id": api, "stage": "g1"}]}),
        json!({"name": "metered", "throttle": unlimited,
               "quota": {"limit": 1_000_000_000_000i64, "period": "DAY"},
               "stages": [{"api_id": api, "stage": "g2"}, {"api_id": api, "stage": "g3"}]}),
    ];
    for plan in plans {
        let plan = id_of(&admin.create("/usage-plans", plan).await);
        admin
            .create(
                &format!("/usage-plans/{plan}/keys"),
                json!({"key_id": id_of(&key)}),
            )
            .await;
    }
    Ok(Setup {
        g0_api: api,
        version_route,
        key: key["value"].as_str().expect("key value").to_owned(),
        upstream,
    })
}

/// Deploys `plan.deploys` times, each a new mock body on `/version`, and times each from
/// the deploy call to the first response that shows it, in milliseconds.
async fn propagate(
    admin: &Admin,
    setup: &Setup,
    version_url: &str,
    plan: &Plan,
) -> anyhow::Result<Vec<f64>> {
    let http = client();
    let api = &setup.g0_api;
    let mut millis = Vec::with_capacity(plan.deploys);
    for i in 1..=plan.deploys {
        let paced = Instant::now();
        let body = format!("v{i}");
        admin
            .patch(
                &format!("/apis/{api}/routes/{}", setup.version_route),
                json!({"integration": mock(&body)}),
            )
            .await;
        let started = Instant::now();
        let deployment = admin.deploy(api, &body).await;
        admin.point_stage(api, "g0", &deployment).await;
        loop {
            let response = http.get(version_url).send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{version_url}: {}",
                response.status()
            );
            if response.text().await? == body {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "deploy {i} was not served within 10 s"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        millis.push(started.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(plan.deploy_every.saturating_sub(paced.elapsed())).await;
    }
    Ok(millis)
}

/// Adds an API of 10,000 routes and one of 10 (`GET /r<i>/items/{id}`), deployed to a
/// [`ROUTING_STAGE`], and `keys` keys in a plan, straight into the tables.
async fn load_many(
    admin: &Admin,
    database: &ScratchDatabase,
    setup: &Setup,
    keys: i64,
) -> anyhow::Result<()> {
    let stage = ROUTING_STAGE;
    let integration = http_proxy(&setup.upstream);
    let mut stages = Vec::new();
    for (slug, routes) in [("wide", WIDE_ROUTES), ("narrow", NARROW_ROUTES)] {
        let api = admin.create_api(slug).await;
        sqlx::query(
            "INSERT INTO routes (id, api_id, route_key, integration)
             SELECT gen_random_uuid(), $1, 'GET /r' || i || '/items/{id}', $2
             FROM generate_series(0, $3 - 1) AS i",
        )
        .bind(uuid::Uuid::parse_str(&api)?)
        .bind(&integration)
        .bind(routes)
        .execute(&database.pool)
        .await?;
        admin
            .deploy_stage(
                &api,
                stage,
                json!({"throttle": {"rate": 1_000_000_000, "burst": 1_000_000_000}}),
            )
            .await;
        stages.push(json!({"api_id": api, "stage": stage}));
    }
    if keys > 0 {
        let plan = id_of(
            &admin
                .create(
                    "/usage-plans",
                    json!({"name": "many keys", "stages": stages}),
                )
                .await,
        );
        sqlx::query(
            "INSERT INTO api_keys (id, name, prefix, hash)
             SELECT gen_random_uuid(), 'bulk', 'bulk', encode(sha256(convert_to('bulk-key-' || i, 'UTF8')), 'hex')
             FROM generate_series(1, $1) AS i",
        )
        .bind(keys)
        .execute(&database.pool)
        .await?;
        sqlx::query(
            "INSERT INTO usage_plan_keys (plan_id, key_id) SELECT $1, id FROM api_keys WHERE name = 'bulk'",
        )
        .bind(uuid::Uuid::parse_str(&plan)?)
        .execute(&database.pool)
        .await?;
        // Keys written behind the admin API's back reach proxies with the next change.
        let mut tx = database.pool.begin().await?;
        gatehouse_control_plane::repo::config_state::bump(&mut tx).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The value at fraction `p` of `values` once sorted.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(0.0)
}

/// `median (min..max)` of `values`, with `decimals`.
fn spread(values: &[f64], decimals: usize) -> String {
    format!(
        "{:.decimals$} ({})",
        median(values),
        range(values, decimals)
    )
}

fn print_table(r: &Results) {
    println!(
        "\nGatehouse against nginx {} on {}",
        r.machine["nginx"].as_str().unwrap_or("?"),
        r.machine["cpu"].as_str().unwrap_or("?")
    );
    println!(
        "Proxy under test pinned to CPU 0, one worker; upstream, load and control plane on CPU 1."
    );
    println!("Medians over rounds, (min..max) across rounds; ratios are per round, against nginx in the same round.\n");
    println!("| | req/s | x nginx | CPU µs/req | x nginx |");
    println!("|---|---|---|---|---|");
    for (name, t) in &r.throughput {
        println!(
            "| {name} | {:.0} | {} | {:.1} | {} |",
            median(&t.rps),
            spread(&t.rps_ratio, 2),
            median(&t.cpu_us_per_request),
            spread(&t.cpu_ratio, 2),
        );
    }
    println!("\nAdded latency over a direct call to the upstream at the same rate (µs, open loop, corrected):\n");
    println!("| load | | p50 | p99 | p99.9 |");
    println!("|---|---|---|---|---|");
    for l in r.latency.iter().filter(|l| l.target != "direct") {
        println!(
            "| {:.0}% ({:.0}/s) | {} | {} | {} | {} |",
            l.load_share * 100.0,
            l.rate,
            l.target,
            spread(&l.added_p50_us, 0),
            spread(&l.added_p99_us, 0),
            spread(&l.added_p999_us, 0),
        );
    }
    let p = &r.propagation;
    println!(
        "\nConfig propagation, deploy call to first response showing it, {} deploys under {:.0} req/s: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; the load's p99 {:.0} µs (without deploys {}), {} failed",
        p.deploys,
        p.load.rate,
        p.p50_ms,
        p.p99_ms,
        p.max_ms,
        p.load.p99_us,
        p.steady_p99_us.map_or("not measured".to_owned(), |v| format!("{v:.0} µs")),
        p.load.failed,
    );
    let m = &r.memory;
    println!(
        "Proxy memory: idle {:.1} MiB; with {} routes and {} keys {:.1} MiB",
        m.idle_mib, m.loaded_routes, m.loaded_keys, m.loaded_mib,
    );
    let g = &r.routing;
    println!(
        "Routing: CPU per request with {} routes over {} routes x{}",
        g.wide_routes,
        g.narrow_routes,
        spread(&g.cpu_ratio, 3)
    );
    println!("Failed requests: {}", r.failed_requests);
}

fn nginx_version() -> String {
    std::process::Command::new(nginx_binary())
        .arg("-v")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .replace("nginx version: nginx/", "")
        })
        .unwrap_or_default()
}

/// The machine the run was on: CPU model, CPUs, memory, kernel.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cpu": cpu,
        "cpus": gatehouse_tests::bench::cpus(),
        "memory_gib": (memory_gib * 10.0).round() / 10.0,
        "kernel": kernel.trim(),
        "nginx": nginx_version(),
    })
}

/// Writes `results` under `bench/results/` at the workspace root.
fn write_results(results: &Results) -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    std::fs::create_dir_all(&dir)?;
    let name = format!(
        "proxy-{}{}.json",
        results.time.replace(':', ""),
        if results.quick { "-quick" } else { "" }
    );
    let file = dir.join(name);
    std::fs::write(&file, serde_json::to_vec_pretty(results)?)?;
    Ok(file.canonicalize().unwrap_or(file))
}
