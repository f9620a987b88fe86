//! Bounds the client connections a listener holds, so a flood of connections cannot use
//! up a process's file descriptors and memory while the ones already served go on. Past
//! the bound a new connection is told why (a 503 JSON answer) and closed; past a second,
//! small bound on those refusals, it is closed at once. Both planes' listeners use it (it
//! lives here, beside the TLS they share, so neither depends on the other).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Refusals being written at once; more connections over the limit are just closed.
const MAX_REFUSING: usize = 256;
/// How long a refusal may take to write, and to wait for the client to read it and close.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

pub struct ConnectionLimit {
    open: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    refusal: Arc<[u8]>,
}

/// Held while an admitted connection is open.
pub type Admitted = OwnedSemaphorePermit;

impl ConnectionLimit {
    /// At most `max_connections` at once; connections over it are answered 503 with the
    /// JSON `body`.
    pub fn new(max_connections: usize, body: &[u8]) -> ConnectionLimit {
        let mut refusal = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        refusal.extend_from_slice(body);
        ConnectionLimit {
            open: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            refusal: refusal.into(),
        }
    }

    /// Admits a new connection, or refuses it (on a task of its own) and returns `None`.
    pub fn admit<S>(&self, stream: S) -> Option<(S, Admitted)>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if let Ok(permit) = self.open.clone().try_acquire_owned() {
            return Some((stream, permit));
        }
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
async fn refuse<S>(mut stream: S, refusal: &[u8]) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(refusal).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 1024];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_over_the_limit_are_told_503_and_a_freed_slot_is_reused() {
        let limit = ConnectionLimit::new(1, br#"{"message":"Too Many Connections"}"#);
        let (first, _peer) = tokio::io::duplex(1024);
        let admitted = limit.admit(first).expect("the first is admitted");
        let (second, mut peer) = tokio::io::duplex(1024);
        assert!(limit.admit(second).is_none());
        let mut answer = String::new();
        peer.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.ends_with(r#"{"message":"Too Many Connections"}"#));
        drop(admitted);
        let (third, _peer) = tokio::io::duplex(1024);
        assert!(limit.admit(third).is_some());
    }
}
