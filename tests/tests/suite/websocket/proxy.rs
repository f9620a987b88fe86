//! WebSocket APIs end to end: a real WebSocket client, a real proxy and control plane, and
//! a real HTTP backend that records every event it is sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use futures_util::{SinkExt as _, StreamExt as _};
use gatehouse_proxy::RunningProxy;
use gatehouse_tests::serial::timed;
use gatehouse_tests::{
    client, config_version, eventually, http_proxy, id_of, mock, start_proxy_tuned,
    wait_for_version, Admin, ControlPlane,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

const MANAGEMENT_TOKEN: &str = "test-management-token";
const WAIT: Duration = Duration::from_secs(5);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One event as the backend received it.
#[derive(Debug, Clone)]
struct Seen {
    kind: String,
    connection: String,
    route: String,
    stage: String,
    body: String,
    headers: HeaderMap,
}

#[derive(Clone, Default)]
struct Backend {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    async fn start(&self) -> SocketAddr {
        let app = Router::new()
            .route("/connect", post(connect))
            .route("/send", post(send))
            .route("/default", post(default))
            .route("/quiet", post(quiet))
            .route("/slow", post(slow))
            .route("/disconnect", post(disconnect))
            .with_state(self.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn note(&self, headers: &HeaderMap, body: &str) -> Seen {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let seen = Seen {
            kind: header("x-gatehouse-event-type"),
            connection: header("x-gatehouse-connection-id"),
            route: header("x-gatehouse-route-key"),
            stage: header("x-gatehouse-stage"),
            body: body.to_owned(),
            headers: headers.clone(),
        };
        self.seen.lock().expect("lock").push(seen.clone());
        seen
    }

    fn events(&self, kind: &str) -> Vec<Seen> {
        let seen = self.seen.lock().expect("lock");
        seen.iter().filter(|s| s.kind == kind).cloned().collect()
    }

    /// Waits for the first `kind` event of `connection`.
    async fn wait_for(&self, kind: &str, connection: &str) -> Seen {
        eventually(WAIT, || async {
            self.events(kind)
                .into_iter()
                .find(|s| s.connection == connection)
        })
        .await
        .map(|(seen, _)| seen)
        .unwrap_or_else(|| panic!("no {kind} event for {connection}"))
    }

    /// The connection id of the latest connect.
    fn last_connection(&self) -> String {
        self.events("CONNECT")
            .last()
            .map(|s| s.connection.clone())
            .expect("a connect event")
    }
}

async fn connect(
    State(backend): State<Backend>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    backend.note(&headers, &body);
    if query.contains_key("deny") {
        return (StatusCode::FORBIDDEN, "not you".to_owned());
    }
    (StatusCode::OK, String::new())
}

async fn send(State(backend): State<Backend>, headers: HeaderMap, body: String) -> String {
    let seen = backend.note(&headers, &body);
    json!({"route": seen.route, "got": body, "connectionId": seen.connection}).to_string()
}

async fn default(State(backend): State<Backend>, headers: HeaderMap, body: String) -> String {
    backend.note(&headers, &body);
    format!("default:{body}")
}

async fn quiet(State(backend): State<Backend>, headers: HeaderMap, body: String) -> StatusCode {
    backend.note(&headers, &body);
    StatusCode::NO_CONTENT
}

async fn slow(State(backend): State<Backend>, headers: HeaderMap, body: String) -> String {
    backend.note(&headers, &body);
    tokio::time::sleep(Duration::from_secs(5)).await;
    "too late".to_owned()
}

async fn disconnect(State(backend): State<Backend>, headers: HeaderMap, body: String) {
    backend.note(&headers, &body);
}

struct World {
    cp: ControlPlane,
    proxy: RunningProxy,
    backend: Backend,
    _data: tempfile::TempDir,
}

impl World {
    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.proxy.addr)
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy.addr)
    }

    async fn stop(self) {
        self.proxy.stop().await;
        self.cp.stop().await;
    }
}

