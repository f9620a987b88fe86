//! What a WebSocket API adds to a stage: the route selection expression that picks a
//! message's route, and the limits each connection lives under. Checked here, once, for
//! both the admin API and the proxy.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How deep a selection expression may reach into a message.
const MAX_DEPTH: usize = 8;
const MAX_EXPRESSION_LEN: usize = 256;

/// The default expression, as AWS: the `action` field of a JSON message.
pub const DEFAULT_ROUTE_SELECTION: &str = "$request.body.action";

/// A route selection expression: `$request.body.<field>[.<field>...]`, or the same inside
/// `${...}`. It selects a string field of the JSON message; that value is the route key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RouteSelection {
    raw: String,
    /// The JSON pointer (`/a/b`) of the selected field.
    pointer: String,
}

impl RouteSelection {
    pub fn parse(raw: &str) -> Result<RouteSelection, String> {
        let help = "expected `$request.body.<field>`, for example `$request.body.action`";
        if raw.len() > MAX_EXPRESSION_LEN {
            return Err(format!("at most {MAX_EXPRESSION_LEN} characters; {help}"));
        }
        let inner = match raw.strip_prefix("${") {
            Some(rest) => rest.strip_suffix('}').ok_or(help)?,
            None => raw.strip_prefix('$').ok_or(help)?,
        };
        let path = inner.strip_prefix("request.body.").ok_or(help)?;
        let fields: Vec<&str> = path.split('.').collect();
        if fields.len() > MAX_DEPTH {
            return Err(format!("at most {MAX_DEPTH} fields deep"));
        }
        let mut pointer = String::with_capacity(path.len() + 1);
        for field in fields {
            let valid = !field.is_empty()
                && field
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(format!(
                    "field `{}` must be letters, digits, `_` or `-`; {help}",
                    field.escape_default()
                ));
            }
            pointer.push('/');
            pointer.push_str(field);
        }
        Ok(RouteSelection {
            raw: raw.to_owned(),
            pointer,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The route key a message selects: the selected field when the message is a JSON
    /// object holding it as a string; `None` otherwise (the message goes to `$default`).
    pub fn select(&self, message: &[u8]) -> Option<String> {
        // Cheap refusal of what cannot be a JSON object, before parsing.
        let first = message.iter().find(|b| !b.is_ascii_whitespace())?;
        if *first != b'{' {
            return None;
        }
        let value: serde_json::Value = serde_json::from_slice(message).ok()?;
        match value.pointer(&self.pointer)? {
            serde_json::Value::String(key) => Some(key.clone()),
            _ => None,
        }
    }
}

impl Default for RouteSelection {
    fn default() -> Self {
        RouteSelection {
            raw: DEFAULT_ROUTE_SELECTION.to_owned(),
            pointer: "/action".to_owned(),
        }
    }
}

impl fmt::Display for RouteSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl TryFrom<String> for RouteSelection {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RouteSelection::parse(&s)
    }
}

impl From<RouteSelection> for String {
    fn from(r: RouteSelection) -> String {
        r.raw
    }
}

/// The limits of a stage's WebSocket connections. The defaults are AWS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketLimits {
    /// Largest message, in bytes, once its frames are put together; larger closes the
    /// connection with 1009.
    pub max_message_bytes: u32,
    /// Largest single frame, in bytes.
    pub max_frame_bytes: u32,
    /// A connection with no message from its client for this long is closed.
    pub idle_timeout_seconds: u32,
    /// A connection is closed this long after it opened, whatever it does.
    pub max_connection_seconds: u32,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        WebSocketLimits {
            max_message_bytes: 128 * 1024,
            max_frame_bytes: 32 * 1024,
            idle_timeout_seconds: 600,
            max_connection_seconds: 7200,
        }
    }
}

/// Bounds of each limit, so that a stage cannot ask a proxy for what it cannot give.
pub const MAX_MESSAGE_BYTES: u32 = 16 * 1024 * 1024;
pub const MIN_FRAME_BYTES: u32 = 1024;
pub const MAX_CONNECTION_SECONDS: u32 = 24 * 3600;

impl WebSocketLimits {
    /// Every limit out of bounds, as `(field, reason)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(MIN_FRAME_BYTES..=MAX_MESSAGE_BYTES).contains(&self.max_message_bytes) {
            problems.push((
                "max_message_bytes",
                format!("must be between {MIN_FRAME_BYTES} and {MAX_MESSAGE_BYTES}"),
            ));
        }
        if self.max_frame_bytes < MIN_FRAME_BYTES || self.max_frame_bytes > self.max_message_bytes {
            problems.push((
                "max_frame_bytes",
                format!("must be between {MIN_FRAME_BYTES} and max_message_bytes"),
            ));
        }
        if !(1..=MAX_CONNECTION_SECONDS).contains(&self.idle_timeout_seconds) {
            problems.push((
                "idle_timeout_seconds",
                format!("must be between 1 and {MAX_CONNECTION_SECONDS}"),
            ));
        }
        if !(1..=MAX_CONNECTION_SECONDS).contains(&self.max_connection_seconds) {
            problems.push((
                "max_connection_seconds",
                format!("must be between 1 and {MAX_CONNECTION_SECONDS}"),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_a_string_field_and_nothing_else() {
        let action = RouteSelection::parse("$request.body.action").expect("valid");
        assert_eq!(action, RouteSelection::default());
        assert_eq!(
            action
                .select(br#"{"action":"sendmessage","x":1}"#)
                .as_deref(),
            Some("sendmessage")
        );
        assert_eq!(action.select(br#"{"action":7}"#), None);
        assert_eq!(action.select(br#"{"other":"a"}"#), None);
        assert_eq!(action.select(b"hello"), None);
        assert_eq!(action.select(b"[1,2]"), None);
        assert_eq!(action.select(br#"{"action":"a""#), None);
        let nested = RouteSelection::parse("${request.body.meta.type}").expect("valid");
        assert_eq!(
            nested.select(br#" {"meta":{"type":"join"}}"#).as_deref(),
            Some("join")
        );
    }

    #[test]
    fn refuses_expressions_it_cannot_evaluate() {
        for bad in [
            "",
            "action",
            "$request.header.x",
            "$request.body.",
            "$request.body.a..b",
            "${request.body.a",
            "$request.body.a/b",
            "$request.body.a.b.c.d.e.f.g.h.i",
        ] {
            assert!(RouteSelection::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_limits_are_aws_and_bounds_are_checked() {
        assert!(WebSocketLimits::default().problems().is_empty());
        let bad = WebSocketLimits {
            max_message_bytes: 10,
            max_frame_bytes: 64 * 1024,
            idle_timeout_seconds: 0,
            max_connection_seconds: 10 * 24 * 3600,
        };
        let fields: Vec<_> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "max_message_bytes",
                "max_frame_bytes",
                "idle_timeout_seconds",
                "max_connection_seconds"
            ]
        );
    }
}
