//! What the proxy and the control plane do with clients that send too much, too many or
//! too slowly, or hold too many connections: each limit has its clear answer, and they go
//! on serving everyone else, also when the process can open few files. Requests are
//! written byte for byte on raw sockets, as an attacker would.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gatehouse_proxy::config::ClientLimits;
use gatehouse_proxy::RunningProxy;
use gatehouse_tests::serial::timed;
use gatehouse_tests::{
    config_version, http_proxy, start_proxy_tuned, wait_for_version, ControlPlane, Upstream,
};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

mod routing;

/// Small limits, so that tests reach them quickly.
fn small_limits() -> ClientLimits {
    ClientLimits {
        max_header_bytes: 4096,
        max_headers: 20,
        max_uri_bytes: 1024,
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_millis(500),
        max_connections: 4,
    }
}

/// A proxy with `limits`, serving `POST /echo` and `GET /echo` of API `edge` on stage
/// `prod` from the demo upstream.
async fn edge_proxy(
    pool: PgPool,
    limits: ClientLimits,
) -> (ControlPlane, Upstream, RunningProxy, tempfile::TempDir) {
    let upstream = Upstream::start().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = start_proxy_tuned(&cp.url(), data.path(), |config| config.limits = limits).await;
    let admin = cp.admin();
    let api = admin.create_api("edge").await;
    let echo = http_proxy(&format!("http://{}/echo", upstream.addr));
    admin.add_route(&api, "ANY /echo", echo).await;
    admin
        .deploy_stage(&api, "prod", serde_json::json!({}))
        .await;
    wait_for_version(&proxy, config_version(&pool).await, Duration::from_secs(5)).await;
    (cp, upstream, proxy, data)
}

/// Writes `request`, then reads until the proxy closes or 5 s pass; returns what was read
/// and how long the proxy took to close (`None`: still open after 5 s).
async fn exchange(addr: SocketAddr, request: &[u8]) -> (String, Option<Duration>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    read_until_closed(&mut stream, Instant::now()).await
}

async fn read_until_closed(stream: &mut TcpStream, since: Instant) -> (String, Option<Duration>) {
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = since + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                return (
                    String::from_utf8_lossy(&response).into_owned(),
                    Some(since.elapsed()),
                )
            }
            Ok(Ok(n)) => response.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&response).into_owned(), None),
        }
    }
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

