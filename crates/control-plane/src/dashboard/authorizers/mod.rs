//! An HTTP API's authorizers in the dashboard: the forms that add, edit and delete a JWT
//! or REQUEST authorizer (their fields and requests in [`form`]), the rows the API's page
//! lists, and the choices the route form offers. Deleting one that routes use is the
//! admin API's to refuse; its reason shows on the authorizer's page. A JWT authorizer's
//! page also tests a pasted token ([`test_token`]).

mod form;
mod test_token;

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use gatehouse_model::{AuthorizerSpec, AuthorizerType};
use uuid::Uuid;

use self::form::{defaults, field_map, fields_of, input, FORM_FIELDS, REQUEST};
use self::test_token::{Outcome, TokenTest};
use super::apis::{explain, find_api};
use super::dispatch::{self, Refusal};
use super::form::{AdminPosted, Errors, Fields, Posted};
use super::render::{self, page_with, Failure, Frame, PageResult, Section};
use super::session::SignedIn;
use crate::repo::apis::Api;
use crate::repo::authorizers::{self, Authorizer};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis/{api_id}/authorizers/new", get(new_form).post(create))
        .route(
            "/apis/{api_id}/authorizers/{authorizer_id}",
            get(show).post(save),
        )
        .route(
            "/apis/{api_id}/authorizers/{authorizer_id}/delete",
            post(delete),
        )
        .route(
            "/apis/{api_id}/authorizers/{authorizer_id}/test",
            get(back_to_page).post(test),
        )
}

/// An authorizer as the API's page lists it.
pub(super) struct AuthorizerRow {
    pub id: String,
    pub name: String,
    /// `JWT` or `REQUEST`.
    pub kind: &'static str,
    /// A JWT authorizer's issuer, a REQUEST authorizer's URI.
    pub target: String,
    pub identity_sources: Vec<String>,
}

