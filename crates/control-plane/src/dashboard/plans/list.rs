//! The list of usage plans: each plan's limits, the API stages it covers and how many
//! keys it has.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use uuid::Uuid;

use super::super::render::{self, grouped, Frame, PageResult, Section};
use super::super::session::SignedIn;
use super::{api_names, covered, quota_text, throttle_text, CoveredStage};
use crate::repo::plans;
use crate::AppState;

struct PlanRow {
    id: Uuid,
    name: String,
    throttle: String,
    quota: String,
    stages: Vec<CoveredStage>,
    keys: String,
}

#[derive(Template)]
#[template(path = "plans.html")]
struct PlansPage {
    frame: Frame,
    plans: Vec<PlanRow>,
}

pub(super) async fn list(user: SignedIn, State(state): State<AppState>) -> PageResult {
    let names = api_names(&state).await?;
    let mut conn = state.pool.acquire().await?;
    let all = plans::list(&mut conn).await?;
    let mut key_counts: HashMap<Uuid, u64> = HashMap::new();
    for (plan_id, _) in plans::memberships(&mut *conn).await? {
        *key_counts.entry(plan_id).or_default() += 1;
    }
    let rows = all
        .into_iter()
        .map(|plan| PlanRow {
            stages: covered(&plan, &names),
            throttle: throttle_text(plan.throttle),
            quota: quota_text(plan.quota),
            keys: grouped(key_counts.get(&plan.id).copied().unwrap_or(0)),
            id: plan.id,
            name: plan.name,
        })
        .collect();
    Ok(render::page(&PlansPage {
        frame: user.frame(Section::Plans),
        plans: rows,
    }))
}