fn get(path: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: edge\r\n{extra_headers}Connection: close\r\n\r\n")
        .into_bytes()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn oversized_heads_get_431_and_long_uris_414_while_requests_within_pass(pool: PgPool) {
    let _timed = timed().await;
    let (_cp, _upstream, proxy, _data) = edge_proxy(pool, small_limits()).await;
    let addr = proxy.addr;

    let fine = get("/edge/prod/echo", &"X-Pad: abcdefgh\r\n".repeat(10));
    let (response, _) = exchange(addr, &fine).await;
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");

    // One header of 5000 bytes: over 4096 for the head.
    let big = get(
        "/edge/prod/echo",
        &format!("X-Big: {}\r\n", "a".repeat(5000)),
    );
    let (response, closed) = exchange(addr, &big).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert!(closed.is_some(), "the connection stays open after a 431");

    // The head's bytes are counted as they arrive: 200 KiB never followed by the blank
    // line is refused as soon as the limit is passed, not buffered.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    stream
        .write_all(b"GET /edge/prod/echo HTTP/1.1\r\nHost: edge\r\n")
        .await
        .expect("write");
    let mut sent = 0;
    for _ in 0..200 {
        if stream.write_all(&[b'x'; 1024]).await.is_err() {
            break;
        }
        sent += 1024;
    }
    let (response, closed) = read_until_closed(&mut stream, started).await;
    let closed = closed.expect("an endless head is not cut off");
    assert!(
        closed < Duration::from_millis(900),
        "cut off after {closed:?}: by the 1 s header timeout, not the size"
    );
    assert!(
        response.is_empty() || status_line(&response).contains(" 431 "),
        "{response} after {sent} bytes"
    );

    let header_lines: String = (0..21).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (response, _) = exchange(addr, &get("/edge/prod/echo", &header_lines)).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 431 Request Header Fields Too Large",
        "21 headers and Host, with 20 allowed"
    );
    let header_lines: String = (0..18).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (response, _) = exchange(addr, &get("/edge/prod/echo", &header_lines)).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 200 OK",
        "20 headers in all"
    );

    let long = format!("/edge/prod/echo?q={}", "b".repeat(1100));
    let (response, _) = exchange(addr, &get(&long, "")).await;
    assert_eq!(status_line(&response), "HTTP/1.1 414 URI Too Long");
    assert_eq!(body(&response), r#"{"message":"Request-URI Too Long"}"#);
    let within = format!("/edge/prod/echo?q={}", "b".repeat(900));
    let (response, _) = exchange(addr, &get(&within, "")).await;
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn slow_clients_are_cut_off_a_slow_body_with_408(pool: PgPool) {
    let _timed = timed().await;
    let (_cp, _upstream, proxy, _data) = edge_proxy(pool, small_limits()).await;
    let addr = proxy.addr;

    // Slowloris: a header line every 200 ms, never the end of the head. The 1 s header
    // timeout closes the connection however busy the client looks.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    stream
        .write_all(b"GET /edge/prod/echo HTTP/1.1\r\nHost: edge\r\n")
        .await
        .expect("write");
    let mut closed_after = None;
    for i in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let line = format!("X-Drip-{i}: x\r\n");
        if stream.write_all(line.as_bytes()).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
        {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("a slowloris client was never cut off in 10 s");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(3),
        "cut off after {closed_after:?}, with a 1 s header timeout"
    );

    // A connection that opens and sends nothing is closed too.
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let (_, closed) = read_until_closed(&mut idle, Instant::now()).await;
    let closed = closed.expect("an idle connection stays open");
    assert!(
        closed < Duration::from_secs(3),
        "idle closed after {closed:?}"
    );

    // A body that stops half way: 408 after the 500 ms body timeout, not the route's 29 s.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"POST /edge/prod/echo HTTP/1.1\r\nHost: edge\r\nContent-Length: 100\r\n\r\n0123456789",
        )
        .await
        .expect("write");
    let (response, closed) = read_until_closed(&mut stream, Instant::now()).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 408 Request Timeout",
        "{response}"
    );
    assert!(
        body(&response).ends_with(r#"{"message":"Request Timeout"}"#),
        "{response}"
    );
    let closed = closed.expect("closed after the 408");
    assert!(closed < Duration::from_secs(3), "408 after {closed:?}");

    // A body that keeps coming, a part every 300 ms (each within the timeout), passes.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"POST /edge/prod/echo HTTP/1.1\r\nHost: edge\r\nContent-Length: 20\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    for part in [b"01234", b"56789", b"abcde", b"fghij"] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.write_all(part).await.expect("write");
    }
    let (response, _) = read_until_closed(&mut stream, Instant::now()).await;
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    assert!(response.contains("0123456789abcdefghij"), "{response}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn connections_over_the_limit_get_503_and_the_held_ones_go_on(pool: PgPool) {
    let (_cp, _upstream, proxy, _data) = edge_proxy(pool, {
        let mut limits = small_limits();
        limits.header_timeout = Duration::from_secs(30);
        limits
    })
    .await;
    let addr = proxy.addr;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let (response, closed) = exchange(addr, &get("/edge/prod/echo", "")).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 503 Service Unavailable",
        "{response}"
    );
    assert_eq!(body(&response), r#"{"message":"Too Many Connections"}"#);
    assert!(closed.is_some(), "a refused connection is closed");

    // The held connections are served.
    let mut first = held.remove(0);
    first
        .write_all(&get("/edge/prod/echo", ""))
        .await
        .expect("write");
    let (response, _) = read_until_closed(&mut first, Instant::now()).await;
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    drop(first);

    // One closed, one more may come in.
    let served = gatehouse_tests::eventually(Duration::from_secs(3), || async {
        let (response, _) = exchange(addr, &get("/edge/prod/echo", "")).await;
        (status_line(&response) == "HTTP/1.1 200 OK").then_some(())
    })
    .await;
    assert!(served.is_some(), "a freed slot is not reused");

    let refused = gatehouse_tests::proxy_metric(
        proxy.status_addr,
        "gatehouse_proxy_client_connections_refused_total",
    )
    .await;
    assert!(refused >= Some(1.0), "refusals not counted: {refused:?}");
}

#[test]
fn limits_that_would_refuse_everything_are_refused_at_start() {
    let defaults = ClientLimits::default();
    assert!(defaults.check().is_ok());
    assert_eq!(defaults.max_header_bytes, 10 * 1024);
    assert_eq!(defaults.max_uri_bytes, 8 * 1024);
    for broken in [
        ClientLimits {
            max_header_bytes: 100,
            ..defaults.clone()
        },
        ClientLimits {
            max_headers: 0,
            ..defaults.clone()
        },
        ClientLimits {
            max_uri_bytes: 70_000,
            ..defaults.clone()
        },
        ClientLimits {
            body_timeout: Duration::ZERO,
            ..defaults.clone()
        },
        ClientLimits {
            max_connections: 0,
            ..defaults.clone()
        },
    ] {
        assert!(broken.check().is_err(), "{broken:?}");
    }
}

