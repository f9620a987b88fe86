//! Integrations: what a route calls. `HTTP_PROXY` forwards the request to a URI template;
//! `MOCK` answers with a fixed response. Both are checked when they are parsed, so a stored
//! integration is always one the proxy can run.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::mapping::{RequestParameters, ResponseParameters};
use crate::names::StageVariables;

/// Default integration timeout, as AWS: 29 s.
pub const DEFAULT_TIMEOUT_MS: u32 = 29_000;
pub const MIN_TIMEOUT_MS: u32 = 50;
pub const MAX_TIMEOUT_MS: u32 = 300_000;
pub const MAX_URI_LEN: usize = 2048;
pub const MAX_MOCK_BODY_LEN: usize = 1024 * 1024;
pub const MAX_MOCK_HEADERS: usize = 64;

/// What a route calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Integration {
    HttpProxy(HttpProxyIntegration),
    Mock(MockIntegration),
}

/// Forward the request to `uri`, with path parameters and stage variables substituted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "RawHttpProxy")]
pub struct HttpProxyIntegration {
    pub uri: UriTemplate,
    /// How long to wait for the upstream's response headers.
    #[schema(required = false, default = 29_000, minimum = 50, maximum = 300_000)]
    pub timeout_ms: u32,
    /// HTTP APIs: a WebSocket upgrade on this route is passed through to the upstream,
    /// both directions streaming. Off unless asked for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub websocket_upgrade: bool,
    /// How the request is changed before it is forwarded (AWS's parameter mapping).
    #[serde(default, skip_serializing_if = "RequestParameters::is_empty")]
    #[schema(required = false, value_type = BTreeMap<String, String>,
        example = json!({"overwrite:header.x-user-id": "$context.authorizer.claims.sub"}))]
    pub request_parameters: RequestParameters,
    /// How the upstream's answer is changed, per status code.
    #[serde(default, skip_serializing_if = "ResponseParameters::is_empty")]
    #[schema(required = false, value_type = BTreeMap<String, BTreeMap<String, String>>,
        example = json!({"404": {"overwrite:statuscode": "200"}}))]
    pub response_parameters: ResponseParameters,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpProxy {
    uri: UriTemplate,
    #[serde(default = "default_timeout")]
    timeout_ms: u32,
    #[serde(default)]
    websocket_upgrade: bool,
    #[serde(default)]
    request_parameters: RequestParameters,
    #[serde(default)]
    response_parameters: ResponseParameters,
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_MS
}

impl TryFrom<RawHttpProxy> for HttpProxyIntegration {
    type Error = String;
    fn try_from(raw: RawHttpProxy) -> Result<Self, Self::Error> {
        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&raw.timeout_ms) {
            return Err(format!(
                "timeout_ms must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS}"
            ));
        }
        Ok(HttpProxyIntegration {
            uri: raw.uri,
            timeout_ms: raw.timeout_ms,
            websocket_upgrade: raw.websocket_upgrade,
            request_parameters: raw.request_parameters,
            response_parameters: raw.response_parameters,
        })
    }
}

/// Answer with a fixed status, headers and body, without calling anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "RawMock")]
pub struct MockIntegration {
    #[schema(required = false, default = 200, minimum = 200, maximum = 599)]
    pub status: u16,
    /// At most 64 valid header names and values; not `content-length`,
    /// `transfer-encoding` or `connection`, which the gateway sets.
    #[schema(required = false)]
    pub headers: BTreeMap<String, String>,
    /// At most 1 MiB (in UTF-8).
    #[schema(required = false)]
    pub body: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMock {
    #[serde(default = "default_status")]
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
}

fn default_status() -> u16 {
    200
}

impl TryFrom<RawMock> for MockIntegration {
    type Error = String;
    fn try_from(raw: RawMock) -> Result<Self, Self::Error> {
        if !(200..=599).contains(&raw.status) {
            return Err("status must be between 200 and 599".to_owned());
        }
        if raw.headers.len() > MAX_MOCK_HEADERS {
            return Err(format!("headers: at most {MAX_MOCK_HEADERS}"));
        }
        for (name, value) in &raw.headers {
            let parsed = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                format!(
                    "headers: `{}` is not a valid header name",
                    name.escape_default()
                )
            })?;
            if matches!(
                parsed.as_str(),
                "content-length" | "transfer-encoding" | "connection"
            ) {
                return Err(format!("headers: `{name}` is set by the gateway"));
            }
            http::HeaderValue::from_str(value).map_err(|_| {
                format!("headers: the value of `{name}` is not a valid header value")
            })?;
        }
        if raw.body.len() > MAX_MOCK_BODY_LEN {
            return Err(format!("body: at most {MAX_MOCK_BODY_LEN} bytes"));
        }
        Ok(MockIntegration {
            status: raw.status,
            headers: raw.headers,
            body: raw.body,
        })
    }
}

