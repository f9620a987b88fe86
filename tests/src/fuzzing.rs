//! The bodies of the fuzz targets under `fuzz/` (`just fuzz`), here so that
//! `tests/suite/fuzz_regressions.rs` replays the committed seeds and crashers through the
//! very same checks under a stable `cargo test`.
//!
//! Each target takes the fuzzer's raw bytes. Refusing an input is always fine; a panic is
//! a finding: either the code panicked, or a property it promises broke (each assertion
//! says which).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{Method, Uri};
use gatehouse_model::request_path;
use gatehouse_model::route_key::{PathPattern, Segment};
use gatehouse_model::{
    ConfigSnapshot, RouteKey, RouteSelection, RouteTable, StageVariables, UriTemplate,
};
use gatehouse_proxy::CompiledConfig;
use gatehouse_proxy::MeterRegistry;
use gatehouse_proxy::QuotaLedger;
use gatehouse_proxy::RunningProxy;
use gatehouse_proxy::{has_dot_segment, makes_dot_segment};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::Upstream;

/// A fuzz target's body: it takes the fuzzer's bytes and panics on a finding.
pub type Target = fn(&[u8]);

/// Every target, by its name under `fuzz/fuzz_targets`, `fuzz/seeds` and
/// `fuzz/regressions`.
pub const TARGETS: [(&str, Target); 5] = [
    ("route_key", route_key),
    ("substitution", substitution),
    ("selection_expression", selection_expression),
    ("snapshot", snapshot),
    ("http1", http1),
];

/// Route keys, one a line, up to a blank line; then requests, `METHOD /path` a line.
///
/// Every key that parses prints back as written and parses again to itself. The keys
/// compile into a table unless two of them match the same requests, or two greedy ones
/// meet where the prefix tree cannot hold both. Then every request finds a route that
/// really matches it (checked against a plain segment-by-segment matcher), finds one
/// whenever one matches, gets the values of that route's parameters, and finds a literal
/// route of its method, or else an `ANY` one, before any route with parameters.
pub fn route_key(data: &[u8]) {
    let Ok(text) = str::from_utf8(data) else {
        return;
    };
    check_route_key(text);
    let mut lines = text.split('\n');
    let mut keys = Vec::new();
    for line in lines.by_ref().take_while(|line| !line.is_empty()) {
        if let Some(key) = check_route_key(line) {
            keys.push(key);
        }
    }
    let table = match RouteTable::compile(keys.iter().cloned().zip(0..)) {
        Ok(table) => table,
        Err(gatehouse_model::CompileError::Duplicate {
            route_key,
            existing,
        }) => {
            let shape = |k: &str| {
                RouteKey::parse(k)
                    .ok()
                    .map(|k| (k.method(), k.path().map(PathPattern::shape)))
            };
            assert_eq!(
                shape(&route_key),
                shape(&existing),
                "refused as duplicates, `{route_key}` and `{existing}` differ"
            );
            return;
        }
        // The prefix tree cannot hold a greedy route beside another greedy one with a
        // `{param}` where the first has `{proxy+}` (`/{proxy+}`, `/{id}/pets/{rest+}`):
        // refused, by the admin API too. Nothing else may conflict.
        Err(gatehouse_model::CompileError::Conflict { route_key, reason }) => {
            assert!(
                route_key.ends_with("+}"),
                "valid route keys {keys:?} do not compile together: `{route_key}`: {reason}"
            );
            return;
        }
        Err(e) => panic!("valid route keys {keys:?} do not compile together: {e}"),
    };
    for request in lines {
        let Some((method, path)) = request.split_once(' ') else {
            continue;
        };
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            continue;
        };
        check_lookup(&keys, &table, &method, path);
    }
}