/// A control plane holding at most 4 connections, giving clients `header_timeout` for
/// their headers.
async fn small_control_plane(pool: PgPool, header_timeout: Duration) -> ControlPlane {
    ControlPlane::start_tuned(pool, "127.0.0.1:0".parse().expect("addr"), |config| {
        config.header_timeout = header_timeout;
        config.max_connections = 4;
    })
    .await
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_control_plane_closes_silent_and_idle_connections_after_its_header_timeout(
    pool: PgPool,
) {
    let _timed = timed().await;
    let cp = small_control_plane(pool, Duration::from_secs(1)).await;
    // Silent from the start.
    let mut silent = TcpStream::connect(cp.addr).await.expect("connect");
    let (_, closed) = read_until_closed(&mut silent, Instant::now()).await;
    println!("a silent connection was closed after {closed:?}");
    assert!(
        closed.is_some_and(|took| took < Duration::from_secs(4)),
        "a silent connection stays open: {closed:?}"
    );
    // Idle after an answer on a keep-alive connection.
    let mut idle = TcpStream::connect(cp.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: cp\r\n\r\n")
        .await
        .expect("write");
    let (response, closed) = read_until_closed(&mut idle, Instant::now()).await;
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    assert!(
        closed.is_some_and(|took| took < Duration::from_secs(4)),
        "an idle keep-alive connection stays open: {closed:?}"
    );
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn connections_over_the_control_planes_limit_get_503_and_the_held_ones_go_on(pool: PgPool) {
    let cp = small_control_plane(pool, Duration::from_secs(30)).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(cp.addr).await.expect("connect"));
    }
    let mut refused = 0;
    for _ in 0..20 {
        let (response, closed) = exchange(cp.addr, &get("/readyz", "")).await;
        assert_eq!(
            status_line(&response),
            "HTTP/1.1 503 Service Unavailable",
            "{response}"
        );
        assert_eq!(body(&response), r#"{"message":"Too Many Connections"}"#);
        assert!(closed.is_some(), "a refused connection is closed");
        refused += 1;
    }
    // Each held connection is served: readiness, and the admin API.
    let mut served = 0;
    for (i, mut stream) in held.into_iter().enumerate() {
        let request = if i % 2 == 0 {
            get("/readyz", "")
        } else {
            get(
                "/api/v1/apis",
                &format!("Authorization: Bearer {}\r\n", gatehouse_tests::ADMIN_TOKEN),
            )
        };
        stream.write_all(&request).await.expect("write");
        let (response, _) = read_until_closed(&mut stream, Instant::now()).await;
        assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
        served += 1;
    }
    println!("4 connections held: {refused} more refused with 503, {served} held ones served");
    // Slots freed, new connections come in.
    let ready = gatehouse_tests::eventually(Duration::from_secs(3), || async {
        let (response, _) = exchange(cp.addr, &get("/readyz", "")).await;
        (status_line(&response) == "HTTP/1.1 200 OK").then_some(())
    })
    .await;
    assert!(ready.is_some(), "a freed slot is not reused");
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_proxy_started_with_few_open_files_refuses_connections_past_them_with_503(pool: PgPool) {
    use gatehouse::open_files::{cap, for_connections, PER_PROXY_CONNECTION};
    const OPEN_FILES: u64 = 256;
    let cp = ControlPlane::start(pool.clone()).await;
    let admin = cp.admin();
    let api = admin.create_api("edge").await;
    admin
        .add_route(&api, "GET /hello", gatehouse_tests::mock("hello"))
        .await;
    admin
        .deploy_stage(&api, "prod", serde_json::json!({}))
        .await;
    let data = tempfile::tempdir().expect("tempdir");
    // The real binary, under a low open-files limit, hard and soft.
    let mut launch = gatehouse_tests::bench::proxy(&cp.url(), data.path(), None, &[]);
    let mut limited = std::process::Command::new("sh");
    limited
        .arg("-c")
        .arg(format!("ulimit -n {OPEN_FILES} && exec \"$0\" \"$@\""))
        .arg(launch.command.get_program())
        .args(launch.command.get_args());
    launch.command = limited;
    let proxy = launch.spawn();
    proxy.wait_ready(Duration::from_secs(20)).await;

    // Left of the default 100,000: what the open files hold.
    let limit = cap(100_000, for_connections(OPEN_FILES), PER_PROXY_CONNECTION);
    let mut held = Vec::new();
    for _ in 0..limit {
        held.push(TcpStream::connect(proxy.addr).await.expect("connect"));
    }
    for _ in 0..20 {
        let (response, _) = exchange(proxy.addr, &get("/edge/prod/hello", "")).await;
        assert_eq!(
            status_line(&response),
            "HTTP/1.1 503 Service Unavailable",
            "connection over {limit}: {response}"
        );
    }
    // A held connection still gets its answer.
    let mut first = held.remove(0);
    first
        .write_all(&get("/edge/prod/hello", ""))
        .await
        .expect("write");
    let (response, _) = read_until_closed(&mut first, Instant::now()).await;
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    println!("under ulimit -n {OPEN_FILES}: {limit} connections held, 20 more refused with 503, a held one served");
    drop(proxy);
    cp.stop().await;
}