/// One piece of an integration URI template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `{name}`: a path parameter of the route.
    PathParam(String),
    /// `${stageVariables.name}`.
    StageVar(String),
}

/// An `http(s)://` URI with `{param}` and `${stageVariables.name}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UriTemplate {
    raw: String,
    parts: Vec<Part>,
}

const STAGE_VAR_PREFIX: &str = "${stageVariables.";

impl UriTemplate {
    pub fn parse(raw: &str) -> Result<UriTemplate, String> {
        if raw.len() > MAX_URI_LEN {
            return Err(format!("uri: at most {MAX_URI_LEN} characters"));
        }
        if !(raw.starts_with("http://") || raw.starts_with("https://")) {
            return Err("uri must start with http:// or https://".to_owned());
        }
        let after_scheme = raw.find("://").map_or(0, |i| i + 3);
        let authority_end = raw[after_scheme..]
            .find(['/', '?', '#'])
            .map_or(raw.len(), |i| after_scheme + i);
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = raw;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with(STAGE_VAR_PREFIX) {
                let after = &rest[STAGE_VAR_PREFIX.len()..];
                let end = after
                    .find('}')
                    .ok_or("uri: `${stageVariables.` is not closed with `}`")?;
                let name = &after[..end];
                check_placeholder_name(name)?;
                flush(&mut literal, &mut parts);
                parts.push(Part::StageVar(name.to_owned()));
                rest = &after[end + 1..];
            } else if c == '{' {
                let end = rest.find('}').ok_or("uri: `{` is not closed with `}`")?;
                let name = &rest[1..end];
                check_placeholder_name(name)?;
                if raw.len() - rest.len() < authority_end {
                    // A client must never choose where the gateway connects.
                    return Err(format!(
                        "uri: `{{{name}}}` cannot be used in the host; path parameters only go in the path or query"
                    ));
                }
                flush(&mut literal, &mut parts);
                parts.push(Part::PathParam(name.to_owned()));
                rest = &rest[end + 1..];
            } else if c == '}' {
                return Err("uri: `}` without a matching `{`".to_owned());
            } else if c.is_ascii_graphic() {
                literal.push(c);
                rest = &rest[1..];
            } else {
                return Err(
                    "uri: only printable ASCII characters without spaces are allowed".to_owned(),
                );
            }
        }
        flush(&mut literal, &mut parts);
        let template = UriTemplate {
            raw: raw.to_owned(),
            parts,
        };
        // With every placeholder filled by a plain word, the result must be a usable URI.
        let sample = template.substitute(|_| "x", |_| "x");
        check_uri(&sample)?;
        Ok(template)
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Names of the path parameters the template uses.
    pub fn path_params(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::PathParam(n) => Some(n.as_str()),
            _ => None,
        })
    }

    fn substitute<'a>(
        &'a self,
        param: impl Fn(&str) -> &'a str,
        var: impl Fn(&str) -> &'a str,
    ) -> String {
        let mut out = String::with_capacity(self.raw.len());
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::PathParam(n) => out.push_str(param(n)),
                Part::StageVar(n) => out.push_str(var(n)),
            }
        }
        out
    }

    /// Fixes the stage variables (an undefined one is empty, as in AWS) and turns path
    /// parameter names into positions among `route_params`. Fails when the template uses
    /// a parameter the route does not define or the stage variables make the URI invalid.
    pub fn bind(
        &self,
        variables: &StageVariables,
        route_params: &[&str],
    ) -> Result<BoundUri, String> {
        let mut parts = Vec::with_capacity(self.parts.len());
        let mut literal = String::new();
        let mut in_query = false;
        for part in &self.parts {
            match part {
                Part::Literal(l) => literal.push_str(l),
                Part::StageVar(n) => literal.push_str(variables.get(n).unwrap_or("")),
                Part::PathParam(n) => {
                    in_query |= literal.contains('?');
                    let index = route_params.iter().position(|p| p == n).ok_or_else(|| {
                        format!("uri uses `{{{n}}}`, which is not a path parameter of the route")
                    })?;
                    if !literal.is_empty() {
                        parts.push(BoundPart::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(BoundPart::Param { index, in_query });
                }
            }
        }
        if !literal.is_empty() {
            parts.push(BoundPart::Literal(literal));
        }
        let mut bound = BoundUri {
            has_query: parts
                .iter()
                .any(|p| matches!(p, BoundPart::Literal(l) if l.contains('?'))),
            len_hint: self.raw.len() + 64,
            parts,
            fixed_query: Vec::new(),
        };
        let sample = bound.render_string(|_| "x", None);
        check_uri(&sample).map_err(|e| format!("with this stage's variables, {e}"))?;
        if let Some((_, query)) = sample.split_once('?') {
            bound.fixed_query = query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| query_name(pair).into_owned())
                .collect();
        }
        Ok(bound)
    }
}

