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
///
/// An error is held back for one poll. The server aborts a connection as soon as a
/// response body fails, dropping what it has not written yet: a body that failed before
/// its first byte (a malformed first chunk from the upstream) would reach the client as
/// nothing at all. Pending once lets the head and the bytes so far be flushed first, so
/// the client sees a response cut off, and knows it.
pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether `timer` counts from the last frame (else it is stale and reset first).
    armed: bool,
    held: Option<Box<dyn Error + Send + Sync>>,
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, idle: Duration) -> IdleTimeout<B> {
        IdleTimeout {
            inner,
            idle,
            timer: None,
            armed: false,
            held: None,
        }
    }
}

impl<B> IdleTimeout<B> {
    /// Keeps `error` for the next poll, which comes at once.
    fn hold<T>(&mut self, error: Box<dyn Error + Send + Sync>, cx: &mut Context<'_>) -> Poll<T> {
        self.held = Some(error);
        cx.waker().wake_by_ref();
        Poll::Pending
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
        if let Some(error) = this.held.take() {
            return Poll::Ready(Some(Err(error)));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(error))) => return this.hold(error.into(), cx),
            Poll::Ready(frame) => {
                this.armed = false;
                return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
            }
            Poll::Pending => {}
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
            Some(Poll::Ready(())) => this.hold(Box::new(BodyReadTimeout), cx),
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.is_end_stream()
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

    #[tokio::test]
    async fn an_error_comes_one_poll_after_the_frames_before_it() {
        use futures_util::FutureExt as _;
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"a"))),
            Err(std::io::Error::other("bad chunk")),
        ];
        let mut body = IdleTimeout::new(
            StreamBody::new(stream::iter(frames)),
            Duration::from_secs(5),
        );
        let first = body
            .frame()
            .now_or_never()
            .expect("ready")
            .expect("a frame");
        assert_eq!(first.expect("data").into_data().expect("data"), "a");
        assert!(body.frame().now_or_never().is_none(), "pending once");
        let e = body
            .frame()
            .now_or_never()
            .expect("ready")
            .expect("an error")
            .expect_err("the error");
        assert_eq!(e.to_string(), "bad chunk");
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
