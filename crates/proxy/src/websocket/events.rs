//! Calling a WebSocket route's integration for one event (a connect, a message, a
//! disconnect): a `POST` to the HTTP_PROXY URI carrying the message and who it is from
//! in headers, or the MOCK's fixed answer. The answer is read whole, up to the stage's
//! message limit, since it may become a message to the client.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};

use crate::request::request_id::REQUEST_ID;
use crate::snapshot::{Action, CompiledRoute};
use crate::upstream::{strip_hop_by_hop, EventClient, X_FORWARDED_FOR};

pub const CONNECTION_ID: HeaderName = HeaderName::from_static("x-gatehouse-connection-id");
pub const ROUTE_KEY: HeaderName = HeaderName::from_static("x-gatehouse-route-key");
pub const STAGE: HeaderName = HeaderName::from_static("x-gatehouse-stage");
pub const EVENT_TYPE: HeaderName = HeaderName::from_static("x-gatehouse-event-type");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Connect,
    Message,
    Disconnect,
}

impl EventType {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            EventType::Connect => "CONNECT",
            EventType::Message => "MESSAGE",
            EventType::Disconnect => "DISCONNECT",
        })
    }
}

/// What a route's integration is, taken from the snapshot so the call can outlive it.
#[derive(Debug)]
pub enum Target {
    Mock {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    Http {
        uri: Uri,
        timeout: Duration,
    },
}

impl Target {
    /// The target of `route`; `query` (the client's, on connect) is passed on.
    pub fn of(route: &CompiledRoute, query: Option<&str>) -> Option<Target> {
        match &route.action {
            Action::Mock {
                status,
                headers,
                body,
            } => Some(Target::Mock {
                status: *status,
                headers: headers.clone(),
                body: body.clone(),
            }),
            Action::Proxy { uri, timeout, .. } => match uri.render(|_| "", query) {
                Ok(uri) => Some(Target::Http {
                    uri,
                    timeout: *timeout,
                }),
                Err(e) => {
                    tracing::warn!(route = %route.route_key, error = %e, "integration URI invalid for this event");
                    None
                }
            },
        }
    }
}

/// One event for an integration.
pub struct Event {
    pub kind: EventType,
    pub route_key: HeaderValue,
    pub connection_id: HeaderValue,
    pub stage: HeaderValue,
    pub request_id: HeaderValue,
    pub client_ip: HeaderValue,
    /// On connect, the client's request headers (hop-by-hop ones already gone).
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The integration's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// How long the integration took; `None` for a mock.
    pub latency: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    Unreachable,
    Timeout,
    /// The answer is larger than a message may be.
    TooLarge,
}

/// Client headers that describe the WebSocket handshake, not the client: not passed on.
const HANDSHAKE: [HeaderName; 5] = [
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_EXTENSIONS,
    header::HOST,
    header::CONTENT_LENGTH,
];

pub async fn call(
    client: &EventClient,
    target: Target,
    event: Event,
    max_answer_bytes: usize,
) -> Result<Answer, CallError> {
    let (uri, timeout) = match target {
        Target::Mock {
            status,
            headers,
            body,
        } => {
            return Ok(Answer {
                status,
                headers,
                body,
                latency: None,
            })
        }
        Target::Http { uri, timeout } => (uri, timeout),
    };
    let mut headers = event.headers;
    strip_hop_by_hop(&mut headers);
    for name in HANDSHAKE {
        headers.remove(name);
    }
    headers.insert(CONNECTION_ID, event.connection_id);
    headers.insert(ROUTE_KEY, event.route_key);
    headers.insert(STAGE, event.stage);
    headers.insert(EVENT_TYPE, event.kind.header());
    headers.insert(REQUEST_ID, event.request_id);
    headers.insert(X_FORWARDED_FOR, event.client_ip);
    if !event.body.is_empty() && !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    let mut request = Request::new(Full::new(event.body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let sent = Instant::now();
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|_| CallError::Unreachable)?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, max_answer_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    CallError::TooLarge
                } else {
                    CallError::Unreachable
                }
            })?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
            latency: Some(sent.elapsed()),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| CallError::Timeout)?
}
