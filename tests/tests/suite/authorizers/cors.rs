//! CORS in a real browser: headless Chromium on one origin fetching the API on another,
//! through preflights and simple requests, allowed and refused, with credentials.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use gatehouse_tests::browser::Browser;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::net::TcpListener;

use super::Gateway;

const MIGRATOR: &sqlx::migrate::Migrator = &gatehouse_control_plane::MIGRATOR;

/// The page of a web app: it fetches what its URL's query says (`{"url", "init"}` as
/// JSON) as soon as it loads, the way an app's own script would, and writes what it got
/// (status, an exposed header, body) or the browser's error into `#result`.
const PAGE: &str = r#"<!doctype html><title>app</title><pre id="result">pending</pre><script>
const show = v => { document.getElementById('result').textContent = JSON.stringify(v); };
const ask = JSON.parse(decodeURIComponent(location.search.slice(1)));
fetch(ask.url, ask.init)
    .then(async r => show({status: r.status, requestId: r.headers.get('x-request-id'), body: await r.text()}))
    .catch(e => show({error: String(e)}));
</script>"#;

/// A web app's origin: a server on a loopback port answering with [`PAGE`].
async fn page_origin() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind page");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().route("/", get(|| async { Html(PAGE) }));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

/// Opens the app on `origin` and has it run `fetch(url, init)`: what it got, or the
/// browser's error.
async fn fetch(browser: &Browser, origin: SocketAddr, url: &str, init: Value) -> Value {
    let ask = json!({"url": url, "init": init}).to_string();
    let fragment: String = ask
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    browser
        .goto(&format!("http://{origin}/?{fragment}"))
        .await
        .expect("the app loads");
    for _ in 0..100 {
        let text = browser.text_of("#result").await.expect("result");
        if text != "pending" {
            return serde_json::from_str(&text).expect("the page writes JSON");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the app's fetch of {url} never finished");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_page_on_an_allowed_origin_reads_the_api_and_one_on_another_origin_cannot(pool: PgPool) {
    let (allowed, _allowed_task) = page_origin().await;
    let (other, _other_task) = page_origin().await;
    let gw = Gateway::start(&pool).await;
    let admin = gw.admin();
    let (status, body) = admin
        .patch(
            &format!("/apis/{}", gw.api),
            json!({"cors_configuration": {
            "allow_origins": [format!("http://{allowed}")],
            "allow_methods": ["GET", "POST"],
            "allow_headers": ["content-type", "x-trace"],
            "expose_headers": ["x-request-id"],
            "max_age": 300,
            "allow_credentials": true}}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    gw.route(json!({"route_key": "ANY /items", "integration": gw.echo("/items")}))
        .await;
    gw.deploy().await;
    let api = gw.url("/items");
    let direct = gatehouse_tests::client()
        .get(&api)
        .header("origin", format!("http://{allowed}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        direct
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or("")),
        Some(format!("http://{allowed}").as_str()),
        "{:?}",
        direct.headers()
    );

    let browser =
        Browser::start(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cors-screenshots"))
            .await
            .expect("Chromium starts");
    let simple = fetch(&browser, allowed, &api, json!({})).await;
    assert_eq!(simple["status"], 200, "{simple}");
    assert!(
        simple["requestId"].is_string(),
        "an exposed header is readable: {simple}"
    );
    let preflighted = fetch(
        &browser,
        allowed,
        &api,
        json!({"method": "POST",
        "headers": {"content-type": "application/json", "x-trace": "1"}, "body": "{}",
        "credentials": "include"}),
    )
    .await;
    assert_eq!(preflighted["status"], 200, "{preflighted}");
    let echoed: Value =
        serde_json::from_str(preflighted["body"].as_str().unwrap_or("")).expect("echo");
    assert_eq!(
        echoed["method"], "POST",
        "the real request followed the preflight"
    );
    let not_allowed_header = fetch(
        &browser,
        allowed,
        &api,
        json!({"headers": {"x-secret": "1"}}),
    )
    .await;
    assert!(
        not_allowed_header["error"].is_string(),
        "{not_allowed_header}"
    );
    let not_allowed_method = fetch(&browser, allowed, &api, json!({"method": "DELETE"})).await;
    assert!(
        not_allowed_method["error"].is_string(),
        "{not_allowed_method}"
    );

    let refused = fetch(&browser, other, &api, json!({})).await;
    assert!(
        refused["error"].is_string(),
        "another origin cannot read the API: {refused}"
    );
    browser.close().await.expect("close");

    // What the browser saw, spelled out: a preflight without a matching route is the
    // gateway's, and a foreign origin gets no CORS headers at all.
    let http = gatehouse_tests::client();
    let preflight = http
        .request(reqwest::Method::OPTIONS, gw.url("/no-such-route"))
        .header("origin", format!("http://{allowed}"))
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("answer");
    assert_eq!(preflight.status(), reqwest::StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        format!("http://{allowed}").as_str()
    );
    assert_eq!(preflight.headers()["access-control-max-age"], "300");
    let foreign = http
        .get(&api)
        .header("origin", format!("http://{other}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(foreign.status(), reqwest::StatusCode::OK);
    assert!(foreign
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}
