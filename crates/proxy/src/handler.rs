//! The request path: find the stage and route in the current snapshot, then answer a mock
//! or forward upstream. The snapshot guard is dropped before any await, so a request never
//! pins a snapshot while it waits on the network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, Version};
use http_body_util::{Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::compiled::{Action, CompiledConfig};
use crate::errors::{ProxyBody, Reject};
use crate::forward::{rewrite_request_headers, strip_hop_by_hop, UpstreamClient};
use crate::request_id::{RequestIds, REQUEST_ID};

/// What every request reads: the published snapshot and the shared upstream client.
pub struct Shared {
    pub config: ArcSwapOption<CompiledConfig>,
    pub client: UpstreamClient,
    pub request_ids: RequestIds,
    pub max_body_bytes: u64,
}

/// Serves one request; never fails (errors become responses).
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
    let request_id = shared.request_ids.next();
    let mut response = dispatch(&shared, req, peer, &request_id).await;
    response.headers_mut().insert(REQUEST_ID, request_id);
    response
}

async fn dispatch(shared: &Shared, req: Request<Incoming>, peer: SocketAddr, request_id: &HeaderValue) -> Response<ProxyBody> {
    let (uri, timeout) = {
        let guard = shared.config.load();
        let Some(config) = guard.as_ref() else {
            return Reject::NotReady.response();
        };
        let Some((table, rest)) = config.stage(req.uri().path()) else {
            return Reject::NotFound.response();
        };
        let Some(found) = table.at(req.method(), rest) else {
            return Reject::NotFound.response();
        };
        let route = found.value;
        if route.api_key_required {
            // API keys are not issued yet: a route that requires one admits nobody.
            return Reject::Forbidden.response();
        }
        match &route.action {
            Action::Mock { status, headers, body } => return mock(*status, headers, body),
            Action::Proxy { uri, timeout } => match uri.render(|i| found.param(i), req.uri().query()) {
                Ok(uri) => (uri, *timeout),
                Err(e) => {
                    tracing::warn!(route = %route.route_key, error = %e, "integration URI invalid for this request");
                    return Reject::BadGateway.response();
                }
            },
        }
    };
    forward(shared, req, uri, timeout, peer, request_id).await
}

fn mock(status: http::StatusCode, headers: &http::HeaderMap, body: &Bytes) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(body.clone())));
    *response.status_mut() = status;
    *response.headers_mut() = headers.clone();
    response
}

async fn forward(
    shared: &Shared,
    req: Request<Incoming>,
    uri: http::Uri,
    timeout: Duration,
    peer: SocketAddr,
    request_id: &HeaderValue,
) -> Response<ProxyBody> {
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|len| len > shared.max_body_bytes) {
        return Reject::PayloadTooLarge.response();
    }
    let (mut parts, body) = req.into_parts();
    rewrite_request_headers(&mut parts.headers, peer.ip());
    parts.headers.insert(REQUEST_ID, request_id.clone());
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    let limit = usize::try_from(shared.max_body_bytes).unwrap_or(usize::MAX);
    let upstream_request = Request::from_parts(parts, Limited::new(body, limit));

    match tokio::time::timeout(timeout, shared.client.request(upstream_request)).await {
        Err(_) => Reject::GatewayTimeout.response(),
        Ok(Err(e)) => {
            if caused_by_length_limit(&e) {
                return Reject::PayloadTooLarge.response();
            }
            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "upstream request failed");
            Reject::BadGateway.response()
        }
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Either::Left(body))
        }
    }
}

fn caused_by_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if err.is::<LengthLimitError>() {
            return true;
        }
        current = err.source();
    }
    false
}
