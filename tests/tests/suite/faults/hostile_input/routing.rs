//! Requests shaped so that the gateway and a backend would read them differently: encoded
//! or doubled path characters, methods in the wrong case, `HEAD`, `CONNECT`, duplicated
//! `Host` and `x-api-key` headers, transfer codings, broken chunks from either side, and
//! query strings that try to override the integration's. The layout is the common one
//! that makes each of them matter: a protected route and a public catch-all to the same
//! backend.

use std::net::SocketAddr;
use std::time::Duration;

use gatehouse_proxy::RunningProxy;
use gatehouse_tests::{
    config_version, http_proxy, id_of, mock, start_proxy, wait_for_version, ControlPlane, Upstream,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::{exchange, status_line, MIGRATOR};

/// API `shop` on stage `prod`: `GET /orders` needs a key, `ANY /{proxy+}` is public, and
/// both reach the echo of the demo upstream, which answers with what it received.
struct Shop {
    _cp: ControlPlane,
    _upstream: Upstream,
    proxy: RunningProxy,
    key: String,
    _data: tempfile::TempDir,
}

async fn shop(pool: &PgPool, extra_routes: &[(&str, Value)]) -> Shop {
    let upstream = Upstream::start().await;
    let cp = ControlPlane::start(pool.clone()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let proxy = start_proxy(&cp.url(), data.path()).await;
    let admin = cp.admin();
    let api = admin.create_api("shop").await;
    let echo = format!("http://{}/echo", upstream.addr);
    let orders = json!({"route_key": "GET /orders", "api_key_required": true,
        "integration": http_proxy(&format!("{echo}/orders"))});
    admin.create(&format!("/apis/{api}/routes"), orders).await;
    admin
        .add_route(
            &api,
            "ANY /{proxy+}",
            http_proxy(&format!("{echo}/{{proxy}}")),
        )
        .await;
    for (route_key, integration) in extra_routes {
        admin.add_route(&api, route_key, integration.clone()).await;
    }
    admin.deploy_stage(&api, "prod", json!({})).await;
    let plan = admin
        .create(
            "/usage-plans",
            json!({"name": "basic", "stages": [{"api_id": api, "stage": "prod"}]}),
        )
        .await;
    let key = admin.create("/keys", json!({"name": "app"})).await;
    admin
        .create(
            &format!("/usage-plans/{}/keys", id_of(&plan)),
            json!({"key_id": id_of(&key)}),
        )
        .await;
    wait_for_version(&proxy, config_version(pool).await, Duration::from_secs(5)).await;
    Shop {
        _cp: cp,
        _upstream: upstream,
        proxy,
        key: key["value"].as_str().expect("value").to_owned(),
        _data: data,
    }
}

/// One request on its own connection, written as given: its status code and body.
async fn raw(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let request = format!("{head}\r\nConnection: close\r\n\r\n{body}");
    let (response, _) = exchange(addr, request.as_bytes()).await;
    let status = status_line(&response)
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (status, body)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_protected_route_cannot_be_reached_through_a_public_catch_all(pool: PgPool) {
    let shop = shop(&pool, &[]).await;
    let addr = shop.proxy.addr;
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: gateway");

    assert_eq!(raw(addr, &get("/shop/prod/orders"), "").await.0, 403);
    // Spellings a backend reads as `/orders`: each is matched as `/orders`, or refused.
    for (path, status) in [
        ("/shop/prod/%6frders", 403),
        ("/shop/prod/%6F%72%64%65%72%73", 403),
        ("/shop/prod/orders/", 403),
        ("/shop/prod//orders", 403),
        ("/shop/prod/orders//", 403),
        ("/shop//prod///orders", 403),
        ("/shop/prod/x/../orders", 400),
        ("/shop/prod/x/%2e%2e/orders", 400),
        ("/shop/prod/x/..%2forders", 400),
        ("/shop/prod/x/%2e%2e%2forders", 400),
        ("/shop/prod/x%2forders", 400),
        ("/shop/prod/x%5corders", 400),
        ("/shop/prod/orders%", 400),
        ("/shop/prod/orders%00", 400),
    ] {
        assert_eq!(raw(addr, &get(path), "").await.0, status, "GET {path}");
    }
    // Methods: case-sensitive by the spec, often not in backends.
    for (method, status) in [
        ("get", 400),
        ("Get", 400),
        ("HEAD", 403),
        ("CONNECT", 405),
        ("TRACE", 405),
    ] {
        let head = format!("{method} /shop/prod/orders HTTP/1.1\r\nHost: gateway");
        assert_eq!(raw(addr, &head, "").await.0, status, "{method}");
    }
    let connect = "CONNECT upstream.internal:443 HTTP/1.1\r\nHost: upstream.internal:443";
    assert_eq!(raw(addr, connect, "").await.0, 405);
    // A method no route key names reaches only `ANY` routes, as itself.
    let (status, body) = raw(addr, "PROPFIND /shop/prod/orders HTTP/1.1\r\nHost: g", "").await;
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_str(&body).expect("echo");
    assert_eq!(seen["method"], "PROPFIND");

    // What the backend is sent is what was matched.
    for (path, upstream_path) in [
        ("/shop/prod/%7euser/a%2Db", "/echo/~user/a-b"),
        ("/shop/prod/a//b/", "/echo/a/b"),
        ("/shop/prod/caf%c3%a9", "/echo/caf%C3%A9"),
    ] {
        let (status, body) = raw(addr, &get(path), "").await;
        assert_eq!(status, 200, "{path}");
        let seen: Value = serde_json::from_str(&body).expect("echo");
        assert_eq!(seen["path"], upstream_path, "{path}");
    }

    // With the key: once is right, twice is refused, whatever the second says.
    let keyed = |keys: &[&str]| {
        let mut head = get("/shop/prod/orders");
        for key in keys {
            head.push_str(&format!("\r\nx-api-key: {key}"));
        }
        head
    };
    assert_eq!(raw(addr, &keyed(&[&shop.key]), "").await.0, 200);
    assert_eq!(raw(addr, &keyed(&[&shop.key, &shop.key]), "").await.0, 403);
    assert_eq!(raw(addr, &keyed(&[&shop.key, "other"]), "").await.0, 403);
    assert_eq!(
        raw(
            addr,
            &format!(
                "HEAD /shop/prod/orders HTTP/1.1\r\nHost: g\r\nx-api-key: {}",
                shop.key
            ),
            ""
        )
        .await
        .0,
        200
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn ambiguous_framing_is_refused_not_guessed(pool: PgPool) {
    let shop = shop(&pool, &[]).await;
    let addr = shop.proxy.addr;
    let no_host = "GET /shop/prod/items HTTP/1.1";
    assert_eq!(raw(addr, no_host, "").await.0, 400);
    let two_hosts = "GET /shop/prod/items HTTP/1.1\r\nHost: a\r\nHost: b";
    assert_eq!(raw(addr, two_hosts, "").await.0, 400);
    // HTTP/1.0 had no Host.
    assert_eq!(raw(addr, "GET /shop/prod/items HTTP/1.0", "").await.0, 200);

    let gzip = "POST /shop/prod/items HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: gzip, chunked";
    assert_eq!(raw(addr, gzip, "3\r\nabc\r\n0\r\n\r\n").await.0, 501);
    let chunked = "POST /shop/prod/items HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked";
    let (status, body) = raw(addr, chunked, "3\r\nabc\r\n0\r\n\r\n").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""body":"abc""#), "{body}");
    // A broken chunk is the client's doing: 400, not 502.
    for broken in ["ZZ\r\nabc\r\n0\r\n\r\n", "3\r\nabcdef\r\n0\r\n\r\n"] {
        assert_eq!(raw(addr, chunked, broken).await.0, 400, "{broken:?}");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_integrations_query_parameters_are_kept(pool: PgPool) {
    let upstream = Upstream::start().await;
    let items = http_proxy(&format!("http://{}/echo/items?role=reader", upstream.addr));
    let shop = shop(&pool, &[("GET /items", items)]).await;
    let addr = shop.proxy.addr;
    for (query, sent) in [
        ("role=admin&x=1", "role=reader&x=1"),
        ("%72ole=admin&x=1", "role=reader&x=1"),
        ("x=1&role=admin&role=root", "role=reader&x=1"),
        ("", "role=reader"),
    ] {
        let head = format!("GET /shop/prod/items?{query} HTTP/1.1\r\nHost: g");
        let (status, body) = raw(addr, &head, "").await;
        assert_eq!(status, 200, "{query}");
        let seen: Value = serde_json::from_str(&body).expect("echo");
        assert_eq!(seen["query"], sent, "{query}");
    }
}

/// An upstream that answers every connection with `response`, then closes.
async fn raw_upstream(response: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn what_an_odd_upstream_sends_reaches_the_client_as_http_1_1(pool: PgPool) {
    let old = raw_upstream("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let broken = raw_upstream("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n").await;
    let routes = [
        ("GET /old", http_proxy(&format!("http://{old}/"))),
        ("GET /broken", http_proxy(&format!("http://{broken}/"))),
        ("GET /mock", mock("fine")),
    ];
    let shop = shop(&pool, &routes).await;
    let addr = shop.proxy.addr;

    let (response, _) = exchange(addr, b"GET /shop/prod/old HTTP/1.1\r\nHost: g\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");

    // The head is sent, then the connection is cut: a broken response the client can
    // tell from a whole one, never an empty reply.
    let (response, closed) =
        exchange(addr, b"GET /shop/prod/broken HTTP/1.1\r\nHost: g\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response:?}");
    assert!(!response.ends_with("0\r\n\r\n"), "{response:?}");
    assert!(closed.is_some(), "the connection is closed");
    // And the proxy serves the next request.
    assert_eq!(
        raw(addr, "GET /shop/prod/mock HTTP/1.1\r\nHost: g", "")
            .await
            .0,
        200
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn made_up_methods_paths_and_hosts_add_no_metric_series(pool: PgPool) {
    let shop = shop(&pool, &[]).await;
    let addr = shop.proxy.addr;
    let series = || async {
        let text = gatehouse_tests::client()
            .get(format!("http://{}/metrics", shop.proxy.status_addr))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        (
            text.lines().filter(|l| !l.starts_with('#')).count(),
            text.len(),
        )
    };
    let junk = |i: usize| {
        format!(
            "X{i}METHOD /shop/prod/junk/{i}?q={i} HTTP/1.1\r\nHost: host-{i}.example\r\n\
             User-Agent: agent-{i}\r\nConnection: close\r\n\r\n"
        )
    };
    let elsewhere = |i: usize| {
        format!("GET /nothing-{i}/stage-{i}/x HTTP/1.1\r\nHost: h{i}\r\nConnection: close\r\n\r\n")
    };
    // Once each, so every status class these requests get has its series.
    exchange(addr, junk(0).as_bytes()).await;
    exchange(addr, elsewhere(0).as_bytes()).await;
    let (before, bytes_before) = series().await;
    for i in 1..=1_000 {
        exchange(addr, junk(i).as_bytes()).await;
        exchange(addr, elsewhere(i).as_bytes()).await;
    }
    let (after, bytes_after) = series().await;
    assert_eq!(after, before, "series after 2,000 made-up requests");
    println!(
        "proxy /metrics: {before} series and {bytes_before} bytes before 2,000 made-up requests, \
         {after} series and {bytes_after} bytes after"
    );
}
