//! Parameter mapping, as AWS HTTP APIs have it: per integration, rules that change the
//! request before it is forwarded (`append:`, `overwrite:`, `remove:` of `header.<name>`
//! and `querystring.<name>`, `overwrite:path`) and the response before it is returned,
//! per status code (headers, `overwrite:statuscode`). Values are templates of static text
//! and `$request...`, `$context...`, `$stageVariables...` and `$response.header...`
//! references. Checked here, once; the proxy only renders them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::authorizer::{check_param_name, ContextValue};

/// Most rules in one map (request rules, or the rules of one status code).
pub const MAX_MAPPINGS: usize = 50;
/// Most status codes with response rules.
pub const MAX_RESPONSE_STATUSES: usize = 20;
/// Longest value template.
pub const MAX_MAPPING_VALUE_LEN: usize = 512;

/// What a rule does to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Adds a value beside any already there.
    Append,
    /// Replaces every value there; a value that renders empty removes them.
    Overwrite,
    Remove,
}

/// What a rule changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A header, its name in lower case.
    Header(String),
    QueryString(String),
    Path,
    StatusCode,
}

/// One piece of a value template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// `$request.header.<name>` (lower case): the request's header, its values joined
    /// with `,`.
    RequestHeader(String),
    /// `$request.querystring.<name>`: the parameter, its values joined with `,`.
    QueryString(String),
    /// `$request.path.<name>`: a path parameter of the route; `$request.path` alone is
    /// the whole request path.
    PathParam(String),
    RequestPath,
    Context(ContextValue),
    /// `$context.authorizer.claims.<claim>`: a claim of the request's verified JWT.
    Claim(String),
    /// `$context.authorizer.<key>`: a value of a REQUEST authorizer's `context`.
    AuthorizerValue(String),
    /// `$stageVariables.<name>`.
    StageVariable(String),
    /// `$response.header.<name>` (lower case), in response rules only.
    ResponseHeader(String),
}

/// A parsed value: the pieces, rendered in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueTemplate {
    pub pieces: Vec<Piece>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub action: Action,
    pub target: Target,
    pub value: ValueTemplate,
}

/// Headers no rule may set, as AWS: what the gateway or the connection owns.
pub fn is_reserved_header(name: &str) -> bool {
    name.starts_with("access-control-")
        || name.starts_with("apigw-")
        || name.starts_with("x-amz-")
        || name.starts_with("x-amzn-")
        || name.starts_with("x-gatehouse-")
        || matches!(
            name,
            "authorization"
                | "connection"
                | "content-encoding"
                | "content-length"
                | "content-location"
                | "forwarded"
                | "host"
                | "keep-alive"
                | "origin"
                | "proxy-authenticate"
                | "proxy-authorization"
                | "te"
                | "trailer"
                | "trailers"
                | "transfer-encoding"
                | "upgrade"
                | "via"
                | "x-forwarded-for"
                | "x-forwarded-host"
                | "x-forwarded-proto"
                | "x-request-id"
        )
}

/// Which side a rule is for: what it may change and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

fn parse_key(key: &str, side: Side) -> Result<(Action, Target), String> {
    let (action, target) = key.split_once(':').ok_or_else(|| {
        format!(
            "`{}` must be `append:`, `overwrite:` or `remove:` and a target",
            key.escape_default()
        )
    })?;
    let action = match action {
        "append" => Action::Append,
        "overwrite" => Action::Overwrite,
        "remove" => Action::Remove,
        _ => {
            return Err(format!(
                "`{}`: the action is append, overwrite or remove",
                key.escape_default()
            ))
        }
    };
    let target = if let Some(name) = target.strip_prefix("header.") {
        check_param_name(name).map_err(|e| format!("`{}`: {e}", key.escape_default()))?;
        let name = name.to_ascii_lowercase();
        if is_reserved_header(&name) {
            return Err(format!("`{name}` is reserved: the gateway sets it"));
        }
        Target::Header(name)
    } else if let Some(name) = target.strip_prefix("querystring.") {
        if side == Side::Response {
            return Err(format!(
                "`{}`: a response has no query string",
                key.escape_default()
            ));
        }
        check_param_name(name).map_err(|e| format!("`{}`: {e}", key.escape_default()))?;
        Target::QueryString(name.to_owned())
    } else if target == "path" && side == Side::Request {
        Target::Path
    } else if target == "statuscode" && side == Side::Response {
        Target::StatusCode
    } else {
        return Err(format!(
            "`{}`: the target is {}",
            key.escape_default(),
            match side {
                Side::Request => "header.<name>, querystring.<name> or path",
                Side::Response => "header.<name> or statuscode",
            }
        ));
    };
    if action != Action::Overwrite && matches!(target, Target::Path | Target::StatusCode) {
        return Err(format!(
            "`{}`: the path and status code can only be overwritten",
            key.escape_default()
        ));
    }
    Ok((action, target))
}

