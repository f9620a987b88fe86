//! Posted forms: their fields, kept as typed so a form shown again after an error keeps
//! what the user entered, and the extractors that refuse a form without this session's
//! CSRF token, or from a viewer when it changes something.

use axum::body::to_bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::Response;

use super::render;
use super::session::SignedIn;
use crate::error::FieldError;
use crate::AppState;

/// Largest form body accepted: a mock body as large as the admin API takes (1 MiB),
/// percent-encoded.
const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;

/// The fields of a submitted form, in order.
#[derive(Debug, Clone, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Option<Fields> {
        serde_urlencoded::from_bytes(body).ok().map(Fields)
    }

    /// The first value of `name`, or "" when the form has none.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed.
    pub fn trimmed(&self, name: &str) -> &str {
        self.get(name).trim()
    }

    /// Every value of `name` (repeated fields, e.g. several header rows).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a checkbox `name` was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// Sets (or adds) a field: for forms shown with defaults.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Fields {
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
        self
    }
}

/// What was wrong with a form, by field, as the admin API or the page's own checks said.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    /// A message about the form as a whole.
    pub summary: Option<String>,
    pub fields: Vec<FieldError>,
}

impl Errors {
    /// Every field's error as `field: message`, joined with `; `: for pages that show the
    /// errors of a form they do not hold.
    pub fn field_details(&self) -> String {
        self.fields
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `aria-invalid` for `field`: "true" when it has an error.
    pub fn aria_invalid(&self, field: &str) -> &'static str {
        if self.get(field).is_some() {
            "true"
        } else {
            "false"
        }
    }

    pub fn new(summary: impl Into<String>, fields: Vec<FieldError>) -> Errors {
        Errors {
            summary: Some(summary.into()),
            fields,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.summary.is_none() && self.fields.is_empty()
    }

    /// The message for `field`, or for a part of it (`integration.uri` under `integration`).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|e| {
                e.field == field
                    || e.field
                        .strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .map(|e| e.message.as_str())
    }
}

/// A form posted by a signed-in user of either role, with the session's CSRF token.
pub struct Posted {
    pub user: SignedIn,
    pub fields: Fields,
}

/// A form that changes something: posted by an admin, with the session's CSRF token.
pub struct AdminPosted {
    pub user: SignedIn,
    pub fields: Fields,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let user = SignedIn::from_request_parts(&mut parts, state).await?;
        let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
            return Err(render::problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some(&user),
                "Form too large",
                "The form sent more than the dashboard accepts.",
            ));
        };
        let Some(fields) = Fields::parse(&bytes) else {
            return Err(render::problem(
                StatusCode::BAD_REQUEST,
                Some(&user),
                "Unreadable form",
                "The form could not be read. Go back and send it again.",
            ));
        };
        if !user.csrf_matches(fields.get("csrf")) {
            return Err(render::problem(
                StatusCode::FORBIDDEN,
                Some(&user),
                "This form has expired",
                "It was not sent from this session's page. Reload the page and try again.",
            ));
        }
        Ok(Posted { user, fields })
    }
}

impl FromRequest<AppState> for AdminPosted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let Posted { user, fields } = Posted::from_request(request, state).await?;
        if !user.is_admin() {
            return Err(render::viewer_denied(&user));
        }
        Ok(AdminPosted { user, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_order_repeats_and_empty_values() {
        let f = Fields::parse(b"name=Pets+API&h=a&h=b&empty=&tick=on").expect("parse");
        assert_eq!(f.get("name"), "Pets API");
        assert_eq!(f.all("h").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(f.get("empty"), "");
        assert_eq!(f.get("missing"), "");
        assert!(f.checked("tick") && !f.checked("missing"));
    }

    #[test]
    fn errors_are_found_for_a_field_or_its_parts() {
        let e = Errors::new(
            "Invalid",
            vec![FieldError::new("integration.uri", "must be http")],
        );
        assert_eq!(e.get("integration.uri"), Some("must be http"));
        assert_eq!(e.get("integration"), Some("must be http"));
        assert_eq!(e.get("integ"), None);
    }
}
