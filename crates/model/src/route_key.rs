//! Route keys as AWS API Gateway writes them: `GET /pets/{id}`, `ANY /{proxy+}`, `$default`
//! for HTTP APIs; `$connect`, `$disconnect`, `$default` and custom keys (`sendmessage`) for
//! WebSocket APIs.
//!
//! A [`RouteKey`] can only be built by parsing, so every key the control plane stores and
//! every key the proxy compiles has already passed the same rules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::snapshot::Protocol;

/// Longest route key accepted, in bytes.
pub const MAX_ROUTE_KEY_LEN: usize = 1024;
/// Most `{param}`s one route key may hold (the matcher cannot take many more).
pub const MAX_PARAMS: usize = 16;
/// Longest custom route key of a WebSocket API.
pub const MAX_MESSAGE_KEY_LEN: usize = 128;
/// Longest `{param}` name accepted.
const MAX_PARAM_NAME_LEN: usize = 64;

/// The method part of a route key. `Any` matches every method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Any,
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl Method {
    /// Every method a route key may name, `ANY` first.
    pub const ALL: [Method; 8] = [
        Method::Any,
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Head,
        Method::Options,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Any => "ANY",
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
        }
    }

    fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// One `/`-separated piece of a route path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    /// `{name}`: exactly one path segment.
    Param(String),
    /// `{name+}`: the rest of the path, one or more segments; only last.
    Greedy(String),
}

/// The path part of a route key, already split and checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    segments: Vec<Segment>,
}

impl PathPattern {
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Names of the path parameters, in the order they appear.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::Greedy(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The pattern with parameters renamed by position (`/pets/{p0}`, `/{*p0}`), in the
    /// syntax of the matcher. Two route paths that match the same requests have the same
    /// shape, whatever their parameters are called.
    pub fn shape(&self) -> String {
        if self.segments.is_empty() {
            return "/".to_owned();
        }
        let mut out = String::new();
        let mut index = 0;
        for segment in &self.segments {
            out.push('/');
            match segment {
                // As requests are matched on their normalised path, so are literals.
                Segment::Literal(l) => out.push_str(&crate::request_path::normalize_segment(l)),
                Segment::Param(_) => {
                    out.push_str(&format!("{{p{index}}}"));
                    index += 1;
                }
                Segment::Greedy(_) => {
                    out.push_str(&format!("{{*p{index}}}"));
                    index += 1;
                }
            }
        }
        out
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for segment in &self.segments {
            match segment {
                Segment::Literal(l) => write!(f, "/{l}")?,
                Segment::Param(n) => write!(f, "/{{{n}}}")?,
                Segment::Greedy(n) => write!(f, "/{{{n}+}}")?,
            }
        }
        Ok(())
    }
}

/// A parsed route key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RouteKey {
    /// `$default`: what no other route matches.
    Default,
    /// `METHOD /path`.
    Route { method: Method, path: PathPattern },
    /// `$connect`: called when a WebSocket client connects; may refuse it.
    Connect,
    /// `$disconnect`: called once when a WebSocket connection ends.
    Disconnect,
    /// A custom WebSocket route key, chosen by the route selection expression.
    Message(Box<str>),
}

/// Why a route key was refused. The message is meant for the person who wrote the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RouteKeyError(String);

fn err(msg: impl Into<String>) -> RouteKeyError {
    RouteKeyError(msg.into())
}