impl AuthorizerRow {
    pub(super) fn new(authorizer: &Authorizer) -> AuthorizerRow {
        let spec = &authorizer.definition.0;
        let target = match spec.authorizer_type {
            AuthorizerType::Jwt => spec.jwt_configuration.as_ref().map(|j| j.issuer.clone()),
            AuthorizerType::Request => spec.authorizer_uri.clone(),
        };
        AuthorizerRow {
            id: authorizer.id.to_string(),
            name: spec.name.clone(),
            kind: spec.authorizer_type.as_str(),
            target: target.unwrap_or_default(),
            identity_sources: spec.identity_source.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// An authorizer as the route form offers it.
pub(super) struct AuthorizerChoice {
    pub id: String,
    /// `name (JWT)`.
    pub label: String,
}

/// The route form's choice of `authorizers`.
pub(super) fn choices(authorizers: &[Authorizer]) -> Vec<AuthorizerChoice> {
    authorizers
        .iter()
        .map(|a| AuthorizerChoice {
            id: a.id.to_string(),
            label: format!(
                "{} ({})",
                a.definition.0.name,
                a.definition.0.authorizer_type.as_str()
            ),
        })
        .collect()
}

/// Authorizer names by id, for pages that say which one a route uses.
pub(super) fn names(authorizers: &[Authorizer]) -> HashMap<Uuid, String> {
    authorizers
        .iter()
        .map(|a| (a.id, a.definition.0.name.clone()))
        .collect()
}

#[derive(Template)]
#[template(path = "authorizer_form.html")]
struct AuthorizerFormPage {
    frame: Frame,
    api: Api,
    /// The authorizer being edited; `None` for a new one.
    authorizer_id: Option<String>,
    /// The keys of the routes that use it.
    used_by: Vec<String>,
    fields: Fields,
    errors: Errors,
    /// The result of testing a pasted token, after a test.
    test: Option<TokenTest>,
}

impl AuthorizerFormPage {
    fn action(&self) -> String {
        match &self.authorizer_id {
            Some(id) => format!("/apis/{}/authorizers/{id}", self.api.id),
            None => format!("/apis/{}/authorizers/new", self.api.id),
        }
    }

    fn is_request(&self) -> bool {
        self.fields.get("authorizer_type") == REQUEST
    }
}

/// The authorizer `raw_id` of `api`, or the friendly 404.
async fn find_authorizer(
    state: &AppState,
    user: &SignedIn,
    api: &Api,
    raw_id: &str,
) -> Result<Authorizer, Failure> {
    let not_found = || Failure::from(render::not_found(Some(user), "authorizer"));
    let id = Uuid::parse_str(raw_id).map_err(|_| not_found())?;
    authorizers::get(&state.pool, api.id, id)
        .await?
        .ok_or_else(not_found)
}

/// The authorizer's form page; for a stored one, with the routes that use it.
async fn form_page(
    state: &AppState,
    user: &SignedIn,
    api: Api,
    authorizer: Option<&Authorizer>,
    fields: Fields,
    errors: Errors,
) -> Result<AuthorizerFormPage, Failure> {
    let used_by = match authorizer {
        Some(a) => authorizers::users(&state.pool, api.id, a.id).await?,
        None => Vec::new(),
    };
    Ok(AuthorizerFormPage {
        frame: user.frame(Section::Apis),
        api,
        authorizer_id: authorizer.map(|a| a.id.to_string()),
        used_by,
        fields,
        errors,
        test: None,
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
    let page = form_page(&state, &user, api, None, defaults(), Errors::default()).await?;
    Ok(render::page(&page))
}

async fn show(
    user: SignedIn,
    State(state): State<AppState>,
    Path((api_id, authorizer_id)): Path<(String, String)>,
) -> PageResult {
    let api = find_api(&state, &user, &api_id).await?;
    let authorizer = find_authorizer(&state, &user, &api, &authorizer_id).await?;
    let fields = fields_of(&authorizer.definition.0);
    let page = form_page(
        &state,
        &user,
        api,
        Some(&authorizer),
        fields,
        Errors::default(),
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
    Path((api_id, authorizer_id)): Path<(String, String)>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let api = find_api(&state, &user, &api_id).await?;
    let authorizer = find_authorizer(&state, &user, &api, &authorizer_id).await?;
    // An authorizer's type does not change: the form says which it is, whatever is sent.
    let spec: &AuthorizerSpec = &authorizer.definition.0;
    let fields = fields.with("authorizer_type", spec.authorizer_type.as_str());
    submit(&state, &user, api, Some(authorizer), fields).await
}

/// Sends the form as a new authorizer of `api`, or as a change of `authorizer`; the API's
/// page follows, or the form again as typed with what was wrong next to its fields.
async fn submit(
    state: &AppState,
    user: &SignedIn,
    api: Api,
    authorizer: Option<Authorizer>,
    fields: Fields,
) -> PageResult {
    let sent = match (input(&fields), &authorizer) {
        (Ok(body), None) => {
            let path = format!("/apis/{}/authorizers", api.id);
            dispatch::call(state, user, Method::POST, &path, &body).await
        }
        (Ok(body), Some(authorizer)) => {
            let path = format!("/apis/{}/authorizers/{}", api.id, authorizer.id);
            dispatch::call(state, user, Method::PATCH, &path, &body).await
        }
        (Err(errors), _) => Err(Refusal::Invalid(Errors::new("", errors))),
    };
    match sent {
        Ok(_) => Ok(Redirect::to(&format!("/apis/{}#authorizers", api.id)).into_response()),
        Err(Refusal::Invalid(errors)) => {
            let what = match authorizer {
                None => "The authorizer was not added.",
                Some(_) => "The authorizer was not saved.",
            };
            let errors = explain(field_map(&fields).place(errors), &FORM_FIELDS, what);
            let page = form_page(state, user, api, authorizer.as_ref(), fields, errors).await?;
            Ok(page_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(Refusal::Page(page)) => Ok(page),
    }
}

async fn delete(
    State(state): State<AppState>,
    Path((api_id, authorizer_id)): Path<(String, String)>,
    posted: AdminPosted,
) -> PageResult {
    let user = posted.user;
    let api = find_api(&state, &user, &api_id).await?;
    let authorizer = find_authorizer(&state, &user, &api, &authorizer_id).await?;
    let path = format!("/apis/{}/authorizers/{}", api.id, authorizer.id);
    match dispatch::delete(&state, &user, &path).await {
        Ok(_) => Ok(Redirect::to(&format!("/apis/{}#authorizers", api.id)).into_response()),
        Err(Refusal::Invalid(errors)) => {
            // In use (409): the authorizer's page says by which routes, its form intact.
            let errors = not_deleted(errors);
            let fields = fields_of(&authorizer.definition.0);
            let page = form_page(&state, &user, api, Some(&authorizer), fields, errors).await?;
            Ok(page_with(StatusCode::CONFLICT, &page))
        }
        Err(Refusal::Page(page)) => Ok(page),
    }
}

/// Tests a pasted token against a JWT authorizer; its page follows with the verdict. Any
/// signed-in user may: it changes nothing.
async fn test(
    State(state): State<AppState>,
    Path((api_id, authorizer_id)): Path<(String, String)>,
    posted: Posted,
) -> PageResult {
    let Posted { user, fields } = posted;
    let api = find_api(&state, &user, &api_id).await?;
    let authorizer = find_authorizer(&state, &user, &api, &authorizer_id).await?;
    let spec = &authorizer.definition.0;
    let Some(config) = spec.jwt_configuration.as_ref() else {
        return Ok(render::problem(
            StatusCode::BAD_REQUEST,
            Some(&user),
            "Not a JWT authorizer",
            "Only a JWT authorizer checks tokens; a REQUEST authorizer asks its own endpoint.",
        ));
    };
    let result = test_token::run(config, fields.get("token"), fields.get("scopes")).await;
    let fields = fields_of(spec);
    let mut page = form_page(
        &state,
        &user,
        api,
        Some(&authorizer),
        fields,
        Errors::default(),
    )
    .await?;
    page.test = Some(result);
    Ok(render::page(&page))
}

/// The test's address opened (or reloaded) without a form: the authorizer's page.
async fn back_to_page(Path((api_id, authorizer_id)): Path<(String, String)>) -> Redirect {
    match (Uuid::parse_str(&api_id), Uuid::parse_str(&authorizer_id)) {
        (Ok(api), Ok(authorizer)) => Redirect::to(&format!("/apis/{api}/authorizers/{authorizer}")),
        _ => Redirect::to("/apis"),
    }
}

/// A refused delete's errors as one summary: the admin API's own words.
fn not_deleted(errors: Errors) -> Errors {
    let mut reasons: Vec<String> = errors.fields.into_iter().map(|e| e.message).collect();
    if reasons.is_empty() {
        reasons.extend(errors.summary);
    }
    let summary = if reasons.is_empty() {
        "The authorizer was not deleted.".to_owned()
    } else {
        format!("The authorizer was not deleted: {}.", reasons.join("; "))
    };
    Errors {
        summary: Some(summary),
        fields: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldError;

    #[test]
    fn a_refused_delete_says_why_in_the_admin_apis_words() {
        let in_use = not_deleted(Errors::new(
            "Conflict",
            vec![FieldError::new(
                "authorizer_id",
                "routes use this authorizer: GET /pets",
            )],
        ));
        assert_eq!(
            in_use.summary.as_deref(),
            Some("The authorizer was not deleted: routes use this authorizer: GET /pets.")
        );
        assert!(in_use.fields.is_empty());
        let bare = not_deleted(Errors::new("Busy", vec![]));
        assert_eq!(
            bare.summary.as_deref(),
            Some("The authorizer was not deleted: Busy.")
        );
    }
}
