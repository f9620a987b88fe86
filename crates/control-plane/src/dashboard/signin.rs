//! Signing in and out, and the one-time setup page of a fresh install.
//!
//! Forms shown before sign-in carry a token that must match a `SameSite=Strict` cookie
//! set with the page (double submit) and be signed by this control plane
//! ([`super::form_token`]), so neither another site nor anything that can plant cookies
//! for this host can sign a browser in to an account of its choosing. Failed sign-ins are counted per user name and per address:
//! past [`MAX_FAILURES_PER_USER`] or [`MAX_FAILURES_PER_ADDRESS`] within
//! [`FAILURE_WINDOW`], passwords are not even checked until the window has passed. An
//! attempt is counted as failed before its password is checked, atomically
//! ([`sessions::begin_attempt`]), so a burst sent at once checks no more than the limits.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Duration;
use cookie::SameSite;
use serde::Deserialize;

use super::accounts::{self, CreateError};
use super::form::{Errors, Fields, Posted};
use super::form_token;
use super::passwords;
use super::render::{self, page_with, PageResult};
use super::session::{self, safe_next, SignedIn};
use crate::auth::same_secret;
use crate::error::FieldError;
use crate::repo::sessions;
use crate::repo::users::{self, Role};
use crate::AppState;
use crate::ClientAddr;

/// The cookie that pairs with the token of a form shown before sign-in.
const FORM_COOKIE: &str = "gatehouse_form";
/// Failed sign-ins for one user name before it is locked for the rest of the window.
pub const MAX_FAILURES_PER_USER: i64 = 5;
/// Failed sign-ins from one address before it is locked for the rest of the window.
pub const MAX_FAILURES_PER_ADDRESS: i64 = 20;
/// How far back failures count.
pub const FAILURE_WINDOW: Duration = Duration::minutes(15);
const SIGN_IN_LIMITS: sessions::FailureLimits = sessions::FailureLimits {
    per_user: MAX_FAILURES_PER_USER,
    per_address: MAX_FAILURES_PER_ADDRESS,
    window_secs: FAILURE_WINDOW.num_seconds(),
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signin", get(sign_in_page).post(sign_in))
        .route("/signout", post(sign_out))
        .route("/setup", get(setup_page).post(set_up))
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    csrf: &'a str,
    next: &'a str,
    name: &'a str,
    errors: Errors,
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage<'a> {
    csrf: &'a str,
    fields: &'a Fields,
    errors: Errors,
}

#[derive(Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

/// The client's address, for throttling and the session list.
fn address(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map_or_else(
            || "unknown".to_owned(),
            |ConnectInfo(ClientAddr(addr))| addr.ip().to_string(),
        )
}

/// The token of the anonymous form: the browser's cookie when it holds one this control
/// plane signed and that is still good, else a fresh one (and true, to set the cookie).
async fn page_token(state: &AppState, headers: &HeaderMap) -> sqlx::Result<(String, bool)> {
    let key = state.form_key.get(&state.pool).await?;
    Ok(match session::cookie(headers, FORM_COOKIE) {
        Some(token) if form_token::verify(key, &token) => (token, false),
        _ => (form_token::issue(key), true),
    })
}

fn with_form_cookie(
    state: &AppState,
    mut response: Response,
    token: &str,
    fresh: bool,
) -> Response {
    if fresh {
        let cookie = session::set_cookie(
            state,
            FORM_COOKIE,
            token,
            form_token::LIFETIME,
            SameSite::Strict,
        );
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// True when the posted form carries the token of the browser's form cookie, and that
/// token is one this control plane signed: a matching pair planted by someone else is not.
async fn form_token_matches(
    state: &AppState,
    headers: &HeaderMap,
    fields: &Fields,
) -> sqlx::Result<bool> {
    let Some(cookie) = session::cookie(headers, FORM_COOKIE) else {
        return Ok(false);
    };
    let key = state.form_key.get(&state.pool).await?;
    Ok(same_secret(&cookie, fields.get("csrf")) && form_token::verify(key, &cookie))
}

fn expired_form() -> Response {
    render::problem(
        StatusCode::FORBIDDEN,
        None,
        "This form has expired",
        "It was not sent from this browser's sign-in page. Go back, reload the page and try again.",
    )
}

async fn signed_in(parts: &mut Parts, state: &AppState) -> bool {
    SignedIn::from_request_parts(parts, state).await.is_ok()
}

async fn sign_in_page(
    State(state): State<AppState>,
    Query(query): Query<NextQuery>,
    mut parts: Parts,
) -> PageResult {
    if !users::any_exist(&state.pool).await? {
        return Ok(Redirect::to("/setup").into_response());
    }
    if signed_in(&mut parts, &state).await {
        return Ok(Redirect::to(safe_next(&query.next)).into_response());
    }
    let (token, fresh) = page_token(&state, &parts.headers).await?;
    let page = SignInPage {
        csrf: &token,
        next: safe_next(&query.next),
        name: "",
        errors: Errors::default(),
    };
    Ok(with_form_cookie(&state, render::page(&page), &token, fresh))
}

async fn sign_in(State(state): State<AppState>, parts: Parts, body: Bytes) -> PageResult {
    let fields = Fields::parse(&body).unwrap_or_default();
    if !form_token_matches(&state, &parts.headers, &fields).await? {
        return Ok(expired_form());
    }
    let name = fields.trimmed("name");
    let next = safe_next(fields.get("next"));
    let address = address(&parts);
    let again = |status: StatusCode, message: &str| {
        page_with(
            status,
            &SignInPage {
                csrf: fields.get("csrf"),
                next,
                name,
                errors: Errors::new(message, Vec::new()),
            },
        )
    };
    if name.is_empty() || fields.get("password").is_empty() {
        return Ok(again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter your user name and password.",
        ));
    }
    // Names are counted as typed (bounded), so a name too long to store cannot dodge the count.
    let counted: String = name.chars().take(accounts::MAX_NAME_LEN).collect();
    // Counted as failed before the password is checked, atomically: attempts sent at
    // once are all counted, and at most the limit of them are checked.
    if !sessions::begin_attempt(&state.pool, &counted, &address, SIGN_IN_LIMITS).await? {
        tracing::warn!(address, "sign-in refused: too many recent failures");
        return Ok(again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins. Wait 15 minutes and try again.",
        ));
    }
    let password = fields.get("password");
    let plausible = accounts::name_problem(name).is_none() && password.len() <= passwords::MAX_LEN;
    let found = if plausible {
        users::credentials(&state.pool, name).await?
    } else {
        None
    };
    let (user, stored) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let verified = match passwords::verify(password.to_owned(), stored).await {
        Ok(verified) => verified,
        Err(e) if e.is::<passwords::Busy>() => {
            return Ok(again(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many sign-ins at once. Try again in a moment.",
            ))
        }
        Err(e) => return Ok(render::internal(&e)),
    };
    let (true, Some(user)) = (verified, user) else {
        tracing::info!(address, "sign-in failed");
        return Ok(again(
            StatusCode::UNAUTHORIZED,
            "Wrong user name or password.",
        ));
    };
    sessions::clear_failures(&state.pool, &counted).await?;
    let cookie = session::start(&state, &user, &address, &parts.headers).await?;
    accounts::note(&state.pool, &user.name, "dashboard", "signed in", &address).await;
    let mut response = Redirect::to(next).into_response();
    response.headers_mut().append(SET_COOKIE, cookie);
    Ok(response)
}

