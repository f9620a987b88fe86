//! Who may call what. Every call of the admin API (`/api/v1`) and of the sync API
//! (`/dp/v1`) is authenticated, by a bearer token that is either
//!
//! - a bootstrap token of the configuration (`GATEHOUSE_ADMIN_TOKEN` on `/api/v1`,
//!   `GATEHOUSE_NODE_TOKEN` on `/dp/v1`), compared by SHA-256 digest in constant time, so
//!   neither its content nor its length leaks through timing; or
//! - a token issued through `/api/v1/tokens` ([`crate::repo::tokens`]), found by its
//!   SHA-256 digest with one indexed query per request (nothing is cached, so revocation and
//!   expiry hold from the next request on, on every replica).
//!
//! Roles: an admin token may make every admin call; a viewer token only reads (`GET`,
//! `HEAD`: anything else is 403 "viewers cannot change anything"); a node token may only
//! sync. A token used on the wrong API is 401, as if it did not exist. A database outage
//! while looking a token up is 503, never 401.
//!
//! The admin API's [`guard_admin_api`] layer and the sync API's [`Node`] layer let no
//! request through unauthenticated; the [`Admin`] and [`Reader`] extractors of handlers
//! then state what each handler needs. Whoever a request was found to be is kept in its
//! extensions, so a token is looked up once per request.

use std::fmt;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::repo::tokens::{self, TokenRole};
use crate::repo::users::Role;
use crate::{AppState, ClientAddr};

/// A secret string that never shows in `Debug` or `Display` output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with what a caller presented.
    pub fn matches(&self, presented: &str) -> bool {
        same_secret(&self.0, presented)
    }
}

/// Whether two secrets are equal, compared by their SHA-256 digests in constant time, so
/// neither their content nor their length leaks through timing.
pub fn same_secret(a: &str, b: &str) -> bool {
    let a = Sha256::digest(a.as_bytes());
    let b = Sha256::digest(b.as_bytes());
    a.ct_eq(&b).into()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// Shortest admin token of the configuration accepted (`GATEHOUSE_ADMIN_TOKEN`).
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;
/// Fewest different characters an admin token of the configuration must hold: a long
/// run of one or two characters is as easy to guess as a short token.
const MIN_DISTINCT_CHARS: usize = 10;

/// Why `token` cannot be the admin token of the configuration, in words for the operator;
/// `None` when it can.
pub fn admin_token_problem(token: &str) -> Option<String> {
    let length = token.chars().count();
    if length < MIN_ADMIN_TOKEN_LEN {
        return Some(format!(
            "the admin token must be at least {MIN_ADMIN_TOKEN_LEN} characters long (it has {length}); generate one with `openssl rand -hex 32`"
        ));
    }
    let distinct: std::collections::HashSet<char> = token.chars().collect();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return Some(format!(
            "the admin token must hold at least {MIN_DISTINCT_CHARS} different characters (it has {}): it is too easy to guess; generate one with `openssl rand -hex 32`",
            distinct.len()
        ));
    }
    if token.chars().any(char::is_whitespace) {
        return Some("the admin token must not hold spaces or other whitespace".to_owned());
    }
    None
}

/// Issued tokens: this prefix, then 43 random letters and digits (256 bits).
const ISSUED_PREFIX: &str = "ght_";
const ISSUED_RANDOM_LEN: usize = 43;
/// Random characters shown in listings after the prefix (36 of the 256 bits).
const SHOWN_LEN: usize = 6;

/// A token just issued: its value (to show once), its digest and prefix (to store).
pub struct IssuedToken {
    pub value: String,
    pub digest: [u8; 32],
    pub prefix: String,
}

impl IssuedToken {
    /// A new token from the operating system's random source.
    pub fn generate() -> IssuedToken {
        let random = Alphanumeric.sample_string(&mut rand::rngs::OsRng, ISSUED_RANDOM_LEN);
        let value = format!("{ISSUED_PREFIX}{random}");
        IssuedToken {
            digest: Sha256::digest(value.as_bytes()).into(),
            prefix: value[..ISSUED_PREFIX.len() + SHOWN_LEN].to_owned(),
            value,
        }
    }
}

