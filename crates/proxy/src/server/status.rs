//! The status port: `/healthz` (the process answers), `/readyz` (a snapshot is loaded
//! and traffic can be served) and `/metrics` (Prometheus), kept apart from API traffic so
//! no API route can shadow them.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::state::Shared;

pub fn respond(shared: &Arc<Shared>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() == "/metrics" {
        let mut response = Response::new(Full::new(Bytes::from(shared.telemetry.render(shared))));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return response;
    }
    let (status, body) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, r#"{"status":"ok"}"#.to_owned()),
        "/readyz" => match shared.config.load().as_ref() {
            Some(config) => (
                StatusCode::OK,
                serde_json::json!({"status": "ready", "config_version": config.version, "stages": config.stage_count()})
                    .to_string(),
            ),
            None => (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"no configuration yet"}"#.to_owned()),
        },
        _ => (StatusCode::NOT_FOUND, r#"{"message":"Not Found"}"#.to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
