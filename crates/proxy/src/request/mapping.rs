//! Parameter mapping at run time: an integration's request rules change the upstream
//! request (headers, query string, path) before it is forwarded, and its response rules
//! change the upstream's answer for the status codes they name. Values are rendered from
//! the request, the stage, and what the authorizer learned (a JWT's claims, a REQUEST
//! authorizer's context). A value that cannot be a header value or a path refuses the
//! request with 500: the backend is never sent half a mapping.

use std::sync::Arc;

use gatehouse_model::authorizer::ContextValue;
use gatehouse_model::mapping::{Action, Mapping, Piece, Target};
use gatehouse_model::StageVariables;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use uuid::Uuid;

use crate::authorizers::jwt::{decode, form_urlencoded_values};
use crate::request::context::Authorized;
use crate::request::dot_segments::has_dot_segment;
use crate::request::errors::Reject;

/// What values are rendered from.
pub struct Sources<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The request's headers (request rules) or the upstream's (response rules).
    pub headers: &'a HeaderMap,
    pub route_key: &'a str,
    /// Path parameter names and values.
    pub params: &'a [(&'a str, &'a str)],
    pub stage: &'a str,
    pub api_id: Uuid,
    pub variables: &'a StageVariables,
    pub request_id: &'a str,
    pub source_ip: &'a str,
    pub auth: Option<&'a Authorized>,
}

fn render(pieces: &[Piece], s: &Sources<'_>) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::RequestHeader(name) | Piece::ResponseHeader(name) => {
                let values: Vec<&str> = s
                    .headers
                    .get_all(name.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                out.push_str(&values.join(","));
            }
            Piece::QueryString(name) => {
                if let Some(q) = s.query {
                    out.push_str(&form_urlencoded_values(q, name).join(","));
                }
            }
            Piece::PathParam(name) => {
                if let Some((_, v)) = s.params.iter().find(|(n, _)| n == name) {
                    out.push_str(&decode(v));
                }
            }
            Piece::RequestPath => out.push_str(s.path),
            Piece::Context(value) => match value {
                ContextValue::RequestId => out.push_str(s.request_id),
                ContextValue::HttpMethod => out.push_str(s.method),
                ContextValue::Path => out.push_str(s.path),
                ContextValue::SourceIp => out.push_str(s.source_ip),
                ContextValue::Stage => out.push_str(s.stage),
                ContextValue::RouteKey => out.push_str(s.route_key),
                ContextValue::ApiId => out.push_str(&s.api_id.to_string()),
            },
            Piece::Claim(name) => {
                if let Some(Authorized::Jwt(token)) = s.auth {
                    out.push_str(&token.claim_text(name).unwrap_or_default());
                }
            }
            Piece::AuthorizerValue(key) => match s.auth {
                Some(Authorized::Custom(decision)) => {
                    out.push_str(&decision.value_text(key).unwrap_or_default())
                }
                Some(Authorized::Jwt(token)) if key == "principalId" => {
                    out.push_str(&token.claim_text("sub").unwrap_or_default())
                }
                _ => {}
            },
            Piece::StageVariable(name) => out.push_str(s.variables.get(name).unwrap_or("")),
        }
    }
    out
}

fn header_value(rendered: String) -> Result<HeaderValue, Reject> {
    HeaderValue::try_from(rendered).map_err(|_| Reject::InternalError)
}

fn edit_header(
    headers: &mut HeaderMap,
    action: Action,
    name: &str,
    value: Option<HeaderValue>,
) -> Result<(), Reject> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Reject::InternalError)?;
    match (action, value) {
        (Action::Remove, _) => {
            headers.remove(&name);
        }
        (Action::Overwrite, Some(v)) if !v.is_empty() => {
            headers.insert(name, v);
        }
        // An overwrite whose value is empty removes: a client's own copy of a header the
        // gateway sets never survives.
        (Action::Overwrite, _) => {
            headers.remove(&name);
        }
        (Action::Append, Some(v)) if !v.is_empty() => {
            headers.append(name, v);
        }
        (Action::Append, _) => {}
    }
    Ok(())
}

