//! Faults in what Gatehouse depends on, for the fault suite: PostgreSQL stopped and
//! started under a running control plane while a proxy keeps serving traffic, and
//! upstreams that close the connection in the middle of a response body; Redis, which
//! proxies share quotas through, killed, hung and brought back under load.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_tests::bench::{gatehouse_binary, spawn_control_plane, spawn_proxy, wait_until_ok};
use gatehouse_tests::serial::{heavy, timed};
use gatehouse_tests::{
    client, config_version, eventually, http_proxy, mock, start_proxy, wait_for_version, Admin,
    ControlPlane, Upstream,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinHandle;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

/// Long enough for a debug build to start and for `initdb` on a busy machine.
const START: Duration = Duration::from_secs(60);

/// How long PostgreSQL stays away: longer than any back-off (5 s at most).
const OUTAGE: Duration = Duration::from_secs(6);

/// How soon a client must learn that its answer is broken: far below a route's 29 s.
const SNAPPY: Duration = Duration::from_secs(5);

/// What the control plane answers while its database is away (see `error.rs`).
fn unavailable() -> Value {
    json!({"message": "Database unavailable, try again"})
}

fn assert_unavailable(what: &str, (status, body): (StatusCode, Value)) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(body, unavailable(), "{what}");
}

/// A private cluster of `gatehouse postgres` in a temporary folder, stopped when dropped
/// (also when the test fails).
struct PrivatePostgres {
    dir: tempfile::TempDir,
    url: String,
    running: bool,
}

impl PrivatePostgres {
    async fn start() -> PrivatePostgres {
        let dir = tempfile::tempdir().expect("tempdir");
        // As root the cluster runs as `postgres`, which must reach the folder; otherwise
        // it would live under /var/tmp and outlive the test.
        let open = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(dir.path(), open).expect("chmod the temporary folder");
        let mut pg = PrivatePostgres {
            dir,
            url: String::new(),
            running: true,
        };
        pg.url = pg.run(false).await;
        assert!(pg.url.starts_with("postgres://"), "no URL: {:?}", pg.url);
        pg
    }

    async fn stop(&mut self) {
        self.run(true).await;
        self.running = false;
    }

    async fn start_again(&mut self) {
        self.running = true;
        let url = self.run(false).await;
        assert_eq!(url, self.url, "the cluster came back elsewhere");
    }

    /// `gatehouse postgres [--stop]` on the folder; what it printed.
    async fn run(&self, stop: bool) -> String {
        let mut command = tokio::process::Command::from(self.command(stop));
        let output = tokio::time::timeout(START, command.kill_on_drop(true).output())
            .await
            .expect("gatehouse postgres finished in time")
            .expect("gatehouse postgres runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "gatehouse postgres: {stderr}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn command(&self, stop: bool) -> std::process::Command {
        let mut command = std::process::Command::new(gatehouse_binary());
        command
            .arg("postgres")
            .arg("--data-dir")
            .arg(self.dir.path());
        if stop {
            command.arg("--stop");
        }
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // `--stop` starts a stopped cluster before stopping it: only stop a running one.
        if self.running {
            let _ = self.command(true).output();
        }
    }
}

/// Background loops, each running `probe` about every `pace` until stopped, keeping every
/// outcome it returns that is an error.
struct Background {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    fn start<F, Fut>(tasks: usize, pace: Duration, probe: F) -> Background
    where
        F: Fn(reqwest::Client) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..tasks)
            .map(|_| {
                let (stop, ok, errors, probe) =
                    (stop.clone(), ok.clone(), errors.clone(), probe.clone());
                tokio::spawn(async move {
                    let http = client();
                    let mut tick = tokio::time::interval(pace);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !stop.load(Ordering::Relaxed) {
                        tick.tick().await;
                        match probe(http.clone()).await {
                            Ok(()) => drop(ok.fetch_add(1, Ordering::Relaxed)),
                            Err(e) => errors.lock().expect("lock").push(e),
                        }
                    }
                })
            })
            .collect();
        Background {
            stop,
            ok,
            errors,
            tasks,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the loops; how many probes succeeded, and the errors.
    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("background task");
        }
        let errors = std::mem::take(&mut *self.errors.lock().expect("lock"));
        (self.ok.load(Ordering::Relaxed), errors)
    }
}

