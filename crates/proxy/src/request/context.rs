//! One request's state as it goes through the pipeline: who sent it, its id, its
//! recording once its stage is known, and what admission decided for its response. What
//! phases learn about the matched route while the snapshot is held (the key's plan) is
//! on `resolve::Matched`, which borrows from the snapshot; everything else is here.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Response};
use uuid::Uuid;

use crate::admission::Admitted;
use crate::request::errors::{ProxyBody, Reject};
use crate::request::request_id::REQUEST_ID;
use crate::state::Shared;
use crate::traffic::recording::{Counted, Recording};
use crate::upstream::Peer;

/// The body of every response: the proxy's, with its request's recording attached.
pub type ResponseBody = Counted<ProxyBody, Recording>;

/// The state of one request in the pipeline.
pub struct RequestContext {
    pub shared: Arc<Shared>,
    /// The client connection it came on.
    pub peer: Peer,
    pub request_id: HeaderValue,
    pub start: Instant,
    /// Set once the stage is known; finished when the response body is (or when this
    /// request is dropped because the client went away).
    pub recording: Option<Recording>,
    /// Set for WebSocket APIs, which record their own events (and the `@connections`
    /// API, none).
    pub records_itself: bool,
    /// What the admit phase decided: where a keyed request stands against its throttle
    /// and quota, and the quota still to take from the counter proxies share (Redis)
    /// once the snapshot is let go.
    pub admitted: Admitted,
}

impl RequestContext {
    pub fn new(shared: Arc<Shared>, peer: Peer) -> RequestContext {
        let start = Instant::now();
        let request_id = shared.request_ids.next();
        RequestContext {
            shared,
            peer,
            request_id,
            start,
            recording: None,
            records_itself: false,
            admitted: Admitted::default(),
        }
    }

    /// Notes, for the access log, why the gateway answered itself.
    pub fn note_refusal(&mut self, reject: Reject) {
        if let Some(recording) = &mut self.recording {
            recording.error = Some(reject.message());
        }
    }

    /// Notes the API key a request named, whether or not it is let through.
    pub fn note_key(&mut self, key_id: Uuid) {
        if let Some(recording) = &mut self.recording {
            recording.key_id = Some(key_id);
        }
    }

    /// The record phase: the response gets the request id, the recording its status
    /// (requests no stage took are counted apart), and the body carries the recording to
    /// its last byte.
    pub fn finish(mut self, mut response: Response<ProxyBody>) -> Response<ResponseBody> {
        response
            .headers_mut()
            .insert(REQUEST_ID, self.request_id.clone());
        let status = response.status().as_u16();
        match &mut self.recording {
            Some(recording) => recording.status = status,
            None if self.shared.metrics_enabled && !self.records_itself => {
                self.shared.unmatched.record(status)
            }
            None => {}
        }
        let recording = self.recording.take();
        response.map(|body| Counted::new(body, recording))
    }
}
