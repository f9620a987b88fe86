//! The stage's page as shown, read afresh for every answer: its invoke URL (and for
//! WebSocket APIs its `@connections` URL and limits), its settings in words, the API's
//! deployments with what choosing each would do, the routes it serves, and the traffic
//! totals and charts of the stage or of one of its routes.

use askama::Template;
use axum::http::StatusCode;
use gatehouse_model::{DeployedRoute, Protocol, Throttle, WebSocketLimits, DEFAULT_STAGE_THROTTLE};
use uuid::Uuid;

use super::super::charts::{Range, Traffic};
use super::super::form::{Errors, Fields};
use super::super::invoke;
use super::super::render::{self, grouped, millis, when, Frame, PageResult, Section};
use super::super::routes;
use super::super::session::SignedIn;
use super::not_found;
use super::settings_form::{stage_fields, LIMIT_FIELDS};
use crate::http::metrics::{self, Figures, RawQuery};
use crate::repo::apis::Api;
use crate::repo::deployments::{self, Deployment};
use crate::repo::stages::Stage;
use crate::AppState;

#[derive(Template)]
#[template(path = "stage.html")]
struct StagePage {
    frame: Frame,
    api: Api,
    stage: Stage,
    /// The stage's own address: `/apis/{id}/stages/{name}`.
    path: String,
    invoke_url: String,
    /// WebSocket APIs: the `@connections` endpoint and the connection limits.
    websocket: Option<WebSocketFacts>,
    /// False while no proxy has polled and none is configured: the URL has a placeholder.
    proxy_known: bool,
    created: String,
    updated: String,
    throttle: String,
    /// The throttle a stage gets when both numbers are left empty.
    default_throttle: String,
    variables: Vec<(String, String)>,
    current: Option<DeploymentRow>,
    deployments: Vec<DeploymentRow>,
    routes: Vec<RouteRow>,
    /// The route whose traffic the charts show, when one is chosen.
    selected: Option<RouteRow>,
    traffic: Traffic,
    totals: Option<Totals>,
    fields: Fields,
    errors: Errors,
    /// Why the last roll back was refused.
    rollback_error: Option<String>,
    notice: Option<&'static str>,
}

impl StagePage {
    fn limit_fields(&self) -> &'static [(&'static str, &'static str)] {
        &LIMIT_FIELDS
    }
}

struct WebSocketFacts {
    connections_url: String,
    limits: WebSocketLimits,
}

/// One deployment of the API, as the roll back table lists it.
#[derive(Clone)]
struct DeploymentRow {
    id: String,
    description: String,
    author: String,
    when: String,
    route_count: i32,
    current: bool,
    /// The button's label: "Roll back to this" for older ones, "Deploy this" for newer.
    action: &'static str,
}

/// One route of the deployment the stage serves.
#[derive(Clone)]
struct RouteRow {
    id: String,
    route_key: String,
    target: String,
    api_key_required: bool,
    totals: Option<Totals>,
    selected: bool,
}

/// Traffic over the page's range, formatted.
#[derive(Clone)]
struct Totals {
    requests: String,
    errors_4xx: String,
    errors_5xx: String,
    p99: String,
}

/// What the page shows besides the stored stage: the range and route of the charts, and
/// the state of its forms.
pub(super) struct View {
    pub(super) range: Range,
    pub(super) route: Option<Uuid>,
    pub(super) fields: Option<Fields>,
    pub(super) errors: Errors,
    pub(super) rollback_error: Option<String>,
    pub(super) notice: Option<&'static str>,
}

impl View {
    pub(super) fn plain(range: Range) -> View {
        View {
            range,
            route: None,
            fields: None,
            errors: Errors::default(),
            rollback_error: None,
            notice: None,
        }
    }
}

