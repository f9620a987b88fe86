//! The resolve phase: which stage and route a request is for. The path is matched as
//! normalised (`gatehouse_model::request_path`), the stage found by its `slug/stage`
//! prefix and the route in the stage's table; from here on the request is measured in
//! its route's meter (or its stage's, when no route matched).

use std::sync::Arc;
use std::time::SystemTime;

use gatehouse_model::RouteMatch;
use http::{header, Request};

use crate::request::context::RequestContext;
use crate::request::cors::CorsAnswer;
use crate::request::errors::{ProxyBody, Reject};
use crate::snapshot::{split_stage, CompiledConfig, CompiledRoute, CompiledStage, Membership};
use crate::traffic::recording::{LogDraft, Recording};

/// What the request is for.
pub enum Resolved<'c, 'p> {
    /// A route of an HTTP API's stage.
    Route(Matched<'c, 'p>),
    /// A browser's preflight request to an API with CORS, answered by the gateway.
    Preflight(http::Response<ProxyBody>),
    /// A WebSocket API's stage (`slug/stage`) and the rest of the path: the stage's own
    /// handshake, or its `@connections` API.
    WebSocket(Box<str>, String),
}

/// A matched route, with what the phases after resolve learn about the request.
pub struct Matched<'c, 'p> {
    pub config: &'c CompiledConfig,
    pub stage: &'c CompiledStage,
    /// The route and the values of its path parameters.
    pub found: RouteMatch<'c, 'p, CompiledRoute>,
    /// The plan membership of the request's API key, once it is authenticated.
    pub membership: Option<&'c Membership>,
}

impl<'c> Matched<'c, '_> {
    pub fn route(&self) -> &'c CompiledRoute {
        self.found.value
    }
}

/// Finds the stage and route of a request whose normalised path is `path`.
pub fn resolve<'c, 'p, B>(
    cx: &mut RequestContext,
    config: &'c CompiledConfig,
    path: &'p str,
    req: &Request<B>,
) -> Result<Resolved<'c, 'p>, Reject> {
    let (stage, rest) = config.stage(path).ok_or(Reject::NotFound)?;
    if stage.websocket.is_some() {
        let name = split_stage(path).map_or("", |(name, _)| name);
        return Ok(Resolved::WebSocket(name.into(), rest.to_owned()));
    }
    let found = stage.routes.at(req.method(), rest);
    let meter = match &found {
        Some(found) => found.value.meter.as_ref(),
        None => stage.unrouted.as_ref(),
    };
    // A second run (after an authorizer's errand) is the same request: recorded once.
    if let (Some(meter), None) = (meter, &cx.recording) {
        let log = stage
            .access_log
            .then(|| log_draft(cx, req, found.as_ref().map(|f| &f.value.route_key)));
        cx.recording = Some(Recording::start(
            cx.shared.clone(),
            meter.clone(),
            cx.start,
            log,
        ));
    }
    if let Some(cors) = &stage.cors {
        if cx.cors.is_none() {
            cx.cors = Some(CorsAnswer::new(cors, req.headers().get(header::ORIGIN)));
        }
        if let Some(preflight) = cors.preflight(req.method(), req.headers()) {
            // The preflight's headers are the whole answer: nothing to replace.
            cx.cors = None;
            return Ok(Resolved::Preflight(preflight));
        }
    }
    let found = found.ok_or(Reject::NotFound)?;
    Ok(Resolved::Route(Matched {
        config,
        stage,
        found,
        membership: None,
    }))
}

/// What an access log line needs from the request, taken before it is forwarded. Held
/// inline, not boxed: the line is freed on the writer's thread, and memory allocated on
/// one thread and freed on another is what the allocator handles worst.
fn log_draft<B>(cx: &RequestContext, req: &Request<B>, route_key: Option<&Arc<str>>) -> LogDraft {
    LogDraft {
        time: SystemTime::now(),
        request_id: cx.request_id.clone(),
        ip: cx.peer.ip.clone(),
        method: req.method().clone(),
        path: req.uri().path().to_owned(),
        protocol: req.version(),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .map(|ua| String::from_utf8_lossy(ua.as_bytes()).into_owned()),
        route_key: route_key.cloned().unwrap_or_else(|| Arc::from("")),
    }
}