/// A GET through the proxy: anything but a whole 200 answer is an error.
async fn proxied_get(http: reqwest::Client, url: String) -> Result<(), String> {
    let response = http.get(&url).timeout(Duration::from_secs(10)).send();
    match response.await {
        Ok(r) if r.status() == StatusCode::OK => {
            r.bytes().await.map(drop).map_err(|e| e.to_string())
        }
        Ok(r) => Err(format!("{}", r.status())),
        Err(e) => Err(e.to_string()),
    }
}

/// A GET of the admin API: 200, or 503 with the outage body; anything else is an error.
async fn admin_probe(http: reqwest::Client, url: String) -> Result<(), String> {
    let response = http
        .get(&url)
        .bearer_auth(gatehouse_tests::ADMIN_TOKEN)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match status {
        StatusCode::OK => Ok(()),
        StatusCode::SERVICE_UNAVAILABLE if body == unavailable() => Ok(()),
        _ => Err(format!("{status} {body}")),
    }
}

/// Polls `url` until it answers `want`, for at most `limit`; how long that took.
async fn wait_for_status(url: &str, want: StatusCode, limit: Duration) -> Duration {
    let http = client();
    let reached = eventually(limit, || async {
        let response = http.get(url).send().await.ok()?;
        (response.status() == want).then_some(())
    })
    .await;
    reached.map(|(_, took)| took).unwrap_or_else(|| {
        panic!("{url} did not answer {want} within {limit:?}");
    })
}