impl RouteKey {
    pub fn parse(input: &str) -> Result<RouteKey, RouteKeyError> {
        if input.is_empty() {
            return Err(err(
                "route key is empty; expected `METHOD /path` or `$default`",
            ));
        }
        if input.len() > MAX_ROUTE_KEY_LEN {
            return Err(err(format!(
                "route key is longer than {MAX_ROUTE_KEY_LEN} bytes"
            )));
        }
        if input == "$default" {
            return Ok(RouteKey::Default);
        }
        if input.starts_with('$') {
            return Err(err(format!(
                "`{input}` is not a route key of an HTTP API; the only special key is `$default`"
            )));
        }
        if input.trim() != input {
            return Err(err("route key has leading or trailing whitespace"));
        }
        let (method, path) = input
            .split_once(' ')
            .ok_or_else(|| err("expected `METHOD /path`, with one space between them"))?;
        let method = Method::parse(method).ok_or_else(|| {
            err(format!(
                "unknown method `{method}`; use one of ANY, GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS (upper case)"
            ))
        })?;
        let path = parse_path(path)?;
        Ok(RouteKey::Route { method, path })
    }

    /// Parses a route key of a WebSocket API: `$connect`, `$disconnect`, `$default` or a
    /// custom key of letters, digits and `_ - . :` (what a route selection expression can
    /// select).
    pub fn parse_websocket(input: &str) -> Result<RouteKey, RouteKeyError> {
        match input {
            "$connect" => return Ok(RouteKey::Connect),
            "$disconnect" => return Ok(RouteKey::Disconnect),
            "$default" => return Ok(RouteKey::Default),
            _ => {}
        }
        if input.is_empty() {
            return Err(err(
                "route key is empty; expected `$connect`, `$disconnect`, `$default` or a custom key such as `sendmessage`",
            ));
        }
        if input.starts_with('$') {
            return Err(err(format!(
                "`{}` is not a route key of a WebSocket API; the special keys are `$connect`, `$disconnect` and `$default`",
                input.escape_default()
            )));
        }
        if input.contains(' ') {
            return Err(err(format!(
                "`{}` looks like an HTTP route key; a WebSocket API's keys are `$connect`, `$disconnect`, `$default` or a custom key such as `sendmessage`",
                input.escape_default()
            )));
        }
        if input.len() > MAX_MESSAGE_KEY_LEN {
            return Err(err(format!(
                "a custom route key is at most {MAX_MESSAGE_KEY_LEN} bytes"
            )));
        }
        if let Some(bad) = input.chars().find(|c| !is_message_key_char(*c)) {
            return Err(err(format!(
                "a custom route key may only use letters, digits and `_ - . :`, not `{}`",
                bad.escape_default()
            )));
        }
        Ok(RouteKey::Message(input.into()))
    }

    /// Parses a route key of an API of `protocol`.
    pub fn parse_for(protocol: Protocol, input: &str) -> Result<RouteKey, RouteKeyError> {
        match protocol {
            Protocol::Http => RouteKey::parse(input),
            Protocol::Websocket => RouteKey::parse_websocket(input),
        }
    }

    /// Whether an API of `protocol` can have this route key (`$default` fits both).
    pub fn fits(&self, protocol: Protocol) -> bool {
        match self {
            RouteKey::Default => true,
            RouteKey::Route { .. } => protocol == Protocol::Http,
            RouteKey::Connect | RouteKey::Disconnect | RouteKey::Message(_) => {
                protocol == Protocol::Websocket
            }
        }
    }

    pub fn method(&self) -> Option<Method> {
        match self {
            RouteKey::Route { method, .. } => Some(*method),
            _ => None,
        }
    }

