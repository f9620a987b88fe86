//! WebSocket APIs: a client's upgrade on a stage's invoke URL becomes a connection once
//! the `$connect` route agrees; each message it sends is routed by the stage's route
//! selection expression to an integration, whose answer goes back to the client; when the
//! connection ends, for whatever reason, `$disconnect` is called once.
//!
//! Each connection is one task holding one small read buffer. Routes and limits are read
//! from the snapshot in use at each event, so a redeploy applies to open connections.

pub mod connections;
pub mod events;
pub mod passthrough;
mod session;
pub mod sigv4;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt as _};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::admission::{self, Call, X_API_KEY};
use crate::request::errors::{ProxyBody, Reject};
use crate::server::drain::Token;
use crate::snapshot::{CompiledRoute, CompiledStage, WsStage};
use crate::state::Shared;
use crate::traffic::recording::{Recording, Tally as _};
use crate::traffic::telemetry::Telemetry;
use crate::upstream::{event_client, EventClient};
use crate::websocket::connections::{Connection, ConnectionId, Connections, Outbound};
use crate::websocket::events::{Answer, CallError, Event, EventType, Target};

use session::Session;

/// Bytes read from the socket at a time. Small: most connections are idle, and a
/// connection holds its read buffer for life.
const READ_BUFFER: usize = 2048;
/// Integration calls one connection may have running; beyond, its messages wait unread.
const MAX_CALLS_IN_FLIGHT: usize = 16;
/// Longest a write to a client may take before the client is taken as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the closing handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Everything WebSocket APIs share across connections.
pub struct WebSockets {
    pub connections: Connections,
    /// The token the `@connections` API asks for; `None` keeps that API closed.
    pub management_token: Option<String>,
    pub max_connections: usize,
    client: EventClient,
    closing: watch::Sender<bool>,
}

impl WebSockets {
    pub fn new(
        management_token: Option<String>,
        max_connections: usize,
        connect_timeout: Duration,
        telemetry: &Telemetry,
    ) -> WebSockets {
        WebSockets {
            connections: Connections::default(),
            management_token,
            max_connections,
            client: event_client(connect_timeout, telemetry),
            closing: watch::channel(false).0,
        }
    }

    /// Closes every connection with 1001 (going away), as the proxy stops.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }
}

/// Serves a request to a WebSocket API's stage `stage_key`; `rest` is the path after it.
pub async fn serve(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    stage_key: Box<str>,
    rest: &str,
    client_ip: HeaderValue,
    request_id: &HeaderValue,
    start: Instant,
) -> Response<ProxyBody> {
    // AWS SDKs send `@` percent-encoded.
    let management = rest
        .strip_prefix("/@connections/")
        .or_else(|| rest.strip_prefix("/%40connections/"));
    if let Some(id) = management {
        let max = {
            let guard = shared.config.load();
            let limits = guard
                .as_ref()
                .and_then(|c| c.stage_named(&stage_key))
                .and_then(|s| s.websocket.as_ref())
                .map(|ws| ws.limits.max_message_bytes);
            limits.unwrap_or(0) as usize
        };
        let ws = &shared.websockets;
        return connections::manage(
            &ws.connections,
            ws.management_token.as_deref(),
            &stage_key,
            id,
            max,
            req,
        )
        .await;
    }
    if rest != "/" {
        return Reject::NotFound.response();
    }
    let Some(accept) = handshake_accept(&req) else {
        let mut response = Reject::UpgradeRequired.response();
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        response
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    };
    connect(shared, req, stage_key, accept, client_ip, request_id, start).await
}

/// The `Sec-WebSocket-Accept` of a valid WebSocket handshake request; `None` when the
/// request is not one.
pub fn handshake_accept<B>(req: &Request<B>) -> Option<HeaderValue> {
    let headers = req.headers();
    let valid = req.method() == Method::GET
        && req.version() == http::Version::HTTP_11
        && passthrough::websocket_upgrade(headers).is_some()
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    if !valid || key.len() != 24 {
        return None;
    }
    HeaderValue::from_str(&derive_accept_key(key.as_bytes())).ok()
}

/// What connecting needs from the snapshot, taken while it is held.
struct ConnectPlan {
    recording: Option<Recording>,
    target: Option<Target>,
    route_key: HeaderValue,
    stage: HeaderValue,
    max_message_bytes: usize,
    admitted: admission::Admitted,
    /// The headers holding the connection's API key, when `$connect` requires one.
    key_headers: Option<HeaderMap>,
}

