//! Upstream connections counted as they open and close, for the `upstream_connections`
//! gauge: the pooled client keeps its pool to itself, so the connector wraps each
//! connection it makes and the count drops when the client lets one go.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use prometheus::{IntCounter, IntGauge};

/// A connector whose connections move `open` while they live.
#[derive(Clone)]
pub struct CountedConnector<C> {
    inner: C,
    open: IntGauge,
    opened: IntCounter,
}

impl<C> CountedConnector<C> {
    pub fn new(inner: C, open: IntGauge, opened: IntCounter) -> CountedConnector<C> {
        CountedConnector {
            inner,
            open,
            opened,
        }
    }
}

type Connecting<T, E> = Pin<Box<dyn Future<Output = Result<Counted<T>, E>> + Send>>;

impl<C> tower_service::Service<Uri> for CountedConnector<C>
where
    C: tower_service::Service<Uri> + Send,
    C::Future: Send + 'static,
    C::Response: Send + 'static,
{
    type Response = Counted<C::Response>;
    type Error = C::Error;
    type Future = Connecting<C::Response, C::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.inner.call(dst);
        let (open, opened) = (self.open.clone(), self.opened.clone());
        Box::pin(async move {
            let inner = connecting.await?;
            opened.inc();
            open.inc();
            Ok(Counted { inner, open })
        })
    }
}

/// A connection that takes itself off the gauge when dropped.
pub struct Counted<T> {
    inner: T,
    open: IntGauge,
}

impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl<T: Read + Unpin> Read for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for Counted<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}
