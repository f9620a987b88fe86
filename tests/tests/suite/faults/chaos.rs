//! Faults under traffic, on real processes: the `gatehouse` binary as control plane and
//! proxies, killed, restarted and stopped while requests flow, with counts of every
//! request sent. `just chaos` runs these at full length (`CHAOS_REDEPLOY_SECS=60`);
//! `just test` runs them shorter. Here too, the README's tutorial run twice, verbatim,
//! against `gatehouse up`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use gatehouse_tests::bench::{
    free_port, gatehouse_binary, spawn_control_plane, spawn_control_plane_on, spawn_proxy,
    wait_until_ok, Process,
};
use gatehouse_tests::serial::heavy;
use gatehouse_tests::{
    bench_database, client, config_version, http_proxy, mock, proxy_metric, Admin, ScratchDatabase,
    Upstream,
};
use reqwest::StatusCode;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Long enough for a proxy to start, compile and serve, with a debug build.
const START: Duration = Duration::from_secs(20);

/// A control plane process on a scratch database, with an admin client for it.
struct World {
    database: ScratchDatabase,
    /// `None` while it is down.
    control_plane: Option<Process>,
    control_plane_addr: SocketAddr,
    admin: Admin,
    data: tempfile::TempDir,
}

impl World {
    async fn start() -> World {
        let database = bench_database("chaos").await.expect("scratch database");
        let control_plane = spawn_control_plane(&database.url(), None);
        let url = format!("http://{}", control_plane.addr);
        wait_until_ok(&format!("{url}/readyz"), START).await;
        let admin = Admin {
            base: format!("{url}/api/v1"),
            http: client(),
        };
        World {
            database,
            control_plane_addr: control_plane.addr,
            control_plane: Some(control_plane),
            admin,
            data: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn control_plane_url(&self) -> String {
        format!("http://{}", self.control_plane_addr)
    }

    /// A proxy process keeping its files in `<data>/<name>`, reporting metrics every second.
    async fn proxy(&self, name: &str) -> Process {
        let proxy = spawn_proxy(
            &self.control_plane_url(),
            &self.data.path().join(name),
            None,
            &["--metrics-interval-secs", "1"],
        );
        proxy.wait_ready(START).await;
        proxy
    }

    /// Kills the control plane (SIGKILL), runs `meanwhile`, and starts it again where it was.
    async fn control_plane_outage<F: std::future::Future<Output = ()>>(&mut self, meanwhile: F) {
        drop(self.control_plane.take());
        meanwhile.await;
        let addr = self.control_plane_addr;
        self.control_plane = Some(spawn_control_plane_on(&self.database.url(), None, addr));
        wait_until_ok(&format!("http://{addr}/readyz"), START).await;
    }

    async fn stop(self) {
        drop(self.control_plane);
        self.database
            .drop_now()
            .await
            .expect("drop the scratch database");
    }
}

/// The shortest time between two requests of one load task.
const PACE: Duration = Duration::from_millis(2);

/// Requests sent by [`Load`], by outcome.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    first_failure: std::sync::Mutex<Option<String>>,
}

/// `tasks` loops each sending `GET` to every URL in turn, at most one request per
/// [`PACE`], until stopped; any answer but 200, or no answer, is a failure. Paced, so that
/// it stays under the stages' default throttle and leaves this small machine's CPU to the
/// processes under test.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(urls: Vec<String>, tasks: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let tasks = (0..tasks)
            .map(|i| {
                let (stop, tally, urls) = (stop.clone(), tally.clone(), urls.clone());
                tokio::spawn(async move {
                    let http = client();
                    let mut n = i;
                    let mut pace = tokio::time::interval(PACE);
                    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !stop.load(Ordering::Relaxed) {
                        pace.tick().await;
                        let url = &urls[n % urls.len()];
                        n += 1;
                        let outcome =
                            match http.get(url).timeout(Duration::from_secs(10)).send().await {
                                Ok(r) if r.status() == StatusCode::OK => {
                                    r.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                                }
                                Ok(r) => Err(format!("{url}: {}", r.status())),
                                Err(e) => Err(format!("{url}: {e}")),
                            };
                        match outcome {
                            Ok(()) => tally.ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                tally.first_failure.lock().expect("lock").get_or_insert(e);
                                tally.failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                })
            })
            .collect();
        Load { stop, tally, tasks }
    }

    fn ok(&self) -> u64 {
        self.tally.ok.load(Ordering::Relaxed)
    }

    /// Stops the loops and asserts that nothing failed; returns how many succeeded.
    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("load task");
        }
        let failed = self.tally.failed.load(Ordering::Relaxed);
        let first = self.tally.first_failure.lock().expect("lock").take();
        assert_eq!(failed, 0, "{failed} requests failed; the first: {first:?}");
        self.tally.ok.load(Ordering::Relaxed)
    }
}

