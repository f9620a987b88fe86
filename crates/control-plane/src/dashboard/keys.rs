//! The API keys pages: the list with its create form (which also imports an existing
//! value), the page that shows a new key's value once, and each key's page with its usage
//! plans, quota used and left, traffic, and a form to rename it. Changes go through the
//! admin API's `/keys`, the only place that ever sees a value: it is answered once, to the
//! browser that asked, and never logged, audited or put in a URL.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use gatehouse_model::usage::UsageTotal;
use serde::Deserialize;
use uuid::Uuid;

use super::apis::explain;
use super::charts::{Range, RangeQuery, Traffic};
use super::dispatch::{self, Refusal};
use super::form::{AdminPosted, Errors, Fields};
use super::plans::{quota_text, throttle_text};
use super::render::{self, grouped, when, Failure, Frame, PageResult, Section};
use super::session::SignedIn;
use crate::http::keys::{CreateKey, UpdateKey};
use crate::repo::keys::{self, ApiKey};
use crate::repo::plans::{self, PlanView};
use crate::repo::usage;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/keys", get(list).post(create))
        .route("/keys/{key_id}", get(show))
        .route("/keys/{key_id}/rename", post(rename))
        .route("/keys/{key_id}/enable", post(enable))
        .route("/keys/{key_id}/disable", post(disable))
        .route("/keys/{key_id}/delete", post(delete))
}

/// A plan as a link: its id and name.
pub(super) struct PlanLink {
    pub id: Uuid,
    pub name: String,
}

/// One row of the keys table.
struct KeyRow {
    id: Uuid,
    name: String,
    prefix: String,
    enabled: bool,
    plans: Vec<PlanLink>,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    frame: Frame,
    keys: Vec<KeyRow>,
    /// The create form, as typed.
    fields: Fields,
    errors: Errors,
}

#[derive(Template)]
#[template(path = "key_created.html")]
struct KeyCreatedPage {
    frame: Frame,
    id: Uuid,
    name: String,
    prefix: String,
    /// The key itself: on this page and nowhere else, ever.
    value: String,
}

/// One of a key's plans, with its use of the plan's quota in the current period.
struct KeyPlanRow {
    id: Uuid,
    name: String,
    throttle: String,
    quota: String,
    used: String,
    left: String,
    /// When the current period ends, or "" without a quota.
    resets: String,
    /// The quota is used up.
    exhausted: bool,
}

#[derive(Template)]
#[template(path = "key.html")]
struct KeyPage {
    frame: Frame,
    key: ApiKey,
    created: String,
    last_used: String,
    plans: Vec<KeyPlanRow>,
    traffic: Traffic,
    /// The rename form, as typed.
    fields: Fields,
    errors: Errors,
}

/// What the admin API answers to a create: the one time the value travels.
#[derive(Deserialize)]
struct CreatedKey {
    id: Uuid,
    name: String,
    prefix: String,
    value: String,
}

/// "never" for a key not used yet.
fn last_used(key: &ApiKey) -> String {
    key.last_used_at.map_or_else(|| "never".to_owned(), when)
}

async fn keys_page(
    state: &AppState,
    user: &SignedIn,
    fields: Fields,
    errors: Errors,
) -> Result<KeysPage, Failure> {
    let all = keys::list(&state.pool).await?;
    let mut conn = state.pool.acquire().await?;
    let names: HashMap<Uuid, String> = plans::list(&mut conn)
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let mut by_key: HashMap<Uuid, Vec<PlanLink>> = HashMap::new();
    for (plan_id, key_id) in plans::memberships(&mut *conn).await? {
        if let Some(name) = names.get(&plan_id) {
            by_key.entry(key_id).or_default().push(PlanLink {
                id: plan_id,
                name: name.clone(),
            });
        }
    }
    let keys = all
        .into_iter()
        .map(|key| KeyRow {
            plans: by_key.remove(&key.id).unwrap_or_default(),
            created: when(key.created_at),
            last_used: last_used(&key),
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            enabled: key.enabled,
        })
        .collect();
    Ok(KeysPage {
        frame: user.frame(Section::Keys),
        keys,
        fields,
        errors,
    })
}

async fn list(user: SignedIn, State(state): State<AppState>) -> PageResult {
    let page = keys_page(&state, &user, Fields::default(), Errors::default()).await?;
    Ok(render::page(&page))
}

/// The fields of the create form the page shows errors next to.
const CREATE_FIELDS: [&str; 2] = ["name", "value"];

/// The create request: the name, and the value to import when one was typed.
fn create_body(fields: &Fields) -> CreateKey {
    let value = match fields.trimmed("value") {
        "" => None,
        value => Some(value.to_owned()),
    };
    CreateKey {
        name: fields.trimmed("name").to_owned(),
        value,
        enabled: true,
    }
}

