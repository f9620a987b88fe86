//! Bounds the client connections one proxy holds, so a flood of connections cannot use up
//! its file descriptors and memory while the ones already served go on. Past the bound a
//! new connection is told why (a 503 JSON answer) and closed; past a second, small bound
//! on those refusals, it is closed at once.

use std::sync::Arc;
use std::time::Duration;

use prometheus::IntGauge;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::errors::Reject;
use crate::telemetry::Telemetry;

/// Refusals being written at once; more connections over the limit are just closed.
const MAX_REFUSING: usize = 256;
/// How long a refusal may take to write, and to wait for the client to read it and close.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

pub struct ConnectionLimit {
    open: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    refusal: Arc<[u8]>,
}

/// Held while a client connection is open.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    open: IntGauge,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl ConnectionLimit {
    pub fn new(max_connections: usize) -> ConnectionLimit {
        let reject = Reject::TooManyConnections;
        let mut refusal = format!(
            "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
            reject.status(),
            reject.body().len()
        )
        .into_bytes();
        refusal.extend_from_slice(reject.body());
        ConnectionLimit {
            open: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            refusal: refusal.into(),
        }
    }

    /// Admits a new connection, or refuses it (on a task of its own) and returns `None`.
    pub fn admit(&self, stream: TcpStream, telemetry: &Telemetry) -> Option<(TcpStream, Admitted)> {
        if let Ok(permit) = self.open.clone().try_acquire_owned() {
            telemetry.client_connections.inc();
            let admitted = Admitted {
                _permit: permit,
                open: telemetry.client_connections.clone(),
            };
            return Some((stream, admitted));
        }
        telemetry.connections_refused.inc();
        if let Ok(slot) = self.refusing.clone().try_acquire_owned() {
            let refusal = self.refusal.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(REFUSAL_TIME, refuse(stream, &refusal)).await;
                drop(slot);
            });
        }
        None
    }
}

/// Writes the 503, then reads what the client sent until it closes: closing with unread
/// bytes would reset the connection and could lose the answer.
async fn refuse(mut stream: TcpStream, refusal: &[u8]) -> std::io::Result<()> {
    stream.write_all(refusal).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 1024];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}