/// Reads what the page shows and renders it with `status`.
pub(super) async fn render_page(
    state: &AppState,
    user: &SignedIn,
    api: Api,
    stage: Stage,
    view: View,
    status: StatusCode,
) -> PageResult {
    let api_id = api.id.to_string();
    let path = format!("/apis/{api_id}/stages/{}", stage.name);
    let base = invoke::base_url(state).await?;
    let protocol = api.protocol();
    let invoke_url = invoke::url(base.as_deref(), &api.slug, &stage.name, protocol);
    let websocket = (protocol == Protocol::Websocket).then(|| WebSocketFacts {
        connections_url: invoke::connections_url(base.as_deref(), &api.slug, &stage.name),
        limits: stage.websocket(),
    });
    let all = deployments::list(&state.pool, api.id).await?;
    let deployed = deployments::get(&state.pool, api.id, stage.deployment_id)
        .await?
        .map(|d| d.routes.0)
        .unwrap_or_default();
    let deployments = deployment_rows(&all, stage.deployment_id);
    let mut routes = Vec::with_capacity(deployed.len());
    for route in &deployed {
        let totals = totals(state, api.id, &stage.name, Some(route.id), view.range).await;
        routes.push(route_row(route, totals, view.route == Some(route.id)));
    }
    let selected = match view.route {
        Some(_) => match routes.iter().find(|r| r.selected) {
            Some(row) => Some(row.clone()),
            None => return Err(not_found(user, "route")),
        },
        None => None,
    };
    let mut series = vec![("api_id", api_id.as_str()), ("stage", stage.name.as_str())];
    if let Some(row) = &selected {
        series.push(("route_id", row.id.as_str()));
    }
    // The range tabs keep the chosen route.
    let page_path = match &selected {
        Some(row) => format!("{path}?route={}", row.id),
        None => path.clone(),
    };
    let traffic = Traffic::new(&page_path, &series, view.range);
    let stage_totals = totals(state, api.id, &stage.name, view.route, view.range).await;
    let page = StagePage {
        frame: user.frame(Section::Apis),
        path,
        invoke_url,
        websocket,
        proxy_known: base.is_some(),
        created: when(stage.created_at),
        updated: when(stage.updated_at),
        throttle: describe_throttle(stage.throttle()),
        default_throttle: throttle_text(DEFAULT_STAGE_THROTTLE),
        variables: stage
            .variables
            .0
            .as_map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        current: deployments.iter().find(|d| d.current).cloned(),
        deployments,
        routes,
        selected,
        traffic,
        totals: stage_totals,
        fields: view
            .fields
            .unwrap_or_else(|| stage_fields(&stage, protocol)),
        errors: view.errors,
        rollback_error: view.rollback_error,
        notice: view.notice,
        api,
        stage,
    };
    Ok(render::page_with(status, &page))
}

/// The API's deployments, newest first, each with what choosing it would do.
fn deployment_rows(all: &[Deployment], current: Uuid) -> Vec<DeploymentRow> {
    let current_at = all.iter().position(|d| d.id == current);
    all.iter()
        .enumerate()
        .map(|(i, d)| DeploymentRow {
            id: d.id.to_string(),
            description: d.description.clone(),
            author: d.author.clone(),
            when: when(d.created_at),
            route_count: d.route_count,
            current: d.id == current,
            action: match current_at {
                Some(at) if i < at => "Deploy this",
                _ => "Roll back to this",
            },
        })
        .collect()
}

fn route_row(route: &DeployedRoute, totals: Option<Totals>, selected: bool) -> RouteRow {
    let target = routes::summary(&route.integration);
    RouteRow {
        id: route.id.to_string(),
        route_key: route.route_key.to_string(),
        target,
        api_key_required: route.api_key_required,
        totals,
        selected,
    }
}

/// The stage's traffic (or one route's in it) over `range`; `None` when it cannot be read.
async fn totals(
    state: &AppState,
    api_id: Uuid,
    stage: &str,
    route: Option<Uuid>,
    range: Range,
) -> Option<Totals> {
    let raw = range.query(RawQuery {
        api_id: Some(api_id.to_string()),
        stage: Some(stage.to_owned()),
        route_id: route.map(|r| r.to_string()),
        ..RawQuery::default()
    });
    match metrics::answer(state, &raw).await {
        Ok(view) => Some(format_totals(&view.totals)),
        Err(e) => {
            tracing::warn!(error = %e, "reading a stage's traffic totals failed");
            None
        }
    }
}

fn format_totals(figures: &Figures) -> Totals {
    Totals {
        requests: grouped(figures.count),
        errors_4xx: grouped(figures.errors_4xx),
        errors_5xx: grouped(figures.errors_5xx),
        p99: millis(figures.latency_ms.as_ref().map(|l| l.p99)),
    }
}

/// `10000 requests/s, burst 5000`.
fn throttle_text(throttle: Throttle) -> String {
    format!("{} requests/s, burst {}", throttle.rate, throttle.burst)
}

/// The stage's throttle, noting when it is the default.
fn describe_throttle(throttle: Throttle) -> String {
    let text = throttle_text(throttle);
    if throttle == DEFAULT_STAGE_THROTTLE {
        format!("{text} (the default)")
    } else {
        text
    }
}
