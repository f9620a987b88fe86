//! Measuring one request from its arrival to the last byte of its response.
//!
//! A [`Recording`] starts when the request's stage is known and travels with the response
//! body ([`Counted`]), which counts the bytes sent. When the body is done, or dropped
//! because the client went away, the recording lands in its route's meter, and, when the
//! request had an API key or its stage keeps an access log, in those queues too. A request
//! abandoned before its response was ready records status 499, as nginx does.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Version};
use http_body::{Body, Frame, SizeHint};
use uuid::Uuid;

use crate::state::Shared;
use crate::traffic::access_log::AccessLogLine;
use crate::traffic::meters::{KeyEvent, Outcome, RouteMeter};

/// What the client closing early is recorded as.
pub const CLIENT_CLOSED: u16 = 499;

/// The parts of an access log line known when the request arrives.
pub struct LogDraft {
    pub time: SystemTime,
    pub request_id: HeaderValue,
    pub ip: HeaderValue,
    pub method: Method,
    /// Copied, not shared: a reference into the request would keep the connection's
    /// read buffer alive until the line is written, and the connection would have to
    /// allocate a new one for its next request.
    pub path: String,
    pub protocol: Version,
    pub user_agent: Option<String>,
    pub route_key: Arc<str>,
}

/// One request being measured.
pub struct Recording {
    shared: Arc<Shared>,
    meter: Arc<RouteMeter>,
    start: Instant,
    pub status: u16,
    pub integration_us: Option<u64>,
    pub key_id: Option<Uuid>,
    /// Request body bytes forwarded, counted as they stream.
    pub bytes_in: Option<Arc<AtomicU64>>,
    bytes_out: u64,
    /// Why the gateway answered itself, for the access log.
    pub error: Option<&'static str>,
    /// How long authorizer errands took, and why an authorizer refused.
    pub authorizer_us: Option<u64>,
    pub auth_error: Option<&'static str>,
    log: Option<LogDraft>,
}

impl Recording {
    pub fn start(
        shared: Arc<Shared>,
        meter: Arc<RouteMeter>,
        start: Instant,
        log: Option<LogDraft>,
    ) -> Recording {
        Recording {
            shared,
            meter,
            start,
            status: CLIENT_CLOSED,
            integration_us: None,
            authorizer_us: None,
            auth_error: None,
            key_id: None,
            bytes_in: None,
            bytes_out: 0,
            error: None,
            log,
        }
    }

    /// Microseconds since the request arrived.
    pub fn elapsed_us(&self) -> u64 {
        micros(self.start.elapsed())
    }
}

pub fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Drop for Recording {
    fn drop(&mut self) {
        let outcome = Outcome {
            status: self.status,
            latency_us: self.elapsed_us(),
            integration_us: self.integration_us,
            bytes_in: self.bytes_in.as_ref().map_or(0, |n| n.load(Relaxed)),
            bytes_out: self.bytes_out,
        };
        self.meter.record(&outcome);
        if let Some(draft) = self.log.take() {
            self.shared.access_log.send(AccessLogLine {
                draft,
                api_id: self.meter.key.api_id,
                stage: self.meter.key.stage.clone(),
                key_id: self.key_id,
                error: self.error,
                authorizer_us: self.authorizer_us,
                auth_error: self.auth_error,
                outcome,
            });
        }
        if let Some(key_id) = self.key_id {
            self.shared.key_events.send(KeyEvent {
                key_id,
                meter: self.meter.clone(),
                outcome,
            });
        }
    }
}

/// Where a [`Counted`] body adds the bytes that pass.
pub trait Tally {
    fn add(&mut self, bytes: u64);
}

/// A response's recording counts the bytes sent.
impl Tally for Recording {
    fn add(&mut self, bytes: u64) {
        self.bytes_out += bytes;
    }
}

/// A request body's bytes go to a count its recording shares.
impl Tally for Arc<AtomicU64> {
    fn add(&mut self, bytes: u64) {
        self.fetch_add(bytes, Relaxed);
    }
}

/// A body that adds the size of each data frame to its tally. A response body carries
/// its request's [`Recording`], which is finished when the body is dropped.
pub struct Counted<B, T> {
    inner: B,
    tally: Option<T>,
}

impl<B, T> Counted<B, T> {
    pub fn new(inner: B, tally: Option<T>) -> Counted<B, T> {
        Counted { inner, tally }
    }
}

impl<B, T> Body for Counted<B, T>
where
    B: Body<Data = Bytes> + Unpin,
    T: Tally + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(tally)) = (&polled, &mut this.tally) {
            if let Some(data) = frame.data_ref() {
                tally.add(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
