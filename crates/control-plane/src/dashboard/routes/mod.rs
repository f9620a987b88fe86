//! An API's routes in the dashboard: the forms that add, edit and delete a route and its
//! integration, and the one-line summary of an integration other pages show.
//!
//! The form holds the fields of both integration types at once (no script needed); the
//! chosen type decides which are sent. Numbers are checked here before anything is sent;
//! everything else is the admin API's to judge.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use gatehouse_model::integration::{DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS};
use gatehouse_model::{Integration, Protocol, RouteKey};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::apis::{explain, find_api};
use super::charts::{RangeQuery, Traffic};
use super::dispatch::{self, Refusal};
use super::form::{AdminPosted, Errors, Fields};
use super::render::{self, page_with, Frame, PageResult, Section};
use super::session::SignedIn;
use crate::error::FieldError;
use crate::repo::apis::Api;
use crate::repo::routes::{self, Route};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis/{api_id}/routes/new", get(new_form).post(create))
        .route("/apis/{api_id}/routes/{route_id}", get(show).post(save))
        .route("/apis/{api_id}/routes/{route_id}/delete", post(delete))
}

const HTTP_PROXY: &str = "HTTP_PROXY";
const MOCK: &str = "MOCK";

/// The fields of the route form the page shows errors next to.
const FORM_FIELDS: [&str; 9] = [
    "route_key",
    "api_key_required",
    "integration.type",
    "integration.uri",
    "integration.timeout_ms",
    "integration.websocket_upgrade",
    "integration.status",
    "integration.headers",
    "integration.body",
];

/// A route as tables list it.
pub(super) struct RouteRow {
    pub id: String,
    pub route_key: String,
    pub integration: String,
    pub api_key_required: bool,
}

impl RouteRow {
    pub(super) fn new(route: &Route) -> RouteRow {
        RouteRow {
            id: route.id.to_string(),
            route_key: route.route_key.clone(),
            integration: summary(&route.integration.0),
            api_key_required: route.api_key_required,
        }
    }
}

/// One line that says what an integration does: `HTTP_PROXY → http://… (29 s)`, `MOCK 200`.
pub(super) fn summary(integration: &Integration) -> String {
    match integration {
        Integration::HttpProxy(proxy) => {
            format!("HTTP_PROXY → {} ({})", proxy.uri, timeout(proxy.timeout_ms))
        }
        Integration::Mock(mock) => format!("MOCK {}", mock.status),
    }
}

/// A timeout in the largest unit that shows it exactly enough: `29 s`, `1.5 s`, `50 ms`.
fn timeout(ms: u32) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        _ if ms.is_multiple_of(1000) => format!("{} s", ms / 1000),
        _ => format!("{:.1} s", f64::from(ms) / 1000.0),
    }
}

#[derive(Template)]
#[template(path = "route_form.html")]
struct RouteFormPage {
    frame: Frame,
    api: Api,
    /// The route being edited; `None` for a new one.
    route_id: Option<String>,
    /// What a viewer sees instead of the form.
    summary: String,
    fields: Fields,
    errors: Errors,
    traffic: Option<Traffic>,
}

impl RouteFormPage {
    fn action(&self) -> String {
        match &self.route_id {
            Some(id) => format!("/apis/{}/routes/{id}", self.api.id),
            None => format!("/apis/{}/routes/new", self.api.id),
        }
    }

    fn is_mock(&self) -> bool {
        self.fields.get("integration.type") == MOCK
    }
}

/// The fields of a new route's form.
fn defaults() -> Fields {
    Fields::default()
        .with("integration.type", HTTP_PROXY)
        .with("integration.timeout_ms", DEFAULT_TIMEOUT_MS.to_string())
        .with("integration.status", "200")
        .with("integration.headers", "Content-Type: application/json")
}

/// The fields of the form for an existing route.
fn fields_of(route: &Route) -> Fields {
    let mut fields = defaults().with("route_key", route.route_key.clone());
    if route.api_key_required {
        fields = fields.with("api_key_required", "on");
    }
    match &route.integration.0 {
        Integration::HttpProxy(proxy) => {
            let fields = fields
                .with("integration.type", HTTP_PROXY)
                .with("integration.uri", proxy.uri.to_string())
                .with("integration.timeout_ms", proxy.timeout_ms.to_string());
            if proxy.websocket_upgrade {
                fields.with("integration.websocket_upgrade", "on")
            } else {
                fields
            }
        }
        Integration::Mock(mock) => {
            let headers = mock
                .headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}"))
                .collect::<Vec<_>>()
                .join("\n");
            fields
                .with("integration.type", MOCK)
                .with("integration.status", mock.status.to_string())
                .with("integration.headers", headers)
                .with("integration.body", mock.body.clone())
        }
    }
}

