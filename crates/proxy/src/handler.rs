//! The request path: find the stage and route in the current snapshot, then answer a mock
//! or forward upstream. The snapshot guard is dropped before any await, so a request never
//! pins a snapshot while it waits on the network.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use gatehouse_model::integration::BoundUri;
use gatehouse_model::request_path;
use http::{header, HeaderValue, Request, Response, Version};
use http_body::Body as _;
use http_body_util::{Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::access_log::AccessLog;
use crate::admission::{self, Admitted, Call};
use crate::body_timeout::{BodyReadTimeout, IdleTimeout};
use crate::client_body::{ClientBody, ClientBodyError};
use crate::compiled::{split_stage, Action, CompiledConfig};
use crate::drain::Drain;
use crate::errors::{ProxyBody, Reject};
use crate::forward::{rewrite_request_headers, strip_hop_by_hop, Peer, UpstreamClient};
use crate::limiter::EverySecond;
use crate::meters::{KeyEvents, MeterRegistry, Unmatched};
use crate::passthrough;
use crate::quota::{KeyUse, QuotaLedger};
use crate::recording::{micros, Counted, LogDraft, Recording};
use crate::request_id::{RequestIds, REQUEST_ID};
use crate::shared_quota::SharedCounters;
use crate::telemetry::Telemetry;
use crate::websocket::{self, WebSockets};
use crate::well_formed;

/// What every request reads: the published snapshot and the shared upstream client.
pub struct Shared {
    pub config: ArcSwapOption<CompiledConfig>,
    pub client: UpstreamClient,
    pub request_ids: RequestIds,
    pub max_body_bytes: u64,
    /// Longest request target served (path and query).
    pub max_uri_bytes: usize,
    /// Longest wait for the next part of a request body.
    pub body_timeout: Duration,
    /// Quota counters, shared by every snapshot compiled.
    pub quotas: QuotaLedger,
    /// Keys used since the last usage report.
    pub key_use: KeyUse,
    /// Quota counts shared with other proxies through Redis, when configured.
    pub shared_counters: Arc<SharedCounters>,
    /// Whether traffic is measured (route meters, key events, access logs).
    pub metrics_enabled: bool,
    pub meters: MeterRegistry,
    pub key_events: KeyEvents,
    pub unmatched: Unmatched,
    pub access_log: AccessLog,
    pub telemetry: Telemetry,
    pub websockets: WebSockets,
    /// What shutdown waits for: client connections and WebSocket sessions.
    pub drain: Drain,
}

impl Shared {
    /// The meters snapshots are compiled with; `None` when metrics are off.
    pub fn meter_registry(&self) -> Option<&MeterRegistry> {
        self.metrics_enabled.then_some(&self.meters)
    }
}

/// The body of every response: the proxy's, with its request's recording attached.
pub type ResponseBody = Counted<ProxyBody, Recording>;

/// Serves one request; never fails (errors become responses). `peer` is the connection it
/// came on, described once per connection.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: Peer,
) -> Response<ResponseBody> {
    let start = Instant::now();
    let request_id = shared.request_ids.next();
    // Set once the stage is known; dropped with this future if the client goes away.
    let mut recording = None;
    // WebSocket APIs record their own events (and the `@connections` API, none).
    let mut websocket = false;
    let mut response = dispatch(
        &shared,
        req,
        peer,
        &request_id,
        start,
        &mut recording,
        &mut websocket,
    )
    .await;
    response.headers_mut().insert(REQUEST_ID, request_id);
    let status = response.status().as_u16();
    match &mut recording {
        Some(recording) => recording.status = status,
        None if shared.metrics_enabled && !websocket => shared.unmatched.record(status),
        None => {}
    }
    response.map(|body| Counted::new(body, recording))
}

/// Notes, for the access log, that the gateway answered itself.
fn note_refusal(recording: &mut Option<Recording>, reject: Reject) {
    if let Some(recording) = recording {
        recording.error = Some(reject.message());
    }
}