/// An HTTP API `shop` with `GET /ok` to `upstream`, deployed to `prod`; returns its id.
async fn deploy_shop(admin: &Admin, upstream: &Upstream) -> String {
    let api = admin.create_api("shop").await;
    let ok = http_proxy(&format!("http://{}/pets/1", upstream.addr));
    admin.add_route(&api, "GET /ok", ok).await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    api
}

fn shop_url(proxy: &Process) -> String {
    format!("http://{}/shop/prod/ok", proxy.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_under_traffic_loses_no_request_and_no_count() {
    let _heavy = heavy().await;
    let mut world = World::start().await;
    let upstream = Upstream::start().await;
    let api = deploy_shop(&world.admin, &upstream).await;
    let (a, b) = (world.proxy("a").await, world.proxy("b").await);
    let load = Load::start(vec![shop_url(&a), shop_url(&b)], 4);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = load.ok();
    // Down for 3 s: three report intervals of both proxies.
    world
        .control_plane_outage(tokio::time::sleep(Duration::from_secs(3)))
        .await;
    let during = load.ok() - before;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = load.finish().await;
    assert!(during > 50, "only {during} requests during the outage");

    // Every request is counted once: the counts of the outage arrive, none twice.
    let query = format!("/metrics?api_id={api}");
    let counted = || async {
        let (status, body) = world.admin.get(&query).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["totals"]["count"].as_u64().unwrap_or(0)
    };
    let arrived = gatehouse_tests::eventually(Duration::from_secs(20), || async {
        (counted().await == sent).then_some(())
    })
    .await;
    assert!(arrived.is_some(), "counted {} of {sent}", counted().await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counted().await, sent, "counted twice");
    eprintln!("control plane down 3 s: {sent} requests ({during} in the outage), none failed, each counted once");
    drop((a, b));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_restarted_without_its_control_plane_serves_its_cache_at_once_unless_damaged() {
    let _heavy = heavy().await;
    let mut world = World::start().await;
    let upstream = Upstream::start().await;
    deploy_shop(&world.admin, &upstream).await;
    let proxy = world.proxy("a").await;
    let data = world.data.path().join("a");
    drop(proxy);

    world
        .control_plane_outage(async {
            // Killed and started again with the control plane away.
            let started = Instant::now();
            let proxy = spawn_proxy("http://127.0.0.1:9", &data, None, &[]);
            let http = client();
            let served = loop {
                if let Ok(r) = http.get(shop_url(&proxy)).send().await {
                    assert_eq!(r.status(), StatusCode::OK, "served from the cache");
                    break started.elapsed();
                }
                assert!(started.elapsed() < START, "never served");
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            // Measured from the start of the process, a debug build included.
            assert!(
                served < Duration::from_secs(1),
                "first answer after {served:?}"
            );
            eprintln!(
                "restarted without a control plane: first answer from the cache after {served:?}"
            );
            drop(proxy);

            // A cache cut in half is refused, counted and not served.
            let cache = gatehouse_proxy::cache::path(&data.join("proxy"));
            let bytes = std::fs::read(&cache).expect("cache written");
            std::fs::write(&cache, &bytes[..bytes.len() / 2]).expect("truncate");
            let proxy = spawn_proxy("http://127.0.0.1:9", &data, None, &[]);
            let status = proxy.status.expect("status port");
            wait_until_ok(&format!("http://{status}/healthz"), START).await;
            let refused = proxy_metric(status, "gatehouse_proxy_config_refused_total").await;
            assert_eq!(refused, Some(1.0), "the damaged cache is not reported");
            let ready = http
                .get(format!("http://{status}/readyz"))
                .send()
                .await
                .expect("readyz");
            assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
            let r = http.get(shop_url(&proxy)).send().await.expect("answers");
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        })
        .await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight_closes_websockets_and_exits_0() {
    let _heavy = heavy().await;
    let world = World::start().await;
    let upstream = Upstream::start().await;
    let api = world.admin.create_api("shop").await;
    let slow = http_proxy(&format!("http://{}/slow?ms=1500", upstream.addr));
    world.admin.add_route(&api, "GET /slow", slow).await;
    world.admin.deploy_stage(&api, "prod", json!({})).await;
    let chat = world
        .admin
        .create(
            "/apis",
            json!({"name": "chat", "slug": "chat", "protocol": "WEBSOCKET"}),
        )
        .await;
    let chat = gatehouse_tests::id_of(&chat);
    world.admin.add_route(&chat, "$default", mock("pong")).await;
    world.admin.deploy_stage(&chat, "prod", json!({})).await;
    let mut proxy = world.proxy("a").await;

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/chat/prod", proxy.addr))
        .await
        .expect("WebSocket connects");
    ws.send(Message::text("ping")).await.expect("send");
    let answer = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert!(
        matches!(&answer, Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "pong"),
        "{answer:?}"
    );

    let url = format!("http://{}/shop/prod/slow", proxy.addr);
    let in_flight: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            // A client each: sixteen connections, each with one request in flight.
            tokio::spawn(async move {
                client()
                    .get(&url)
                    .send()
                    .await?
                    .error_for_status()?
                    .text()
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let terminated = Instant::now();
    proxy.terminate();

    // WebSocket clients are told the server is going away.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code),
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("closed within 5 s");
    assert_eq!(closed, Some(CloseCode::Away));

    // New connections are refused once the listener is closed.
    let refused = gatehouse_tests::eventually(Duration::from_secs(2), || async {
        tokio::net::TcpStream::connect(proxy.addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert!(refused.is_some(), "still accepting after SIGTERM");

    for request in in_flight {
        let body = request
            .await
            .expect("task")
            .expect("in-flight request finished");
        assert!(body.contains("slept_ms"), "{body}");
    }
    let status = proxy
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("exits within the grace period");
    assert!(status.success(), "exit status {status}");
    let exited = terminated.elapsed();
    assert!(exited < Duration::from_secs(12));
    eprintln!("SIGTERM: 16 requests in flight finished, WebSocket closed with 1001, exit 0 after {exited:?}");
    world.stop().await;
}

/// How long to redeploy for: `CHAOS_REDEPLOY_SECS`, or 5 s.
fn redeploy_for() -> Duration {
    let secs = std::env::var("CHAOS_REDEPLOY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_every_100_ms_under_load_fails_no_request() {
    let _heavy = heavy().await;
    let world = World::start().await;
    let upstream = Upstream::start().await;
    let api = deploy_shop(&world.admin, &upstream).await;
    let proxy = world.proxy("a").await;
    let load = Load::start(vec![shop_url(&proxy)], 4);

    let length = redeploy_for();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut deploys = 0u32;
    let mut last = String::new();
    while started.elapsed() < length {
        tick.tick().await;
        last = world
            .admin
            .deploy(&api, &format!("redeploy {deploys}"))
            .await;
        world.admin.point_stage(&api, "prod", &last).await;
        deploys += 1;
    }
    // The proxy ends on the last deployment.
    let status = proxy.status.expect("status port");
    let (status_code, stage) = world.admin.get(&format!("/apis/{api}/stages/prod")).await;
    assert_eq!(status_code, StatusCode::OK, "{stage}");
    assert_eq!(stage["deployment_id"], last.as_str());
    let version = config_version(&world.database.pool).await;
    let reached = gatehouse_tests::eventually(Duration::from_secs(10), || async {
        let served = proxy_metric(status, "gatehouse_proxy_config_version").await;
        (served >= Some(version as f64)).then_some(())
    })
    .await;
    assert!(
        reached.is_some(),
        "the proxy never reached the last deployment"
    );
    let sent = load.finish().await;
    let expected = (length.as_millis() / 100) as u32;
    assert!(
        deploys * 2 >= expected,
        "{deploys} deploys in {length:?}: the control plane is too slow to test this"
    );
    eprintln!("{deploys} deploys in {length:?} under {sent} requests, none failed");
    world.stop().await;
}

/// A control plane URL that is not one URL (a list, or words) stops the proxy at start
/// with an error saying so, from the flag and from the environment alike, instead of a
/// proxy that retries an address that can never answer.
#[tokio::test]
async fn a_proxy_given_a_list_or_not_a_url_for_its_control_plane_refuses_to_start() {
    let data = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("http://127.0.0.1:8001,http://127.0.0.1:8002", "one URL"),
        ("http://127.0.0.1:8001 http://127.0.0.1:8002", "one URL"),
        ("not a url", "one URL"),
        ("localhost:8001", "http://"),
    ];
    for (url, why) in cases {
        for from_env in [false, true] {
            let mut launch = gatehouse_tests::bench::proxy(url, data.path(), None, &[]);
            if from_env {
                let args: Vec<_> = launch.command.get_args().map(|a| a.to_owned()).collect();
                let mut command = std::process::Command::new(launch.command.get_program());
                let flag = args.iter().position(|a| a == "--control-plane-url");
                for (i, arg) in args.iter().enumerate() {
                    if flag.is_some_and(|f| i == f || i == f + 1) {
                        continue;
                    }
                    command.arg(arg);
                }
                command.env("GATEHOUSE_CONTROL_PLANE_URL", url);
                launch.command = command;
            }
            let mut child = launch
                .command
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("gatehouse runs");
            let started = Instant::now();
            let status = loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    break status;
                }
                if started.elapsed() > START {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{url:?} (env: {from_env}): the proxy still runs after {START:?}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            assert!(!status.success(), "{url:?}: exited {status}");
            assert!(
                stderr.contains("--control-plane-url") && stderr.contains(why),
                "{url:?} (env: {from_env}): {stderr}"
            );
        }
    }
}

/// A child process killed (and reaped) when dropped, also when a test fails half way.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A command of the tutorial with a promise in its comment: `curl ... # 200`.
struct Promise {
    /// The command as the README shows it (its first line).
    command: String,
    /// What follows `#` on its last line.
    comment: String,
}

/// Run before each command whose output is checked, not in the README: waits (5 s at
/// most) until every proxy serves the control plane's latest config. A person typing the
/// next command gives the proxy far longer than the few milliseconds it takes; a script
/// running alone on an idle machine does not, and would see the stage before it arrives.
const SETTLE: &str = r#"settle() {
  for _ in $(seq 100); do
    curl -s -H "Authorization: Bearer $(cat .gatehouse/admin-token)" http://127.0.0.1:8001/api/v1/nodes \
      | python3 -c 'import json,sys
n = [x for x in json.load(sys.stdin)["items"] if x["status"] == "live"]
sys.exit(not n or any(x["config_version"] != x["current_config_version"] for x in n))' && return
    sleep 0.05
  done
}
"#;

/// The shell blocks of the README's tutorial as one script, each commented `curl` or
/// `for` command framed by `@@promise <n>` and `@@end` lines in its output, with the
/// promises in order. Before each such command the script waits for the proxies to
/// settle ([`SETTLE`]).
fn tutorial_script(readme: &str) -> (String, Vec<Promise>) {
    let start = readme
        .find("\n## Tutorial")
        .expect("the README has a tutorial");
    let section = &readme[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut lines = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        match (in_block, line.trim_end()) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, _) => lines.push(line),
            _ => {}
        }
    }
    let (mut script, mut promises) = (SETTLE.to_owned(), Vec::new());
    let mut i = 0;
    while i < lines.len() {
        let first = i;
        // A command goes on while its lines end with a backslash.
        while lines[i].ends_with('\\') && i + 1 < lines.len() {
            i += 1;
        }
        let command = lines[first..=i].join("\n");
        let checked = lines[first].starts_with("curl ") || lines[first].starts_with("for ");
        match lines[i].split_once("  # ") {
            Some((_, comment)) if checked => {
                script.push_str("settle\n");
                script.push_str(&format!("printf '\\n@@promise {}\\n'\n", promises.len()));
                script.push_str(&command);
                script.push_str("\nprintf '\\n@@end\\n'\n");
                promises.push(Promise {
                    command: lines[first].to_owned(),
                    comment: comment.trim().to_owned(),
                });
            }
            _ => {
                script.push_str(&command);
                script.push('\n');
            }
        }
        i += 1;
    }
    (script, promises)
}

/// Checks `output` (what a command printed) against what its README comment promises;
/// says whether the comment promised anything. A promise is the comment's first word when
/// it is a status code, JSON (`...` standing for anything) or the whole comment; a run of
/// status codes is the throttle loop. Other comments are prose.
fn check_promise(promise: &Promise, output: &str) -> bool {
    let words: Vec<&str> = promise.comment.split_whitespace().collect();
    let is_status = |w: &str| w.len() == 3 && w.bytes().all(|b| b.is_ascii_digit());
    let context = format!(
        "`{}` # {}\nprinted: {output}",
        promise.command, promise.comment
    );
    if words.len() > 1 && words.iter().all(|w| is_status(w)) {
        // The throttle loop: the README explains that one request more may pass, when a
        // token comes back while the loop runs.
        let got: Vec<&str> = output.split_whitespace().collect();
        let promised_ok = words.iter().filter(|w| **w == "200").count();
        let ok = got.iter().filter(|w| **w == "200").count();
        assert_eq!(got.len(), words.len(), "{context}");
        assert!(got[..promised_ok].iter().all(|w| *w == "200"), "{context}");
        assert!(got.iter().all(|w| *w == "200" || *w == "429"), "{context}");
        assert!(ok == promised_ok || ok == promised_ok + 1, "{context}");
        assert_eq!(got.last(), Some(&"429"), "{context}");
        return true;
    }
    let first = words
        .first()
        .copied()
        .unwrap_or_default()
        .trim_end_matches(',');
    if is_status(first) {
        let status_line = output.trim_start().lines().next().unwrap_or_default();
        assert!(
            status_line.starts_with(&format!("HTTP/1.1 {first} ")),
            "{context}"
        );
        if promise.comment.contains("RateLimit headers") {
            let head = output.to_ascii_lowercase();
            assert!(
                head.contains("\nratelimit-policy: ") && head.contains("\nratelimit: "),
                "{context}"
            );
        }
        return true;
    }
    if first.starts_with('{') || words.len() == 1 {
        for part in first.split("...").filter(|p| !p.is_empty()) {
            assert!(output.contains(part), "{context}");
        }
        return true;
    }
    false
}

/// Runs the tutorial script once in bash; its standard output, or a panic with both
/// outputs when it fails or takes longer than `limit`.
async fn run_tutorial(script: &Path, limit: Duration) -> String {
    let folder = script.parent().expect("script folder");
    let (out, err) = (folder.join("stdout"), folder.join("stderr"));
    let mut bash = Child(
        std::process::Command::new("bash")
            .arg("-e")
            .arg(script)
            .current_dir(folder)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("bash runs"),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = bash.0.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > limit {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(bash);
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    let status = status.unwrap_or_else(|| panic!("still running after {limit:?}; {context}"));
    assert!(status.success(), "the tutorial exited {status}; {context}");
    assert!(
        stderr.trim().is_empty(),
        "the tutorial complained; {context}"
    );
    assert!(
        !stdout.contains("\"errors\":["),
        "the admin API refused a step; {context}"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tutorial_runs_verbatim_twice_against_gatehouse_up_and_shows_what_it_promises() {
    let _heavy = heavy().await;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let (script, promises) = tutorial_script(&readme);
    let database = bench_database("tutorial").await.expect("scratch database");
    let folder = tempfile::tempdir().expect("tempdir");
    let data = folder.path().join("data");
    let (cp, proxy, status, demo) = (free_port(), free_port(), free_port(), free_port());
    // The README's fixed ports, as `just run` uses them, become free ones.
    let script = script
        .replace("127.0.0.1:8001", &cp.to_string())
        .replace("127.0.0.1:8000", &proxy.to_string())
        .replace("127.0.0.1:8100", &status.to_string())
        .replace("127.0.0.1:8080", &demo.to_string())
        .replace(
            "$(cat .gatehouse/admin-token)",
            &format!("$(cat {}/admin-token)", data.display()),
        );
    assert!(
        !script.contains(":8001") && !script.contains(".gatehouse/"),
        "{script}"
    );
    let script_path = folder.path().join("tutorial.sh");
    std::fs::write(&script_path, &script).expect("write the script");

    let mut up = std::process::Command::new(gatehouse_binary());
    up.arg("up")
        .arg("--data-dir")
        .arg(&data)
        .args(["--control-plane-listen", &cp.to_string()])
        .args(["--proxy-listen", &proxy.to_string()])
        .args(["--status-listen", &status.to_string()])
        .args(["--demo-listen", &demo.to_string()])
        .env("DATABASE_URL", database.url())
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    for name in [
        "GATEHOUSE_ADMIN_TOKEN",
        "GATEHOUSE_NODE_TOKEN",
        "GATEHOUSE_DATA_DIR",
        "REDIS_URL",
    ] {
        up.env_remove(name);
    }
    let up = Child(up.spawn().expect("gatehouse up starts"));
    wait_until_ok(&format!("http://{cp}/readyz"), START).await;
    wait_until_ok(&format!("http://{status}/healthz"), START).await;

    for run in 1..=2 {
        let output = run_tutorial(&script_path, Duration::from_secs(60)).await;
        let mut checked = 0;
        for (n, promise) in promises.iter().enumerate() {
            let begin = format!("\n@@promise {n}\n");
            let from = output.find(&begin).expect("the command ran") + begin.len();
            let printed = &output[from..];
            let printed = &printed[..printed.find("\n@@end\n").expect("the command ended")];
            if check_promise(promise, printed) {
                checked += 1;
            }
        }
        assert!(checked >= 9, "run {run}: only {checked} promises checked");
    }

    drop(up);
    database
        .drop_now()
        .await
        .expect("drop the scratch database");
}