/// Header edits decided at prepare, applied to the outgoing request.
#[derive(Default)]
pub struct HeaderEdits(Vec<(Action, String, Option<HeaderValue>)>);

impl HeaderEdits {
    pub fn apply(self, headers: &mut HeaderMap) -> Result<(), Reject> {
        for (action, name, value) in self.0 {
            edit_header(headers, action, &name, value)?;
        }
        Ok(())
    }
}

/// Applies request rules: header edits are returned for later, the query string and
/// path are changed in `uri` now.
pub fn map_request(
    rules: &[Mapping],
    s: &Sources<'_>,
    uri: &mut http::Uri,
) -> Result<HeaderEdits, Reject> {
    let mut edits = HeaderEdits::default();
    let mut path = uri.path().to_owned();
    let mut query: Vec<String> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut uri_changed = false;
    for rule in rules {
        match &rule.target {
            Target::Header(name) => {
                let value = match rule.action {
                    Action::Remove => None,
                    _ => Some(header_value(render(&rule.value.pieces, s))?),
                };
                edits.0.push((rule.action, name.clone(), value));
            }
            Target::QueryString(name) => {
                uri_changed = true;
                let encoded_name = encode(name);
                if rule.action != Action::Append {
                    query.retain(|pair| {
                        decode(pair.split_once('=').map_or(pair, |(n, _)| n)) != name.as_str()
                    });
                }
                if rule.action != Action::Remove {
                    let value = render(&rule.value.pieces, s);
                    if !(rule.action == Action::Overwrite && value.is_empty()) {
                        query.push(format!("{encoded_name}={}", encode(&value)));
                    }
                }
            }
            Target::Path => {
                uri_changed = true;
                let rendered = render(&rule.value.pieces, s);
                if !rendered.starts_with('/') || has_dot_segment(&rendered) {
                    return Err(Reject::InternalError);
                }
                path = rendered;
            }
            Target::StatusCode => {}
        }
    }
    if uri_changed {
        let mut parts = std::mem::take(uri).into_parts();
        let path_and_query = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        };
        parts.path_and_query = Some(path_and_query.parse().map_err(|_| Reject::InternalError)?);
        *uri = http::Uri::from_parts(parts).map_err(|_| Reject::InternalError)?;
    }
    Ok(edits)
}

/// Percent-encodes what a query string cannot hold as it is.
fn encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What response rules need once the snapshot is let go.
pub struct ResponseRules {
    pub rules: Arc<gatehouse_model::mapping::ResponseParameters>,
    pub stage: Arc<crate::snapshot::StageInfo>,
}

/// Applies the response rules for the upstream's status to its answer.
pub fn map_response(
    plan: &ResponseRules,
    status: &mut StatusCode,
    headers: &mut HeaderMap,
    request_id: &str,
    auth: Option<&Authorized>,
) -> Result<(), Reject> {
    let Some(rules) = plan.rules.for_status(status.as_u16()) else {
        return Ok(());
    };
    let upstream_headers = headers.clone();
    let s = Sources {
        method: "",
        path: "",
        query: None,
        headers: &upstream_headers,
        route_key: "",
        params: &[],
        stage: &plan.stage.name,
        api_id: plan.stage.api_id,
        variables: &plan.stage.variables,
        request_id,
        source_ip: "",
        auth,
    };
    for rule in rules {
        match &rule.target {
            Target::StatusCode => {
                *status = render(&rule.value.pieces, &s)
                    .parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .ok_or(Reject::InternalError)?;
            }
            Target::Header(name) => {
                let value = match rule.action {
                    Action::Remove => None,
                    _ => Some(header_value(render(&rule.value.pieces, &s))?),
                };
                edit_header(headers, rule.action, name, value)?;
            }
            Target::QueryString(_) | Target::Path => {}
        }
    }
    Ok(())
}