/// The admin API's body for the route the form describes, or what is wrong with it. When
/// a number does not parse nothing is sent, so the route key is checked here too (with the
/// admin API's own parser) and every mistake shows at once.
fn route_body(fields: &Fields, protocol: Protocol) -> Result<Value, Vec<FieldError>> {
    let route_key = fields.trimmed("route_key");
    match integration_body(fields) {
        Ok(integration) => Ok(json!({
            "route_key": route_key,
            "api_key_required": fields.checked("api_key_required"),
            "integration": integration,
        })),
        Err(mut errors) => {
            if let Err(e) = RouteKey::parse_for(protocol, route_key) {
                errors.insert(0, FieldError::new("route_key", e.to_string()));
            }
            Err(errors)
        }
    }
}

fn integration_body(fields: &Fields) -> Result<Value, Vec<FieldError>> {
    match fields.get("integration.type") {
        HTTP_PROXY => {
            let timeout_ms = parse_timeout(fields.trimmed("integration.timeout_ms"))
                .map_err(|e| vec![FieldError::new("integration.timeout_ms", e)])?;
            Ok(json!({
                "type": HTTP_PROXY,
                "uri": fields.trimmed("integration.uri"),
                "timeout_ms": timeout_ms,
                "websocket_upgrade": fields.checked("integration.websocket_upgrade"),
            }))
        }
        MOCK => {
            let mut errors = Vec::new();
            let status = parse_status(fields.trimmed("integration.status"))
                .map_err(|e| errors.push(FieldError::new("integration.status", e)))
                .ok();
            let headers = parse_headers(fields.get("integration.headers"))
                .map_err(|e| errors.push(FieldError::new("integration.headers", e)))
                .ok();
            let (Some(status), Some(headers)) = (status, headers) else {
                return Err(errors);
            };
            Ok(json!({
                "type": MOCK,
                "status": status,
                "headers": headers,
                // Browsers send a text area's line breaks as CRLF: saving a form unchanged
                // must not change the body.
                "body": fields.get("integration.body").replace("\r\n", "\n"),
            }))
        }
        _ => Err(vec![FieldError::new(
            "integration.type",
            "choose HTTP_PROXY or MOCK",
        )]),
    }
}

fn parse_timeout(raw: &str) -> Result<u32, String> {
    if raw.is_empty() {
        return Ok(DEFAULT_TIMEOUT_MS);
    }
    match raw.parse::<u32>() {
        Ok(ms) if (MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&ms) => Ok(ms),
        _ => Err(format!(
            "must be a whole number of milliseconds from {MIN_TIMEOUT_MS} to {MAX_TIMEOUT_MS}"
        )),
    }
}

fn parse_status(raw: &str) -> Result<u16, String> {
    if raw.is_empty() {
        return Ok(200);
    }
    match raw.parse::<u16>() {
        Ok(status) if (200..=599).contains(&status) => Ok(status),
        _ => Err("must be a status code from 200 to 599".to_owned()),
    }
}

/// `Name: value` lines as a JSON object; blank lines are skipped.
fn parse_headers(raw: &str) -> Result<Map<String, Value>, String> {
    let mut headers = Map::new();
    for (n, line) in raw.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("line {}: write `Name: value`", n + 1));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("line {}: the header name is missing", n + 1));
        }
        if headers.keys().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(format!("line {}: `{name}` is set twice", n + 1));
        }
        headers.insert(name.to_owned(), Value::String(value.trim().to_owned()));
    }
    Ok(headers)
}

/// Moves errors the admin API names only `integration` (values it refused while reading
/// the integration) to the form field they are about.
fn place_errors(kind: &str, mut errors: Errors) -> Errors {
    for error in &mut errors.fields {
        if error.field != "integration" {
            continue;
        }
        let message = error.message.as_str();
        let field = if kind == MOCK {
            if message.starts_with("headers") {
                "integration.headers"
            } else if message.starts_with("body") {
                "integration.body"
            } else if message.starts_with("status") {
                "integration.status"
            } else {
                "integration.type"
            }
        } else if message.contains("timeout_ms") {
            "integration.timeout_ms"
        } else {
            "integration.uri"
        };
        error.field = field.to_owned();
    }
    errors
}

/// The route `raw_id` of `api`, or the friendly 404.
async fn find_route(
    state: &AppState,
    user: &SignedIn,
    api: &Api,
    raw_id: &str,
) -> Result<Route, render::Failure> {
    let not_found = || render::Failure::from(render::not_found(Some(user), "route"));
    let id = Uuid::parse_str(raw_id).map_err(|_| not_found())?;
    routes::get(&state.pool, api.id, id)
        .await?
        .ok_or_else(not_found)
}