/// Whether `presented` has the shape of an issued token: only those are looked up, so
/// garbage and wrong bootstrap tokens cost no query.
fn looks_issued(presented: &str) -> bool {
    presented.strip_prefix(ISSUED_PREFIX).is_some_and(|random| {
        random.len() == ISSUED_RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The two APIs that take tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plane {
    /// `/api/v1`: admin and viewer tokens.
    Admin,
    /// `/dp/v1`: node tokens.
    Node,
}

impl Plane {
    /// The roles of the issued tokens this API takes.
    fn roles(self) -> &'static [TokenRole] {
        match self {
            Plane::Admin => &[TokenRole::Admin, TokenRole::Viewer],
            Plane::Node => &[TokenRole::Node],
        }
    }
}

/// Whoever a request was found to be, kept in its extensions.
#[derive(Debug, Clone)]
struct Caller {
    /// As the audit log and deployments name them.
    name: String,
    role: TokenRole,
}

/// Who is calling `plane`, from the request's extensions when this was settled already.
async fn caller(parts: &mut Parts, state: &AppState, plane: Plane) -> Result<Caller, ApiError> {
    if let Some(caller) = parts.extensions.get::<Caller>() {
        return Ok(caller.clone());
    }
    let caller = identify(parts, state, plane).await?;
    parts.extensions.insert(caller.clone());
    Ok(caller)
}

async fn identify(parts: &Parts, state: &AppState, plane: Plane) -> Result<Caller, ApiError> {
    if plane == Plane::Admin {
        if let Some(actor) = parts.extensions.get::<DashboardActor>() {
            let role = match actor.role {
                Role::Admin => TokenRole::Admin,
                Role::Viewer => TokenRole::Viewer,
            };
            return Ok(Caller {
                name: actor.name.clone(),
                role,
            });
        }
    }
    let presented = bearer(parts).ok_or(ApiError::Unauthorized)?;
    // Counted before the token is checked, so guesses sent at once are all counted.
    let client = client_ip(parts);
    if let Some(client) = client {
        if !state.auth_failures.attempt(client) {
            tracing::warn!(%client, "authentication refused: too many recent failures");
            return Err(ApiError::TooManyFailures);
        }
    }
    let checked = check_token(state, plane, presented).await;
    if let (Some(client), Ok(_) | Err(ApiError::Unavailable(_))) = (client, &checked) {
        // Not a failure: a good token, or one the database could not look up.
        state.auth_failures.succeeded(client);
    }
    checked
}

/// The address of the client, when the connection tells it.
fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map(|ConnectInfo(ClientAddr(addr))| addr.ip())
}

/// Who holds `presented` on `plane`, if anyone.
async fn check_token(state: &AppState, plane: Plane, presented: &str) -> Result<Caller, ApiError> {
    let (bootstrap, bootstrap_actor, bootstrap_role) = match plane {
        Plane::Admin => (
            state.config.admin_token.as_ref(),
            ADMIN_TOKEN_ACTOR,
            TokenRole::Admin,
        ),
        Plane::Node => (
            state.config.node_token.as_ref(),
            NODE_TOKEN_ACTOR,
            TokenRole::Node,
        ),
    };
    if bootstrap.is_some_and(|token| token.matches(presented)) {
        return Ok(Caller {
            name: bootstrap_actor.to_owned(),
            role: bootstrap_role,
        });
    }
    if !looks_issued(presented) {
        return Err(ApiError::Unauthorized);
    }
    let digest = Sha256::digest(presented.as_bytes());
    // A database outage is an `ApiError::Unavailable` here (503): the token may be good.
    let token = tokens::find_active(&state.pool, &digest, plane.roles())
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if token.needs_touch {
        // Off the request path: noting the use never delays or fails a call.
        let pool = state.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = tokens::touch(&pool, token.id).await {
                tracing::warn!(error = %e, token_id = %token.id, "noting a token's use failed");
            }
        });
    }
    Ok(Caller {
        name: format!("{TOKEN_ACTOR_PREFIX}{}", token.name),
        role: token.role,
    })
}

/// An authenticated admin: may change anything. Its `name` is recorded as the author of
/// deployments and in the audit log.
#[derive(Debug, Clone)]
pub struct Admin {
    pub name: String,
}

/// An authenticated reader of the admin API: an admin or a viewer.
#[derive(Debug, Clone)]
pub struct Reader;

/// The dashboard user a request acts for. Only the dashboard's own dispatch of a form to
/// the admin API sets it (as a request extension, which nothing on the wire can set), so
/// every change made in the browser goes through the same checks as the admin API.
#[derive(Debug, Clone)]
pub struct DashboardActor {
    pub name: String,
    pub role: Role,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = admin_api_caller(parts, state, true).await?;
        Ok(Admin { name: caller.name })
    }
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        admin_api_caller(parts, state, false).await.map(|_| Reader)
    }
}

