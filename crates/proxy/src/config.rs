//! Settings of a proxy, filled in by the `gatehouse` binary from flags and environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use gatehouse_tls::CertificateFiles;

pub use crate::traffic::access_log::AccessLogTarget;

/// How a proxy runs.
#[derive(Clone)]
pub struct ProxyConfig {
    /// Where API traffic is served.
    pub listen: SocketAddr,
    /// Where `/healthz` and `/readyz` are served.
    pub status_listen: SocketAddr,
    /// Base URL of the control plane, e.g. `http://127.0.0.1:8001`.
    pub control_plane_url: String,
    /// Token presented to the control plane's sync endpoint.
    pub node_token: String,
    /// How this proxy names itself to the control plane.
    pub node_id: String,
    /// Where the last good snapshot is kept; `None` keeps nothing on disk.
    pub data_dir: Option<PathBuf>,
    /// Largest request body forwarded upstream.
    pub max_body_bytes: u64,
    /// How long the control plane may hold a config poll.
    pub poll_wait: Duration,
    /// Longest wait for the upstream's TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// How often quota usage is sent to the control plane.
    pub usage_report_interval: Duration,
    /// Redis shared by all proxies for exact quota counts (`REDIS_URL`).
    pub redis_url: Option<String>,
    /// Whether traffic is measured and reported (off only to measure what it costs).
    pub metrics: bool,
    /// How often traffic metrics are sent to the control plane.
    pub metrics_report_interval: Duration,
    /// Where the access log lines of stages that keep one go.
    pub access_log: AccessLogTarget,
    /// The bearer token backends present to the `@connections` API; `None` keeps it closed.
    pub management_token: Option<String>,
    /// Most WebSocket connections this proxy holds at once; more are refused with 503.
    pub max_websocket_connections: usize,
    /// What one client may send and hold.
    pub limits: ClientLimits,
    /// Certificate and key of the traffic listener; `None` serves plain HTTP.
    pub tls: Option<CertificateFiles>,
    /// A CA certificate (PEM) trusted for the control plane, besides the system's roots.
    pub control_plane_ca: Option<PathBuf>,
}

/// What one client may send and hold: bounds against oversized requests, slow senders
/// and connection floods. Each has its own clear answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLimits {
    /// Largest request line and headers together, in bytes; more gets 431 and a close.
    pub max_header_bytes: usize,
    /// Most header fields in one request; more gets 431 and a close.
    pub max_headers: usize,
    /// Longest request target (path and query), in bytes; longer gets 414.
    pub max_uri_bytes: usize,
    /// Longest wait for a request's headers, counted from the end of the previous request
    /// on the connection (or from its opening); then the connection is closed.
    pub header_timeout: Duration,
    /// Longest wait for the next part of a request body; then 408.
    pub body_timeout: Duration,
    /// Most client connections held at once; more get 503 and are closed.
    pub max_connections: usize,
}

impl ClientLimits {
    /// The smallest header limit accepted: a request line and a few headers.
    pub const MIN_HEADER_BYTES: usize = 1024;
    /// The longest request target the HTTP/1 parser reads at all.
    pub const MAX_URI_BYTES: usize = 65_534;

    /// Refuses limits that would make every request fail, or that the server cannot apply.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_header_bytes >= Self::MIN_HEADER_BYTES,
            "the header limit must be at least {} bytes",
            Self::MIN_HEADER_BYTES
        );
        anyhow::ensure!(
            self.max_headers >= 1,
            "the header count limit must be at least 1"
        );
        anyhow::ensure!(
            (1..=Self::MAX_URI_BYTES).contains(&self.max_uri_bytes),
            "the URI limit must be from 1 to {} bytes",
            Self::MAX_URI_BYTES
        );
        anyhow::ensure!(
            !self.header_timeout.is_zero() && !self.body_timeout.is_zero(),
            "read timeouts must be longer than zero"
        );
        anyhow::ensure!(
            self.max_connections >= 1,
            "the connection limit must be at least 1"
        );
        Ok(())
    }
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_header_bytes: 10 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(10),
            max_connections: 100_000,
        }
    }
}

