//! Settings of the control plane, filled in by the `gatehouse` binary from flags and
//! environment variables.

use std::time::Duration;

use crate::auth::Secret;

/// How the control plane behaves. Tokens are [`Secret`]s: they never print.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// Accepted as an admin token on `/api/v1` (`GATEHOUSE_ADMIN_TOKEN`).
    pub admin_token: Option<Secret>,
    /// What proxies must present on `/dp/v1` (`GATEHOUSE_NODE_TOKEN`).
    pub node_token: Option<Secret>,
    /// Longest a config poll is held open when nothing changes.
    pub long_poll_timeout: Duration,
    /// Largest admin request body accepted.
    pub max_body_bytes: usize,
    /// Age after which minute metrics are rolled up into hours.
    pub metrics_rollup_after: Duration,
    /// Age after which metrics are deleted.
    pub metrics_retention: Duration,
    /// Mark dashboard cookies `Secure`: set when the dashboard is reached over TLS.
    pub secure_cookies: bool,
    /// Where clients reach the proxies (`https://api.example.com`), for the invoke URLs the
    /// dashboard shows; without it, the address of the proxy seen last.
    pub proxy_url: Option<String>,
    /// Longest wait for a request's headers, counted from the connection's opening or the
    /// end of the previous answer on it: also how long an idle keep-alive connection stays.
    pub header_timeout: Duration,
    /// Most client connections held at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        ControlPlaneConfig {
            admin_token: None,
            node_token: None,
            long_poll_timeout: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            metrics_rollup_after: Duration::from_secs(2 * 24 * 3600),
            metrics_retention: Duration::from_secs(90 * 24 * 3600),
            secure_cookies: false,
            proxy_url: None,
            header_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}
