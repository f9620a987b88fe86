//! No secret reaches a log: a control plane and a proxy run as processes at debug level
//! while every kind of secret is used, rightly and wrongly (admin, node, issued and
//! management tokens, an API key, the database password), and then their whole output is
//! searched for each one.

use std::path::Path;
use std::time::Duration;

use gatehouse_proxy::ProxyConfig;
use gatehouse_tests::bench::{control_plane, free_port, proxy, wait_until_ok, Process};
use gatehouse_tests::serial::heavy;
use gatehouse_tests::{
    bench_database, client, http_proxy, id_of, Admin, Upstream, ADMIN_TOKEN, NODE_TOKEN,
};
use reqwest::StatusCode;
use serde_json::json;

const DATABASE_PASSWORD: &str = "db-pass-7c1e5a9d";
const MANAGEMENT_TOKEN: &str = "mgmt-token-52b7e0c4";
/// Sent where a secret is expected but wrong: a mistyped secret is one too.
const WRONG_TOKEN: &str = "ght_wrong-guess-0f3a81d6b2";
const WRONG_KEY: &str = "wrong-api-key-9d4c27e1";

/// `url` with `DATABASE_PASSWORD` as its password (the test server trusts every local
/// connection, so any password works).
fn with_password(url: &str) -> String {
    let mut url = reqwest::Url::parse(url).expect("DATABASE_URL is a URL");
    if url.username().is_empty() {
        url.set_username("postgres").expect("a user");
    }
    url.set_password(Some(DATABASE_PASSWORD))
        .expect("a password");
    url.to_string()
}