fn form_page(
    user: &SignedIn,
    api: Api,
    route: Option<&Route>,
    fields: Fields,
    errors: Errors,
    traffic: Option<Traffic>,
) -> RouteFormPage {
    RouteFormPage {
        frame: user.frame(Section::Apis),
        api,
        route_id: route.map(|r| r.id.to_string()),
        summary: route.map_or_else(String::new, |r| summary(&r.integration.0)),
        fields,
        errors,
        traffic,
    }
}

async fn new_form(
    user: SignedIn,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
) -> PageResult {
    let api = find_api(&state, &user, &api_id).await?;
    if !user.is_admin() {
        return Ok(render::viewer_denied(&user));
    }
    let page = form_page(&user, api, None, defaults(), Errors::default(), None);
    Ok(render::page(&page))
}

async fn create(
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let api = find_api(&state, &user, &api_id).await?;
    let path = format!("/apis/{}/routes", api.id);
    let sent = match route_body(&fields, api.protocol()) {
        Ok(body) => dispatch::call(&state, &user, Method::POST, &path, Some(body)).await,
        Err(errors) => Err(Refusal::Invalid(Errors::new("", errors))),
    };
    match sent {
        Ok(_) => Ok(Redirect::to(&format!("/apis/{}", api.id)).into_response()),
        Err(Refusal::Invalid(errors)) => {
            let errors = explain(
                place_errors(fields.get("integration.type"), errors),
                &FORM_FIELDS,
                "The route was not added.",
            );
            let page = form_page(&user, api, None, fields, errors, None);
            Ok(page_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(Refusal::Page(page)) => Ok(page),
    }
}

fn route_traffic(api: &Api, route: &Route, range: super::charts::Range) -> Traffic {
    let (api_id, route_id) = (api.id.to_string(), route.id.to_string());
    Traffic::new(
        &format!("/apis/{api_id}/routes/{route_id}"),
        &[("api_id", api_id.as_str()), ("route_id", route_id.as_str())],
        range,
    )
}

async fn show(
    user: SignedIn,
    State(state): State<AppState>,
    Path((api_id, route_id)): Path<(String, String)>,
    Query(query): Query<RangeQuery>,
) -> PageResult {
    let api = find_api(&state, &user, &api_id).await?;
    let route = find_route(&state, &user, &api, &route_id).await?;
    let traffic = route_traffic(&api, &route, query.range());
    let fields = fields_of(&route);
    let page = form_page(
        &user,
        api,
        Some(&route),
        fields,
        Errors::default(),
        Some(traffic),
    );
    Ok(render::page(&page))
}

async fn save(
    State(state): State<AppState>,
    Path((api_id, route_id)): Path<(String, String)>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let api = find_api(&state, &user, &api_id).await?;
    let route = find_route(&state, &user, &api, &route_id).await?;
    let path = format!("/apis/{}/routes/{}", api.id, route.id);
    let sent = match route_body(&fields, api.protocol()) {
        Ok(body) => dispatch::call(&state, &user, Method::PATCH, &path, Some(body)).await,
        Err(errors) => Err(Refusal::Invalid(Errors::new("", errors))),
    };
    match sent {
        Ok(_) => Ok(Redirect::to(&format!("/apis/{}", api.id)).into_response()),
        Err(Refusal::Invalid(errors)) => {
            let errors = explain(
                place_errors(fields.get("integration.type"), errors),
                &FORM_FIELDS,
                "The route was not saved.",
            );
            let traffic = route_traffic(&api, &route, super::charts::Range::default());
            let page = form_page(&user, api, Some(&route), fields, errors, Some(traffic));
            Ok(page_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(Refusal::Page(page)) => Ok(page),
    }
}

async fn delete(
    State(state): State<AppState>,
    Path((api_id, route_id)): Path<(String, String)>,
    posted: AdminPosted,
) -> PageResult {
    let user = posted.user;
    let api = find_api(&state, &user, &api_id).await?;
    let route = find_route(&state, &user, &api, &route_id).await?;
    let path = format!("/apis/{}/routes/{}", api.id, route.id);
    match dispatch::call(&state, &user, Method::DELETE, &path, None).await {
        Ok(_) => Ok(Redirect::to(&format!("/apis/{}", api.id)).into_response()),
        Err(refusal) => Ok(refusal.into_page(&user)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .fold(Fields::default(), |f, (name, value)| f.with(name, *value))
    }

    #[test]
    fn an_http_proxy_form_becomes_the_admin_api_body() {
        let fields = form(&[
            ("route_key", " GET /pets/{id} "),
            ("api_key_required", "on"),
            ("integration.type", "HTTP_PROXY"),
            ("integration.uri", "http://pets/{id}"),
            ("integration.timeout_ms", ""),
            ("integration.status", "not used"),
            ("integration.websocket_upgrade", "on"),
        ]);
        let body = route_body(&fields, Protocol::Http).expect("valid");
        assert_eq!(
            body,
            json!({"route_key": "GET /pets/{id}", "api_key_required": true,
                   "integration": {"type": "HTTP_PROXY", "uri": "http://pets/{id}",
                                   "timeout_ms": DEFAULT_TIMEOUT_MS, "websocket_upgrade": true}})
        );
    }

    #[test]
    fn a_mock_form_reads_header_lines() {
        let fields = form(&[
            ("route_key", "$default"),
            ("integration.type", "MOCK"),
            ("integration.status", "404"),
            (
                "integration.headers",
                "Content-Type: text/plain\r\n\r\nX-A: b: c\n",
            ),
            ("integration.body", "gone"),
            ("integration.timeout_ms", "junk is ignored"),
        ]);
        let body = route_body(&fields, Protocol::Http).expect("valid");
        assert_eq!(
            body["integration"],
            json!({"type": "MOCK", "status": 404, "body": "gone",
                   "headers": {"Content-Type": "text/plain", "X-A": "b: c"}})
        );
        assert_eq!(body["api_key_required"], json!(false));
    }

    #[test]
    fn numbers_and_header_lines_that_do_not_parse_name_their_field() {
        let fields_of =
            |errors: Vec<FieldError>| errors.into_iter().map(|e| e.field).collect::<Vec<_>>();
        let bad_timeout = form(&[
            ("route_key", "GET /a"),
            ("integration.type", "HTTP_PROXY"),
            ("integration.timeout_ms", "10s"),
        ]);
        assert_eq!(
            fields_of(route_body(&bad_timeout, Protocol::Http).expect_err("bad")),
            ["integration.timeout_ms"]
        );
        let too_short = form(&[
            ("integration.type", "HTTP_PROXY"),
            ("integration.timeout_ms", "10"),
        ]);
        assert!(route_body(&too_short, Protocol::Http).is_err());
        let bad_mock = form(&[
            ("route_key", "GET /a"),
            ("integration.type", "MOCK"),
            ("integration.status", "700"),
            ("integration.headers", "no colon here"),
        ]);
        assert_eq!(
            fields_of(route_body(&bad_mock, Protocol::Http).expect_err("bad")),
            ["integration.status", "integration.headers"]
        );
        let twice = form(&[
            ("integration.type", "MOCK"),
            ("integration.headers", "A: 1\na: 2"),
        ]);
        assert!(route_body(&twice, Protocol::Http).is_err());
        let both = form(&[
            ("route_key", "get /x"),
            ("integration.type", "HTTP_PROXY"),
            ("integration.timeout_ms", "x"),
        ]);
        assert_eq!(
            fields_of(route_body(&both, Protocol::Http).expect_err("bad")),
            ["route_key", "integration.timeout_ms"]
        );
        let no_type = form(&[("route_key", "$default"), ("integration.type", "LAMBDA")]);
        assert_eq!(
            fields_of(route_body(&no_type, Protocol::Http).expect_err("bad")),
            ["integration.type"]
        );
    }

    #[test]
    fn integration_errors_move_to_their_field() {
        let errors = Errors::new(
            "Invalid request",
            vec![
                FieldError::new("integration", "uri must start with http://"),
                FieldError::new("route_key", "bad"),
            ],
        );
        let placed = place_errors(HTTP_PROXY, errors);
        assert_eq!(
            placed.get("integration.uri"),
            Some("uri must start with http://")
        );
        assert_eq!(placed.get("route_key"), Some("bad"));
        let mock = Errors::new(
            "Invalid request",
            vec![FieldError::new(
                "integration",
                "headers: `a b` is not a valid header name",
            )],
        );
        assert!(place_errors(MOCK, mock)
            .get("integration.headers")
            .is_some());
    }

    #[test]
    fn summaries_say_what_a_route_calls() {
        let proxy: Integration = serde_json::from_value(
            json!({"type": "HTTP_PROXY", "uri": "http://a/", "timeout_ms": 1500}),
        )
        .expect("integration");
        assert_eq!(summary(&proxy), "HTTP_PROXY → http://a/ (1.5 s)");
        let mock: Integration =
            serde_json::from_value(json!({"type": "MOCK", "status": 201})).expect("mock");
        assert_eq!(summary(&mock), "MOCK 201");
        assert_eq!(timeout(29_000), "29 s");
        assert_eq!(timeout(50), "50 ms");
    }
}
