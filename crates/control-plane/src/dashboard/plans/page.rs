//! A plan's page: its details, the edit form, the keys attached, and deleting it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use uuid::Uuid;

use super::super::dispatch::{self, Refusal};
use super::super::form::{AdminPosted, Errors, Fields};
use super::super::keys::PlanLink;
use super::super::render::{self, when, Failure, Frame, PageResult, Section};
use super::super::session::SignedIn;
use super::form::{fields_of, PlanForm};
use super::request::{placed, plan_body, update_body};
use super::{api_names, covered, not_found, protocols, quota_text, throttle_text, CoveredStage};
use crate::repo::keys;
use crate::repo::plans::{self, PlanView};
use crate::AppState;

struct AttachedKey {
    id: Uuid,
    name: String,
    prefix: String,
    enabled: bool,
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    frame: Frame,
    plan: PlanView,
    throttle: String,
    quota: String,
    created: String,
    updated: String,
    stages: Vec<CoveredStage>,
    keys: Vec<AttachedKey>,
    /// Keys not attached yet, for the attach form.
    candidates: Vec<PlanLink>,
    /// Whether any key exists at all (to say what to do when none can be attached).
    any_keys: bool,
    form: PlanForm,
    attach_errors: Errors,
    /// Why the plan could not be deleted.
    delete_error: Option<String>,
}

/// What a plan's page shows besides the plan: the edit form as typed, and refusals.
#[derive(Default)]
pub(super) struct Notes {
    /// The edit form as the user sent it; the plan's own values when `None`.
    pub(super) fields: Option<Fields>,
    pub(super) errors: Errors,
    pub(super) attach_errors: Errors,
    pub(super) delete_error: Option<String>,
}

/// The plan's page with `notes`, or `None` when there is no such plan.
async fn plan_page(
    state: &AppState,
    user: &SignedIn,
    id: Uuid,
    notes: Notes,
) -> Result<Option<PlanPage>, Failure> {
    let mut conn = state.pool.acquire().await?;
    let Some(plan) = plans::get(&mut conn, id).await? else {
        return Ok(None);
    };
    let attached = keys::in_plan(&mut *conn, id).await?;
    let all_keys = keys::list(&mut *conn).await?;
    drop(conn);
    let names = api_names(state).await?;
    let candidates = all_keys
        .iter()
        .filter(|k| !attached.iter().any(|a| a.id == k.id))
        .map(|k| PlanLink {
            id: k.id,
            name: format!("{} ({}…)", k.name, k.prefix),
        })
        .collect();
    let fields = notes.fields.unwrap_or_else(|| fields_of(&plan));
    let form = PlanForm::new(
        state,
        format!("/plans/{id}"),
        "Save changes",
        fields,
        notes.errors,
    )
    .await?;
    Ok(Some(PlanPage {
        frame: user.frame(Section::Plans),
        throttle: throttle_text(plan.throttle),
        quota: quota_text(plan.quota),
        created: when(plan.created_at),
        updated: when(plan.updated_at),
        stages: covered(&plan, &names),
        keys: attached
            .into_iter()
            .map(|k| AttachedKey {
                id: k.id,
                name: k.name,
                prefix: k.prefix,
                enabled: k.enabled,
            })
            .collect(),
        candidates,
        any_keys: !all_keys.is_empty(),
        plan,
        form,
        attach_errors: notes.attach_errors,
        delete_error: notes.delete_error,
    }))
}

/// Renders the plan's page with `status`, or the 404 page.
pub(super) async fn plan_answer(
    state: &AppState,
    user: &SignedIn,
    id: Uuid,
    status: StatusCode,
    notes: Notes,
) -> PageResult {
    Ok(match plan_page(state, user, id, notes).await? {
        Some(page) => render::page_with(status, &page),
        None => not_found(user),
    })
}

pub(super) async fn show(
    user: SignedIn,
    State(state): State<AppState>,
    Path(plan_id): Path<String>,
) -> PageResult {
    let Ok(id) = Uuid::parse_str(&plan_id) else {
        return Ok(not_found(&user));
    };
    plan_answer(&state, &user, id, StatusCode::OK, Notes::default()).await
}

pub(super) async fn save(
    State(state): State<AppState>,
    Path(plan_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let Ok(id) = Uuid::parse_str(&plan_id) else {
        return Ok(not_found(&user));
    };
    let mut conn = state.pool.acquire().await?;
    let Some(current) = plans::get(&mut conn, id).await? else {
        return Ok(not_found(&user));
    };
    drop(conn);
    let protocols = protocols(&state).await?;
    let refused = match plan_body(&fields, Some(&current), &protocols) {
        Ok(body) => {
            let path = format!("/usage-plans/{id}");
            let body = update_body(body);
            match dispatch::call(&state, &user, Method::PATCH, &path, &body).await {
                Ok(_) => return Ok(Redirect::to(&format!("/plans/{id}")).into_response()),
                Err(Refusal::Invalid(errors)) => placed(errors),
                Err(Refusal::Page(page)) => return Ok(page),
            }
        }
        Err(errors) => errors,
    };
    let notes = Notes {
        fields: Some(fields),
        errors: refused,
        ..Notes::default()
    };
    plan_answer(&state, &user, id, StatusCode::UNPROCESSABLE_ENTITY, notes).await
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(plan_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let user = &posted.user;
    let Ok(id) = Uuid::parse_str(&plan_id) else {
        return Ok(not_found(user));
    };
    let path = format!("/usage-plans/{id}");
    let refused = match dispatch::delete(&state, user, &path).await {
        Ok(_) => return Ok(Redirect::to("/plans").into_response()),
        Err(Refusal::Invalid(errors)) => errors,
        Err(Refusal::Page(page)) => return Ok(page),
    };
    let notes = Notes {
        delete_error: Some(
            refused
                .summary
                .unwrap_or_else(|| "The plan was not deleted.".to_owned()),
        ),
        ..Notes::default()
    };
    plan_answer(&state, user, id, StatusCode::CONFLICT, notes).await
}