/// The gateway's own answer, noted for the access log.
fn refuse(recording: &mut Option<Recording>, reject: Reject) -> Response<ProxyBody> {
    note_refusal(recording, reject);
    reject.response()
}

async fn dispatch(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    peer: Peer,
    request_id: &HeaderValue,
    start: Instant,
    recording: &mut Option<Recording>,
    websocket: &mut bool,
) -> Response<ProxyBody> {
    let target_len = req
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target_len > shared.max_uri_bytes {
        return Reject::UriTooLong.response();
    }
    if let Err(reject) = well_formed::check(&req) {
        return reject.response();
    }
    // Everything that needs the snapshot happens in this block; the guard is gone before
    // the first await.
    let (next, admitted) = {
        // Routes are matched on the normalised path, and upstreams sent what matched.
        let Ok(path) = request_path::normalize(req.uri().path()) else {
            return Reject::BadRequest.response();
        };
        let guard = shared.config.load();
        let Some(config) = guard.as_ref() else {
            return Reject::NotReady.response();
        };
        let Some((stage, rest)) = config.stage(&path) else {
            return Reject::NotFound.response();
        };
        if stage.websocket.is_some() {
            let name = split_stage(&path).map_or("", |(name, _)| name);
            (
                Next::WebSocket(name.into(), rest.to_owned()),
                Admitted::default(),
            )
        } else {
            let found = stage.routes.at(req.method(), rest);
            let meter = match &found {
                Some(found) => found.value.meter.as_ref(),
                None => stage.unrouted.as_ref(),
            };
            if let Some(meter) = meter {
                let log = stage.access_log.then(|| {
                    log_draft(
                        &req,
                        &peer.ip,
                        request_id,
                        found.as_ref().map(|f| &f.value.route_key),
                    )
                });
                *recording = Some(Recording::start(shared.clone(), meter.clone(), start, log));
            }
            let Some(found) = found else {
                return refuse(recording, Reject::NotFound);
            };
            let route = found.value;
            let admission = admission::admit(
                config,
                stage,
                Call::to(route),
                req.headers(),
                shared,
                recording,
            );
            let admitted = match admission {
                Ok(admitted) => admitted,
                Err(refusal) => {
                    note_refusal(recording, refusal.reject());
                    return refusal.response();
                }
            };
            let next = match &route.action {
                Action::Mock {
                    status,
                    headers,
                    body,
                } => Next::Mock(mock(*status, headers, body)),
                Action::Proxy {
                    uri,
                    timeout,
                    websocket_upgrade,
                } => {
                    let upgrade = websocket_upgrade
                        .then(|| passthrough::websocket_upgrade(req.headers()))
                        .flatten();
                    match uri.render(|i| found.param(i), req.uri().query()) {
                        Ok(upstream) if makes_dot_segment(uri, &upstream) => {
                            return refuse(recording, Reject::BadRequest);
                        }
                        Ok(uri) => Next::Forward(uri, *timeout, upgrade),
                        Err(e) => {
                            tracing::warn!(route = %route.route_key, error = %e, "integration URI invalid for this request");
                            return refuse(recording, Reject::BadGateway);
                        }
                    }
                }
            };
            (next, admitted)
        }
    };
    let rate_headers = match admission::take_shared_quota(shared, admitted).await {
        Ok(rate_headers) => rate_headers,
        Err(refusal) => {
            note_refusal(recording, refusal.reject());
            return refusal.response();
        }
    };
    let mut response = match next {
        Next::WebSocket(stage, rest) => {
            *websocket = true;
            return websocket::serve(shared, req, stage, &rest, peer.ip, request_id, start).await;
        }
        Next::Mock(response) => response,
        Next::Forward(uri, timeout, upgrade) => {
            let exchange = Exchange {
                uri,
                timeout,
                peer,
                upgrade,
            };
            forward(shared, req, exchange, request_id, recording).await
        }
    };
    rate_headers.apply(response.headers_mut());
    response
}

