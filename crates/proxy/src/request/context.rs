//! One request's state as it goes through the pipeline: who sent it, its id, its
//! recording once its stage is known, and what admission decided for its response. What
//! phases learn about the matched route while the snapshot is held (the key's plan) is
//! on `resolve::Matched`, which borrows from the snapshot; everything else is here.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Response};
use uuid::Uuid;

use crate::admission::Admitted;
use crate::authorizers::{Decision, Fetched};
use crate::request::cors::CorsAnswer;
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
    /// Who the route's authorizer says the caller is.
    pub auth: Option<Authorized>,
    /// What an authorizer's errand brought back, for the phases' second run.
    pub fetched: Option<Fetched>,
    /// Why an authorizer refused, for the access log.
    pub auth_refusal: Option<&'static str>,
    /// How long this request waited for authorizer errands, in microseconds.
    pub authorizer_us: Option<u64>,
    /// The CORS headers of the answer, when the API has a CORS configuration.
    pub cors: Option<CorsAnswer>,
}

/// What a route's authorizer established about the caller.
pub enum Authorized {
    /// A verified JWT, with its claims.
    Jwt(Arc<gatehouse_model::jwt::Verified>),
    /// A REQUEST authorizer's yes, with its context.
    Custom(Arc<Decision>),
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
            auth: None,
            fetched: None,
            auth_refusal: None,
            authorizer_us: None,
            cors: None,
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
        if let Some(cors) = self.cors.take() {
            cors.apply(response.headers_mut());
        }
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
        let mut recording = self.recording.take();
        if let Some(recording) = recording.as_mut() {
            recording.authorizer_us = self.authorizer_us;
            recording.auth_error = self.auth_refusal;
        }
        response.map(|body| Counted::new(body, recording))
    }
}