    pub fn path(&self) -> Option<&PathPattern> {
        match self {
            RouteKey::Route { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Names of the path parameters this key defines (none for `$default`).
    pub fn param_names(&self) -> Vec<&str> {
        self.path()
            .map(|p| p.param_names().collect())
            .unwrap_or_default()
    }
}

fn parse_path(path: &str) -> Result<PathPattern, RouteKeyError> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| err(format!("path `{path}` must start with `/`")))?;
    if rest.is_empty() {
        return Ok(PathPattern {
            segments: Vec::new(),
        });
    }
    let pieces: Vec<&str> = rest.split('/').collect();
    let mut segments = Vec::with_capacity(pieces.len());
    let mut names: Vec<&str> = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        if piece.is_empty() {
            return Err(err(format!(
                "path `{path}` has an empty segment (a doubled or trailing `/`)"
            )));
        }
        let segment = if let Some(inner) = piece.strip_prefix('{') {
            let inner = inner.strip_suffix('}').ok_or_else(|| {
                err(format!(
                    "segment `{piece}` opens `{{` without closing it at the segment's end"
                ))
            })?;
            let (name, greedy) = match inner.strip_suffix('+') {
                Some(name) => (name, true),
                None => (inner, false),
            };
            check_param_name(name, piece)?;
            if greedy && !last {
                return Err(err(format!(
                    "greedy parameter `{piece}` must be the last segment"
                )));
            }
            if names.len() == MAX_PARAMS {
                return Err(err(format!(
                    "a route key holds at most {MAX_PARAMS} parameters"
                )));
            }
            if names.contains(&name) {
                return Err(err(format!("parameter `{name}` appears twice in `{path}`")));
            }
            names.push(name);
            if greedy {
                Segment::Greedy(name.to_owned())
            } else {
                Segment::Param(name.to_owned())
            }
        } else {
            if let Some(bad) = piece.chars().find(|c| !is_literal_char(*c)) {
                return Err(err(format!(
                    "segment `{piece}` contains `{}`, which a route path cannot hold",
                    bad.escape_default()
                )));
            }
            Segment::Literal((*piece).to_owned())
        };
        segments.push(segment);
    }
    Ok(PathPattern { segments })
}

fn check_param_name(name: &str, piece: &str) -> Result<(), RouteKeyError> {
    if name.is_empty() || name.len() > MAX_PARAM_NAME_LEN {
        return Err(err(format!(
            "parameter `{piece}` needs a name of 1 to {MAX_PARAM_NAME_LEN} characters"
        )));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(err(format!(
            "parameter `{piece}` may only use letters, digits and `_` in its name"
        )));
    }
    Ok(())
}

fn is_message_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-.:".contains(c)
}

/// Characters allowed in a literal path segment: RFC 3986 `pchar`, less `{`/`}`.
fn is_literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%".contains(c)
}

impl FromStr for RouteKey {
    type Err = RouteKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RouteKey::parse(s)
    }
}

/// Reads a stored key of either protocol: an HTTP key always holds a space, a WebSocket key
/// never does. The protocol is checked where routes are written and where stages compile.
impl TryFrom<String> for RouteKey {
    type Error = RouteKeyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.contains(' ') {
            RouteKey::parse(&s)
        } else {
            RouteKey::parse_websocket(&s)
        }
    }
}