/// What an access log line needs from the request, taken before it is forwarded. Held
/// inline, not boxed: the line is freed on the writer's thread, and memory allocated on
/// one thread and freed on another is what the allocator handles worst.
fn log_draft(
    req: &Request<Incoming>,
    client_ip: &HeaderValue,
    request_id: &HeaderValue,
    route_key: Option<&Arc<str>>,
) -> LogDraft {
    LogDraft {
        time: SystemTime::now(),
        request_id: request_id.clone(),
        ip: client_ip.clone(),
        method: req.method().clone(),
        path: req.uri().path().to_owned(),
        protocol: req.version(),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .map(|ua| String::from_utf8_lossy(ua.as_bytes()).into_owned()),
        route_key: route_key.cloned().unwrap_or_else(|| Arc::from("")),
    }
}

/// What a matched route does next, decided under the snapshot guard.
enum Next {
    Mock(Response<ProxyBody>),
    /// The upstream URI, the route's timeout, and the `Upgrade` header of a WebSocket
    /// upgrade the route passes through.
    Forward(http::Uri, Duration, Option<HeaderValue>),
    /// A WebSocket API's stage (`slug/stage`) and the rest of the path.
    WebSocket(Box<str>, String),
}

/// Where and how a request is forwarded.
struct Exchange {
    uri: http::Uri,
    timeout: Duration,
    peer: Peer,
    upgrade: Option<HeaderValue>,
}

/// True when a path segment is `.` or `..`, written plainly or percent-encoded.
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(is_dot_segment)
}

/// True when `upstream`, rendered from `uri` for a request, has more `.` or `..` segments
/// than the template itself: the request's values made one with the text beside them
/// (`..{proxy}` and `/x`, `%2{a}` and `e`), though none holds one alone.
pub fn makes_dot_segment(uri: &BoundUri, upstream: &http::Uri) -> bool {
    let count = |path: &str| path.split('/').filter(|s| is_dot_segment(s)).count();
    let made = count(upstream.path());
    made > 0
        && uri
            .render(|_| "x", None)
            .map_or(true, |sample| made > count(sample.path()))
}

fn is_dot_segment(segment: &str) -> bool {
    let mut dots = 0;
    let mut rest = segment.as_bytes();
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3
            && rest[0] == b'%'
            && rest[1] == b'2'
            && rest[2].eq_ignore_ascii_case(&b'e')
        {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

/// Logs an upstream failure, at most once a second.
fn warn_upstream_failure(error: &hyper_util::client::legacy::Error) {
    static GATE: EverySecond = EverySecond::new();
    if GATE.ready() {
        tracing::warn!(error = %error, source = ?std::error::Error::source(error), "upstream request failed (logged at most once a second)");
    }
}

fn mock(status: http::StatusCode, headers: &http::HeaderMap, body: &Bytes) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(body.clone())));
    *response.status_mut() = status;
    *response.headers_mut() = headers.clone();
    response
}

