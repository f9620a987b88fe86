//! The usage plans pages: the list, the form that creates a plan, and each plan's page
//! with its details, its edit form (throttle, quota, stages covered and the throttles of
//! single routes on them), the keys attached and a way to attach more. Changes go through
//! the admin API's `/usage-plans` as its own request structs ([`request`]); numbers that
//! do not parse or that the model refuses are caught there, next to their field, before
//! anything is sent.
//!
//! Route throttles are rows of the form, `rt.{n}.stage`, `rt.{n}.route`, `rt.{n}.rate`,
//! `rt.{n}.burst` and `rt.{n}.remove`, with `rt.rows` saying how many the page showed: the
//! plan's own, then an empty one to add another. A form without `rt.rows` (a page from
//! before route throttles were editable) keeps the plan's route throttles as they are.

mod create;
mod form;
mod keys;
mod list;
mod page;
mod request;
mod route_throttles;

use std::collections::HashMap;

use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use gatehouse_model::{Protocol, Quota, QuotaPeriod, Throttle};
use uuid::Uuid;

use super::render::{self, grouped};
use super::session::SignedIn;
use crate::repo::apis;
use crate::repo::plans::PlanView;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plans", get(list::list))
        .route("/plans/new", get(create::new_form).post(create::create))
        .route("/plans/{plan_id}", get(page::show).post(page::save))
        .route("/plans/{plan_id}/keys", post(keys::attach))
        .route("/plans/{plan_id}/keys/{key_id}/detach", post(keys::detach))
        .route("/plans/{plan_id}/delete", post(page::delete))
}

/// `100 requests/s, burst 200`, or `none`.
pub(super) fn throttle_text(throttle: Option<Throttle>) -> String {
    throttle.map_or_else(
        || "none".to_owned(),
        |t| {
            format!(
                "{} requests/s, burst {}",
                t.rate,
                grouped(u64::from(t.burst))
            )
        },
    )
}

/// `10,000 per day`, or `none`.
pub(super) fn quota_text(quota: Option<Quota>) -> String {
    quota.map_or_else(
        || "none".to_owned(),
        |q| {
            let period = match q.period {
                QuotaPeriod::Day => "day",
                QuotaPeriod::Week => "week",
                QuotaPeriod::Month => "month",
            };
            format!("{} per {period}", grouped(q.limit))
        },
    )
}

/// An API stage a plan covers, named for people.
pub(super) struct CoveredStage {
    pub(super) api_id: Uuid,
    pub(super) api_name: String,
    pub(super) stage: String,
    /// The routes of the stage with a throttle of their own in this plan, as
    /// (route key, throttle) text.
    pub(super) route_throttles: Vec<(String, String)>,
}

pub(super) fn covered(plan: &PlanView, api_names: &HashMap<Uuid, String>) -> Vec<CoveredStage> {
    plan.stages
        .iter()
        .map(|s| CoveredStage {
            api_id: s.api_id,
            api_name: api_names
                .get(&s.api_id)
                .cloned()
                .unwrap_or_else(|| s.api_id.to_string()),
            stage: s.stage.as_str().to_owned(),
            route_throttles: s
                .route_throttles
                .iter()
                .map(|(key, throttle)| (key.clone(), throttle_text(Some(*throttle))))
                .collect(),
        })
        .collect()
}

/// Each API's protocol, by id, to check route keys as the admin API will.
async fn protocols(state: &AppState) -> sqlx::Result<HashMap<Uuid, Protocol>> {
    Ok(apis::list(&state.pool)
        .await?
        .into_iter()
        .map(|a| (a.id, a.protocol()))
        .collect())
}

pub(super) async fn api_names(state: &AppState) -> sqlx::Result<HashMap<Uuid, String>> {
    Ok(apis::list(&state.pool)
        .await?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect())
}

fn not_found(user: &SignedIn) -> Response {
    render::not_found(Some(user), "usage plan")
}
