//! Bounds the client connections one proxy holds ([`gatehouse_tls::connection_limit`],
//! shared with the control plane), counting them in the proxy's telemetry.

use gatehouse_tls::connection_limit::{self, Admitted as Permit};
use prometheus::IntGauge;
use tokio::net::TcpStream;

use crate::request::errors::Reject;
use crate::traffic::telemetry::Telemetry;

pub struct ConnectionLimit(connection_limit::ConnectionLimit);

/// Held while a client connection is open.
pub struct Admitted {
    _permit: Permit,
    open: IntGauge,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl ConnectionLimit {
    pub fn new(max_connections: usize) -> ConnectionLimit {
        ConnectionLimit(connection_limit::ConnectionLimit::new(
            max_connections,
            Reject::TooManyConnections.body(),
        ))
    }

    /// Admits a new connection, or refuses it (on a task of its own) and returns `None`.
    pub fn admit(&self, stream: TcpStream, telemetry: &Telemetry) -> Option<(TcpStream, Admitted)> {
        let Some((stream, permit)) = self.0.admit(stream) else {
            telemetry.connections_refused.inc();
            return None;
        };
        telemetry.client_connections.inc();
        let admitted = Admitted {
            _permit: permit,
            open: telemetry.client_connections.clone(),
        };
        Some((stream, admitted))
    }
}
