//! The prepare phase: what answers a matched request, decided while the snapshot is
//! held. A mock's response is copied from the one prebuilt at compile; a forwarded
//! request gets its upstream URI, rendered from the route's template with the request's
//! path parameters and query, and refused when its values would build a dot segment.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};

use crate::request::context::RequestContext;
use crate::request::dot_segments::makes_dot_segment;
use crate::request::errors::{ProxyBody, Reject};
use crate::request::mapping::{map_request, HeaderEdits, ResponseRules, Sources};
use crate::request::resolve::Matched;
use crate::snapshot::Action;
use crate::websocket::passthrough;

/// How a request is answered, once the snapshot is let go.
pub enum Answer {
    Mock(Response<ProxyBody>),
    Forward(Upstream),
    /// A WebSocket API's stage (`slug/stage`) and the rest of the path.
    WebSocket(Box<str>, String),
}

/// Where and how a request is forwarded.
pub struct Upstream {
    pub uri: http::Uri,
    /// The route's timeout: for the upstream's answer, then for each part of its body.
    pub timeout: Duration,
    /// The `Upgrade` header of a WebSocket upgrade the route passes through.
    pub upgrade: Option<HeaderValue>,
    /// Header changes of the request parameter mapping.
    pub header_edits: HeaderEdits,
    /// The response parameter mapping, when the integration has one.
    pub response_rules: Option<ResponseRules>,
}

/// How `matched` answers `req`.
pub fn prepare<B>(
    cx: &RequestContext,
    matched: &Matched<'_, '_>,
    req: &Request<B>,
) -> Result<Answer, Reject> {
    let route = matched.route();
    match &route.action {
        Action::Mock {
            status,
            headers,
            body,
        } => Ok(Answer::Mock(mock(*status, headers, body))),
        Action::Proxy {
            uri,
            timeout,
            websocket_upgrade,
            request_rules,
            response_rules,
        } => {
            let upgrade = websocket_upgrade
                .then(|| passthrough::websocket_upgrade(req.headers()))
                .flatten();
            match uri.render(|i| matched.found.param(i), req.uri().query()) {
                Ok(upstream) if makes_dot_segment(uri, &upstream) => Err(Reject::BadRequest),
                Ok(mut upstream_uri) => {
                    let header_edits = if request_rules.is_empty() {
                        HeaderEdits::default()
                    } else {
                        let params: Vec<(&str, &str)> = route
                            .param_names
                            .iter()
                            .enumerate()
                            .map(|(i, name)| (&**name, matched.found.param(i)))
                            .collect();
                        let sources = sources(cx, matched, req, &params);
                        map_request(request_rules, &sources, &mut upstream_uri)?
                    };
                    Ok(Answer::Forward(Upstream {
                        uri: upstream_uri,
                        timeout: *timeout,
                        upgrade,
                        header_edits,
                        response_rules: response_rules.as_ref().map(|rules| ResponseRules {
                            rules: rules.clone(),
                            stage: matched.stage.info.clone(),
                        }),
                    }))
                }
                Err(e) => {
                    tracing::warn!(route = %route.route_key, error = %e, "integration URI invalid for this request");
                    Err(Reject::BadGateway)
                }
            }
        }
    }
}

/// What a request's mapping values are rendered from.
fn sources<'a, B>(
    cx: &'a RequestContext,
    matched: &'a Matched<'_, '_>,
    req: &'a Request<B>,
    params: &'a [(&'a str, &'a str)],
) -> Sources<'a> {
    Sources {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
        route_key: &matched.route().route_key,
        params,
        stage: &matched.stage.info.name,
        api_id: matched.stage.info.api_id,
        variables: &matched.stage.info.variables,
        request_id: cx.request_id.to_str().unwrap_or(""),
        source_ip: cx.peer.ip.to_str().unwrap_or(""),
        auth: cx.auth.as_ref(),
    }
}

fn mock(status: StatusCode, headers: &HeaderMap, body: &Bytes) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(body.clone())));
    *response.status_mut() = status;
    *response.headers_mut() = headers.clone();
    response
}
