//! Traffic charts: `/charts/requests` and `/charts/latency` answer an SVG chart of any
//! series the metrics API knows (same parameters: `api_id`, `stage`, `route_id`,
//! `key_id`), over the last `range` (`hour`, `day` or `week`). Pages show them as images
//! that refresh themselves, with the [`Traffic`] partial.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::chart;
use super::session::{url_escape, SignedIn};
use crate::http::metrics::{self, RawQuery};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/charts/requests", get(requests))
        .route("/charts/latency", get(latency))
}

/// A time range a chart covers, and its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Range {
    Hour,
    #[default]
    Day,
    Week,
}

impl Range {
    pub fn parse(raw: &str) -> Option<Range> {
        match raw {
            "hour" => Some(Range::Hour),
            "day" => Some(Range::Day),
            "week" => Some(Range::Week),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "hour",
            Range::Day => "day",
            Range::Week => "week",
        }
    }

    /// Length and step, in seconds.
    pub fn span(self) -> (i64, i64) {
        match self {
            Range::Hour => (3600, 60),
            Range::Day => (24 * 3600, 15 * 60),
            Range::Week => (7 * 24 * 3600, 3600),
        }
    }

    /// The metrics query of `series` over this range, ending with the step that holds
    /// now (so the newest minute shows as it fills).
    pub fn query(self, series: RawQuery) -> RawQuery {
        let (length, step) = self.span();
        let to = (Utc::now().timestamp() / step + 1) * step;
        let rfc3339 = |secs: i64| DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339());
        RawQuery {
            from: rfc3339(to - length),
            to: rfc3339(to),
            step: Some(step.to_string()),
            ..series
        }
    }

    /// `(value, label, aria-current)` of each range, for the tabs of a page.
    pub fn tabs(self) -> [(&'static str, &'static str, &'static str); 3] {
        let current = |r: Range| if r == self { "true" } else { "false" };
        [
            ("hour", "Last hour", current(Range::Hour)),
            ("day", "Last day", current(Range::Day)),
            ("week", "Last week", current(Range::Week)),
        ]
    }
}

/// The `range` query parameter of a page.
#[derive(Debug, Default, Deserialize)]
pub struct RangeQuery {
    #[serde(default)]
    pub range: String,
}

impl RangeQuery {
    pub fn range(&self) -> Range {
        Range::parse(&self.range).unwrap_or_default()
    }
}

/// What `templates/traffic.html` needs: which series, over which range. Pages hold one in
/// a field named `traffic` and `{% include "traffic.html" %}`.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// The series parameters, as a query string (`api_id=...&stage=prod`).
    pub series: String,
    pub range: Range,
    /// The page's own path (with any query of its own), for the range tabs.
    pub page: String,
}

impl Traffic {
    pub fn new(page: &str, params: &[(&str, &str)], range: Range) -> Traffic {
        let series = params
            .iter()
            .map(|(name, value)| format!("{name}={}", url_escape(value)))
            .collect::<Vec<_>>()
            .join("&");
        Traffic {
            series,
            range,
            page: page.to_owned(),
        }
    }

    /// The page's own address showing `range`, for the range tabs.
    pub fn tab(&self, range: &str) -> String {
        let separator = if self.page.contains('?') { '&' } else { '?' };
        format!("{}{separator}range={range}", self.page)
    }

    /// The address of a chart image of `kind` (`requests` or `latency`).
    pub fn src(&self, kind: &str) -> String {
        let range = self.range.as_str();
        if self.series.is_empty() {
            format!("/charts/{kind}?range={range}")
        } else {
            format!("/charts/{kind}?{}&range={range}", self.series)
        }
    }
}

#[derive(Debug, Deserialize)]
struct ChartQuery {
    api_id: Option<String>,
    stage: Option<String>,
    route_id: Option<String>,
    key_id: Option<String>,
    #[serde(default)]
    range: String,
}

async fn requests(user: SignedIn, state: State<AppState>, query: Query<ChartQuery>) -> Response {
    draw(user, state, query, |view| chart::requests(view, "Requests")).await
}

async fn latency(user: SignedIn, state: State<AppState>, query: Query<ChartQuery>) -> Response {
    draw(user, state, query, |view| chart::latency(view, "Latency")).await
}

async fn draw(
    _: SignedIn,
    State(state): State<AppState>,
    Query(query): Query<ChartQuery>,
    build: impl FnOnce(&metrics::MetricsView) -> chart::Chart,
) -> Response {
    let range = Range::parse(&query.range).unwrap_or_default();
    let raw = range.query(RawQuery {
        api_id: query.api_id,
        stage: query.stage,
        route_id: query.route_id,
        key_id: query.key_id,
        ..RawQuery::default()
    });
    let view = match metrics::answer(&state, &raw).await {
        Ok(view) => view,
        Err(e) => return e.into_response(),
    };
    match chart::render(&build(&view)) {
        Ok(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a chart failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