/// Checks that `raw` is one base URL of a control plane, `http` or `https` with a host
/// and nothing after the path; returns it without its trailing slashes. A list of URLs is
/// refused by name (several control planes are not supported yet), as is anything that
/// would make the proxy retry forever against an address that can never answer.
pub fn parse_control_plane_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("the control plane URL is empty".to_owned());
    }
    if trimmed.contains(',') || trimmed.contains(char::is_whitespace) {
        return Err(format!(
            "the control plane URL must be one URL, without spaces or commas: {raw:?} (a list of several control planes is not supported yet)"
        ));
    }
    let uri: http::Uri = trimmed
        .parse()
        .map_err(|e| format!("the control plane URL {raw:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(format!(
                "the control plane URL {raw:?} must start with http:// or https://"
            ))
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("the control plane URL {raw:?} has no host"));
    }
    // The parser takes any characters after the host's colon; the connector would not.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host_port.rsplit_once(':') {
        Some((host, port)) if !host.starts_with('[') || host.ends_with(']') => Some(port),
        _ => None,
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(format!("the control plane URL {raw:?} has an invalid port"));
    }
    if uri.query().is_some() {
        return Err(format!(
            "the control plane URL {raw:?} must not have a query: it is a base URL"
        ));
    }
    Ok(trimmed.trim_end_matches('/').to_owned())
}

impl ProxyConfig {
    /// Defaults for a proxy of `control_plane_url` authenticated by `node_token`.
    pub fn new(control_plane_url: impl Into<String>, node_token: impl Into<String>) -> ProxyConfig {
        ProxyConfig {
            listen: ([127, 0, 0, 1], 8000).into(),
            status_listen: ([127, 0, 0, 1], 8100).into(),
            control_plane_url: control_plane_url.into(),
            node_token: node_token.into(),
            node_id: "proxy".to_owned(),
            data_dir: None,
            max_body_bytes: 10 * 1024 * 1024,
            poll_wait: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            usage_report_interval: Duration::from_secs(1),
            redis_url: None,
            metrics: true,
            metrics_report_interval: Duration::from_secs(5),
            access_log: AccessLogTarget::Stdout,
            management_token: None,
            max_websocket_connections: 100_000,
            limits: ClientLimits::default(),
            tls: None,
            control_plane_ca: None,
        }
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("listen", &self.listen)
            .field("status_listen", &self.status_listen)
            .field("control_plane_url", &self.control_plane_url)
            .field("node_token", &"****")
            .field("node_id", &self.node_id)
            .field("data_dir", &self.data_dir)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("redis", &self.redis_url.as_ref().map(|_| "****"))
            .field("metrics", &self.metrics)
            .field("access_log", &self.access_log)
            .field(
                "management_token",
                &self.management_token.as_ref().map(|_| "****"),
            )
            .field("max_websocket_connections", &self.max_websocket_connections)
            .field("limits", &self.limits)
            .field("tls", &self.tls)
            .field("control_plane_ca", &self.control_plane_ca)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_control_plane_url;

    #[test]
    fn one_http_or_https_url_is_a_control_plane_url() {
        for (raw, base) in [
            ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
            ("https://cp.example.com/", "https://cp.example.com"),
            (
                " http://[::1]:8001/gatehouse/ ",
                "http://[::1]:8001/gatehouse",
            ),
        ] {
            assert_eq!(parse_control_plane_url(raw).as_deref(), Ok(base), "{raw}");
        }
    }

    #[test]
    fn lists_and_what_is_not_a_url_are_refused_with_why() {
        for (raw, why) in [
            ("http://a:8001,http://b:8001", "one URL"),
            ("http://a:8001, http://b:8001", "one URL"),
            ("http://a:8001 http://b:8001", "one URL"),
            ("not a url", "one URL"),
            ("not-a-url", "must start with http"),
            ("", "empty"),
            ("ftp://a", "must start with http"),
            ("http://", "not a URL"),
            ("http://a:8001/?x=1", "query"),
            ("http://a:port", "invalid port"),
        ] {
            let refused = parse_control_plane_url(raw).expect_err(raw);
            assert!(refused.contains(why), "{raw}: {refused}");
        }
    }
}