/// A WebSocket API `chat` on stages `prod` (AWS limits) and `brief` (idle after 1 s).
async fn chat_world(pool: &PgPool) -> World {
    let backend = Backend::default();
    let at = backend.start().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = start_proxy_tuned(&cp.url(), data.path(), |config| {
        config.management_token = Some(MANAGEMENT_TOKEN.to_owned());
    })
    .await;
    let admin = cp.admin();
    let api = websocket_api(&admin, "chat").await;
    let routes = [
        ("$connect", http_proxy(&format!("http://{at}/connect"))),
        (
            "$disconnect",
            http_proxy(&format!("http://{at}/disconnect")),
        ),
        ("$default", http_proxy(&format!("http://{at}/default"))),
        ("sendmessage", http_proxy(&format!("http://{at}/send"))),
        ("quiet", http_proxy(&format!("http://{at}/quiet"))),
        (
            "slow",
            json!({"type": "HTTP_PROXY", "uri": format!("http://{at}/slow"), "timeout_ms": 300}),
        ),
        ("ping", mock("pong")),
    ];
    for (key, integration) in routes {
        admin.add_route(&api, key, integration).await;
    }
    let deployment = admin.deploy_stage(&api, "prod", json!({})).await;
    admin
        .create(
            &format!("/apis/{api}/stages"),
            json!({"name": "brief", "deployment_id": deployment,
                   "websocket": {"idle_timeout_seconds": 1}}),
        )
        .await;
    wait_for_version(&proxy, config_version(pool).await, WAIT).await;
    World {
        cp,
        proxy,
        backend,
        _data: data,
    }
}

async fn websocket_api(admin: &Admin, slug: &str) -> String {
    let api = admin
        .create(
            "/apis",
            json!({"name": slug, "slug": slug, "protocol": "WEBSOCKET"}),
        )
        .await;
    id_of(&api)
}

async fn open(url: &str) -> Client {
    let (stream, response) = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    assert_eq!(response.status(), 101);
    stream
}

