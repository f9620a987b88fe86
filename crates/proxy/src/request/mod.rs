//! The request path: every request goes through the same phases over one
//! [`RequestContext`], each in its own module.
//!
//! 1. screen ([`well_formed`]): refuse what a backend could read otherwise than the
//!    gateway (target length, method case, `Host`, transfer codings);
//! 2. resolve ([`resolve`]): with the path normalised and the snapshot loaded, find the
//!    stage and the route, and start measuring the request;
//!    An API with CORS has its browsers' preflight requests answered here ([`cors`]);
//! 3. the route's phases ([`phases`]), chosen when the snapshot was compiled:
//!    authorize (a JWT or REQUEST authorizer), authenticate (the API key) and admit
//!    (throttles, quota). A phase that needs the network (an issuer's keys, an
//!    authorizer's answer) halts with an errand, run with the snapshot let go; then
//!    phases 2 and 3 run again, the errand's result on the context;
//! 4. prepare ([`prepare`]): decide the answer, rendering the upstream URI and applying
//!    the integration's request parameter mapping ([`mapping`]);
//! 5. the admit phase's network part: a quota shared through Redis;
//! 6. answer: a mock, [`forward`] to the upstream, or a WebSocket API's handshake;
//! 7. respond: the response parameter mapping, the `RateLimit` headers of a keyed
//!    request whatever its answer, the API's CORS headers;
//! 8. record ([`RequestContext::finish`]): the request id, the status, the recording.
//!
//! Phases 2 to 4 run while the snapshot is held, and never await: the guard is gone
//! before the first await, so a request never pins a snapshot while it waits on the
//! network. A phase that refuses ends the pipeline with the gateway's own answer; once a
//! request is admitted, a failed forward is still an answer, with its `RateLimit` headers.

pub mod body_timeout;
pub mod client_body;
pub mod context;
pub mod cors;
pub mod dot_segments;
pub mod errors;
pub mod forward;
pub mod mapping;
pub mod phases;
pub mod prepare;
pub mod request_id;
pub mod resolve;
pub mod well_formed;

use std::sync::Arc;

use gatehouse_model::request_path;
use http::{Request, Response};
use hyper::body::Incoming;

use crate::admission::{self, Refusal};
use crate::authorizers::{Errand, Fetched};
use crate::request::context::{RequestContext, ResponseBody};
use crate::request::errors::{ProxyBody, Reject};
use crate::request::phases::Halt;
use crate::request::prepare::Answer;
use crate::request::resolve::Resolved;
use crate::state::Shared;
use crate::traffic::recording::micros;
use crate::upstream::Peer;
use crate::websocket;

/// Serves one request; never fails (errors become responses). `peer` is the connection it
/// came on, described once per connection.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: Peer,
) -> Response<ResponseBody> {
    let mut cx = RequestContext::new(shared, peer);
    let response = match run(&mut cx, req).await {
        Ok(response) => response,
        Err(stop) => {
            cx.note_refusal(stop.reject());
            stop.response()
        }
    };
    cx.finish(response)
}

/// Why the pipeline ended before an answer: the gateway answers itself.
enum Stop {
    Reject(Reject),
    /// Admission's refusals carry `Retry-After` and `RateLimit` headers.
    Refused(Refusal),
}

impl Stop {
    fn reject(&self) -> Reject {
        match self {
            Stop::Reject(reject) => *reject,
            Stop::Refused(refusal) => refusal.reject(),
        }
    }

    fn response(self) -> Response<ProxyBody> {
        match self {
            Stop::Reject(reject) => reject.response(),
            Stop::Refused(refusal) => refusal.response(),
        }
    }
}

impl From<Reject> for Stop {
    fn from(reject: Reject) -> Stop {
        Stop::Reject(reject)
    }
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Stop {
        Stop::Refused(refusal)
    }
}

/// Most errands one request may run: a key fetch and an authorizer's answer.
const MAX_ERRANDS: usize = 2;

async fn run(cx: &mut RequestContext, req: Request<Incoming>) -> Result<Response<ProxyBody>, Stop> {
    well_formed::check(&req, cx.shared.max_uri_bytes)?;
    // Routes are matched on the normalised path, and upstreams sent what matched.
    let path = request_path::normalize(req.uri().path()).map_err(|_| Reject::BadRequest)?;
    let mut errands = 0;
    let answer = loop {
        let errand = {
            let guard = cx.shared.config.load();
            let config = guard.as_ref().ok_or(Reject::NotReady)?;
            match resolve::resolve(cx, config, &path, &req)? {
                Resolved::WebSocket(stage, rest) => break Answer::WebSocket(stage, rest),
                Resolved::Preflight(response) => break Answer::Mock(response),
                Resolved::Route(mut matched) => {
                    let phases = matched.route().phases.iter();
                    match phases
                        .map(|p| p.run(cx, &mut matched, &req))
                        .find_map(Result::err)
                    {
                        None => break prepare::prepare(cx, &matched, &req)?,
                        Some(Halt::Errand(errand)) if errands < MAX_ERRANDS => errand,
                        Some(Halt::Errand(_)) => return Err(Reject::InternalError.into()),
                        Some(Halt::Reject(reject)) => return Err(reject.into()),
                        Some(Halt::Refused(refusal)) => return Err((*refusal).into()),
                    }
                }
            }
        };
        errands += 1;
        let fetched = run_errand(cx, errand).await;
        cx.fetched = Some(fetched);
    };
    let admitted = std::mem::take(&mut cx.admitted);
    let rate_headers = admission::take_shared_quota(&cx.shared, admitted).await?;
    let mut response = match answer {
        Answer::Mock(response) => response,
        Answer::Forward(upstream) => match forward::forward(cx, req, upstream).await {
            Ok(response) => response,
            Err(reject) => {
                cx.note_refusal(reject);
                reject.response()
            }
        },
        Answer::WebSocket(stage, rest) => {
            cx.records_itself = true;
            let (shared, ip) = (cx.shared.clone(), cx.peer.ip.clone());
            return Ok(
                websocket::serve(&shared, req, stage, &rest, ip, &cx.request_id, cx.start).await,
            );
        }
    };
    rate_headers.apply(response.headers_mut());
    Ok(response)
}

/// Runs an authorizer's network work, with the snapshot let go, timing it for the
/// access log and the authorizer's latency metric.
async fn run_errand(cx: &mut RequestContext, errand: Errand) -> Fetched {
    let started = std::time::Instant::now();
    let shared = cx.shared.clone();
    let fetched = match errand {
        Errand::FetchKeys(authorizer) => {
            authorizer
                .fetch_keys(&shared.auth_client, &shared.telemetry.auth)
                .await;
            Fetched::Keys(authorizer)
        }
        Errand::Ask(authorizer, question) => {
            let answer = authorizer.ask(&shared.auth_client, question).await;
            shared
                .telemetry
                .auth
                .latency
                .with_label_values(&["request"])
                .observe(started.elapsed().as_secs_f64());
            Fetched::Answer(authorizer, answer)
        }
    };
    cx.authorizer_us = Some(cx.authorizer_us.unwrap_or(0) + micros(started.elapsed()));
    fetched
}
