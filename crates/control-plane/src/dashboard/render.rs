//! Rendering pages: the frame every signed-in page shares, and the pages for what went
//! wrong (not found, not allowed, the database away), which keep the user inside the
//! dashboard with a way back.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::session::SignedIn;
use crate::repo::users::Role;

/// The part of the dashboard a page belongs to, highlighted in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Apis,
    Keys,
    Plans,
    Nodes,
    Audit,
    Users,
}

/// What the shared layout needs: who is signed in and their CSRF token for its forms.
#[derive(Debug, Clone)]
pub struct Frame {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    pub section: Section,
}

impl Frame {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// `aria-current` for the navigation link of `section`.
    pub fn current(&self, section: &str) -> &'static str {
        let this = match self.section {
            Section::Overview => "overview",
            Section::Apis => "apis",
            Section::Keys => "keys",
            Section::Plans => "plans",
            Section::Nodes => "nodes",
            Section::Audit => "audit",
            Section::Users => "users",
        };
        if this == section {
            "page"
        } else {
            "false"
        }
    }
}

/// A time as pages show it: `2026-11-24 18:30 UTC`.
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// How long ago `t` was, in the largest whole unit: `12 s ago`, `5 min ago`, `3 h ago`.
pub fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// `12345678` as `12,345,678`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in milliseconds, to two decimals below 10 ms; `–` without one.
pub fn millis(ms: Option<f64>) -> String {
    match ms {
        None => "–".to_owned(),
        Some(ms) if ms < 10.0 => format!("{ms:.2} ms"),
        Some(ms) => format!("{ms:.0} ms"),
    }
}

/// A handler's failure, already rendered as a page.
pub struct Failure(Response);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        self.0
    }
}

impl From<Response> for Failure {
    fn from(page: Response) -> Failure {
        Failure(page)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Failure {
        Failure(database_error(e))
    }
}

/// What a page handler returns.
pub type PageResult = Result<Response, Failure>;

/// Renders `template` as a 200 page.
pub fn page(template: &impl Template) -> Response {
    page_with(StatusCode::OK, template)
}

/// Renders `template` with `status`.
pub fn page_with(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage<'a> {
    frame: Frame,
    title: &'a str,
    message: &'a str,
    status: u16,
}

#[derive(Template)]
#[template(path = "problem_bare.html")]
struct BareProblemPage<'a> {
    title: &'a str,
    message: &'a str,
    status: u16,
}

/// A page that says what went wrong, inside the dashboard's frame when someone is signed in.
pub fn problem(
    status: StatusCode,
    user: Option<&SignedIn>,
    title: &str,
    message: &str,
) -> Response {
    match user {
        Some(user) => page_with(
            status,
            &ProblemPage {
                frame: user.frame(Section::Overview),
                title,
                message,
                status: status.as_u16(),
            },
        ),
        None => page_with(
            status,
            &BareProblemPage {
                title,
                message,
                status: status.as_u16(),
            },
        ),
    }
}

/// The friendly 404: what was not found, and ways back.
pub fn not_found(user: Option<&SignedIn>, what: &str) -> Response {
    let message = format!(
        "There is no such {} here. It may have been deleted, or the link may be mistyped.",
        what.trim_end_matches(" not found")
    );
    problem(StatusCode::NOT_FOUND, user, "Not found", &message)
}

/// A viewer tried to change something.
pub fn viewer_denied(user: &SignedIn) -> Response {
    problem(
        StatusCode::FORBIDDEN,
        Some(user),
        "Read-only access",
        "Your role is viewer: you can look at everything, but not change it. Ask an admin.",
    )
}

/// The database failed: 503 when it is unreachable (try again), 500 otherwise, the cause
/// to the log only.
pub fn database_error(e: sqlx::Error) -> Response {
    let unreachable = matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
    );
    if unreachable {
        tracing::warn!(error = %e, "database unavailable");
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "Database unavailable",
            "The control plane cannot reach its database right now. Try again in a moment.",
        )
    } else {
        tracing::error!(error = ?e, "database error");
        problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "Something went wrong",
            "The error has been logged. Try again, or look at the control plane's log.",
        )
    }
}

/// An unexpected error: logged, and a fixed page.
pub fn internal(e: &anyhow::Error) -> Response {
    tracing::error!(error = ?e, "dashboard error");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "Something went wrong",
        "The error has been logged. Try again, or look at the control plane's log.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
    }

    #[test]
    fn milliseconds_keep_useful_precision() {
        assert_eq!(millis(None), "–");
        assert_eq!(millis(Some(0.4321)), "0.43 ms");
        assert_eq!(millis(Some(123.4)), "123 ms");
    }

    #[test]
    fn times_ago_use_the_largest_whole_unit() {
        let now = Utc::now();
        assert_eq!(ago(now - chrono::Duration::seconds(12), now), "12 s ago");
        assert_eq!(ago(now - chrono::Duration::minutes(5), now), "5 min ago");
        assert_eq!(ago(now - chrono::Duration::hours(3), now), "3 h ago");
        assert_eq!(ago(now + chrono::Duration::seconds(3), now), "0 s ago");
    }
}