/// Adds `GET /after` (a mock) to `api`, deploys it to `prod` and waits until the proxy
/// at `stage` (its URL) answers it; how long that took.
async fn deploy_and_wait(admin: &Admin, api: &str, stage: &str) -> Duration {
    admin.add_route(api, "GET /after", mock("after")).await;
    let deployment = admin.deploy(api, "after the outage").await;
    admin.point_stage(api, "prod", &deployment).await;
    let after = format!("{stage}/after");
    let reached = eventually(Duration::from_secs(15), || async {
        let response = client().get(&after).send().await.ok()?;
        (response.text().await.ok()? == "after").then_some(())
    })
    .await;
    reached
        .expect("the deployment after the outage reached the proxy")
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_turns_readyz_503_and_back_and_proxies_serve_on() {
    let _heavy = heavy().await;
    let mut pg = PrivatePostgres::start().await;
    let mut control_plane = spawn_control_plane(&pg.url, None);
    let cp = format!("http://{}", control_plane.addr);
    wait_until_ok(&format!("{cp}/readyz"), START).await;
    let admin = Admin {
        base: format!("{cp}/api/v1"),
        http: client(),
    };
    let upstream = Upstream::start().await;
    let api = admin.create_api("shop").await;
    let pets = http_proxy(&format!("http://{}/pets/1", upstream.addr));
    admin.add_route(&api, "GET /ok", pets).await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = spawn_proxy(&cp, data.path(), None, &[]);
    proxy.wait_ready(START).await;

    let shop = format!("http://{}/shop/prod/ok", proxy.addr);
    let traffic = Background::start(2, Duration::from_millis(5), move |http| {
        proxied_get(http, shop.clone())
    });
    let apis = format!("{cp}/api/v1/apis");
    let admin_calls = Background::start(1, Duration::from_millis(100), move |http| {
        admin_probe(http, apis.clone())
    });

    pg.stop().await;
    let stopped = tokio::time::Instant::now();
    let to_503 = wait_for_status(
        &format!("{cp}/readyz"),
        StatusCode::SERVICE_UNAVAILABLE,
        START,
    )
    .await;
    assert!(
        to_503 < Duration::from_secs(5),
        "/readyz 503 after {to_503:?}"
    );
    let healthz = client().get(format!("{cp}/healthz")).send().await;
    assert_eq!(healthz.expect("healthz").status(), StatusCode::OK);
    assert_unavailable("GET /apis", admin.get("/apis").await);
    let late = json!({"name": "late", "slug": "late", "protocol": "HTTP"});
    assert_unavailable("POST /apis", admin.post("/apis", late.clone()).await);
    // The proxy serves on from the config it holds.
    let before = traffic.ok();
    let served = eventually(Duration::from_secs(10), || async {
        (traffic.ok() >= before + 200).then_some(())
    })
    .await;
    assert!(served.is_some(), "no traffic served during the outage");
    let exited = control_plane.wait_exit(Duration::from_millis(200)).await;
    assert!(exited.is_none(), "the control plane exited: {exited:?}");
    // Not an assertion: the outage lasts long enough for the proxy's poll back-off and
    // the control plane's change listener to reach their longest waits.
    tokio::time::sleep_until(stopped + OUTAGE).await;

    pg.start_again().await;
    let to_200 = wait_for_status(&format!("{cp}/readyz"), StatusCode::OK, START).await;
    assert!(
        to_200 < Duration::from_secs(15),
        "/readyz 200 after {to_200:?}"
    );
    let (status, list) = admin.get("/apis").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list.to_string().contains("\"shop\""), "{list}");
    admin.create("/apis", late).await;
    let to_proxy = deploy_and_wait(&admin, &api, &format!("http://{}/shop/prod", proxy.addr)).await;

    let (sent, failed) = traffic.finish().await;
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {:?}",
        failed.len(),
        failed.first()
    );
    let (_, wrong) = admin_calls.finish().await;
    assert!(
        wrong.is_empty(),
        "admin answers other than 200/503: {wrong:?}"
    );
    let exited = control_plane.wait_exit(Duration::from_millis(50)).await;
    assert!(exited.is_none(), "the control plane exited: {exited:?}");
    eprintln!(
        "/readyz 503 after {to_503:?}, 200 after {to_200:?} from the restart; new deployment \
         served after {to_proxy:?}; {sent} proxied requests, none failed"
    );
}

/// How [`breaking_upstream`] answers `GET /<path>`.
fn breaking_answer(path: &str) -> Vec<u8> {
    let mut answer = Vec::new();
    match path {
        // A declared length of 100,000, and 1,000 bytes of it.
        "/length" | "/stall" => {
            answer.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
            answer.extend_from_slice(&[b'x'; 1000]);
        }
        // One chunk, and no last chunk.
        "/chunked" => {
            answer.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            answer.extend_from_slice(b"3e8\r\n");
            answer.extend_from_slice(&[b'x'; 1000]);
            answer.extend_from_slice(b"\r\n");
        }
        _ => answer.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nwhole"),
    }
    answer
}