/// Parses `line` both ways a route key is read; checks that a key that parses prints back
/// as written and reads back to itself. Returns the HTTP key.
fn check_route_key(line: &str) -> Option<RouteKey> {
    if let Ok(key) = RouteKey::parse_websocket(line) {
        assert_eq!(
            key.to_string(),
            line,
            "a WebSocket key prints back as written"
        );
        assert_eq!(
            RouteKey::parse_websocket(&key.to_string()).as_ref(),
            Ok(&key)
        );
    }
    let key = RouteKey::parse(line).ok()?;
    assert_eq!(key.to_string(), line, "a route key prints back as written");
    assert_eq!(RouteKey::parse(&key.to_string()).as_ref(), Ok(&key));
    let json = serde_json::to_string(&key).expect("a route key serializes");
    let back: RouteKey = serde_json::from_str(&json).expect("a serialized route key reads back");
    assert_eq!(back, key, "a route key survives JSON");
    assert!(key.param_names().len() <= gatehouse_model::route_key::MAX_PARAMS);
    Some(key)
}

fn check_lookup(keys: &[RouteKey], table: &RouteTable<usize>, method: &Method, path: &str) {
    let found = table.at(method, path);
    if !path.starts_with('/') {
        return;
    }
    let serves = |key: &RouteKey| {
        key.method()
            .is_some_and(|m| m == gatehouse_model::Method::Any || m.as_str() == method.as_str())
    };
    let matching: Vec<(usize, Vec<&str>)> = keys
        .iter()
        .enumerate()
        .filter(|(_, key)| serves(key))
        .filter_map(|(i, key)| Some((i, segment_match(key.path()?, path)?)))
        .collect();
    let default = keys.iter().position(|k| *k == RouteKey::Default);
    // matchit 0.8.4 may pick, for a path with an empty segment, a greedy route that puts
    // it in a `{param}`; the table refuses that pick, and matchit offers no other, though
    // another greedy route may match (matchit 0.8.6 backtracks). Only soundness is checked.
    let complete = !path.contains("//");
    let Some(found) = found else {
        assert!(
            (matching.is_empty() || !complete) && default.is_none(),
            "{method} {path} found nothing, though {:?} match it",
            matching.iter().map(|(i, _)| &keys[*i]).collect::<Vec<_>>()
        );
        return;
    };
    let index = *found.value;
    if Some(index) == default {
        assert!(
            matching.is_empty() || !complete,
            "{method} {path} went to $default, though {:?} match it",
            matching.iter().map(|(i, _)| &keys[*i]).collect::<Vec<_>>()
        );
        return;
    }
    let Some((_, values)) = matching.iter().find(|(i, _)| *i == index) else {
        panic!(
            "{method} {path} went to `{}`, which does not match it",
            keys[index]
        );
    };
    let got: Vec<&str> = found.param_values().collect();
    assert_eq!(
        &got, values,
        "parameters of {method} {path} on `{}`",
        keys[index]
    );
    let literal = |any: bool| {
        matching.iter().find(|(i, _)| {
            keys[*i].param_names().is_empty()
                && (keys[*i].method() == Some(gatehouse_model::Method::Any)) == any
        })
    };
    if let Some((best, _)) = literal(false).or_else(|| literal(true)) {
        assert_eq!(
            index, *best,
            "{method} {path} went to `{}`, not to the literal `{}`",
            keys[index], keys[*best]
        );
    }
}

/// The values of `pattern`'s parameters in `path`, if it matches: one non-empty segment
/// per `{param}`, one or more characters of the rest for a greedy `{param+}`.
fn segment_match<'p>(pattern: &PathPattern, path: &'p str) -> Option<Vec<&'p str>> {
    let mut rest = path.strip_prefix('/')?;
    let segments = pattern.segments();
    if segments.is_empty() {
        return rest.is_empty().then(Vec::new);
    }
    let mut values = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if let Segment::Greedy(_) = segment {
            values.push(rest);
            return (!rest.is_empty()).then_some(values);
        }
        let (piece, after) = match rest.split_once('/') {
            Some((piece, after)) => (piece, Some(after)),
            None => (rest, None),
        };
        match segment {
            Segment::Literal(literal) if piece != literal => return None,
            Segment::Param(_) if piece.is_empty() => return None,
            Segment::Param(_) => values.push(piece),
            _ => {}
        }
        match (after, last) {
            (None, true) => return Some(values),
            (Some(after), false) => rest = after,
            _ => return None,
        }
    }
    None
}

