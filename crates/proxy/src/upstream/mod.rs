//! Calling upstreams: one pooled keep-alive client for the whole process, and the header
//! rewriting a reverse proxy owes both sides (hop-by-hop headers dropped, `X-Forwarded-*`
//! added). Bodies stream through in both directions; the request body is capped.

pub mod counted_connector;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::{Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::request::body_timeout::IdleTimeout;
use crate::request::client_body::ClientBody;
use crate::traffic::recording::Counted;
use crate::traffic::telemetry::Telemetry;
use crate::upstream::counted_connector::CountedConnector;

/// The client every upstream request goes through.
pub type UpstreamClient = Client<
    CountedConnector<HttpsConnector<HttpConnector>>,
    Counted<IdleTimeout<Limited<ClientBody>>, Arc<AtomicU64>>,
>;

/// A TLS-capable connector: system root certificates, HTTP/1.1, TCP_NODELAY.
pub fn connector(connect_timeout: Duration) -> HttpsConnector<HttpConnector> {
    let roots = gatehouse_tls::client_roots(None).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot read the system's root certificates");
        rustls::RootCertStore::empty()
    });
    connector_trusting(connect_timeout, roots).unwrap_or_else(|e| {
        unreachable!("the default TLS protocol versions are supported by ring: {e}")
    })
}

/// Like [`connector`], trusting `roots`.
pub fn connector_trusting(
    connect_timeout: Duration,
    roots: rustls::RootCertStore,
) -> anyhow::Result<HttpsConnector<HttpConnector>> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(gatehouse_tls::client_config(roots)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// The client WebSocket events are sent with: bodies are whole messages.
pub type EventClient = Client<CountedConnector<HttpsConnector<HttpConnector>>, Full<Bytes>>;

/// The pooled client; its connections are counted in `telemetry`.
pub fn upstream_client(connect_timeout: Duration, telemetry: &Telemetry) -> UpstreamClient {
    pooled_client(connect_timeout, telemetry)
}

/// A pooled client for WebSocket events, counted like the upstream client.
pub fn event_client(connect_timeout: Duration, telemetry: &Telemetry) -> EventClient {
    pooled_client(connect_timeout, telemetry)
}

fn pooled_client<B>(
    connect_timeout: Duration,
    telemetry: &Telemetry,
) -> Client<CountedConnector<HttpsConnector<HttpConnector>>, B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        // Shorter than the keep-alive timeout of most servers (Node.js: 5 s), so a pooled
        // connection is rarely reused just as the upstream closes it.
        .pool_idle_timeout(Duration::from_secs(4))
        .pool_max_idle_per_host(1024)
        .build(CountedConnector::new(
            connector(connect_timeout),
            telemetry.upstream_connections.clone(),
            telemetry.upstream_connects.clone(),
        ))
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including those the `Connection` header names. `Upgrade`
/// goes too: a pass-through puts back what it forwards.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over their few names is cheaper than hashing
    // each hop-by-hop name to look for it.
    if !headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(name) || name == header::UPGRADE)
    {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Prepares a client's headers for the upstream: hop-by-hop removed, `Host` replaced by
/// the upstream's (set by the client from the URI), `X-Forwarded-*` set by us. A client's
/// own `X-Forwarded-For` chain is kept (all its headers, joined) and extended.
pub fn rewrite_request_headers(headers: &mut HeaderMap, peer: &Peer) {
    let Peer {
        ip: client_ip,
        https,
    } = peer;
    strip_hop_by_hop(headers);
    headers.remove(&X_FORWARDED_HOST);
    if let Some(host) = headers.remove(header::HOST) {
        headers.insert(X_FORWARDED_HOST, host);
    }
    let forwarded_for = if headers.contains_key(&X_FORWARDED_FOR) {
        let mut chain: Vec<u8> = Vec::with_capacity(64);
        for previous in headers.get_all(&X_FORWARDED_FOR) {
            chain.extend_from_slice(previous.as_bytes());
            chain.extend_from_slice(b", ");
        }
        chain.extend_from_slice(client_ip.as_bytes());
        HeaderValue::from_bytes(&chain).unwrap_or_else(|_| client_ip.clone())
    } else {
        client_ip.clone()
    };
    headers.insert(X_FORWARDED_FOR, forwarded_for);
    let proto = if *https { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
}

/// The client connection a request came on, as the upstream is told of it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its `X-Forwarded-For` entry.
    pub ip: HeaderValue,
    /// Whether it is TLS (`X-Forwarded-Proto: https`).
    pub https: bool,
}

/// The `X-Forwarded-For` entry of a connection's peer.
pub fn client_ip_header(peer: std::net::SocketAddr) -> HeaderValue {
    HeaderValue::try_from(peer.ip().to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_hop_by_hop_headers_and_those_connection_names() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn adds_forwarded_headers_and_appends_to_an_existing_chain() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("api.example.com"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.1.1.1"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.2.2.2"));
        let peer = Peer {
            ip: client_ip_header("127.0.0.1:5000".parse().expect("addr")),
            https: false,
        };
        rewrite_request_headers(&mut h, &peer);
        assert_eq!(h[X_FORWARDED_FOR], "10.1.1.1, 10.2.2.2, 127.0.0.1");
        assert_eq!(h.get_all(X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(h[X_FORWARDED_HOST], "api.example.com");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        assert!(!h.contains_key(header::HOST));
    }
}
