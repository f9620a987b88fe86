//! `gatehouse up` as a user runs it: the real binary, its own private PostgreSQL, the
//! control plane, a proxy and the demo upstream; then an API deployed through the admin
//! API and called through the proxy; then Ctrl-C (SIGINT) stops everything, and a second
//! start finds the same data.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Up {
    child: Child,
    admin_api: String,
    proxy: String,
    demo: String,
}

/// Starts `gatehouse up` on free ports with `data_dir`, and reads its banner.
fn start(data_dir: &Path) -> Up {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("up")
        .args(["--data-dir".as_ref(), data_dir.as_os_str()])
        .args([
            "--control-plane-listen",
            "127.0.0.1:0",
            "--proxy-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--status-listen",
            "127.0.0.1:0",
            "--demo-listen",
            "127.0.0.1:0",
        ])
        .env_remove("DATABASE_URL")
        .env_remove("GATEHOUSE_ADMIN_TOKEN")
        .env_remove("GATEHOUSE_NODE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gatehouse starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, so the child never writes into a closed pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut admin_api, mut proxy, mut demo) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while admin_api.is_none() || proxy.is_none() || demo.is_none() {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("banner printed in time");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Admin", "API", url] => admin_api = Some((*url).to_owned()),
            ["Proxy", url] => {
                proxy = Some(
                    url.trim_end_matches("/<api-slug>/<stage>/<path>")
                        .to_owned(),
                )
            }
            ["Demo", "upstream", url] => demo = Some(url.trim_end_matches("/pets").to_owned()),
            _ => {}
        }
    }
    Up {
        child,
        admin_api: admin_api.unwrap_or_default(),
        proxy: proxy.unwrap_or_default(),
        demo: demo.unwrap_or_default(),
    }
}

impl Up {
    /// Sends SIGINT, as Ctrl-C does, and insists on a clean exit.
    fn interrupt(mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = self.child.try_wait().expect("wait") {
                assert!(exit.success(), "gatehouse up exited with {exit}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse up did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn up_runs_the_whole_product_and_stops_cleanly_on_ctrl_c() {
    let data = tempfile::tempdir().expect("tempdir");
    // Run as root, PostgreSQL runs as `postgres`, which must be able to enter the folder.
    std::fs::set_permissions(
        data.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let up = start(data.path());
    let token =
        std::fs::read_to_string(data.path().join("admin-token")).expect("admin token saved");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let call = |method: reqwest::Method, path: &str, body: Value| {
        http.request(method, format!("{}{path}", up.admin_api))
            .bearer_auth(token.trim())
            .json(&body)
            .send()
    };

    let api: Value = call(
        reqwest::Method::POST,
        "/apis",
        json!({"name": "Pets", "slug": "pets"}),
    )
    .await
    .expect("create")
    .json()
    .await
    .expect("json");
    let api = api["id"].as_str().expect("id").to_owned();
    let route = json!({"route_key": "GET /pets/{id}", "integration": {"type": "HTTP_PROXY", "uri": format!("{}/pets/{{id}}", up.demo)}});
    assert_eq!(
        call(reqwest::Method::POST, &format!("/apis/{api}/routes"), route)
            .await
            .expect("route")
            .status(),
        201
    );
    let deployment: Value = call(
        reqwest::Method::POST,
        &format!("/apis/{api}/deployments"),
        json!({}),
    )
    .await
    .expect("deploy")
    .json()
    .await
    .expect("json");
    let stage = json!({"name": "prod", "deployment_id": deployment["id"]});
    assert_eq!(
        call(reqwest::Method::POST, &format!("/apis/{api}/stages"), stage)
            .await
            .expect("stage")
            .status(),
        201
    );

    let url = format!("{}/pets/prod/pets/1", up.proxy);
    let mut served = None;
    for _ in 0..200 {
        let response = http.get(&url).send().await.expect("proxy answers");
        if response.status() == 200 {
            served = Some(response.json::<Value>().await.expect("json"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(served.expect("served within 2 s")["name"], "Rex");
    up.interrupt();

    // A second start reuses the same database and token.
    let again = start(data.path());
    let listed: Value = http
        .get(format!("{}/apis", again.admin_api))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"][0]["slug"], "pets");
    again.interrupt();
}

#[test]
fn a_short_or_repetitive_admin_token_stops_the_control_plane_at_start() {
    for (token, says) in [
        ("x", "at least 32 characters"),
        (&"a".repeat(40)[..], "different characters"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["control-plane", "--control-plane-listen", "127.0.0.1:0"])
            // Never reached: the token is refused first.
            .env("DATABASE_URL", "postgres://127.0.0.1:1/none")
            .env("GATEHOUSE_ADMIN_TOKEN", token)
            .stdout(Stdio::null())
            .output()
            .expect("gatehouse runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "started with {token:?}: {stderr}");
        assert!(
            stderr.contains("GATEHOUSE_ADMIN_TOKEN") && stderr.contains(says),
            "{stderr}"
        );
        // (A one-letter token is found in any text.)
        assert!(
            token.len() < 8 || !stderr.contains(token),
            "the refused token is printed: {stderr}"
        );
    }
}