/// Four lines: an integration URI template, a route key, stage variables
/// (`name=value` separated by spaces) and a request target (`/path?query`).
///
/// When the template binds to the route and stage, and the request reaches the route,
/// the URI the proxy would call keeps the scheme and authority the template fixes (a
/// client never chooses where the gateway connects), a parameter landing in the query
/// adds no query parameter, and no `.` or `..` segment appears that the template itself
/// does not hold (the proxy refuses the request when values make one with the template's
/// text).
pub fn substitution(data: &[u8]) {
    let Ok(text) = str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(4, '\n');
    let (template_line, key_line, variables_line, target_line) = (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    );
    let Ok(template) = UriTemplate::parse(template_line) else {
        return;
    };
    assert_eq!(template.as_str(), template_line);
    let Ok(key) = RouteKey::parse(key_line) else {
        return;
    };
    let variables: BTreeMap<String, String> = variables_line
        .split(' ')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let Ok(variables) = StageVariables::parse(variables) else {
        return;
    };
    let Ok(bound) = template.bind(&variables, &key.param_names()) else {
        return;
    };
    let sample = bound
        .render(|_| "x", None)
        .expect("binding checked the URI with plain values");
    let Ok(target) = target_line.parse::<Uri>() else {
        return;
    };
    // The proxy answers 400 before looking for a route when the path cannot be normalised,
    // and matches the normalised path otherwise.
    let Ok(path) = request_path::normalize(target.path()) else {
        return;
    };
    assert!(
        !has_dot_segment(&path) && !path.contains("%2F") && !path.contains("%5C"),
        "normalising {target} left {path}"
    );
    assert_eq!(
        request_path::normalize(&path).as_deref(),
        Ok(&*path),
        "normalising {target} twice changed it"
    );
    let path = &*path;
    let method = match key.method() {
        Some(gatehouse_model::Method::Any) | None => Method::GET,
        Some(m) => Method::from_bytes(m.as_str().as_bytes()).expect("a route key's method"),
    };
    let table = RouteTable::compile([(key, ())]).expect("one HTTP route key compiles alone");
    let Some(found) = table.at(&method, path) else {
        return;
    };
    let Ok(rendered) = bound.render(|i| found.param(i), target.query()) else {
        return;
    };
    if makes_dot_segment(&bound, &rendered) {
        // The proxy answers 400 rather than call it.
        return;
    }
    assert_eq!(
        (rendered.scheme(), rendered.authority()),
        (sample.scheme(), sample.authority()),
        "path parameters moved `{template}` from {sample} to {rendered}"
    );
    if let Ok(expected) = bound.render(|_| "x", target.query()) {
        let pairs = |uri: &Uri| uri.query().map(|q| q.split('&').count());
        assert_eq!(
            pairs(&rendered),
            pairs(&expected),
            "path parameters added query parameters to `{template}`: {rendered}"
        );
    }
    assert!(
        !has_dot_segment(rendered.path()) || has_dot_segment(sample.path()),
        "path parameters made a dot segment in `{template}`: {rendered}"
    );
}

/// A route selection expression, a newline, then a message (any bytes).
///
/// An expression that parses prints back as written; the route key it selects is the
/// string at its path of fields in the message read as JSON, and nothing else.
pub fn selection_expression(data: &[u8]) {
    let (expression, message) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let _ = RouteSelection::default().select(message);
    let Ok(expression) = str::from_utf8(expression) else {
        return;
    };
    let Ok(selection) = RouteSelection::parse(expression) else {
        return;
    };
    assert_eq!(selection.as_str(), expression);
    assert_eq!(
        RouteSelection::parse(&selection.to_string()).as_ref(),
        Ok(&selection)
    );
    let selected = selection.select(message);
    assert_eq!(
        selected,
        select_by_walking(expression, message),
        "`{expression}` selected differently from a walk of its fields"
    );
    if let Some(key) = selected {
        let _ = RouteKey::parse_websocket(&key);
    }
}