/// The caller of the admin API, if its role may do what is asked: `write` (change
/// something) takes an admin, reading an admin or a viewer.
async fn admin_api_caller(
    parts: &mut Parts,
    state: &AppState,
    write: bool,
) -> Result<Caller, ApiError> {
    let caller = caller(parts, state, Plane::Admin).await?;
    match caller.role {
        TokenRole::Admin => Ok(caller),
        TokenRole::Viewer if !write => Ok(caller),
        TokenRole::Viewer => Err(ApiError::Forbidden("viewers cannot change anything")),
        TokenRole::Node => Err(ApiError::Unauthorized),
    }
}

/// The admin API's gate, around every route and its fallback: `GET` and `HEAD` need a
/// [`Reader`], every other method an [`Admin`], whatever the handler asks for.
pub async fn guard_admin_api(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let write = !matches!(parts.method, Method::GET | Method::HEAD);
    match admin_api_caller(&mut parts, &state, write).await {
        Ok(_) => next.run(Request::from_parts(parts, body)).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// How the audit log and deployments name whoever used the configured admin token.
pub const ADMIN_TOKEN_ACTOR: &str = "admin-token";
/// How the configured node token's holder is named.
const NODE_TOKEN_ACTOR: &str = "node-token";
/// Issued tokens are named `token:<name>` (user names cannot hold a colon).
pub const TOKEN_ACTOR_PREFIX: &str = "token:";

/// An authenticated proxy, known by the SHA-256 of its token: the identity a node id is
/// bound to ([`crate::repo::nodes`]). Every proxy holding the bootstrap node token is one
/// identity; a proxy with a token of its own is its own.
#[derive(Debug, Clone, Copy)]
pub struct Node {
    pub token_digest: [u8; 32],
}

impl FromRequestParts<AppState> for Node {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match caller(parts, state, Plane::Node).await?.role {
            TokenRole::Node => {
                let presented = bearer(parts).ok_or(ApiError::Unauthorized)?;
                Ok(Node {
                    token_digest: Sha256::digest(presented.as_bytes()).into(),
                })
            }
            TokenRole::Admin | TokenRole::Viewer => Err(ApiError::Unauthorized),
        }
    }
}

/// The SHA-256 of the configured bootstrap node token, if there is one.
pub fn bootstrap_node_digest(state: &AppState) -> Option<[u8; 32]> {
    let token = state.config.node_token.as_ref()?;
    Some(Sha256::digest(token.expose().as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_the_same_value_and_never_print() {
        let s = Secret::new("abc");
        assert!(s.matches("abc"));
        assert!(!s.matches("abcd"));
        assert!(!s.matches(""));
        assert_eq!(format!("{s:?}"), "Secret(****)");
    }

    #[test]
    fn admin_tokens_of_the_configuration_must_be_long_and_varied() {
        assert!(admin_token_problem("x").is_some());
        assert!(admin_token_problem("test-admin-token").is_some());
        assert!(admin_token_problem(&"a".repeat(64)).is_some());
        assert!(admin_token_problem(&"ab".repeat(40)).is_some());
        assert!(admin_token_problem("0123456789 abcdefghijklmnopqrstuvwxyz").is_some());
        assert!(admin_token_problem("0123456789abcdefghijklmnopqrstuv").is_none());
        assert!(admin_token_problem(&IssuedToken::generate().value).is_none());
    }

    #[test]
    fn issued_tokens_are_long_random_and_known_by_their_shape() {
        let a = IssuedToken::generate();
        let b = IssuedToken::generate();
        assert_ne!(a.value, b.value);
        assert_eq!(a.value.len(), ISSUED_PREFIX.len() + ISSUED_RANDOM_LEN);
        assert!(a.value.starts_with(&a.prefix) && a.prefix.len() == 10);
        assert_eq!(
            a.digest,
            <[u8; 32]>::from(Sha256::digest(a.value.as_bytes()))
        );
        assert!(looks_issued(&a.value));
        assert!(!looks_issued(&a.value[1..]));
        assert!(!looks_issued(&format!("{}x", a.value)));
        assert!(!looks_issued("ght_"));
        assert!(!looks_issued(&format!(
            "ght_{}",
            "-".repeat(ISSUED_RANDOM_LEN)
        )));
    }
}