fn reference(expr: &str, side: Side) -> Result<Piece, String> {
    let bad = || {
        format!(
            "`${}` is not a value the gateway knows",
            expr.escape_default()
        )
    };
    let named = |rest: &str, make: fn(String) -> Piece| -> Result<Piece, String> {
        check_param_name(rest)?;
        Ok(make(rest.to_owned()))
    };
    if side == Side::Response {
        if let Some(rest) = expr.strip_prefix("response.header.") {
            return named(&rest.to_ascii_lowercase(), Piece::ResponseHeader);
        }
    }
    if let Some(rest) = expr.strip_prefix("request.") {
        if side == Side::Response {
            return Err(format!("`${}`: response rules read `$response.header.<name>`, `$context` and `$stageVariables`", expr.escape_default()));
        }
        if rest == "path" {
            return Ok(Piece::RequestPath);
        }
        if let Some(name) = rest.strip_prefix("header.") {
            return named(&name.to_ascii_lowercase(), Piece::RequestHeader);
        }
        if let Some(name) = rest.strip_prefix("querystring.") {
            return named(name, Piece::QueryString);
        }
        if let Some(name) = rest.strip_prefix("path.") {
            return named(name, Piece::PathParam);
        }
        return Err(bad());
    }
    if let Some(name) = expr.strip_prefix("stageVariables.") {
        return named(name, Piece::StageVariable);
    }
    if let Some(rest) = expr.strip_prefix("context.") {
        if let Some(claim) = rest.strip_prefix("authorizer.claims.") {
            return named(claim, Piece::Claim);
        }
        if let Some(key) = rest.strip_prefix("authorizer.") {
            return named(key, Piece::AuthorizerValue);
        }
        return ContextValue::parse(rest)
            .map(Piece::Context)
            .ok_or_else(bad);
    }
    Err(bad())
}

impl ValueTemplate {
    fn parse(raw: &str, side: Side) -> Result<ValueTemplate, String> {
        if raw.len() > MAX_MAPPING_VALUE_LEN {
            return Err(format!(
                "a value is at most {MAX_MAPPING_VALUE_LEN} characters"
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err("a value holds no control characters".to_owned());
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = raw;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (expr, next) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| "`${` is not closed with `}`".to_owned())?;
                (&braced[..end], &braced[end + 1..])
            } else {
                let end = after
                    .find(|c: char| {
                        !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~'))
                    })
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if expr.is_empty() {
                text.push('$');
            } else {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(reference(expr, side)?);
            }
            rest = next;
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(ValueTemplate { pieces })
    }

    /// Whether it is only static text, and which.
    pub fn as_static(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Text(t)] => Some(t),
            _ => None,
        }
    }
}

fn parse_rules(map: &BTreeMap<String, String>, side: Side) -> Result<Vec<Mapping>, String> {
    if map.len() > MAX_MAPPINGS {
        return Err(format!("at most {MAX_MAPPINGS} rules"));
    }
    let mut rules = Vec::with_capacity(map.len());
    for (key, value) in map {
        let (action, target) = parse_key(key, side)?;
        let value = ValueTemplate::parse(value, side)
            .map_err(|e| format!("`{}`: {e}", key.escape_default()))?;
        if target == Target::StatusCode {
            let code = value.as_static().and_then(|v| v.parse::<u16>().ok());
            if !code.is_some_and(|c| (200..=599).contains(&c)) {
                return Err("`overwrite:statuscode` takes a status code from 200 to 599".to_owned());
            }
        }
        if target == Target::Path {
            if let Some(path) = value.as_static() {
                if !path.starts_with('/') {
                    return Err("`overwrite:path` must start with `/`".to_owned());
                }
            }
        }
        // Keys differing only in a header name's case are the same target.
        if rules.iter().any(|r: &Mapping| {
            r.target == target
                && (r.action == action
                    || action == Action::Overwrite
                    || r.action == Action::Overwrite)
        }) {
            return Err(format!("`{}` is mapped twice", key.escape_default()));
        }
        rules.push(Mapping {
            action,
            target,
            value,
        });
    }
    Ok(rules)
}

/// The request rules of an integration, keyed as AWS writes them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct RequestParameters {
    raw: BTreeMap<String, String>,
    rules: Vec<Mapping>,
}

