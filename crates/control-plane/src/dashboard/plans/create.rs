//! Creating a plan: the empty form, and the form again with what was wrong.

use askama::Template;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};

use super::super::dispatch::{self, Refusal};
use super::super::form::{AdminPosted, Errors, Fields};
use super::super::render::{self, Frame, PageResult, Section};
use super::super::session::SignedIn;
use super::form::PlanForm;
use super::protocols;
use super::request::{placed, plan_body};
use crate::AppState;

#[derive(Template)]
#[template(path = "plan_new.html")]
struct NewPlanPage {
    frame: Frame,
    form: PlanForm,
}

async fn new_plan_page(
    state: &AppState,
    user: &SignedIn,
    status: StatusCode,
    fields: Fields,
    errors: Errors,
) -> PageResult {
    let form = PlanForm::new(
        state,
        "/plans/new".to_owned(),
        "Create plan",
        fields,
        errors,
    )
    .await?;
    Ok(render::page_with(
        status,
        &NewPlanPage {
            frame: user.frame(Section::Plans),
            form,
        },
    ))
}

pub(super) async fn new_form(user: SignedIn, State(state): State<AppState>) -> PageResult {
    if !user.is_admin() {
        return Ok(render::viewer_denied(&user));
    }
    new_plan_page(
        &state,
        &user,
        StatusCode::OK,
        Fields::default(),
        Errors::default(),
    )
    .await
}

pub(super) async fn create(State(state): State<AppState>, posted: AdminPosted) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let again = |errors| {
        new_plan_page(
            &state,
            &user,
            StatusCode::UNPROCESSABLE_ENTITY,
            fields.clone(),
            errors,
        )
    };
    let protocols = protocols(&state).await?;
    let body = match plan_body(&fields, None, &protocols) {
        Ok(body) => body,
        Err(errors) => return again(errors).await,
    };
    match dispatch::call(&state, &user, Method::POST, "/usage-plans", &body).await {
        Ok(plan) => {
            let id = plan["id"].as_str().unwrap_or_default();
            Ok(Redirect::to(&format!("/plans/{id}")).into_response())
        }
        Err(Refusal::Invalid(errors)) => again(placed(errors)).await,
        Err(Refusal::Page(page)) => Ok(page),
    }
}