impl From<RouteKey> for String {
    fn from(k: RouteKey) -> String {
        k.to_string()
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteKey::Default => f.write_str("$default"),
            RouteKey::Route { method, path } => write!(f, "{} {path}", method.as_str()),
            RouteKey::Connect => f.write_str("$connect"),
            RouteKey::Disconnect => f.write_str("$disconnect"),
            RouteKey::Message(key) => f.write_str(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> RouteKey {
        RouteKey::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn bad(s: &str) -> String {
        match RouteKey::parse(s) {
            Ok(k) => panic!("`{s}` parsed as {k:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_the_three_kinds_of_keys_and_prints_them_back() {
        for key in [
            "GET /pets/{id}",
            "ANY /{proxy+}",
            "$default",
            "POST /",
            "DELETE /a/b/{c}/d",
        ] {
            assert_eq!(ok(key).to_string(), key);
        }
    }

    #[test]
    fn lists_parameters_in_path_order() {
        assert_eq!(ok("GET /a/{x}/b/{y+}").param_names(), vec!["x", "y"]);
        assert!(ok("$default").param_names().is_empty());
    }

    #[test]
    fn shape_ignores_parameter_names() {
        assert_eq!(
            ok("GET /pets/{id}").path().map(PathPattern::shape),
            ok("GET /pets/{name}").path().map(PathPattern::shape)
        );
        assert_eq!(
            ok("ANY /{proxy+}")
                .path()
                .map(PathPattern::shape)
                .as_deref(),
            Some("/{*p0}")
        );
        assert_eq!(
            ok("GET /").path().map(PathPattern::shape).as_deref(),
            Some("/")
        );
    }

    #[test]
    fn refuses_lower_case_or_unknown_methods() {
        assert!(bad("get /pets").contains("unknown method"));
        assert!(bad("FETCH /pets").contains("unknown method"));
    }

    #[test]
    fn refuses_malformed_paths_with_a_reason() {
        assert!(bad("GET pets").contains("must start with"));
        assert!(bad("GET /pets/").contains("empty segment"));
        assert!(bad("GET //pets").contains("empty segment"));
        assert!(bad("GET /{proxy+}/x").contains("last segment"));
        assert!(bad("GET /{id}/{id}").contains("twice"));
        assert!(bad("GET /pets{id}").contains("cannot hold"));
        assert!(bad("GET /{id").contains("without closing"));
        assert!(bad("GET /{}").contains("needs a name"));
        assert!(bad("GET /{a-b}").contains("letters, digits"));
        assert!(bad("GET /a b").contains("cannot hold"));
        assert!(bad("GET  /a").contains("must start with"));
        let many: String = (0..30).map(|i| format!("/{{p{i}}}")).collect();
        assert!(bad(&format!("GET {many}")).contains("at most 16 parameters"));
    }

    #[test]
    fn refuses_whitespace_empty_and_websocket_keys() {
        assert!(bad(" GET /a").contains("whitespace"));
        assert!(bad("GET /a\n").contains("whitespace"));
        assert!(bad("").contains("empty"));
        assert!(bad("$connect").contains("not a route key of an HTTP API"));
        assert!(bad(&format!("GET /{}", "a".repeat(2000))).contains("longer than"));
    }

    #[test]
    fn parses_websocket_keys_and_refuses_http_ones_there() {
        let ws = |s: &str| RouteKey::parse_websocket(s);
        assert_eq!(ws("$connect"), Ok(RouteKey::Connect));
        assert_eq!(ws("$disconnect"), Ok(RouteKey::Disconnect));
        assert_eq!(ws("$default"), Ok(RouteKey::Default));
        assert_eq!(
            ws("sendmessage"),
            Ok(RouteKey::Message("sendmessage".into()))
        );
        assert_eq!(
            ws("chat.send:v1").map(|k| k.to_string()).as_deref(),
            Ok("chat.send:v1")
        );
        for bad in ["", "$join", "GET /a", "a b", "é", &"a".repeat(200)] {
            assert!(ws(bad).is_err(), "{bad}");
        }
        assert!(RouteKey::parse_for(Protocol::Http, "sendmessage").is_err());
        assert!(RouteKey::parse_for(Protocol::Websocket, "GET /pets").is_err());
        assert!(
            RouteKey::Connect.fits(Protocol::Websocket) && !RouteKey::Connect.fits(Protocol::Http)
        );
        assert!(
            RouteKey::Default.fits(Protocol::Http) && RouteKey::Default.fits(Protocol::Websocket)
        );
        for key in ["$connect", "sendmessage", "GET /a/{b}", "$default"] {
            let parsed: RouteKey = serde_json::from_str(&format!("\"{key}\"")).expect("parses");
            assert_eq!(parsed.to_string(), key);
        }
    }

    #[test]
    fn round_trips_through_json_as_a_string() {
        let key: RouteKey = serde_json::from_str("\"GET /pets/{id}\"").expect("parses");
        assert_eq!(
            serde_json::to_string(&key).expect("serializes"),
            "\"GET /pets/{id}\""
        );
        assert!(serde_json::from_str::<RouteKey>("\"GET pets\"").is_err());
    }
}
