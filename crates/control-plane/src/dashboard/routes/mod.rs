//! An API's routes in the dashboard: the forms that add, edit and delete a route, its
//! authorization and its integration, and the one-line summaries other pages show.
//!
//! The form holds the fields of both integration types at once (no script needed); the
//! chosen type decides which are sent ([`form`]). What the form cannot build is shown at
//! once; everything else is the admin API's to judge.

mod authorization;
mod form;
mod mapping;

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use gatehouse_model::{Integration, Protocol};
use uuid::Uuid;

pub(super) use self::authorization::summary as authorization_summary;
use self::form::{defaults, fields_of, route_body, update_body, FIELD_MAP, FORM_FIELDS, MOCK};
use super::apis::{explain, find_api};
use super::authorizers::{self as api_authorizers, AuthorizerChoice};
use super::charts::{Range, RangeQuery, Traffic};
use super::dispatch::{self, Refusal};
use super::form::{AdminPosted, Errors, Fields};
use super::render::{self, page_with, Frame, PageResult, Section};
use super::session::SignedIn;
use crate::repo::apis::Api;
use crate::repo::authorizers;
use crate::repo::routes::{self, Route};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis/{api_id}/routes/new", get(new_form).post(create))
        .route("/apis/{api_id}/routes/{route_id}", get(show).post(save))
        .route("/apis/{api_id}/routes/{route_id}/delete", post(delete))
}

/// A route as tables list it.
pub(super) struct RouteRow {
    pub id: String,
    pub route_key: String,
    pub integration: String,
    pub api_key_required: bool,
    /// Who may call it: `JWT idp (read:pets)`, or empty for anyone.
    pub authorization: String,
}

impl RouteRow {
    /// The row of `route`; `authorizer_names` names the API's authorizers by id.
    pub(super) fn new(route: &Route, authorizer_names: &HashMap<Uuid, String>) -> RouteRow {
        RouteRow {
            id: route.id.to_string(),
            route_key: route.route_key.clone(),
            integration: summary(&route.integration.0),
            api_key_required: route.api_key_required,
            authorization: authorization::summary(&route.authorization(), |id| {
                authorizer_names.get(&id).cloned()
            }),
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
    /// Who may call the route, for a viewer.
    authorization: String,
    /// The API's authorizers, for the authorization's choice.
    authorizers: Vec<AuthorizerChoice>,
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

    /// Whether the form offers authorization (HTTP APIs), or the route has one to keep.
    fn shows_authorization(&self) -> bool {
        self.api.protocol() == Protocol::Http
            || !matches!(self.fields.get("authorization_type"), "" | "NONE")
    }

    /// Whether the form offers parameter mapping (HTTP APIs), or the route has some to keep.
    fn shows_mapping(&self) -> bool {
        self.api.protocol() == Protocol::Http
            || !self.fields.get("integration.request_parameters").is_empty()
            || !self
                .fields
                .get("integration.response_parameters")
                .is_empty()
    }
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

async fn form_page(
    state: &AppState,
    user: &SignedIn,
    api: Api,
    route: Option<&Route>,
    fields: Fields,
    errors: Errors,
    traffic: Option<Traffic>,
) -> Result<RouteFormPage, render::Failure> {
    let api_authorizers = authorizers::list(&state.pool, api.id).await?;
    let names = api_authorizers::names(&api_authorizers);
    Ok(RouteFormPage {
        frame: user.frame(Section::Apis),
        route_id: route.map(|r| r.id.to_string()),
        summary: route.map_or_else(String::new, |r| summary(&r.integration.0)),
        authorization: route.map_or_else(String::new, |r| {
            authorization::summary(&r.authorization(), |id| names.get(&id).cloned())
        }),
        authorizers: api_authorizers::choices(&api_authorizers),
        api,
        fields,
        errors,
        traffic,
    })
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
    let page = form_page(
        &state,
        &user,
        api,
        None,
        defaults(),
        Errors::default(),
        None,
    )
    .await?;
    Ok(render::page(&page))
}

async fn create(
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let api = find_api(&state, &user, &api_id).await?;
    submit(&state, &user, api, None, fields).await
}

async fn save(
    State(state): State<AppState>,
    Path((api_id, route_id)): Path<(String, String)>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let api = find_api(&state, &user, &api_id).await?;
    let route = find_route(&state, &user, &api, &route_id).await?;
    submit(&state, &user, api, Some(route), fields).await
}

/// Sends the route form as a new route of `api`, or as a change of `route`; the API's page
/// follows, or the form again as typed with what was wrong next to its fields.
async fn submit(
    state: &AppState,
    user: &SignedIn,
    api: Api,
    route: Option<Route>,
    fields: Fields,
) -> PageResult {
    let sent = match (route_body(&fields, api.protocol()), &route) {
        (Ok(body), None) => {
            let path = format!("/apis/{}/routes", api.id);
            dispatch::call(state, user, Method::POST, &path, &body).await
        }
        (Ok(body), Some(route)) => {
            let path = format!("/apis/{}/routes/{}", api.id, route.id);
            let body = update_body(body);
            dispatch::call(state, user, Method::PATCH, &path, &body).await
        }
        (Err(errors), _) => Err(Refusal::Invalid(Errors::new("", errors))),
    };
    match sent {
        Ok(_) => Ok(Redirect::to(&format!("/apis/{}", api.id)).into_response()),
        Err(Refusal::Invalid(errors)) => {
            let what = match route {
                None => "The route was not added.",
                Some(_) => "The route was not saved.",
            };
            let errors = explain(FIELD_MAP.place(errors), &FORM_FIELDS, what);
            let traffic = route
                .as_ref()
                .map(|route| route_traffic(&api, route, Range::default()));
            let page = form_page(state, user, api, route.as_ref(), fields, errors, traffic).await?;
            Ok(page_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(Refusal::Page(page)) => Ok(page),
    }
}

fn route_traffic(api: &Api, route: &Route, range: Range) -> Traffic {
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
        &state,
        &user,
        api,
        Some(&route),
        fields,
        Errors::default(),
        Some(traffic),
    )
    .await?;
    Ok(render::page(&page))
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
    match dispatch::delete(&state, &user, &path).await {
        Ok(_) => Ok(Redirect::to(&format!("/apis/{}", api.id)).into_response()),
        Err(refusal) => Ok(refusal.into_page(&user)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
