//! `just bench`: what a WebSocket connection costs a proxy, and what the gateway adds to a
//! message's round trip to a backend.
//!
//! A release proxy (one worker thread, pinned to CPU 0 when there are two) holds 10,000
//! idle connections; its resident memory before and after gives the cost of each. Then, on
//! one more connection, messages go through the gateway to an HTTP backend and back; the
//! same backend called directly over HTTP, in the same run, is the reference.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use futures_util::{SinkExt as _, StreamExt as _};
use gatehouse_tests::bench::{spawn_proxy, wait_until_ok};
use gatehouse_tests::{
    bench_database, client, config_version, id_of, mock, proxy_metric, ControlPlane,
};
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const IDLE_CONNECTIONS: usize = 10_000;
const OPENING_AT_ONCE: usize = 100;
const ROUND_TRIPS: usize = 3000;
/// The target of the issue: at most this much memory per idle connection.
const TARGET_KIB_PER_CONNECTION: f64 = 20.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    raise_file_limit();
    let database = bench_database("gatehouse_bench_websocket").await?;
    let result = run(database.pool.clone()).await;
    database.drop_now().await?;
    result
}

/// Each connection is a file descriptor on both sides; the proxy inherits the limit.
fn raise_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let wanted = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if let Err(e) = setrlimit(Resource::Nofile, wanted) {
        eprintln!("could not raise the open-file limit: {e}");
    }
}

/// An HTTP backend that answers each message with its body.
async fn echo_backend() -> SocketAddr {
    let app = Router::new().route("/echo", post(|body: String| async move { body }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn run(pool: PgPool) -> anyhow::Result<()> {
    let backend = echo_backend().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let api = id_of(
        &admin
            .create(
                "/apis",
                json!({"name": "bench", "slug": "bench", "protocol": "WEBSOCKET"}),
            )
            .await,
    );
    admin.add_route(&api, "$connect", mock("")).await;
    admin
        .add_route(
            &api,
            "echo",
            json!({"type": "HTTP_PROXY", "uri": format!("http://{backend}/echo")}),
        )
        .await;
    let unlimited = json!({"rate": 1_000_000_000, "burst": 1_000_000_000});
    let deployment = admin.deploy(&api, "bench").await;
    admin
        .create(
            &format!("/apis/{api}/stages"),
            json!({"name": "prod", "deployment_id": deployment, "throttle": unlimited}),
        )
        .await;
    let version = config_version(&pool).await;

    let data = tempfile::tempdir()?;
    let proxy = spawn_proxy(&cp.url(), data.path(), Some(0), &[]);
    let status = proxy.status.expect("status port");
    wait_until_ok(&format!("http://{status}/readyz"), Duration::from_secs(10)).await;
    let url = format!("ws://{}/bench/prod", proxy.addr);
    wait_for_config(&status, version).await;

    // Warm up: the first connection and message set up what every later one shares.
    let (mut probe, _) = tokio_tungstenite::connect_async(&url).await?;
    round_trip(&mut probe, r#"{"action":"echo","n":-1}"#).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_kib = proxy.rss_mib() * 1024.0;

    let opening = Instant::now();
    let idle: Vec<_> = futures_util::stream::iter(0..IDLE_CONNECTIONS)
        .map(|_| {
            let url = url.clone();
            async move {
                tokio_tungstenite::connect_async(&url)
                    .await
                    .map(|(stream, _)| stream)
            }
        })
        .buffer_unordered(OPENING_AT_ONCE)
        .collect()
        .await;
    let opened = opening.elapsed();
    let failed = idle.iter().filter(|c| c.is_err()).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {IDLE_CONNECTIONS} connections failed"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = proxy_metric(status, "gatehouse_proxy_websocket_connections")
        .await
        .unwrap_or(0.0);
    let after_kib = proxy.rss_mib() * 1024.0;
    let per_connection = (after_kib - before_kib) / IDLE_CONNECTIONS as f64;

    // Round trips through the gateway, with the idle connections still held.
    let mut through = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS {
        let body = format!(r#"{{"action":"echo","n":{i}}}"#);
        let started = Instant::now();
        round_trip(&mut probe, &body).await;
        through.push(started.elapsed());
    }
    through.sort();
    // The reference: the same backend called directly, one request after another.
    let http = client();
    let mut direct = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS {
        let body = format!(r#"{{"action":"echo","n":{i}}}"#);
        let started = Instant::now();
        let answer = http
            .post(format!("http://{backend}/echo"))
            .body(body.clone())
            .send()
            .await?
            .text()
            .await?;
        anyhow::ensure!(answer == body, "backend answered {answer}");
        direct.push(started.elapsed());
    }
    direct.sort();
    drop(idle);

    println!("\nWebSocket APIs ({IDLE_CONNECTIONS} idle connections, one proxy worker)");
    println!(
        "  connections held                {held} (opened in {:.1} s)",
        opened.as_secs_f64()
    );
    println!(
        "  proxy memory                    {:.1} MiB before, {:.1} MiB after",
        before_kib / 1024.0,
        after_kib / 1024.0
    );
    println!(
        "  memory per idle connection      {per_connection:.1} KiB (target < {TARGET_KIB_PER_CONNECTION} KiB: {})",
        if per_connection < TARGET_KIB_PER_CONNECTION { "met" } else { "MISSED" }
    );
    println!("  message round trip ({ROUND_TRIPS} sequential)     p50        p99");
    for (name, sorted) in [
        ("through the gateway", &through),
        ("backend called directly", &direct),
    ] {
        println!(
            "    {name:<28} {:>7.0} us {:>7.0} us",
            us(percentile(sorted, 0.5)),
            us(percentile(sorted, 0.99))
        );
    }
    println!(
        "    {:<28} {:>7.2} x  {:>7.2} x",
        "gateway / direct",
        us(percentile(&through, 0.5)) / us(percentile(&direct, 0.5)),
        us(percentile(&through, 0.99)) / us(percentile(&direct, 0.99))
    );
    drop(proxy);
    cp.stop().await;
    Ok(())
}

/// Sends `body` and waits for the same text back.
async fn round_trip<S>(stream: &mut tokio_tungstenite::WebSocketStream<S>, body: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream
        .send(Message::text(body.to_owned()))
        .await
        .expect("send");
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                assert_eq!(text.as_str(), body);
                return;
            }
            Some(Ok(_)) => continue,
            other => panic!("no answer: {other:?}"),
        }
    }
}

async fn wait_for_config(status: &SocketAddr, version: i64) {
    for _ in 0..200 {
        let seen = proxy_metric(*status, "gatehouse_proxy_config_version").await;
        if seen >= Some(version as f64) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the proxy never served config {version}");
}
