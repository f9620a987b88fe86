//! The list of APIs: each API's slug, protocol, how many routes it has and which stages.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use uuid::Uuid;

use super::super::render::{self, Frame, PageResult, Section};
use super::super::session::SignedIn;
use crate::repo::{apis, routes, stages};
use crate::AppState;

struct ApiRow {
    id: String,
    name: String,
    slug: String,
    protocol: String,
    routes: i64,
    stages: Vec<String>,
    updated: String,
}

#[derive(Template)]
#[template(path = "apis.html")]
struct ApisPage {
    frame: Frame,
    apis: Vec<ApiRow>,
}

pub(super) async fn list(user: SignedIn, State(state): State<AppState>) -> PageResult {
    let all = apis::list(&state.pool).await?;
    let counts: HashMap<Uuid, i64> = routes::counts(&state.pool).await?.into_iter().collect();
    let mut stage_names: HashMap<Uuid, Vec<String>> = HashMap::new();
    for stage in stages::list_all(&state.pool).await? {
        stage_names
            .entry(stage.api_id)
            .or_default()
            .push(stage.name);
    }
    let apis = all
        .into_iter()
        .map(|api| ApiRow {
            id: api.id.to_string(),
            routes: counts.get(&api.id).copied().unwrap_or(0),
            stages: stage_names.remove(&api.id).unwrap_or_default(),
            updated: render::when(api.updated_at),
            name: api.name,
            slug: api.slug,
            protocol: api.protocol,
        })
        .collect();
    Ok(render::page(&ApisPage {
        frame: user.frame(Section::Apis),
        apis,
    }))
}