/// An upstream on a raw socket, answering with [`breaking_answer`] and closing each
/// connection after its answer, whole or not (`/stall`: after a minute of silence). It
/// lives as long as the test's runtime.
async fn breaking_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head);
                let path = line.split_whitespace().nth(1).unwrap_or("/");
                let _ = stream.write_all(&breaking_answer(path)).await;
                if path == "/stall" {
                    // Holds the connection open, sending nothing more.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// GETs `url` and reads the body to its end; the status, the bytes received and how the
/// body ended.
async fn read_body(url: &str) -> (StatusCode, usize, Result<(), reqwest::Error>) {
    let mut response = match client().get(url).send().await {
        Ok(response) => response,
        Err(e) => return (StatusCode::BAD_GATEWAY, 0, Err(e)),
    };
    let status = response.status();
    let mut received = 0;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => return (status, received, Ok(())),
            Err(e) => return (status, received, Err(e)),
        }
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn upstream_closing_mid_body_gives_the_client_a_broken_response_not_a_hang(pool: PgPool) {
    let _timed = timed().await;
    let upstream = breaking_upstream().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = start_proxy(&cp.url(), data.path()).await;
    let admin = cp.admin();
    let api = admin.create_api("cut").await;
    let uri = format!("http://{upstream}/{{case}}");
    admin.add_route(&api, "GET /{case}", http_proxy(&uri)).await;
    let stall =
        json!({"type": "HTTP_PROXY", "uri": format!("http://{upstream}/stall"), "timeout_ms": 500});
    admin.add_route(&api, "GET /stall", stall).await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    wait_for_version(&proxy, config_version(&pool).await, Duration::from_secs(5)).await;

    let base = format!("http://{}/cut/prod", proxy.addr);
    // Closed after part of the body, or stalled after it past the route's 500 ms timeout.
    for case in ["length", "chunked", "stall"] {
        let started = Instant::now();
        let url = format!("{base}/{case}");
        let (status, received, ended) = tokio::time::timeout(SNAPPY, read_body(&url))
            .await
            .unwrap_or_else(|_| panic!("{case}: the client still waits after {SNAPPY:?}"));
        let took = started.elapsed();
        assert!(
            ended.is_err(),
            "{case}: {status} with a whole body of {received} bytes"
        );
        assert!(received <= 1000, "{case}: {received} bytes received");
        eprintln!("{case}: {status}, {received} bytes, then {ended:?} after {took:?}");

        let (status, received, ended) = read_body(&format!("{base}/whole")).await;
        assert_eq!(status, StatusCode::OK, "{case}: the next request");
        assert!(
            ended.is_ok() && received == 5,
            "{case}: {received} bytes, {ended:?}"
        );
    }
    proxy.stop().await;
    cp.stop().await;
}

/// A redis-server of the test's own on a free loopback port (never the shared ones), its
/// counts kept in an append-only file so that a restart keeps them, as a production Redis
/// would. Killed when dropped, also when the test fails.
struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = OwnRedis {
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        redis.run().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn run(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (install redis-server)");
        self.child = Some(child);
        let answered = eventually(Duration::from_secs(10), || async {
            (self.cli(&["PING"]).as_deref() == Some("PONG")).then_some(())
        })
        .await;
        assert!(
            answered.is_some(),
            "redis-server on {} never answered",
            self.port
        );
    }

    /// Kills Redis: connections to it are refused until [`OwnRedis::run`].
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (`pause`) or resumes the process: stopped, it accepts connections (the kernel
    /// does) and answers nothing, as a hung Redis.
    fn signal(&self, pause: bool) {
        let child = self.child.as_ref().expect("redis-server runs");
        let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
        let signal = if pause {
            rustix::process::Signal::STOP
        } else {
            rustix::process::Signal::CONT
        };
        rustix::process::kill_process(pid, signal).expect("signal redis-server");
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The shared count of the one quota counter in this Redis (0 when none).
    fn quota_count(&self) -> u64 {
        let keys = self.cli(&["--scan", "--pattern", "gatehouse:quota:*"]);
        let Some(key) = keys.as_deref().and_then(|k| k.lines().next()) else {
            return 0;
        };
        self.cli(&["GET", key])
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
            }
        }
        self.kill();
    }
}

/// What a burst of keyed requests got: how many passed, and their latencies, sorted.
struct Burst {
    admitted: usize,
    latencies: Vec<Duration>,
    took: Duration,
}

impl Burst {
    fn percentile(&self, p: usize) -> Duration {
        let i = (self.latencies.len() * p / 100).min(self.latencies.len().saturating_sub(1));
        self.latencies.get(i).copied().unwrap_or_default()
    }

    fn describe(&self, phase: &str) -> String {
        format!(
            "{phase}: {} admitted of {}, p50 {:?}, p99 {:?}, {:.0} req/s",
            self.admitted,
            self.latencies.len(),
            self.percentile(50),
            self.percentile(99),
            self.latencies.len() as f64 / self.took.as_secs_f64()
        )
    }
}

/// Sends `count` GETs to `url` from `clients` clients at once, with `key` when given.
async fn burst(url: &str, key: Option<&str>, clients: usize, count: usize) -> Burst {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (url, key) = (url.to_owned(), key.map(str::to_owned));
            let share = count / clients + usize::from(c < count % clients);
            tokio::spawn(async move {
                let http = client();
                let mut seen = Vec::with_capacity(share);
                for _ in 0..share {
                    let mut request = http.get(&url);
                    if let Some(key) = &key {
                        request = request.header("x-api-key", key);
                    }
                    let sent = Instant::now();
                    let status = request.send().await.expect("proxy answers").status();
                    seen.push((status, sent.elapsed()));
                }
                seen
            })
        })
        .collect();
    let mut result = Burst {
        admitted: 0,
        latencies: Vec::with_capacity(count),
        took: Duration::ZERO,
    };
    for task in tasks {
        for (status, latency) in task.await.expect("client") {
            result.admitted += usize::from(status == StatusCode::OK);
            result.latencies.push(latency);
        }
    }
    result.took = started.elapsed();
    result.latencies.sort();
    result
}

