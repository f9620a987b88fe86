//! CORS for an API's stage, as AWS HTTP APIs do it: the gateway answers browsers'
//! preflight requests itself (route or no route), and every answer of the API gets the
//! CORS headers for the request's origin, replacing whatever the backend sent. An origin
//! not allowed gets no CORS headers at all, so the browser keeps the page out.
//!
//! Header values are built when the snapshot is compiled; a request only picks them.

use std::sync::Arc;

use bytes::Bytes;
use gatehouse_model::CorsConfiguration;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::{Either, Full};

use crate::request::errors::ProxyBody;

/// A CORS configuration, ready to answer with.
#[derive(Debug)]
pub struct CompiledCors {
    any_origin: bool,
    origins: Box<[Box<str>]>,
    /// `None`: any method.
    methods: Option<HeaderValue>,
    method_list: Box<[Method]>,
    /// `None`: any request header.
    headers: Option<HeaderValue>,
    header_list: Box<[Box<str>]>,
    expose: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    credentials: bool,
}

fn joined(list: &[String]) -> Result<Option<HeaderValue>, String> {
    if list.is_empty() {
        return Ok(None);
    }
    HeaderValue::from_str(&list.join(","))
        .map(Some)
        .map_err(|e| format!("CORS list {list:?}: {e}"))
}

impl CompiledCors {
    pub fn compile(config: &CorsConfiguration) -> Result<CompiledCors, String> {
        let any = |list: &[String]| list.iter().any(|e| e == "*");
        Ok(CompiledCors {
            any_origin: any(&config.allow_origins),
            origins: config
                .allow_origins
                .iter()
                .map(|o| o.as_str().into())
                .collect(),
            methods: if any(&config.allow_methods) {
                None
            } else {
                joined(&config.allow_methods)?
            },
            method_list: config
                .allow_methods
                .iter()
                .filter_map(|m| m.parse().ok())
                .collect(),
            headers: if any(&config.allow_headers) {
                None
            } else {
                joined(&config.allow_headers)?
            },
            header_list: config
                .allow_headers
                .iter()
                .map(|h| h.as_str().into())
                .collect(),
            expose: joined(&config.expose_headers)?,
            max_age: config.max_age.map(HeaderValue::from),
            credentials: config.allow_credentials,
        })
    }

    /// The `Access-Control-Allow-Origin` for a request from `origin`, if it is allowed.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        if self.any_origin && !self.credentials {
            return Some(HeaderValue::from_static("*"));
        }
        let text = origin.to_str().ok()?.to_ascii_lowercase();
        (self.any_origin || self.origins.iter().any(|o| **o == *text)).then(|| origin.clone())
    }

    /// The answer to a preflight request, or `None` when `method` and `headers` are not
    /// one (an `OPTIONS` with `Origin` and `Access-Control-Request-Method`).
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<ProxyBody>> {
        if method != Method::OPTIONS {
            return None;
        }
        let origin = headers.get(header::ORIGIN)?;
        let asked_method = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
        let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
        *response.status_mut() = StatusCode::NO_CONTENT;
        let out = response.headers_mut();
        out.insert(header::VARY, HeaderValue::from_static("Origin"));
        let Some(allow_origin) = self.allow_origin(Some(origin)) else {
            return Some(response);
        };
        let method_ok = match &self.methods {
            None => true,
            Some(_) => asked_method
                .to_str()
                .ok()
                .and_then(|m| m.parse::<Method>().ok())
                .is_some_and(|m| self.method_list.contains(&m)),
        };
        let asked_headers = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS);
        let headers_ok = match (&self.headers, asked_headers.and_then(|h| h.to_str().ok())) {
            (None, _) | (_, None) => true,
            (Some(_), Some(asked)) => asked
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .all(|h| self.header_list.iter().any(|allowed| **allowed == *h)),
        };
        if !(method_ok && headers_ok) {
            return Some(response);
        }
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.methods.clone().unwrap_or_else(|| asked_method.clone()),
        );
        let allow_headers = match &self.headers {
            Some(list) => Some(list.clone()),
            None => asked_headers.cloned(),
        };
        if let Some(allow_headers) = allow_headers {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
        }
        if let Some(age) = &self.max_age {
            out.insert(header::ACCESS_CONTROL_MAX_AGE, age.clone());
        }
        if self.credentials {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        Some(response)
    }
}

/// The CORS headers one request's answer gets.
pub struct CorsAnswer {
    cors: Arc<CompiledCors>,
    allow_origin: Option<HeaderValue>,
}

impl CorsAnswer {
    pub fn new(cors: &Arc<CompiledCors>, origin: Option<&HeaderValue>) -> CorsAnswer {
        CorsAnswer {
            allow_origin: cors.allow_origin(origin),
            cors: cors.clone(),
        }
    }

    /// Replaces the backend's CORS headers with the API's, for this request's origin.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let theirs: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in theirs {
            headers.remove(name);
        }
        if !self.cors.any_origin || self.cors.credentials {
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        let Some(origin) = &self.allow_origin else {
            return;
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.cors.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.cors.expose {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_model::cors::CorsInput;

    fn cors(origins: &[&str], credentials: bool) -> Arc<CompiledCors> {
        let config = CorsConfiguration::try_from(CorsInput {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["authorization".into(), "content-type".into()],
            expose_headers: vec!["x-request-id".into()],
            max_age: Some(600),
            allow_credentials: credentials,
        })
        .expect("valid");
        Arc::new(CompiledCors::compile(&config).expect("compiles"))
    }

    fn preflight(c: &CompiledCors, origin: &str, method: &str, headers: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_str(origin).expect("origin"),
        );
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_str(method).expect("m"),
        );
        if !headers.is_empty() {
            h.insert(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_str(headers).expect("h"),
            );
        }
        c.preflight(&Method::OPTIONS, &h)
            .expect("a preflight")
            .headers()
            .clone()
    }

    #[test]
    fn an_allowed_preflight_gets_the_configured_answer() {
        let c = cors(&["https://app.example.com"], true);
        let h = preflight(
            &c,
            "https://App.example.com",
            "POST",
            "Authorization, Content-Type",
        );
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://App.example.com"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "GET,POST");
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    }

    #[test]
    fn a_foreign_origin_method_or_header_gets_no_cors_headers() {
        let c = cors(&["https://app.example.com"], false);
        for (origin, method, headers) in [
            ("https://evil.example.com", "GET", ""),
            ("https://app.example.com.evil.com", "GET", ""),
            ("null", "GET", ""),
            ("https://app.example.com", "DELETE", ""),
            ("https://app.example.com", "GET", "x-secret"),
        ] {
            let h = preflight(&c, origin, method, headers);
            assert!(
                h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
                "{origin} {method} {headers}"
            );
        }
    }

    #[test]
    fn answers_replace_the_backends_cors_headers() {
        let c = cors(&["*"], false);
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://backend.example"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        CorsAnswer::new(&c, Some(&HeaderValue::from_static("https://x.example"))).apply(&mut h);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        let mut none = HeaderMap::new();
        none.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        CorsAnswer::new(
            &cors(&["https://a.example"], false),
            Some(&HeaderValue::from_static("https://b.example")),
        )
        .apply(&mut none);
        assert!(none.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
}