/// Stops `process` with SIGTERM, so that it writes its last lines.
async fn stop(mut process: Process) {
    process.terminate();
    let status = process
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_the_logs_of_a_full_run() {
    let _heavy = heavy().await;
    let database = bench_database("secrets").await.expect("scratch database");
    let work = tempfile::tempdir().expect("tempdir");
    let log = work.path().join("gatehouse.log");
    let cp = control_plane(&with_password(&database.url()), None, free_port())
        .spawn_logged("debug", &log);
    let cp_url = format!("http://{}", cp.addr);
    wait_until_ok(&format!("{cp_url}/readyz"), Duration::from_secs(20)).await;
    let admin = Admin {
        base: format!("{cp_url}/api/v1"),
        http: client(),
    };

    // An API whose route needs a key, a plan and a key in it.
    let upstream = Upstream::start().await;
    let api = admin.create_api("vault").await;
    admin
        .create(
            &format!("/apis/{api}/routes"),
            json!({"route_key": "GET /gold", "api_key_required": true,
                   "integration": http_proxy(&format!("http://{}/pets/1", upstream.addr))}),
        )
        .await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    let plan = admin
        .create(
            "/usage-plans",
            json!({"name": "gold", "stages": [{"api_id": api, "stage": "prod"}]}),
        )
        .await;
    let key = admin.create("/keys", json!({"name": "mobile"})).await;
    let key_value = key["value"].as_str().expect("key value").to_owned();
    admin
        .create(
            &format!("/usage-plans/{}/keys", id_of(&plan)),
            json!({"key_id": id_of(&key)}),
        )
        .await;
    let chat = admin
        .create(
            "/apis",
            json!({"name": "chat", "slug": "chat", "protocol": "WEBSOCKET"}),
        )
        .await;
    admin
        .add_route(&id_of(&chat), "$default", gatehouse_tests::mock("ok"))
        .await;
    admin.deploy_stage(&id_of(&chat), "prod", json!({})).await;
    let issued = admin
        .create("/tokens", json!({"name": "ci", "role": "admin"}))
        .await;
    let issued_value = issued["value"].as_str().expect("token value").to_owned();

    let proxy = proxy(
        &cp_url,
        &work.path().join("proxy"),
        None,
        &["--management-token", MANAGEMENT_TOKEN],
    )
    .spawn_logged("debug", &log);
    proxy.wait_ready(Duration::from_secs(20)).await;
    let http = client();
    let gold = format!("http://{}/vault/prod/gold", proxy.addr);

    let with_key = |key: &str| http.get(&gold).header("x-api-key", key).send();
    assert_eq!(
        with_key(&key_value).await.expect("answers").status(),
        StatusCode::OK
    );
    assert_eq!(
        with_key(WRONG_KEY).await.expect("answers").status(),
        StatusCode::FORBIDDEN
    );
    let apis = format!("{cp_url}/api/v1/apis");
    let as_bearer = |token: &str| http.get(&apis).bearer_auth(token).send();
    assert_eq!(
        as_bearer(&issued_value).await.expect("answers").status(),
        StatusCode::OK
    );
    assert_eq!(
        as_bearer(WRONG_TOKEN).await.expect("answers").status(),
        StatusCode::UNAUTHORIZED
    );
    // The node token on a sync call, rightly and wrongly.
    let config = format!("{cp_url}/dp/v1/config");
    let as_node = |token: &str| {
        http.get(&config)
            .bearer_auth(token)
            .header("x-gatehouse-node-id", "secrets-test")
            .send()
    };
    assert!(as_node(NODE_TOKEN)
        .await
        .expect("answers")
        .status()
        .is_success());
    assert_eq!(
        as_node(WRONG_TOKEN).await.expect("answers").status(),
        StatusCode::UNAUTHORIZED
    );
    let connections = format!("http://{}/chat/prod/@connections/abc", proxy.addr);
    let push = |token: &str| http.post(&connections).bearer_auth(token).body("hi").send();
    assert_eq!(
        push(MANAGEMENT_TOKEN).await.expect("answers").status(),
        StatusCode::GONE
    );
    assert_eq!(
        push(WRONG_TOKEN).await.expect("answers").status(),
        StatusCode::FORBIDDEN
    );
    // The issued token revoked, then used again.
    let (status, _) = admin.delete(&format!("/tokens/{}", id_of(&issued))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        as_bearer(&issued_value).await.expect("answers").status(),
        StatusCode::UNAUTHORIZED
    );

    stop(proxy).await;
    stop(cp).await;
    database
        .drop_now()
        .await
        .expect("drop the scratch database");

    let logs = std::fs::read_to_string(&log).expect("logs written");
    assert_logged_something(&logs);
    for (what, secret) in [
        ("the admin token", ADMIN_TOKEN),
        ("the node token", NODE_TOKEN),
        ("the database password", DATABASE_PASSWORD),
        ("the management token", MANAGEMENT_TOKEN),
        ("an issued token", issued_value.as_str()),
        ("an API key", key_value.as_str()),
        ("a wrong token", WRONG_TOKEN),
        ("a wrong API key", WRONG_KEY),
    ] {
        assert_absent(&logs, what, secret, &log);
    }
}

/// The logs are worth searching: both processes wrote at debug level.
fn assert_logged_something(logs: &str) {
    assert!(logs.contains("proxy started"), "no proxy lines:\n{logs}");
    assert!(logs.contains("DEBUG"), "nothing at debug level:\n{logs}");
    assert!(logs.lines().count() > 20, "too few lines:\n{logs}");
}

fn assert_absent(logs: &str, what: &str, secret: &str, log: &Path) {
    if let Some(line) = logs.lines().find(|line| line.contains(secret)) {
        panic!("{what} is in the logs ({}): {line}", log.display());
    }
}

#[test]
fn debug_output_of_the_proxy_settings_masks_every_secret() {
    let mut config = ProxyConfig::new("http://cp", NODE_TOKEN);
    config.management_token = Some(MANAGEMENT_TOKEN.to_owned());
    config.redis_url = Some(format!("redis://:{DATABASE_PASSWORD}@127.0.0.1:6379"));
    let printed = format!("{config:?}");
    for secret in [NODE_TOKEN, MANAGEMENT_TOKEN, DATABASE_PASSWORD] {
        assert!(!printed.contains(secret), "{printed}");
    }
}