/// The next text message, within the wait.
async fn next_text(stream: &mut Client) -> String {
    loop {
        let message = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("valid frame");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// The close frame the gateway sends, within `limit`.
async fn close_code(stream: &mut Client, limit: Duration) -> CloseCode {
    loop {
        let message = tokio::time::timeout(limit, stream.next())
            .await
            .expect("closed in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code,
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("error instead of a close frame: {e}"),
        }
    }
}

async fn proxy_metrics(proxy: &RunningProxy) -> String {
    client()
        .get(format!("http://{}/metrics", proxy.status_addr))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn connect_can_refuse_a_connection(pool: PgPool) {
    let world = chat_world(&pool).await;
    let refused = tokio_tungstenite::connect_async(world.url("/chat/prod?deny=1")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let connect = &world.backend.events("CONNECT")[0];
    assert_eq!(connect.route, "$connect");
    assert_eq!(connect.stage, "prod");
    assert_eq!(connect.connection.len(), 24);
    // The backend sees the client's query and headers, not the handshake's.
    assert!(!connect.headers.contains_key("sec-websocket-key"));
    assert!(connect.headers.contains_key("x-forwarded-for"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        world.backend.events("DISCONNECT").is_empty(),
        "a refused connection never connected"
    );
    // A plain HTTP request to a WebSocket API asks for the upgrade.
    let plain = client()
        .get(world.http("/chat/prod"))
        .send()
        .await
        .expect("answers");
    assert_eq!(plain.status(), 426);
    world.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn messages_are_routed_by_action_and_answers_come_back(pool: PgPool) {
    let world = chat_world(&pool).await;
    let mut ws = open(&world.url("/chat/prod")).await;
    let id = world.backend.last_connection();

    ws.send(Message::text(r#"{"action":"sendmessage","text":"hi"}"#))
        .await
        .expect("send");
    let answer: Value = serde_json::from_str(&next_text(&mut ws).await).expect("json");
    assert_eq!(answer["route"], "sendmessage");
    assert_eq!(answer["got"], r#"{"action":"sendmessage","text":"hi"}"#);
    assert_eq!(answer["connectionId"], id.as_str());

    ws.send(Message::text("not json at all"))
        .await
        .expect("send");
    assert_eq!(next_text(&mut ws).await, "default:not json at all");
    ws.send(Message::text(r#"{"action":"nosuchroute"}"#))
        .await
        .expect("send");
    assert_eq!(
        next_text(&mut ws).await,
        r#"default:{"action":"nosuchroute"}"#
    );
    // A route that answers nothing sends nothing: the next message is the mock's.
    ws.send(Message::text(r#"{"action":"quiet"}"#))
        .await
        .expect("send");
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .expect("send");
    assert_eq!(next_text(&mut ws).await, "pong");
    let message = world.backend.wait_for("MESSAGE", &id).await;
    assert_eq!(message.stage, "prod");
    assert_eq!(message.body, r#"{"action":"sendmessage","text":"hi"}"#);

    // A backend that hangs past the route's timeout: an error message, and the
    // connection goes on.
    ws.send(Message::text(r#"{"action":"slow"}"#))
        .await
        .expect("send");
    let error: Value = serde_json::from_str(&next_text(&mut ws).await).expect("json");
    assert_eq!(error["message"], "Internal server error");
    assert_eq!(error["connectionId"], id.as_str());
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .expect("send");
    assert_eq!(next_text(&mut ws).await, "pong");

    // Every message was counted on its route.
    let metrics = proxy_metrics(&world.proxy).await;
    assert!(
        metrics.contains("gatehouse_proxy_websocket_connections 1"),
        "{metrics}"
    );
    // The connect is a 101 on `$connect`, the timed-out call a 5xx on `slow`.
    let prod = |status: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("gatehouse_proxy_requests_total{"))
            .filter(|l| l.contains(r#"stage="prod""#) && l.contains(status))
            .count()
    };
    assert_eq!(prod(r#"status="1xx"} 1"#), 1, "{metrics}");
    assert_eq!(prod(r#"status="5xx"} 1"#), 1, "{metrics}");
    assert!(prod(r#"status="2xx"}"#) >= 4, "{metrics}");
    // Message sizes count as request bytes, answers as response bytes.
    let bytes = |family: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with(family) && l.contains(r#"stage="prod""#))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    assert!(
        bytes("gatehouse_proxy_request_bytes_total{") > 0,
        "{metrics}"
    );
    assert!(
        bytes("gatehouse_proxy_response_bytes_total{") > 0,
        "{metrics}"
    );
    ws.close(None).await.expect("close");
    world.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn backends_push_read_and_close_through_the_connections_api(pool: PgPool) {
    let world = chat_world(&pool).await;
    let mut ws = tokio_tungstenite::connect_async({
        let mut request = world
            .url("/chat/prod")
            .into_client_request()
            .expect("request");
        request
            .headers_mut()
            .insert("user-agent", "chat-app/1.0".parse().expect("value"));
        request
    })
    .await
    .expect("connect")
    .0;
    let id = world.backend.last_connection();
    let endpoint = world.http(&format!("/chat/prod/@connections/{id}"));
    let http = client();

    let pushed = http
        .post(&endpoint)
        .bearer_auth(MANAGEMENT_TOKEN)
        .body("hello from the backend")
        .send()
        .await
        .expect("post");
    assert_eq!(pushed.status(), 200);
    assert_eq!(next_text(&mut ws).await, "hello from the backend");

    let read = http
        .get(&endpoint)
        .bearer_auth(MANAGEMENT_TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(read.status(), 200);
    let info: Value = read.json().await.expect("json");
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(info["identity"]["userAgent"], "chat-app/1.0");
    assert!(info["connectedAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(info["lastActiveAt"].as_str().is_some());

    // Without the token, or with another, nothing is told or done.
    for token in [None, Some("wrong")] {
        let mut request = http.post(&endpoint).body("sneaky");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.expect("post").status(), 403);
    }
    // Another stage's connection is not this stage's.
    let elsewhere = http
        .get(world.http(&format!("/chat/brief/@connections/{id}")))
        .bearer_auth(MANAGEMENT_TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(elsewhere.status(), 410);

    let closed = http
        .delete(&endpoint)
        .bearer_auth(MANAGEMENT_TOKEN)
        .send()
        .await
        .expect("delete");
    assert_eq!(closed.status(), 204);
    assert_eq!(close_code(&mut ws, WAIT).await, CloseCode::Normal);
    world.backend.wait_for("DISCONNECT", &id).await;

    for method in [
        reqwest::Method::POST,
        reqwest::Method::GET,
        reqwest::Method::DELETE,
    ] {
        let gone = http
            .request(method.clone(), &endpoint)
            .bearer_auth(MANAGEMENT_TOKEN)
            .send()
            .await
            .expect("answers");
        assert_eq!(gone.status(), 410, "{method}");
    }
    let unknown = http
        .get(world.http("/chat/prod/@connections/000000000000000000000000"))
        .bearer_auth(MANAGEMENT_TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(unknown.status(), 410);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let disconnects = world.backend.events("DISCONNECT");
    assert_eq!(
        disconnects.iter().filter(|d| d.connection == id).count(),
        1,
        "$disconnect is called once"
    );
    world.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn disconnect_is_called_once_when_the_client_closes(pool: PgPool) {
    let world = chat_world(&pool).await;
    let mut ws = open(&world.url("/chat/prod")).await;
    let id = world.backend.last_connection();
    ws.close(None).await.expect("close");
    let disconnect = world.backend.wait_for("DISCONNECT", &id).await;
    assert_eq!(disconnect.route, "$disconnect");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let count = world
        .backend
        .events("DISCONNECT")
        .iter()
        .filter(|d| d.connection == id)
        .count();
    assert_eq!(count, 1);
    world.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn idle_connections_are_closed_and_disconnected(pool: PgPool) {
    let _timed = timed().await;
    let world = chat_world(&pool).await;
    let mut ws = open(&world.url("/chat/brief")).await;
    let id = world.backend.last_connection();
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut ws, WAIT).await, CloseCode::Away);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "closed after {waited:?}, the idle timeout is 1 s"
    );
    world.backend.wait_for("DISCONNECT", &id).await;
    let metrics = proxy_metrics(&world.proxy).await;
    assert!(
        metrics.contains(r#"gatehouse_proxy_websocket_closes_total{reason="idle"} 1"#),
        "{metrics}"
    );
    world.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_oversize_message_closes_with_1009(pool: PgPool) {
    let world = chat_world(&pool).await;
    let mut ws = open(&world.url("/chat/prod")).await;
    let id = world.backend.last_connection();
    // Under the 128 KB message limit but in frames under 32 KB: fine.
    let fits = format!(r#"{{"action":"quiet","pad":"{}"}}"#, "x".repeat(20 * 1024));
    ws.send(Message::text(fits)).await.expect("send");
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .expect("send");
    assert_eq!(next_text(&mut ws).await, "pong");
    let too_big = "y".repeat(200 * 1024);
    // The gateway may close before the whole message is written.
    let _ = ws.send(Message::text(too_big)).await;
    assert_eq!(close_code(&mut ws, WAIT).await, CloseCode::Size);
    world.backend.wait_for("DISCONNECT", &id).await;
    let metrics = proxy_metrics(&world.proxy).await;
    assert!(
        metrics.contains(r#"gatehouse_proxy_websocket_closes_total{reason="too_big"} 1"#),
        "{metrics}"
    );
    // The gateway is still there for everyone else.
    let mut again = open(&world.url("/chat/prod")).await;
    again
        .send(Message::text(r#"{"action":"ping"}"#))
        .await
        .expect("send");
    assert_eq!(next_text(&mut again).await, "pong");
    world.stop().await;
}

/// A WebSocket echo server, for pass-through.
async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    let data = message.is_text() || message.is_binary();
                    if data && ws.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn http_routes_that_allow_it_pass_websocket_upgrades_through(pool: PgPool) {
    let echo = echo_upstream().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = start_proxy_tuned(&cp.url(), data.path(), |_| {}).await;
    let admin = cp.admin();
    let api = admin.create_api("live").await;
    admin
        .add_route(
            &api,
            "GET /feed",
            json!({"type": "HTTP_PROXY", "uri": format!("http://{echo}/"), "websocket_upgrade": true}),
        )
        .await;
    admin
        .add_route(&api, "GET /plain", http_proxy(&format!("http://{echo}/")))
        .await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    wait_for_version(&proxy, config_version(&pool).await, WAIT).await;

    let mut ws = open(&format!("ws://{}/live/prod/feed", proxy.addr)).await;
    for i in 0..20 {
        let text = format!("message {i}");
        ws.send(Message::text(text.clone())).await.expect("send");
        assert_eq!(next_text(&mut ws).await, text);
    }
    let big = vec![7u8; 300 * 1024];
    ws.send(Message::binary(big.clone())).await.expect("send");
    let echoed = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("frame");
    assert_eq!(echoed.into_data().len(), big.len());
    ws.close(None).await.expect("close");

    // A route that does not allow it forwards a plain request, which the echo server
    // refuses: no upgrade happens.
    let refused =
        tokio_tungstenite::connect_async(format!("ws://{}/live/prod/plain", proxy.addr)).await;
    assert!(
        refused.is_err(),
        "upgraded through a route that does not allow it"
    );
    proxy.stop().await;
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_client_that_never_reads_is_closed_and_the_gateway_stays_up(pool: PgPool) {
    let world = chat_world(&pool).await;
    // Connected, then never read from again.
    let _deaf = open(&world.url("/chat/prod")).await;
    let id = world.backend.last_connection();
    let endpoint = world.http(&format!("/chat/prod/@connections/{id}"));
    let chunk = "z".repeat(100 * 1024);
    let http = client();
    let mut pushed = 0;
    let gone = loop {
        let status = http
            .post(&endpoint)
            .bearer_auth(MANAGEMENT_TOKEN)
            .body(chunk.clone())
            .send()
            .await
            .expect("post")
            .status();
        if status == 410 {
            break true;
        }
        assert_eq!(status, 200);
        pushed += 1;
        if pushed == 1000 {
            break false;
        }
    };
    assert!(
        gone,
        "{pushed} messages of 100 KiB queued for a client that reads nothing"
    );
    // The session gives up on its blocked write, closes and calls `$disconnect`.
    let disconnected = eventually(Duration::from_secs(20), || async {
        world
            .backend
            .events("DISCONNECT")
            .into_iter()
            .find(|d| d.connection == id)
    })
    .await;
    assert!(disconnected.is_some(), "no $disconnect for the deaf client");
    let metrics = proxy_metrics(&world.proxy).await;
    assert!(
        metrics.contains(r#"gatehouse_proxy_websocket_closes_total{reason="slow_reader"} 1"#),
        "{metrics}"
    );
    let mut fresh = open(&world.url("/chat/prod")).await;
    fresh
        .send(Message::text(r#"{"action":"ping"}"#))
        .await
        .expect("send");
    assert_eq!(next_text(&mut fresh).await, "pong");
    world.stop().await;
}

/// Opens a connection by hand and sends `frame` raw; returns the close code the gateway
/// answers with.
async fn close_code_for_raw_frame(world: &World, frame: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = TcpStream::connect(world.proxy.addr).await.expect("connect");
    let handshake = "GET /chat/prod HTTP/1.1\r\nHost: gateway\r\nConnection: Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    tcp.write_all(handshake.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.expect("response head");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp.write_all(frame).await.expect("write frame");
    let mut reply = [0u8; 4];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut reply))
        .await
        .expect("in time")
        .expect("a close frame");
    assert_eq!(reply[0], 0x88, "a final close frame");
    u16::from_be_bytes([reply[2], reply[3]])
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_client_close_is_answered_with_its_code_or_1002_for_one_never_sent(pool: PgPool) {
    let world = chat_world(&pool).await;
    // Close frames, masked with a zero key: 1000 and 4000 are echoed; 1005 and 1006 are
    // for reports, never the wire, and 999 is no code at all (RFC 6455 7.4).
    let close = |code: u16| {
        let [hi, lo] = code.to_be_bytes();
        [0x88, 0x82, 0, 0, 0, 0, hi, lo]
    };
    for (sent, answered) in [
        (1000, 1000),
        (4000, 4000),
        (1005, 1002),
        (1006, 1002),
        (999, 1002),
    ] {
        assert_eq!(
            close_code_for_raw_frame(&world, &close(sent)).await,
            answered,
            "close {sent}"
        );
    }
    world.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn malformed_frames_close_with_the_right_code(pool: PgPool) {
    let world = chat_world(&pool).await;
    // A client's frames must be masked (RFC 6455 5.1).
    assert_eq!(
        close_code_for_raw_frame(&world, &[0x81, 0x02, b'h', b'i']).await,
        1002
    );
    // A text frame that is not UTF-8 (masked with a zero key).
    let bad_text = [0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28];
    assert_eq!(close_code_for_raw_frame(&world, &bad_text).await, 1007);
    // A frame over 32 KiB, announced in its header.
    let mut huge = vec![0x82, 0xFF];
    huge.extend_from_slice(&(1u64 << 20).to_be_bytes());
    huge.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(close_code_for_raw_frame(&world, &huge).await, 1009);
    let metrics = proxy_metrics(&world.proxy).await;
    for reason in ["protocol_error", "invalid_utf8", "too_big"] {
        assert!(
            metrics.contains(&format!(
                r#"gatehouse_proxy_websocket_closes_total{{reason="{reason}"}} 1"#
            )),
            "{reason}: {metrics}"
        );
    }
    world.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_api_key_on_connect_counts_the_connection_and_its_messages(pool: PgPool) {
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = start_proxy_tuned(&cp.url(), data.path(), |_| {}).await;
    let admin = cp.admin();
    let api = websocket_api(&admin, "keyed").await;
    admin
        .create(
            &format!("/apis/{api}/routes"),
            json!({"route_key": "$connect", "api_key_required": true, "integration": mock("")}),
        )
        .await;
    admin.add_route(&api, "ping", mock("pong")).await;
    admin.deploy_stage(&api, "prod", json!({})).await;
    let plan = id_of(
        &admin
            .create(
                "/usage-plans",
                json!({"name": "tight", "throttle": {"rate": 0.1, "burst": 3},
                       "stages": [{"api_id": api, "stage": "prod"}]}),
            )
            .await,
    );
    let key = admin.create("/keys", json!({"name": "app"})).await;
    admin
        .create(
            &format!("/usage-plans/{plan}/keys"),
            json!({"key_id": id_of(&key)}),
        )
        .await;
    wait_for_version(&proxy, config_version(&pool).await, WAIT).await;
    let url = format!("ws://{}/keyed/prod", proxy.addr);

    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("connected without a key: {other:?}"),
    }
    let mut request = url.as_str().into_client_request().expect("request");
    let value = key["value"].as_str().expect("key value");
    request
        .headers_mut()
        .insert("x-api-key", value.parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connects with the key");
    // The burst of 3 paid for the connection and two messages; the third is refused
    // over the socket, which stays open.
    for _ in 0..2 {
        ws.send(Message::text(r#"{"action":"ping"}"#))
            .await
            .expect("send");
        assert_eq!(next_text(&mut ws).await, "pong");
    }
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .expect("send");
    let refused: Value = serde_json::from_str(&next_text(&mut ws).await).expect("json");
    assert_eq!(refused["message"], "Too Many Requests");
    assert!(refused["requestId"].as_str().is_some());
    ws.close(None).await.expect("close");
    proxy.stop().await;
    cp.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn aws_sdk_clients_reach_connections_with_sigv4(pool: PgPool) {
    let world = chat_world(&pool).await;
    let mut ws = open(&world.url("/chat/prod")).await;
    let id = world.backend.last_connection();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/post_to_connection.py");
    let run = |token: &'static str| {
        let endpoint = world.http("/chat/prod");
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3")
                .args([script, &endpoint, &id, token, "signed hello"])
                .output()
                .expect("python3 runs (botocore: pip install botocore)")
        })
    };
    let output = run(MANAGEMENT_TOKEN).await.expect("joined");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(next_text(&mut ws).await, "signed hello");
    let identity: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(identity["sourceIp"], "127.0.0.1");
    // Signed with another secret: refused.
    let wrong = run("not-the-token").await.expect("joined");
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("403"));
    world.stop().await;
}
