//! APIs in the dashboard: the list ([`list`]), the forms that create, edit and delete an
//! API (their handlers here, their fields and requests in [`form`]), and an API's own
//! page ([`page`]: its routes, its authorizers, its CORS form ([`cors`]), its stages with
//! their invoke URLs, recent deployments, the Deploy form, the form that adds a stage on
//! an existing deployment, and its traffic), which the other API pages link back to. Also the helpers those pages share: finding
//! the API a path names, short ids, and error summaries that name fields a form hides.

mod cors;
mod form;
mod list;
mod page;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use uuid::Uuid;

use self::form::{create_body, defaults, fields_of, form_page, update_body, FORM_FIELDS};
pub(super) use self::page::{api_page, ApiForms};
use super::dispatch::{self, Refusal};
use super::form::{AdminPosted, Errors};
use super::render::{self, page_with, Failure, PageResult};
use super::session::SignedIn;
use crate::repo::apis::{self, Api};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apis", get(list::list))
        .route("/apis/new", get(new_form).post(create))
        .route("/apis/{api_id}", get(page::show))
        .route("/apis/{api_id}/edit", get(edit_form).post(save))
        .route("/apis/{api_id}/delete", post(delete))
        .route("/apis/{api_id}/cors", post(cors::save))
        .route("/apis/{api_id}/cors/delete", post(cors::remove))
}

/// The API `raw_id` names, or the friendly 404 (for a malformed id too).
pub(super) async fn find_api(
    state: &AppState,
    user: &SignedIn,
    raw_id: &str,
) -> Result<Api, Failure> {
    let not_found = || Failure::from(render::not_found(Some(user), "API"));
    let id = Uuid::parse_str(raw_id).map_err(|_| not_found())?;
    apis::get(&state.pool, id).await?.ok_or_else(not_found)
}

/// Errors ready for a form: a summary that starts with `what`, then says where to look,
/// or names the fields the form does not show (they would otherwise go unseen).
pub(super) fn explain(errors: Errors, shown: &[&str], what: &str) -> Errors {
    let hidden: Vec<String> = errors
        .fields
        .iter()
        .filter(|e| !shown.contains(&e.field.as_str()))
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    let summary = if errors.fields.is_empty() {
        let said = errors.summary.unwrap_or_default();
        format!("{what} {said}").trim_end().to_owned()
    } else if hidden.is_empty() {
        format!("{what} Check the fields below.")
    } else {
        format!("{what} {}.", hidden.join("; "))
    };
    Errors {
        summary: Some(summary),
        fields: errors.fields,
    }
}

/// A short form of an id for tables: its last 8 hex digits (the first ones of a v7 UUID
/// are a timestamp, alike for ids made the same minute).
pub(super) fn short_id(id: Uuid) -> String {
    let hex = id.simple().to_string();
    hex[hex.len() - 8..].to_owned()
}

async fn new_form(user: SignedIn) -> PageResult {
    if !user.is_admin() {
        return Ok(render::viewer_denied(&user));
    }
    Ok(render::page(&form_page(
        &user,
        None,
        defaults(),
        Errors::default(),
    )))
}

async fn create(State(state): State<AppState>, posted: AdminPosted) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let body = create_body(&fields);
    match dispatch::call(&state, &user, Method::POST, "/apis", &body).await {
        Ok(api) => {
            let id = api["id"].as_str().unwrap_or_default();
            Ok(Redirect::to(&format!("/apis/{id}")).into_response())
        }
        Err(Refusal::Invalid(errors)) => {
            let errors = explain(errors, &FORM_FIELDS, "The API was not created.");
            let page = form_page(&user, None, fields, errors);
            Ok(page_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(Refusal::Page(page)) => Ok(page),
    }
}

async fn edit_form(
    user: SignedIn,
    State(state): State<AppState>,
    Path(api_id): Path<String>,
) -> PageResult {
    let api = find_api(&state, &user, &api_id).await?;
    if !user.is_admin() {
        return Ok(render::viewer_denied(&user));
    }
    let fields = fields_of(&api);
    Ok(render::page(&form_page(
        &user,
        Some(api),
        fields,
        Errors::default(),
    )))
}

async fn save(
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let api = find_api(&state, &user, &api_id).await?;
    let body = update_body(&fields, &api);
    let path = format!("/apis/{}", api.id);
    match dispatch::call(&state, &user, Method::PATCH, &path, &body).await {
        Ok(_) => Ok(Redirect::to(&path).into_response()),
        Err(Refusal::Invalid(errors)) => {
            let errors = explain(errors, &FORM_FIELDS, "The API was not saved.");
            let fields = fields.with("protocol", api.protocol.clone());
            let page = form_page(&user, Some(api), fields, errors);
            Ok(page_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(Refusal::Page(page)) => Ok(page),
    }
}

async fn delete(
    State(state): State<AppState>,
    Path(api_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let user = posted.user;
    let api = find_api(&state, &user, &api_id).await?;
    let path = format!("/apis/{}", api.id);
    match dispatch::delete(&state, &user, &path).await {
        Ok(_) => Ok(Redirect::to("/apis").into_response()),
        Err(refusal) => Ok(refusal.into_page(&user)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldError;

    #[test]
    fn short_ids_are_the_random_end_of_the_id() {
        let id = Uuid::parse_str("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").expect("uuid");
        assert_eq!(short_id(id), "2e3f4a5b");
    }

    #[test]
    fn explained_errors_name_fields_the_form_does_not_show() {
        let shown = explain(
            Errors::new("Invalid request", vec![FieldError::new("slug", "taken")]),
            &FORM_FIELDS,
            "Not created.",
        );
        assert_eq!(
            shown.summary.as_deref(),
            Some("Not created. Check the fields below.")
        );
        assert_eq!(shown.get("slug"), Some("taken"));
        let hidden = explain(
            Errors::new("Invalid request", vec![FieldError::new("extra", "unknown")]),
            &FORM_FIELDS,
            "Not created.",
        );
        assert_eq!(
            hidden.summary.as_deref(),
            Some("Not created. extra: unknown.")
        );
        let message_only = explain(Errors::new("Busy", vec![]), &FORM_FIELDS, "Not created.");
        assert_eq!(message_only.summary.as_deref(), Some("Not created. Busy"));
    }
}