impl RequestParameters {
    pub fn rules(&self) -> &[Mapping] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl TryFrom<BTreeMap<String, String>> for RequestParameters {
    type Error = String;
    fn try_from(raw: BTreeMap<String, String>) -> Result<Self, String> {
        let rules = parse_rules(&raw, Side::Request)?;
        Ok(RequestParameters { raw, rules })
    }
}

impl From<RequestParameters> for BTreeMap<String, String> {
    fn from(p: RequestParameters) -> Self {
        p.raw
    }
}

/// The response rules of an integration, per status code of the upstream's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, BTreeMap<String, String>>",
    into = "BTreeMap<String, BTreeMap<String, String>>"
)]
pub struct ResponseParameters {
    raw: BTreeMap<String, BTreeMap<String, String>>,
    by_status: Vec<(u16, Vec<Mapping>)>,
}

impl ResponseParameters {
    /// The rules for an upstream answer of `status`.
    pub fn for_status(&self, status: u16) -> Option<&[Mapping]> {
        self.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, rules)| rules.as_slice())
    }

    pub fn is_empty(&self) -> bool {
        self.by_status.is_empty()
    }
}

impl TryFrom<BTreeMap<String, BTreeMap<String, String>>> for ResponseParameters {
    type Error = String;
    fn try_from(raw: BTreeMap<String, BTreeMap<String, String>>) -> Result<Self, String> {
        if raw.len() > MAX_RESPONSE_STATUSES {
            return Err(format!("at most {MAX_RESPONSE_STATUSES} status codes"));
        }
        let mut by_status = Vec::with_capacity(raw.len());
        for (status, rules) in &raw {
            let code = status
                .parse::<u16>()
                .ok()
                .filter(|c| (200..=599).contains(c))
                .ok_or_else(|| {
                    format!(
                        "`{}` is not a status code from 200 to 599",
                        status.escape_default()
                    )
                })?;
            by_status.push((
                code,
                parse_rules(rules, Side::Response).map_err(|e| format!("{code}: {e}"))?,
            ));
        }
        Ok(ResponseParameters { raw, by_status })
    }
}

impl From<ResponseParameters> for BTreeMap<String, BTreeMap<String, String>> {
    fn from(p: ResponseParameters) -> Self {
        p.raw
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Append => "append",
            Action::Overwrite => "overwrite",
            Action::Remove => "remove",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> Result<RequestParameters, String> {
        RequestParameters::try_from(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn values_mix_text_and_references() {
        let p = request(&[(
            "overwrite:header.X-User",
            "user ${context.authorizer.claims.sub} via $request.header.Host!",
        )])
        .expect("valid");
        let rule = &p.rules()[0];
        assert_eq!(rule.target, Target::Header("x-user".into()));
        assert_eq!(
            rule.value.pieces,
            vec![
                Piece::Text("user ".into()),
                Piece::Claim("sub".into()),
                Piece::Text(" via ".into()),
                Piece::RequestHeader("host".into()),
                Piece::Text("!".into()),
            ]
        );
    }

    #[test]
    fn reserved_headers_unknown_references_and_bad_targets_are_refused() {
        for bad in [
            [("overwrite:header.Authorization", "x")],
            [("append:header.x-forwarded-for", "x")],
            [("overwrite:header.access-control-allow-origin", "*")],
            [("overwrite:header.x", "$request.body.name")],
            [("overwrite:header.x", "${request.header.a")],
            [("append:path", "/a")],
            [("overwrite:path", "relative")],
            [("overwrite:statuscode", "200")],
            [("replace:header.x", "1")],
            [("overwrite:header.x", "a\r\nb: c")],
            [("overwrite:header.bad name", "1")],
        ] {
            assert!(request(&bad).is_err(), "{bad:?}");
        }
        let mut response = BTreeMap::new();
        response.insert(
            "404".to_owned(),
            BTreeMap::from([("overwrite:statuscode".to_owned(), "999".to_owned())]),
        );
        assert!(ResponseParameters::try_from(response).is_err());
    }

    #[test]
    fn a_target_is_overwritten_once() {
        assert!(request(&[("overwrite:header.x", "1"), ("append:header.x", "2")]).is_err());
        assert!(request(&[("append:header.x", "1"), ("remove:header.x", "")]).is_ok());
    }

    #[test]
    fn response_rules_are_found_by_status() {
        let mut raw = BTreeMap::new();
        raw.insert(
            "404".to_owned(),
            BTreeMap::from([
                ("overwrite:statuscode".to_owned(), "200".to_owned()),
                (
                    "append:header.x-was".to_owned(),
                    "$response.header.x-upstream".to_owned(),
                ),
            ]),
        );
        let p = ResponseParameters::try_from(raw.clone()).expect("valid");
        assert_eq!(p.for_status(404).map(<[Mapping]>::len), Some(2));
        assert!(p.for_status(200).is_none());
        let back: BTreeMap<String, BTreeMap<String, String>> = p.into();
        assert_eq!(back, raw);
    }
}