fn flush(literal: &mut String, parts: &mut Vec<Part>) {
    if !literal.is_empty() {
        parts.push(Part::Literal(std::mem::take(literal)));
    }
}

fn check_placeholder_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "uri: placeholder `{}` must be 1 to 64 letters, digits or `_`",
            name.escape_default()
        ));
    }
    Ok(())
}

fn check_uri(uri: &str) -> Result<(), String> {
    let parsed: http::Uri = uri
        .parse()
        .map_err(|_| format!("uri `{uri}` is not a valid URI"))?;
    match parsed.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("uri must start with http:// or https://".to_owned()),
    }
    match parsed.host() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err(format!("uri `{uri}` has no host")),
    }
}

impl TryFrom<String> for UriTemplate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        UriTemplate::parse(&s)
    }
}

impl From<UriTemplate> for String {
    fn from(t: UriTemplate) -> String {
        t.raw
    }
}

impl fmt::Display for UriTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BoundPart {
    Literal(String),
    /// The route's `index`-th path parameter; `in_query` when it lands after the `?`.
    Param {
        index: usize,
        in_query: bool,
    },
}

/// An integration URI bound to one stage and one route: only path parameter values are
/// left to fill in per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundUri {
    parts: Vec<BoundPart>,
    has_query: bool,
    len_hint: usize,
    /// The names of the integration's own query parameters, decoded: a request's
    /// parameter of the same name is dropped, never sent beside them, as AWS does.
    fixed_query: Vec<String>,
}

impl BoundUri {
    fn render_string<'a>(&self, param: impl Fn(usize) -> &'a str, query: Option<&str>) -> String {
        let mut out = String::with_capacity(self.len_hint + query.map_or(0, str::len));
        for part in &self.parts {
            match part {
                BoundPart::Literal(l) => out.push_str(l),
                BoundPart::Param {
                    index,
                    in_query: false,
                } => out.push_str(param(*index)),
                BoundPart::Param {
                    index,
                    in_query: true,
                } => push_query_safe(param(*index), &mut out),
            }
        }
        let Some(q) = query.filter(|q| !q.is_empty()) else {
            return out;
        };
        let mut separator = if self.has_query { '&' } else { '?' };
        if self.fixed_query.is_empty() {
            out.push(separator);
            out.push_str(q);
            return out;
        }
        for pair in q.split('&') {
            if pair.is_empty() || self.fixed_query.iter().any(|n| *n == query_name(pair)) {
                continue;
            }
            out.push(separator);
            out.push_str(pair);
            separator = '&';
        }
        out
    }

    /// The upstream URI for one request: `param(i)` gives the value of the route's i-th
    /// path parameter, and the request's query string is appended.
    pub fn render<'a>(
        &self,
        param: impl Fn(usize) -> &'a str,
        query: Option<&str>,
    ) -> Result<http::Uri, http::uri::InvalidUri> {
        http::Uri::try_from(self.render_string(param, query))
    }
}

