//! Dashboard sessions. A session is a random 256-bit token in an `HttpOnly`, `SameSite=Lax`
//! cookie (`Secure` when the dashboard is served over TLS); the server keeps only its
//! SHA-256, with the user, a CSRF token and its expiry, so signing out or deleting the row
//! revokes it at once. Sessions end after 12 hours, or 2 hours unused.

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use cookie::{Cookie, SameSite};
use sha2::{Digest, Sha256};

use super::render::{self, Frame, Section};
use crate::auth::same_secret;
use crate::repo::sessions::{self, NewSession};
use crate::repo::users::{Role, User};
use crate::AppState;

/// The session cookie.
pub const COOKIE_NAME: &str = "gatehouse_session";
/// Longest a session lives.
pub const LIFETIME: Duration = Duration::hours(12);
/// Longest a session lives unused.
pub const IDLE: Duration = Duration::hours(2);
/// `last_seen` is written at most this often per session.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// A signed-in dashboard user.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    /// What every form of this session must carry back.
    pub csrf: String,
    token_hash: Vec<u8>,
}

impl SignedIn {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// The page frame (navigation, user menu, CSRF token for its forms).
    pub fn frame(&self, section: Section) -> Frame {
        Frame {
            user: self.user.name.clone(),
            role: self.user.role,
            csrf: self.csrf.clone(),
            section,
        }
    }

    pub fn token_hash(&self) -> &[u8] {
        &self.token_hash
    }

    /// True when `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        same_secret(&self.csrf, presented)
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, COOKIE_NAME) else {
            return Err(to_sign_in(parts));
        };
        let token_hash = Sha256::digest(token.as_bytes()).to_vec();
        let found = sessions::find(&state.pool, &token_hash, IDLE.num_seconds()).await;
        let session = match found {
            Ok(Some(session)) => session,
            Ok(None) => return Err(to_sign_in(parts)),
            Err(e) => return Err(render::database_error(e)),
        };
        // Charts refresh themselves: they must not keep an unattended screen signed in.
        let by_person = !parts.uri.path().starts_with("/charts/");
        if by_person && Utc::now() - session.last_seen > TOUCH_EVERY {
            if let Err(e) = sessions::touch(&state.pool, &token_hash).await {
                tracing::warn!(error = %e, "could not note a session's use");
            }
        }
        Ok(SignedIn {
            user: session.user,
            csrf: session.csrf_token,
            token_hash,
        })
    }
}

/// Where an unauthenticated request goes: the sign-in page, which brings the user back
/// to the page they asked for (the overview, after a form sent from an expired session).
fn to_sign_in(parts: &Parts) -> Response {
    let wanted = match parts.method {
        Method::GET => parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        _ => "/",
    };
    let target = format!("/signin?next={}", url_escape(wanted));
    Redirect::to(&target).into_response()
}

/// Percent-encodes everything but unreserved characters.
pub fn url_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `next` target that stays on this site: a path, never `//host` or `/\host`.
pub fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(char::is_control);
    if local {
        next
    } else {
        "/"
    }
}

/// The value of cookie `name`, if the request has it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A fresh random token, hex-encoded.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Starts a session for `user` and returns the `Set-Cookie` value that carries it.
pub async fn start(
    state: &AppState,
    user: &User,
    address: &str,
    headers: &HeaderMap,
) -> sqlx::Result<HeaderValue> {
    let token = random_token();
    let token_hash = Sha256::digest(token.as_bytes());
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect::<String>();
    sessions::insert(
        &state.pool,
        &NewSession {
            token_hash: &token_hash,
            user_id: user.id,
            csrf_token: &random_token(),
            address,
            user_agent: &user_agent,
            expires_at: Utc::now() + LIFETIME,
        },
    )
    .await?;
    Ok(set_cookie(
        state,
        COOKIE_NAME,
        &token,
        LIFETIME,
        SameSite::Lax,
    ))
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn clear_cookie(state: &AppState, name: &str) -> HeaderValue {
    set_cookie(state, name, "", Duration::zero(), SameSite::Lax)
}

/// A `Set-Cookie` value for an `HttpOnly` cookie on the whole site.
pub fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    max_age: Duration,
    same_site: SameSite,
) -> HeaderValue {
    cookie_header(name, value, max_age, same_site, state.config.secure_cookies)
}

/// The `Set-Cookie` value itself; `secure` when the dashboard is reached over TLS.
fn cookie_header(
    name: &str,
    value: &str,
    max_age: Duration,
    same_site: SameSite,
    secure: bool,
) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(same_site)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age.num_seconds()));
    // Names and values are ours: ASCII letters, digits and `_`.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_targets_stay_on_this_site() {
        assert_eq!(safe_next("/apis?x=1"), "/apis?x=1");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next(""), "/");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; gatehouse_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, COOKIE_NAME).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn cookies_are_secure_only_when_served_over_tls() {
        let over_tls = cookie_header(COOKIE_NAME, "abc", LIFETIME, SameSite::Lax, true);
        let over_tls = over_tls.to_str().expect("ascii");
        for flag in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
            assert!(over_tls.contains(flag), "{over_tls}");
        }
        let plain = cookie_header(COOKIE_NAME, "abc", LIFETIME, SameSite::Strict, false);
        let plain = plain.to_str().expect("ascii");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"), "{plain}");
    }

    #[test]
    fn paths_are_escaped_for_a_query_string() {
        assert_eq!(url_escape("/apis?x=1&y"), "/apis%3Fx%3D1%26y");
    }
}