/// Creates (or imports) a key and answers the page that shows its value, once. Not a
/// redirect: the value must not travel in a URL, and this answer is never cached.
async fn create(State(state): State<AppState>, posted: AdminPosted) -> PageResult {
    let body = create_body(&posted.fields);
    let answer = dispatch::call(&state, &posted.user, Method::POST, "/keys", &body).await;
    let created = match answer {
        Ok(created) => created,
        Err(Refusal::Invalid(errors)) => {
            let errors = explain(errors, &CREATE_FIELDS, "The key was not created.");
            let page = keys_page(&state, &posted.user, posted.fields, errors).await?;
            return Ok(render::page_with(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
        Err(Refusal::Page(page)) => return Ok(page),
    };
    let created: CreatedKey = serde_json::from_value(created).map_err(|e| {
        render::internal(&anyhow::anyhow!("unexpected answer to a key create: {e}"))
    })?;
    let mut response = render::page(&KeyCreatedPage {
        frame: posted.user.frame(Section::Keys),
        id: created.id,
        name: created.name,
        prefix: created.prefix,
        value: created.value,
    });
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The current period's use of `plan` by a key, from the key's usage totals.
fn plan_row(plan: PlanView, totals: &[UsageTotal], now: DateTime<Utc>) -> KeyPlanRow {
    let (used, left, resets, exhausted) = match plan.quota {
        Some(quota) => {
            let (start, end) = quota.period.bounds(now);
            let used = totals
                .iter()
                .find(|t| t.plan_id == plan.id && t.period_start == start)
                .map_or(0, |t| t.used);
            let left = quota.limit.saturating_sub(used);
            (grouped(used), grouped(left), when(end), left == 0)
        }
        None => (
            "not counted".to_owned(),
            "no quota".to_owned(),
            String::new(),
            false,
        ),
    };
    KeyPlanRow {
        throttle: throttle_text(plan.throttle),
        quota: quota_text(plan.quota),
        id: plan.id,
        name: plan.name,
        used,
        left,
        resets,
        exhausted,
    }
}

/// The key page with its rename form holding `fields` and showing `errors`, or `None`
/// when there is no such key.
async fn key_page(
    state: &AppState,
    user: &SignedIn,
    id: Uuid,
    range: Range,
    fields: Option<Fields>,
    errors: Errors,
) -> Result<Option<KeyPage>, Failure> {
    let Some(key) = keys::get(&state.pool, id).await? else {
        return Ok(None);
    };
    let totals = usage::of_key(&state.pool, id).await?;
    let mut conn = state.pool.acquire().await?;
    let now = Utc::now();
    let mut rows = Vec::new();
    for plan_id in keys::plan_ids(&mut *conn, id).await? {
        if let Some(plan) = plans::get(&mut conn, plan_id).await? {
            rows.push(plan_row(plan, &totals, now));
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let id_text = id.to_string();
    Ok(Some(KeyPage {
        frame: user.frame(Section::Keys),
        created: when(key.created_at),
        last_used: last_used(&key),
        traffic: Traffic::new(&format!("/keys/{id}"), &[("key_id", &id_text)], range),
        fields: fields.unwrap_or_else(|| Fields::default().with("name", key.name.clone())),
        errors,
        key,
        plans: rows,
    }))
}

async fn show(
    user: SignedIn,
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    Query(range): Query<RangeQuery>,
) -> PageResult {
    let Ok(id) = Uuid::parse_str(&key_id) else {
        return Ok(render::not_found(Some(&user), "API key"));
    };
    Ok(
        match key_page(&state, &user, id, range.range(), None, Errors::default()).await? {
            Some(page) => render::page(&page),
            None => render::not_found(Some(&user), "API key"),
        },
    )
}

/// Renames the key; its page follows, or shows the form again with what was wrong.
async fn rename(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    posted: AdminPosted,
) -> PageResult {
    let AdminPosted { user, fields } = posted;
    let Ok(id) = Uuid::parse_str(&key_id) else {
        return Ok(render::not_found(Some(&user), "API key"));
    };
    let path = format!("/keys/{id}");
    let body = UpdateKey {
        name: Some(fields.trimmed("name").to_owned()),
        enabled: None,
    };
    let errors = match dispatch::call(&state, &user, Method::PATCH, &path, &body).await {
        Ok(_) => return Ok(Redirect::to(&path).into_response()),
        Err(Refusal::Invalid(errors)) => explain(errors, &["name"], "The key was not renamed."),
        Err(Refusal::Page(page)) => return Ok(page),
    };
    let range = Range::default();
    Ok(
        match key_page(&state, &user, id, range, Some(fields), errors).await? {
            Some(page) => render::page_with(StatusCode::UNPROCESSABLE_ENTITY, &page),
            None => render::not_found(Some(&user), "API key"),
        },
    )
}

async fn enable(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    posted: AdminPosted,
) -> Response {
    set_enabled(&state, &key_id, &posted, true).await
}

async fn disable(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    posted: AdminPosted,
) -> Response {
    set_enabled(&state, &key_id, &posted, false).await
}

async fn set_enabled(
    state: &AppState,
    key_id: &str,
    posted: &AdminPosted,
    enabled: bool,
) -> Response {
    let Ok(id) = Uuid::parse_str(key_id) else {
        return render::not_found(Some(&posted.user), "API key");
    };
    let body = UpdateKey {
        name: None,
        enabled: Some(enabled),
    };
    let path = format!("/keys/{id}");
    match dispatch::call(state, &posted.user, Method::PATCH, &path, &body).await {
        Ok(_) => Redirect::to(&path).into_response(),
        Err(refusal) => refusal.into_page(&posted.user),
    }
}

async fn delete(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    posted: AdminPosted,
) -> Response {
    let Ok(id) = Uuid::parse_str(&key_id) else {
        return render::not_found(Some(&posted.user), "API key");
    };
    let path = format!("/keys/{id}");
    match dispatch::delete(&state, &posted.user, &path).await {
        Ok(_) => Redirect::to("/keys").into_response(),
        Err(refusal) => refusal.into_page(&posted.user),
    }
}