async fn connect(
    shared: &Arc<Shared>,
    mut req: Request<Incoming>,
    stage_key: Box<str>,
    accept: HeaderValue,
    client_ip: HeaderValue,
    request_id: &HeaderValue,
    start: Instant,
) -> Response<ProxyBody> {
    let ws = &shared.websockets;
    if ws.connections.len() >= ws.max_connections {
        shared.telemetry.websocket_refused.inc();
        return Reject::TooManyConnections.response();
    }
    let plan = {
        let guard = shared.config.load();
        let Some(config) = guard.as_ref() else {
            return Reject::NotReady.response();
        };
        let Some((stage, ws_stage)) = config
            .stage_named(&stage_key)
            .and_then(|stage| Some((stage, stage.websocket.as_deref()?)))
        else {
            return Reject::NotFound.response();
        };
        let route = ws_stage.connect.as_ref();
        let mut recording = start_recording(shared, stage, route, start);
        let call = Call {
            route: route.map(|r| r.index),
            key_required: route.is_some_and(CompiledRoute::requires_key),
        };
        let admitted =
            admission::admit_call(config, stage, call, req.headers(), shared, &mut recording);
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => return refused(recording, refusal.response()),
        };
        let target = route.map(|r| Target::of(r, req.uri().query()));
        let target = match target {
            Some(None) => return refused(recording, Reject::BadGateway.response()),
            Some(Some(target)) => Some(target),
            None => None,
        };
        ConnectPlan {
            recording,
            target,
            route_key: HeaderValue::from_static("$connect"),
            stage: ws_stage.stage.clone(),
            max_message_bytes: ws_stage.limits.max_message_bytes as usize,
            admitted,
            key_headers: call
                .key_required
                .then(|| key_headers(req.headers()))
                .flatten(),
        }
    };
    let mut recording = plan.recording;
    if let Err(refusal) = admission::take_shared_quota(shared, plan.admitted).await {
        return refused(recording, refusal.response());
    }
    let id = connections::new_id();
    let id_text = HeaderValue::from_str(&hex::encode(id)).unwrap_or(HeaderValue::from_static("0"));
    let mut protocol = None;
    if let Some(target) = plan.target {
        let event = Event {
            kind: EventType::Connect,
            route_key: plan.route_key,
            connection_id: id_text.clone(),
            stage: plan.stage,
            request_id: request_id.clone(),
            client_ip: client_ip.clone(),
            headers: req.headers().clone(),
            body: Bytes::new(),
        };
        let answer = events::call(&ws.client, target, event, plan.max_message_bytes).await;
        note_latency(&mut recording, &answer);
        match answer {
            Ok(answer) if answer.status.is_success() => {
                protocol = answer.headers.get(header::SEC_WEBSOCKET_PROTOCOL).cloned();
            }
            Ok(answer) => return refused(recording, refusal_of(answer)),
            Err(e) => return refused(recording, failure(e).response()),
        }
    }
    let user_agent = req.headers().get(header::USER_AGENT).cloned();
    let (connection, inbox) = Connection::new(id_text, stage_key, client_ip, user_agent);
    let connection = Arc::new(connection);
    ws.connections.insert(id, connection.clone());
    shared.telemetry.websocket_connections.inc();
    let upgrade = hyper::upgrade::on(&mut req);
    let session = Session {
        shared: shared.clone(),
        id,
        connection,
        key_headers: plan.key_headers,
        _token: shared.drain.token(),
    };
    tokio::spawn(session.run(upgrade, inbox));

    if let Some(recording) = recording.as_mut() {
        recording.status = StatusCode::SWITCHING_PROTOCOLS.as_u16();
    }
    drop(recording);
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(protocol) = protocol {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response
}

/// Only the API key is kept of a keyed connection's handshake, for its messages.
fn key_headers(headers: &HeaderMap) -> Option<HeaderMap> {
    let mut kept = HeaderMap::with_capacity(1);
    kept.insert(X_API_KEY, headers.get(X_API_KEY)?.clone());
    Some(kept)
}

fn start_recording(
    shared: &Arc<Shared>,
    stage: &CompiledStage,
    route: Option<&CompiledRoute>,
    start: Instant,
) -> Option<Recording> {
    let meter = route.map_or(stage.unrouted.as_ref(), |r| r.meter.as_ref())?;
    Some(Recording::start(shared.clone(), meter.clone(), start, None))
}

/// A refused handshake, with the status recorded.
fn refused(recording: Option<Recording>, response: Response<ProxyBody>) -> Response<ProxyBody> {
    if let Some(mut recording) = recording {
        recording.status = response.status().as_u16();
    }
    response
}

/// `$connect` said no: its status and body go back to the client.
fn refusal_of(answer: Answer) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(answer.body)));
    *response.status_mut() = answer.status;
    if let Some(kind) = answer.headers.get(header::CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, kind.clone());
    }
    response
}

fn failure(e: CallError) -> Reject {
    match e {
        CallError::Timeout => Reject::GatewayTimeout,
        CallError::Unreachable | CallError::TooLarge => Reject::BadGateway,
    }
}

fn note_latency(recording: &mut Option<Recording>, answer: &Result<Answer, CallError>) {
    if let (
        Some(recording),
        Ok(Answer {
            latency: Some(latency),
            ..
        }),
    ) = (recording.as_mut(), answer)
    {
        recording.integration_us = Some(crate::traffic::recording::micros(*latency));
    }
}