async fn sign_out(State(state): State<AppState>, posted: Posted) -> PageResult {
    sessions::delete(&state.pool, posted.user.token_hash()).await?;
    let mut response = Redirect::to("/signin").into_response();
    response.headers_mut().append(
        SET_COOKIE,
        session::clear_cookie(&state, session::COOKIE_NAME),
    );
    Ok(response)
}

fn setup_done() -> Response {
    render::problem(
        StatusCode::NOT_FOUND,
        None,
        "Setup is done",
        "This control plane has users already. Sign in, or ask an admin for an account.",
    )
}

async fn setup_page(State(state): State<AppState>, parts: Parts) -> PageResult {
    if users::any_exist(&state.pool).await? {
        return Ok(setup_done());
    }
    let (token, fresh) = page_token(&state, &parts.headers).await?;
    let page = SetupPage {
        csrf: &token,
        fields: &Fields::default(),
        errors: Errors::default(),
    };
    Ok(with_form_cookie(&state, render::page(&page), &token, fresh))
}

async fn set_up(State(state): State<AppState>, parts: Parts, body: Bytes) -> PageResult {
    if users::any_exist(&state.pool).await? {
        return Ok(setup_done());
    }
    let fields = Fields::parse(&body).unwrap_or_default();
    if !form_token_matches(&state, &parts.headers, &fields).await? {
        return Ok(expired_form());
    }
    let address = address(&parts);
    let again = |status: StatusCode, errors: Errors| {
        page_with(
            status,
            &SetupPage {
                csrf: fields.get("csrf"),
                fields: &fields,
                errors,
            },
        )
    };
    // Counted before the token is checked, as sign-ins are; the name is shared by every
    // address, so only the address has a limit.
    let limits = sessions::FailureLimits {
        per_user: i64::MAX,
        ..SIGN_IN_LIMITS
    };
    if !sessions::begin_attempt(&state.pool, "(setup)", &address, limits).await? {
        return Ok(again(
            StatusCode::TOO_MANY_REQUESTS,
            Errors::new(
                "Too many failed attempts. Wait 15 minutes and try again.",
                vec![],
            ),
        ));
    }
    let token_ok = state
        .config
        .admin_token
        .as_ref()
        .is_some_and(|t| t.matches(fields.get("admin_token")));
    if !token_ok {
        let message = if state.config.admin_token.is_some() {
            "not this control plane's admin token"
        } else {
            "this control plane has no admin token: create the first user with `gatehouse admin create-user`"
        };
        return Ok(again(
            StatusCode::UNPROCESSABLE_ENTITY,
            Errors::new(
                "Check the fields below.",
                vec![FieldError::new("admin_token", message)],
            ),
        ));
    }
    let name = fields.trimmed("name");
    let password = fields.get("password");
    if password != fields.get("confirm") {
        return Ok(again(
            StatusCode::UNPROCESSABLE_ENTITY,
            Errors::new(
                "Check the fields below.",
                vec![FieldError::new("confirm", "the two passwords differ")],
            ),
        ));
    }
    let user = match accounts::create(&state.pool, name, password, Role::Admin, true).await {
        Ok(user) => user,
        Err(CreateError::Invalid(errors)) => {
            return Ok(again(
                StatusCode::UNPROCESSABLE_ENTITY,
                Errors::new("Check the fields below.", errors),
            ))
        }
        Err(CreateError::SetUpAlready) => return Ok(setup_done()),
        Err(CreateError::Database(e)) => return Err(e.into()),
        Err(CreateError::Internal(e)) => return Ok(render::internal(&e)),
    };
    accounts::note(
        &state.pool,
        &user.name,
        "dashboard",
        "created the first admin",
        &user.name,
    )
    .await;
    let cookie = session::start(&state, &user, &address, &parts.headers).await?;
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(SET_COOKIE, cookie);
    Ok(response)
}