/// Two proxies sharing one quota through the test's own Redis, a keyed route `GET
/// /orders` and an open one `GET /open`; returns them with the key.
async fn quota_shared_through(
    pool: &PgPool,
    cp: &ControlPlane,
    redis: &OwnRedis,
    limit: u64,
    dirs: [&std::path::Path; 2],
) -> ([gatehouse_proxy::RunningProxy; 2], String) {
    let mut proxies = Vec::new();
    for dir in dirs {
        proxies.push(gatehouse_tests::start_proxy_with(&cp.url(), dir, Some(redis.url())).await);
    }
    let admin = cp.admin();
    let api = admin.create_api("shop").await;
    admin
        .create(&format!("/apis/{api}/routes"), json!({"route_key": "GET /orders", "api_key_required": true, "integration": mock("orders")}))
        .await;
    admin.add_route(&api, "GET /open", mock("open")).await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    let plan = admin
        .create("/usage-plans", json!({"name": "metered", "quota": {"limit": limit, "period": "DAY"}, "stages": [{"api_id": api, "stage": "prod"}]}))
        .await;
    let key = admin.create("/keys", json!({"name": "shared"})).await;
    let plan = plan["id"].as_str().expect("plan id");
    admin
        .create(
            &format!("/usage-plans/{plan}/keys"),
            json!({"key_id": key["id"]}),
        )
        .await;
    let version = config_version(pool).await;
    for proxy in &proxies {
        wait_for_version(proxy, version, Duration::from_secs(5)).await;
        assert!(
            redis_up_within(proxy, Duration::from_secs(5))
                .await
                .is_some(),
            "the proxy never counted in Redis"
        );
    }
    let proxies: [_; 2] = proxies.try_into().unwrap_or_else(|_| unreachable!());
    (
        proxies,
        key["value"].as_str().expect("key value").to_owned(),
    )
}

/// During an outage every keyed request was admitted without waiting on Redis, and the
/// proxy used Redis again within a second of its return.
fn served_at_once_then_back(outage: &Burst, back: Option<Duration>, report: &[String]) {
    let report = report.join("\n");
    eprintln!("{report}");
    assert_eq!(outage.admitted, 320, "{report}");
    assert!(
        outage.percentile(50) < Duration::from_millis(50),
        "{report}"
    );
    assert!(back.is_some_and(|t| t < Duration::from_secs(1)), "{report}");
}

/// How long until `proxy` counts quotas in Redis again (`None`: not within `limit`).
async fn redis_up_within(
    proxy: &gatehouse_proxy::RunningProxy,
    limit: Duration,
) -> Option<Duration> {
    let status = proxy.status_addr;
    eventually(limit, || async move {
        (gatehouse_tests::proxy_metric(status, "gatehouse_proxy_redis_up").await == Some(1.0))
            .then_some(())
    })
    .await
    .map(|((), took)| took)
}