async fn forward(
    shared: &Shared,
    mut req: Request<Incoming>,
    exchange: Exchange,
    request_id: &HeaderValue,
    recording: &mut Option<Recording>,
) -> Response<ProxyBody> {
    let Exchange {
        uri,
        timeout,
        peer,
        upgrade,
    } = exchange;
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|len| len > shared.max_body_bytes) {
        return refuse(recording, Reject::PayloadTooLarge);
    }
    let (mut parts, body) = req.into_parts();
    rewrite_request_headers(&mut parts.headers, peer);
    if let Some(upgrade) = &upgrade {
        passthrough::restore_upgrade(&mut parts.headers, upgrade.clone());
    }
    parts.headers.insert(REQUEST_ID, request_id.clone());
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    let limit = usize::try_from(shared.max_body_bytes).unwrap_or(usize::MAX);
    // Request bytes are counted only for requests measured that have a body.
    let counted = match recording.as_mut() {
        Some(recording) if !body.is_end_stream() => {
            let count = Arc::new(AtomicU64::new(0));
            recording.bytes_in = Some(count.clone());
            Some(count)
        }
        _ => None,
    };
    let upstream_request = Request::from_parts(
        parts,
        Counted::new(
            IdleTimeout::new(Limited::new(ClientBody(body), limit), shared.body_timeout),
            counted,
        ),
    );

    let sent = Instant::now();
    let result = tokio::time::timeout(timeout, shared.client.request(upstream_request)).await;
    // Integration latency is that of answers: a refused connection or a timeout is counted
    // in the 5xx errors, not as a fast or slow integration.
    if let (Some(recording), Ok(Ok(_))) = (recording.as_mut(), &result) {
        recording.integration_us = Some(micros(sent.elapsed()));
    }
    match result {
        Err(_) => refuse(recording, Reject::GatewayTimeout),
        Ok(Err(e)) => {
            if caused_by::<LengthLimitError>(&e) {
                return refuse(recording, Reject::PayloadTooLarge);
            }
            if caused_by::<BodyReadTimeout>(&e) {
                return refuse(recording, Reject::RequestTimeout);
            }
            if caused_by::<ClientBodyError>(&e) {
                return refuse(recording, Reject::BadRequest);
            }
            warn_upstream_failure(&e);
            refuse(recording, Reject::BadGateway)
        }
        Ok(Ok(mut response)) => {
            let switched = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
            if switched && client_upgrade.is_none() {
                // Switching protocols without having been asked: nothing can follow.
                return refuse(recording, Reject::BadGateway);
            }
            let upstream_upgrade = switched.then(|| hyper::upgrade::on(&mut response));
            let accepted = response.headers().get(header::UPGRADE).cloned();
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            // The client talks to the gateway, whatever version the upstream speaks.
            parts.version = Version::HTTP_11;
            if let (Some(client), Some(upstream), Some(accepted)) =
                (client_upgrade, upstream_upgrade, accepted)
            {
                passthrough::restore_upgrade(&mut parts.headers, accepted);
                passthrough::splice(client, upstream, shared.drain.token());
            }
            // An upstream that stalls mid-body is given up on after the route's timeout
            // without a byte, so the client sees a broken response instead of waiting.
            Response::from_parts(parts, Either::Left(IdleTimeout::new(body, timeout)))
        }
    }
}

/// True when `e` or an error beneath it is an `E`.
fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if err.is::<E>() {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use gatehouse_model::{StageVariables, UriTemplate};

    use super::{has_dot_segment, makes_dot_segment};

    #[test]
    fn dot_segments_are_found_plain_or_encoded() {
        for path in [
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/%2e%2E/b",
            "/a/.%2e",
            "/a/%2E",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in [
            "/",
            "/a/b",
            "/a/.../b",
            "/a/..b",
            "/a/.hidden",
            "/a/%2e%2e%2e",
            "/v1.2/x",
        ] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }

    #[test]
    fn values_cannot_make_a_dot_segment_with_the_template_text() {
        let rendered = |template: &str, params: &[&str], value: &str| {
            let bound = UriTemplate::parse(template)
                .expect("template")
                .bind(&StageVariables::default(), params)
                .expect("binds");
            let upstream = bound.render(|_| value, None).expect("renders");
            makes_dot_segment(&bound, &upstream)
        };
        assert!(rendered("http://up/a/..{proxy}", &["proxy"], "/x"));
        assert!(rendered("http://up/a/%2{id}", &["id"], "e"));
        assert!(!rendered("http://up/a/..{proxy}", &["proxy"], "x"));
        assert!(!rendered("http://up/a/{proxy}", &["proxy"], "b/c"));
        // The template's own dot segments are the operator's choice.
        assert!(!rendered("http://up/a/../b/{id}", &["id"], "c"));
    }
}
