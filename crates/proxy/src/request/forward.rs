//! The forward answer: the request streams to its upstream over the pooled client, with
//! its headers rewritten, its body capped and timed, and the upstream's answer streams
//! back (or, for a WebSocket upgrade the route passes through, the two connections are
//! spliced). A failure becomes the gateway's own answer, blamed on whoever caused it.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use http::{header, Request, Response, Version};
use http_body::Body as _;
use http_body_util::{Either, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::admission::limiter::EverySecond;
use crate::request::body_timeout::{BodyReadTimeout, IdleTimeout};
use crate::request::client_body::{ClientBody, ClientBodyError};
use crate::request::context::RequestContext;
use crate::request::errors::{ProxyBody, Reject};
use crate::request::mapping::map_response;
use crate::request::prepare::Upstream;
use crate::request::request_id::REQUEST_ID;
use crate::traffic::recording::{micros, Counted};
use crate::upstream::{rewrite_request_headers, strip_hop_by_hop};
use crate::websocket::passthrough;

/// Sends `req` to `upstream` and streams back its answer.
pub async fn forward(
    cx: &mut RequestContext,
    mut req: Request<Incoming>,
    upstream: Upstream,
) -> Result<Response<ProxyBody>, Reject> {
    let Upstream {
        uri,
        timeout,
        upgrade,
        header_edits,
        response_rules,
    } = upstream;
    let shared = &*cx.shared;
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|len| len > shared.max_body_bytes) {
        return Err(Reject::PayloadTooLarge);
    }
    let (mut parts, body) = req.into_parts();
    rewrite_request_headers(&mut parts.headers, &cx.peer);
    header_edits.apply(&mut parts.headers)?;
    if let Some(upgrade) = &upgrade {
        passthrough::restore_upgrade(&mut parts.headers, upgrade.clone());
    }
    parts.headers.insert(REQUEST_ID, cx.request_id.clone());
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    let limit = usize::try_from(shared.max_body_bytes).unwrap_or(usize::MAX);
    // Request bytes are counted only for requests measured that have a body.
    let counted = match cx.recording.as_mut() {
        Some(recording) if !body.is_end_stream() => {
            let count = Arc::new(AtomicU64::new(0));
            recording.bytes_in = Some(count.clone());
            Some(count)
        }
        _ => None,
    };
    let upstream_request = Request::from_parts(
        parts,
        Counted::new(
            IdleTimeout::new(Limited::new(ClientBody(body), limit), shared.body_timeout),
            counted,
        ),
    );

    let sent = Instant::now();
    let result = tokio::time::timeout(timeout, shared.client.request(upstream_request)).await;
    // Integration latency is that of answers: a refused connection or a timeout is counted
    // in the 5xx errors, not as a fast or slow integration.
    if let (Some(recording), Ok(Ok(_))) = (cx.recording.as_mut(), &result) {
        recording.integration_us = Some(micros(sent.elapsed()));
    }
    let mut response = match result {
        Err(_) => return Err(Reject::GatewayTimeout),
        Ok(Err(e)) => return Err(blame(&e)),
        Ok(Ok(response)) => response,
    };
    let switched = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    if switched && client_upgrade.is_none() {
        // Switching protocols without having been asked: nothing can follow.
        return Err(Reject::BadGateway);
    }
    let upstream_upgrade = switched.then(|| hyper::upgrade::on(&mut response));
    let accepted = response.headers().get(header::UPGRADE).cloned();
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(rules) = &response_rules {
        let request_id = cx.request_id.to_str().unwrap_or("");
        map_response(
            rules,
            &mut parts.status,
            &mut parts.headers,
            request_id,
            cx.auth.as_ref(),
        )?;
    }
    // The client talks to the gateway, whatever version the upstream speaks.
    parts.version = Version::HTTP_11;
    if let (Some(client), Some(upstream), Some(accepted)) =
        (client_upgrade, upstream_upgrade, accepted)
    {
        passthrough::restore_upgrade(&mut parts.headers, accepted);
        passthrough::splice(client, upstream, shared.drain.token());
    }
    // An upstream that stalls mid-body is given up on after the route's timeout without
    // a byte, so the client sees a broken response instead of waiting.
    Ok(Response::from_parts(
        parts,
        Either::Left(IdleTimeout::new(body, timeout)),
    ))
}

/// Whose fault a failed exchange was: the client's body (too large, too slow, malformed)
/// or the upstream's.
fn blame(e: &hyper_util::client::legacy::Error) -> Reject {
    if caused_by::<LengthLimitError>(e) {
        Reject::PayloadTooLarge
    } else if caused_by::<BodyReadTimeout>(e) {
        Reject::RequestTimeout
    } else if caused_by::<ClientBodyError>(e) {
        Reject::BadRequest
    } else {
        warn_upstream_failure(e);
        Reject::BadGateway
    }
}

/// Logs an upstream failure, at most once a second.
fn warn_upstream_failure(error: &hyper_util::client::legacy::Error) {
    static GATE: EverySecond = EverySecond::new();
    if GATE.ready() {
        tracing::warn!(error = %error, source = ?std::error::Error::source(error), "upstream request failed (logged at most once a second)");
    }
}

/// True when `e` or an error beneath it is an `E`.
fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if err.is::<E>() {
            return true;
        }
        current = err.source();
    }
    false
}
