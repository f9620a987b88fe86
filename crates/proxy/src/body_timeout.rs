//! Bodies that must keep arriving. A client that stops sending mid-body (a slow POST, one
//! byte a minute) would hold its connection, the upstream's and a task until the route's
//! timeout; its body fails after a set time without a frame instead, and the gateway
//! answers 408, blaming the client rather than the upstream. An upstream that stalls
//! mid-response is cut off the same way, after the route's timeout, so the client sees a
//! broken response instead of waiting forever.

use std::error::Error;
use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The error a body gives when its sender went quiet for too long.
#[derive(Debug)]
pub struct BodyReadTimeout;

impl fmt::Display for BodyReadTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no part of the body arrived in time")
    }
}

impl Error for BodyReadTimeout {}

/// `inner`, failing with [`BodyReadTimeout`] when no frame comes for `idle`.
///
/// The timer is armed only when a read finds nothing ready, so a body that arrives in
/// one piece never allocates one.
pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether `timer` counts from the last frame (else it is stale and reset first).
    armed: bool,
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, idle: Duration) -> IdleTimeout<B> {
        IdleTimeout {
            inner,
            idle,
            timer: None,
            armed: false,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if !this.armed {
            let deadline = Instant::now() + this.idle;
            match &mut this.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            this.armed = true;
        }
        match this.timer.as_mut().map(|timer| timer.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Some(Err(Box::new(BodyReadTimeout)))),
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_util::stream;
    use http_body_util::{BodyExt as _, StreamBody};

    use super::*;

    type Chunks = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

    fn chunks(parts: &[&'static str]) -> Chunks {
        let frames: Vec<_> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        StreamBody::new(stream::iter(frames))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_coming_passes_whole() {
        let body = IdleTimeout::new(chunks(&["a", "b", "c"]), Duration::from_millis(10));
        let bytes = body.collect().await.expect("whole").to_bytes();
        assert_eq!(bytes, "abc");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_fails_after_the_idle_time_from_its_last_frame() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        let frames = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
        let mut body = IdleTimeout::new(StreamBody::new(Box::pin(frames)), Duration::from_secs(5));
        let start = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"late")))).await;
            // Holds the body open, sending nothing more.
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let frame = body.frame().await.expect("a frame").expect("in time");
        assert_eq!(frame.into_data().expect("data"), "late");
        let e = body
            .frame()
            .await
            .expect("an error")
            .expect_err("timed out");
        assert!(e.is::<BodyReadTimeout>(), "{e}");
        assert_eq!(start.elapsed(), Duration::from_secs(9));
    }
}