/// Keyed requests of 16 clients never wait on a Redis that is gone (refusing connections)
/// or hung (accepting and never answering); when it returns, the proxies count in it
/// again within a second, having added what they admitted meanwhile, so that the shared
/// quota is exact: a second proxy admits exactly what is left of it.
#[sqlx::test(migrator = "MIGRATOR")]
async fn redis_gone_or_hung_costs_keyed_requests_no_wait_and_the_quota_is_exact_when_back(
    pool: PgPool,
) {
    let _heavy = heavy().await;
    const LIMIT: u64 = 1000;
    const CLIENTS: usize = 16;
    let mut redis = OwnRedis::start().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let ([a, b], key) =
        quota_shared_through(&pool, &cp, &redis, LIMIT, [dirs[0].path(), dirs[1].path()]).await;
    let a_keyed = format!("http://{}/shop/prod/orders", a.addr);
    let a_open = format!("http://{}/shop/prod/open", a.addr);
    let b_keyed = format!("http://{}/shop/prod/orders", b.addr);
    let mut admitted = 0;
    let mut report = Vec::new();

    let before = burst(&a_keyed, Some(&key), CLIENTS, 160).await;
    report.push(before.describe("Redis up"));
    admitted += before.admitted;
    assert_eq!(redis.quota_count(), admitted as u64, "counted in Redis");

    // Gone: connections refused.
    redis.kill();
    let open = burst(&a_open, None, CLIENTS, 320).await;
    report.push(open.describe("Redis gone, unkeyed"));
    let gone = burst(&a_keyed, Some(&key), CLIENTS, 320).await;
    report.push(gone.describe("Redis gone, keyed"));
    admitted += gone.admitted;

    redis.run().await;
    let back = redis_up_within(&a, Duration::from_secs(10)).await;
    report.push(format!(
        "back in use {back:?} after Redis returned; Redis counts {}",
        redis.quota_count()
    ));
    served_at_once_then_back(&gone, back, &report);
    assert_eq!(
        redis.quota_count(),
        admitted as u64,
        "reconciled: {}",
        report.join("\n")
    );

    // Hung: the process stopped; the kernel still accepts connections.
    redis.signal(true);
    let hung = burst(&a_keyed, Some(&key), CLIENTS, 320).await;
    report.push(hung.describe("Redis hung, keyed"));
    admitted += hung.admitted;
    redis.signal(false);
    let back = redis_up_within(&a, Duration::from_secs(10)).await;
    report.push(format!(
        "back in use {back:?} after Redis resumed; Redis counts {}",
        redis.quota_count()
    ));
    served_at_once_then_back(&hung, back, &report);
    // The calls in flight when Redis hung were counted by Redis too, once it resumed, and
    // locally: the count may be over by those (at most one per client), never under.
    let counted = redis.quota_count();
    assert!(
        (admitted as u64..=(admitted + CLIENTS) as u64).contains(&counted),
        "Redis counts {counted} of {admitted} admitted"
    );

    // Proxy B learns of A's use from Redis at once, and admits exactly what is left.
    let rest = burst(&b_keyed, Some(&key), CLIENTS, LIMIT as usize).await;
    report.push(rest.describe("Redis back, keyed on the other proxy"));
    eprintln!("{}", report.join("\n"));
    assert_eq!(
        rest.admitted as u64,
        LIMIT - counted,
        "{}",
        report.join("\n")
    );
    assert!(
        rest.percentile(50) < Duration::from_millis(50),
        "{}",
        report.join("\n")
    );
    assert!(
        gatehouse_tests::proxy_metric(a.status_addr, "gatehouse_proxy_redis_fallbacks_total").await
            >= Some(640.0)
    );
    assert!(
        gatehouse_tests::proxy_metric(
            a.status_addr,
            "gatehouse_proxy_redis_reconciled_requests_total"
        )
        .await
            >= Some(640.0)
    );
    a.stop().await;
    b.stop().await;
    cp.stop().await;
}