/// What `expression` (already valid) selects in `message`, by walking the JSON value one
/// field at a time; a field of digits indexes an array, as in a JSON pointer.
fn select_by_walking(expression: &str, message: &[u8]) -> Option<String> {
    let inner = expression
        .strip_prefix("${")
        .and_then(|e| e.strip_suffix('}'))
        .or_else(|| expression.strip_prefix('$'))?;
    let fields = inner.strip_prefix("request.body.")?;
    let value: Value = serde_json::from_slice(message).ok()?;
    value.as_object()?;
    let mut at = &value;
    for field in fields.split('.') {
        at = match at {
            Value::Object(map) => map.get(field)?,
            Value::Array(items) => {
                let canonical = field == "0" || !field.starts_with('0');
                if !canonical || !field.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                items.get(field.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    at.as_str().map(str::to_owned)
}

/// Bytes as the proxy receives a snapshot from the control plane or reads it from its
/// disk cache (`cache::load` is a read and this decode), then the same bytes as the
/// content of a snapshot sealed with their hash, so the fuzzer gets past the hash check
/// into stages, routes, keys and plans.
///
/// A snapshot that compiles compiles again on top of itself (what the next poll does),
/// and every stage and key it holds can be found.
pub fn snapshot(data: &[u8]) {
    compile_snapshot(data);
    compile_snapshot(&seal(data));
}

/// `content` in a snapshot envelope whose hash matches it.
pub fn seal(content: &[u8]) -> Vec<u8> {
    let hash: String = gatehouse_model::usage::hash_key(content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let head = format!(r#"{{"schema":1,"version":1,"hash":"{hash}","content":"#);
    [head.as_bytes(), content, b"}"].concat()
}

fn compile_snapshot(bytes: &[u8]) {
    let Ok(snapshot) = ConfigSnapshot::decode(bytes) else {
        return;
    };
    let ledger = QuotaLedger::default();
    let meters = MeterRegistry::default();
    let authorizers = gatehouse_proxy::Authorizers::default();
    let Ok(first) = CompiledConfig::compile(&snapshot, None, &ledger, Some(&meters), &authorizers)
    else {
        return;
    };
    let second = CompiledConfig::compile(
        &snapshot,
        Some(&first),
        &ledger,
        Some(&meters),
        &authorizers,
    )
    .expect("a snapshot that compiled compiles again on top of itself");
    assert_eq!(
        (second.version, &second.hash),
        (snapshot.version, &snapshot.hash)
    );
    for stage in &snapshot.stages {
        let path = format!("/{}/{}/", stage.api_slug, stage.stage);
        assert!(second.stage(&path).is_some(), "stage at {path} not found");
    }
    for key in &snapshot.keys {
        let mut hash = [0u8; 32];
        for (byte, pair) in hash.iter_mut().zip(key.hash.as_bytes().chunks(2)) {
            let pair = str::from_utf8(pair).expect("compiled keys have hex hashes");
            *byte = u8::from_str_radix(pair, 16).expect("compiled keys have hex hashes");
        }
        assert!(second.key(&hash).is_some(), "key {} not found", key.id);
    }
}

/// Bytes sent as one client connection to a proxy running in this process (started on
/// the first input, serving `fuzz_snapshot`), the sending side closed once the proxy has
/// gone quiet, the answer read for a second at most. The proxy must not panic, and must answer a well-formed
/// request on a new connection afterwards.
pub fn http1(data: &[u8]) {
    let proxy = FuzzProxy::get();
    proxy.runtime.block_on(async {
        exchange(proxy.addr, data).await;
        let answer = exchange(proxy.addr, CANARY).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 200 ") && text.ends_with("pong"),
            "after that input, the proxy answered the canary request with {text:?}"
        );
    });
    assert!(
        !PROXY_PANICKED.load(Ordering::SeqCst),
        "the proxy panicked on that input (the panic is printed above)"
    );
}

/// A request the proxy must always answer with `200 pong`.
const CANARY: &[u8] = b"GET /canary/live/ping HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n\r\n";
/// Longest an exchange may take.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(1);
/// How long the proxy may take to start answering, and to go on, before the client
/// closes its sending side.
const FIRST_BYTE: Duration = Duration::from_millis(50);
const QUIET: Duration = Duration::from_millis(5);
/// Name of the proxy's runtime threads, so a panic there can be told from the caller's.
const PROXY_THREAD: &str = "fuzz-proxy";
/// Set by the panic hook when a thread of the proxy's runtime panics.
static PROXY_PANICKED: AtomicBool = AtomicBool::new(false);

/// The API key `fuzz_snapshot` holds.
pub const FUZZ_API_KEY: &str = "fuzz-key-0123456789abcdefghij";

/// Sends `bytes` and reads the answer; the sending side is closed once the proxy has gone
/// quiet (hyper drops a request whose client half-closes before its answer is written).
/// The whole exchange takes `EXCHANGE_LIMIT` at most.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let connected = tokio::time::timeout(EXCHANGE_LIMIT, TcpStream::connect(addr)).await;
    let Ok(Ok(mut stream)) = connected else {
        panic!("the proxy no longer accepts connections: {connected:?}");
    };
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(EXCHANGE_LIMIT, async {
        // The proxy may answer and close before reading everything: not an error.
        let _ = stream.write_all(bytes).await;
        let mut half_closed = false;
        let mut buffer = [0u8; 8192];
        loop {
            let quiet = if answer.is_empty() { FIRST_BYTE } else { QUIET };
            match tokio::time::timeout(quiet, stream.read(&mut buffer)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
                Err(_) if !half_closed => {
                    let _ = stream.shutdown().await;
                    half_closed = true;
                }
                Err(_) => {}
            }
        }
    })
    .await;
    answer
}

/// A proxy serving `fuzz_snapshot` from its disk cache (its control plane is never
/// reachable), with a demo upstream, on a runtime of its own.
struct FuzzProxy {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    _proxy: RunningProxy,
    _upstream: Upstream,
}

impl FuzzProxy {
    fn get() -> &'static FuzzProxy {
        static PROXY: OnceLock<FuzzProxy> = OnceLock::new();
        PROXY.get_or_init(FuzzProxy::start)
    }

    fn start() -> FuzzProxy {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(PROXY_THREAD) {
                PROXY_PANICKED.store(true, Ordering::SeqCst);
            }
            previous(info);
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(PROXY_THREAD)
            .enable_all()
            .build()
            .expect("a runtime for the proxy");
        let (proxy, upstream) = runtime.block_on(async {
            let upstream = Upstream::start().await;
            // The proxy reads the snapshot at start; the folder is not needed afterwards.
            let dir = tempfile::tempdir().expect("a temporary folder");
            gatehouse_proxy::cache::store(dir.path(), &fuzz_snapshot(upstream.addr).encode())
                .await
                .expect("snapshot stored");
            let proxy = crate::start_proxy_tuned("http://127.0.0.1:9", dir.path(), |config| {
                config.access_log =
                    gatehouse_proxy::config::AccessLogTarget::File("/dev/null".into());
                config.management_token = Some("fuzz-management-token".to_owned());
                config.connect_timeout = Duration::from_millis(500);
                config.max_body_bytes = 64 * 1024;
            })
            .await;
            assert_eq!(
                proxy.config_version(),
                Some(1),
                "the proxy serves the fuzz snapshot"
            );
            (proxy, upstream)
        });
        FuzzProxy {
            addr: proxy.addr,
            runtime,
            _proxy: proxy,
            _upstream: upstream,
        }
    }
}

/// What the `http1` target's proxy serves, with `upstream` as its integrations' host:
/// an HTTP API `pets` (proxied and greedy routes, a keyed mock, `$default`, a WebSocket
/// pass-through, an access log, a usage plan with a key), a WebSocket API `chat`, and
/// `canary/live/ping`.
pub fn fuzz_snapshot(upstream: SocketAddr) -> ConfigSnapshot {
    let stage = |api: u32, slug: &str, protocol: &str, name: &str, routes: Value| {
        json!({"api_id": fuzz_id(api), "api_slug": slug, "protocol": protocol, "stage": name,
            "deployment_id": fuzz_id(api + 100), "variables": {"up": upstream.to_string(), "v": "2"},
            "routes": routes})
    };
    let mut orders = route(16, "POST /orders", mock(201, "created"));
    orders["api_key_required"] = json!(true);
    let mut pets = stage(
        1,
        "pets",
        "HTTP",
        "prod",
        json!([
            route(
                11,
                "GET /pets",
                proxy_to("http://${stageVariables.up}/pets")
            ),
            route(
                12,
                "GET /pets/{id}",
                proxy_to("http://${stageVariables.up}/pets/{id}?v=${stageVariables.v}&id={id}")
            ),
            route(
                13,
                "ANY /echo/{proxy+}",
                proxy_to("http://${stageVariables.up}/echo/{proxy}")
            ),
            route(
                14,
                "GET /slow",
                proxy_to("http://${stageVariables.up}/slow")
            ),
            route(
                15,
                "ANY /ws/{proxy+}",
                json!({"type": "HTTP_PROXY", "uri": format!("http://{upstream}/echo/{{proxy}}"), "timeout_ms": 1000, "websocket_upgrade": true})
            ),
            orders,
            route(17, "GET /gone", proxy_to("http://127.0.0.1:9/gone")),
            route(18, "$default", mock(404, "nothing here")),
        ]),
    );
    pets["access_log"] = json!(true);
    let mut chat = stage(
        2,
        "chat",
        "WEBSOCKET",
        "prod",
        json!([
            route(
                21,
                "$connect",
                proxy_to("http://${stageVariables.up}/echo/connect")
            ),
            route(22, "$disconnect", mock(200, "")),
            route(
                23,
                "sendmessage",
                proxy_to("http://${stageVariables.up}/echo/send")
            ),
            route(24, "$default", mock(200, "default")),
        ]),
    );
    chat["route_selection"] = json!("$request.body.action");
    let canary = stage(
        3,
        "canary",
        "HTTP",
        "live",
        json!([route(31, "GET /ping", mock(200, "pong"))]),
    );
    let stages = serde_json::from_value(json!([pets, chat, canary])).expect("valid stages");
    let plan = fuzz_id(41);
    let plans = serde_json::from_value(json!([{
        "id": plan,
        "throttle": {"rate": 100000.0, "burst": 100000},
        "quota": {"limit": 1_000_000_000_000_u64, "period": "DAY"},
        "stages": [{"api_id": fuzz_id(1), "stage": "prod",
            "route_throttles": {"POST /orders": {"rate": 50000.0, "burst": 1000}}}],
    }]))
    .expect("valid plans");
    let hash: String = gatehouse_model::usage::hash_key(FUZZ_API_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let keys = serde_json::from_value(json!([{"id": fuzz_id(51), "hash": hash, "plans": [plan]}]))
        .expect("valid keys");
    ConfigSnapshot::new(1, stages, keys, plans)
}

fn fuzz_id(n: u32) -> String {
    format!("00000000-0000-0000-0000-{n:012}")
}

fn route(n: u32, key: &str, integration: Value) -> Value {
    json!({"id": fuzz_id(n), "route_key": key, "integration": integration})
}

fn proxy_to(uri: &str) -> Value {
    json!({"type": "HTTP_PROXY", "uri": uri, "timeout_ms": 1000})
}

fn mock(status: u16, body: &str) -> Value {
    let headers = json!({"content-type": "text/plain", "x-mock": "yes"});
    json!({"type": "MOCK", "status": status, "headers": headers, "body": body})
}
