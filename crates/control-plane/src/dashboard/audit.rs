//! The audit log page: every change, newest first, who made it and from where, fifty to
//! a page.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::render::{self, when, Frame, PageResult, Section};
use super::session::SignedIn;
use crate::repo::audit;
use crate::AppState;

const PAGE_SIZE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list))
}

#[derive(Deserialize)]
struct AuditQuery {
    before: Option<i64>,
}

struct EntryRow {
    when: String,
    actor: String,
    source: String,
    action: String,
    target: String,
    status: i16,
    detail: Option<String>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    frame: Frame,
    entries: Vec<EntryRow>,
    /// The `before` of the next (older) page, when there is one.
    older: Option<i64>,
    first_page: bool,
}

async fn list(
    user: SignedIn,
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> PageResult {
    // A `before` that is not a number shows the newest entries.
    let before = query.ok().and_then(|Query(q)| q.before);
    let entries = audit::page(&state.pool, before, PAGE_SIZE).await?;
    let older = (entries.len() == usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX))
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let entries = entries
        .into_iter()
        .map(|e| EntryRow {
            when: when(e.at),
            detail: e
                .detail
                .and_then(|d| serde_json::to_string_pretty(&d.0).ok()),
            actor: e.actor,
            source: e.source,
            action: e.action,
            target: e.target,
            status: e.status,
        })
        .collect();
    Ok(render::page(&AuditPage {
        frame: user.frame(Section::Audit),
        entries,
        older,
        first_page: before.is_none(),
    }))
}
