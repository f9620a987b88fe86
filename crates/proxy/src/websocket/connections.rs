//! The WebSocket connections this proxy holds, by id, and the `@connections` API that
//! backends use to push to them, read them and close them. Paths and JSON follow AWS's
//! `apigatewaymanagementapi`, so its clients work when pointed at a stage's invoke URL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Either, Full, Limited};
use hyper::body::Incoming;
use subtle::ConstantTimeEq as _;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::request::errors::{ProxyBody, Reject};
use crate::websocket::sigv4;

/// Messages waiting for a client: beyond this, the client is not reading and is closed.
pub const OUTBOUND_QUEUE: usize = 64;

/// The random id of a connection; its text form is 24 lower-case hex digits.
pub type ConnectionId = [u8; 12];

pub fn new_id() -> ConnectionId {
    rand::random()
}

pub fn parse_id(text: &str) -> Option<ConnectionId> {
    let mut id = [0u8; 12];
    hex::decode_to_slice(text, &mut id).ok()?;
    Some(id)
}

/// What a session is asked to do by others (the `@connections` API, shutdown).
#[derive(Debug)]
pub enum Outbound {
    Send(Message),
    Close(CloseCode, &'static str),
}

/// A live connection, as the rest of the proxy sees it.
pub struct Connection {
    /// The id's text form, sent to integrations.
    pub id: HeaderValue,
    /// `slug/stage`.
    pub stage: Box<str>,
    pub connected_at_ms: i64,
    pub last_active_ms: AtomicI64,
    pub source_ip: HeaderValue,
    pub user_agent: Option<HeaderValue>,
    outbound: mpsc::Sender<Outbound>,
}

/// Why a message could not be queued for a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Gone {
    Closed,
    /// The client reads too slowly; it is being closed.
    SlowReader,
}

impl Connection {
    pub fn new(
        id: HeaderValue,
        stage: Box<str>,
        source_ip: HeaderValue,
        user_agent: Option<HeaderValue>,
    ) -> (Connection, mpsc::Receiver<Outbound>) {
        let (outbound, inbox) = mpsc::channel(OUTBOUND_QUEUE);
        let now = Utc::now().timestamp_millis();
        let connection = Connection {
            id,
            stage,
            connected_at_ms: now,
            last_active_ms: AtomicI64::new(now),
            source_ip,
            user_agent,
            outbound,
        };
        (connection, inbox)
    }

    pub fn touch(&self) {
        self.last_active_ms
            .store(Utc::now().timestamp_millis(), Relaxed);
    }

    /// Queues `message` for the client. A full queue means the client stopped reading:
    /// the connection is closed rather than buffered without end.
    pub fn push(&self, message: Message) -> Result<(), Gone> {
        match self.outbound.try_send(Outbound::Send(message)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseCode::Policy, "client is not reading");
                Err(Gone::SlowReader)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Gone::Closed),
        }
    }

    /// Asks the session to close with `code`. A session already closing ignores it.
    pub fn close(&self, code: CloseCode, reason: &'static str) {
        // A full queue is drained by a session that will see this close after it: if it
        // cannot be queued, the session's own close (slow reader) is already coming.
        let _ = self.outbound.try_send(Outbound::Close(code, reason));
    }
}

/// Every live connection of this proxy.
#[derive(Default)]
pub struct Connections {
    map: Mutex<HashMap<ConnectionId, Arc<Connection>>>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Arc<Connection>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, id: ConnectionId, connection: Arc<Connection>) {
        self.lock().insert(id, connection);
    }

    pub fn remove(&self, id: &ConnectionId) {
        self.lock().remove(id);
    }

    pub fn get(&self, id: &ConnectionId) -> Option<Arc<Connection>> {
        self.lock().get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Serves `METHOD /<slug>/<stage>/@connections/<id>` for the connections of `stage`.
/// The caller proves it knows the management `token`, as `Authorization: Bearer` or as
/// the secret of an AWS SigV4 signature; without a token configured, the API is closed.
pub async fn manage(
    connections: &Connections,
    token: Option<&str>,
    stage: &str,
    id: &str,
    max_message_bytes: usize,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let Some(token) = token else {
        return Reject::Forbidden.response();
    };
    let (parts, body) = req.into_parts();
    // Read before the check: a signature covers the body.
    let body = match Limited::new(body, max_message_bytes).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Reject::PayloadTooLarge.response()
        }
        Err(_) => return Reject::BadRequest.response(),
    };
    let signed = || {
        let request = sigv4::Signed {
            method: &parts.method,
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body: &body,
        };
        sigv4::verify(&request, token, Utc::now())
    };
    if !bearer(token, &parts.headers) && !signed() {
        return Reject::Forbidden.response();
    }
    let connection = parse_id(id)
        .and_then(|id| connections.get(&id))
        .filter(|c| &*c.stage == stage);
    let Some(connection) = connection else {
        return Reject::Gone.response();
    };
    match parts.method {
        Method::POST => match connection.push(message_of(body)) {
            Ok(()) => empty(StatusCode::OK),
            Err(_) => Reject::Gone.response(),
        },
        Method::GET => json(describe(&connection)),
        Method::DELETE => {
            connection.close(CloseCode::Normal, "closed by the backend");
            empty(StatusCode::NO_CONTENT)
        }
        _ => Reject::NotFound.response(),
    }
}

/// A text message when the bytes are UTF-8, binary otherwise.
pub fn message_of(body: Bytes) -> Message {
    match tokio_tungstenite::tungstenite::Utf8Bytes::try_from(body.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(body),
    }
}

fn bearer(token: &str, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    bool::from(presented.ct_eq(token.as_bytes()))
}

fn describe(connection: &Connection) -> serde_json::Value {
    let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    serde_json::json!({
        "connectedAt": timestamp(connection.connected_at_ms),
        "lastActiveAt": timestamp(connection.last_active_ms.load(Relaxed)),
        "identity": {
            "sourceIp": text(&connection.source_ip),
            "userAgent": connection.user_agent.as_ref().map(text),
        },
    })
}

fn timestamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response
}

fn json(value: serde_json::Value) -> Response<ProxyBody> {
    let body = serde_json::to_vec(&value).unwrap_or_default();
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_junk_is_refused() {
        let id = new_id();
        assert_eq!(parse_id(&hex::encode(id)), Some(id));
        for bad in ["", "zz", &"a".repeat(23), &"a".repeat(26)] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_token_is_required_and_compared_whole() {
        let mut headers = HeaderMap::new();
        assert!(!bearer("s3cret", &headers));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(bearer("s3cret", &headers));
        assert!(!bearer("s3cre", &headers));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cretX"),
        );
        assert!(!bearer("s3cret", &headers));
    }

    #[test]
    fn a_client_that_does_not_read_is_closed_not_buffered() {
        let (connection, mut inbox) = Connection::new(
            HeaderValue::from_static("id"),
            "a/b".into(),
            HeaderValue::from_static("127.0.0.1"),
            None,
        );
        for _ in 0..OUTBOUND_QUEUE {
            assert_eq!(connection.push(Message::text("x")), Ok(()));
        }
        assert_eq!(connection.push(Message::text("x")), Err(Gone::SlowReader));
        inbox.close();
        while inbox.try_recv().is_ok() {}
        assert_eq!(connection.push(Message::text("x")), Err(Gone::Closed));
    }
}
