//! Faults in what Gatehouse depends on, for the fault suite: PostgreSQL stopped and
//! started under a running control plane while a proxy keeps serving traffic, and
//! upstreams that close the connection in the middle of a response body.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_tests::bench::{gatehouse_binary, spawn_control_plane, spawn_proxy, wait_until_ok};
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