/// The name of one `name=value` pair of a query string, decoded (`%XX` and `+`), so
/// `%69d=1` and `i%64=1` both name `id`.
fn query_name(pair: &str) -> Cow<'_, str> {
    let name = pair.split_once('=').map_or(pair, |(name, _)| name);
    if !name.contains(['%', '+']) {
        return Cow::Borrowed(name);
    }
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits make one byte: `hi` and `lo` are below 16.
                out.push(u8::try_from(hi << 4 | lo).unwrap_or(b'%'));
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Appends a path parameter's value where it lands in a query string: the characters
/// that would start another parameter or end the query are percent-encoded.
fn push_query_safe(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("%26"),
            '=' => out.push_str("%3D"),
            '+' => out.push_str("%2B"),
            '#' => out.push_str("%23"),
            '?' => out.push_str("%3F"),
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> StageVariables {
        StageVariables::parse(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
        .expect("valid variables")
    }

    #[test]
    fn substitutes_path_parameters_stage_variables_and_the_query() {
        let t = UriTemplate::parse("http://${stageVariables.host}/pets/{id}?v=1").expect("parses");
        let bound = t
            .bind(&vars(&[("host", "10.0.0.5:9000")]), &["id"])
            .expect("binds");
        let uri = bound.render(|_| "42", Some("a=b")).expect("valid");
        assert_eq!(uri.to_string(), "http://10.0.0.5:9000/pets/42?v=1&a=b");
        let uri = bound.render(|_| "42", None).expect("valid");
        assert_eq!(uri.to_string(), "http://10.0.0.5:9000/pets/42?v=1");
    }

    #[test]
    fn the_request_cannot_override_the_integrations_query_parameters() {
        let t = UriTemplate::parse("http://up/items?role=reader&id={id}").expect("parses");
        let bound = t.bind(&StageVariables::default(), &["id"]).expect("binds");
        let render = |query: &str| {
            bound
                .render(|_| "7", Some(query))
                .expect("valid")
                .to_string()
        };
        assert_eq!(
            render("role=admin&x=1"),
            "http://up/items?role=reader&id=7&x=1"
        );
        assert_eq!(
            render("%72ole=admin&i%64=8&r%6Fle+=z&x=1&&y"),
            "http://up/items?role=reader&id=7&r%6Fle+=z&x=1&y"
        );
        assert_eq!(render("role"), "http://up/items?role=reader&id=7");
        let plain = UriTemplate::parse("http://up/items")
            .expect("parses")
            .bind(&StageVariables::default(), &[])
            .expect("binds");
        assert_eq!(
            plain
                .render(|_| "", Some("role=admin"))
                .expect("valid")
                .to_string(),
            "http://up/items?role=admin"
        );
    }

    #[test]
    fn a_parameter_in_the_query_cannot_add_parameters() {
        let t = UriTemplate::parse("http://up/items?id={id}").expect("parses");
        let bound = t.bind(&StageVariables::default(), &["id"]).expect("binds");
        let uri = bound.render(|_| "1&admin=true", None).expect("valid");
        assert_eq!(uri.to_string(), "http://up/items?id=1%26admin%3Dtrue");
    }

    #[test]
    fn path_parameters_cannot_choose_the_host() {
        for uri in [
            "http://{host}/x",
            "http://{tenant}.internal/x",
            "http://a:{port}/",
            "https://u{x}@a/",
        ] {
            let e = UriTemplate::parse(uri).expect_err(uri);
            assert!(e.contains("cannot be used in the host"), "{uri}: {e}");
        }
        assert!(UriTemplate::parse("http://${stageVariables.host}/{id}").is_ok());
    }

    #[test]
    fn greedy_parameter_carries_slashes() {
        let t = UriTemplate::parse("http://up/{proxy}").expect("parses");
        let bound = t
            .bind(&StageVariables::default(), &["proxy"])
            .expect("binds");
        assert_eq!(
            bound
                .render(|_| "a/b/c", Some("x=1"))
                .expect("valid")
                .to_string(),
            "http://up/a/b/c?x=1"
        );
    }

    #[test]
    fn refuses_non_http_uris_and_broken_templates() {
        assert!(UriTemplate::parse("ftp://x/").is_err());
        assert!(UriTemplate::parse("file:///etc/passwd").is_err());
        assert!(UriTemplate::parse("http://").is_err());
        assert!(UriTemplate::parse("http://a/{id").is_err());
        assert!(UriTemplate::parse("http://a/}").is_err());
        assert!(UriTemplate::parse("http://a/ b").is_err());
        assert!(UriTemplate::parse("http://a/${stageVariables.x").is_err());
        assert!(UriTemplate::parse("http://a/{a-b}").is_err());
    }

    #[test]
    fn binding_refuses_unknown_parameters_and_broken_hosts() {
        let t = UriTemplate::parse("http://a/{id}").expect("parses");
        assert!(t
            .bind(&StageVariables::default(), &["name"])
            .unwrap_err()
            .contains("{id}"));
        let t = UriTemplate::parse("http://${stageVariables.host}/x").expect("parses");
        assert!(t.bind(&StageVariables::default(), &[]).is_err());
    }

    #[test]
    fn integrations_parse_from_json_with_defaults_and_refuse_unknown_fields() {
        let i: Integration =
            serde_json::from_str(r#"{"type":"HTTP_PROXY","uri":"http://a/"}"#).expect("parses");
        assert!(matches!(
            i,
            Integration::HttpProxy(HttpProxyIntegration {
                timeout_ms: DEFAULT_TIMEOUT_MS,
                ..
            })
        ));
        let i: Integration =
            serde_json::from_str(r#"{"type":"MOCK","body":"hi"}"#).expect("parses");
        assert!(matches!(
            i,
            Integration::Mock(MockIntegration { status: 200, .. })
        ));
        assert!(serde_json::from_str::<Integration>(
            r#"{"type":"HTTP_PROXY","uri":"http://a/","x":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Integration>(
            r#"{"type":"HTTP_PROXY","uri":"http://a/","timeout_ms":10}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Integration>(r#"{"type":"MOCK","status":700}"#).is_err());
        assert!(serde_json::from_str::<Integration>(
            r#"{"type":"MOCK","headers":{"content-length":"1"}}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Integration>(r#"{"type":"LAMBDA"}"#).is_err());
    }
}
