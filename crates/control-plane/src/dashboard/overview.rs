//! The overview: traffic across all APIs (requests, errors, latency) for the last hour,
//! day or week, the busiest APIs, and the proxies with their status.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::Utc;

use super::charts::{RangeQuery, Traffic};
use super::nodes::{self, NodeRow};
use super::render::{self, millis, Frame, PageResult, Section};
use super::session::SignedIn;
use crate::http::metrics::{self, RawQuery};
use crate::repo::traffic::{self, ApiTotals};
use crate::AppState;

/// APIs listed as the busiest.
const BUSIEST: i64 = 8;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(overview))
}

/// Headline figures of a range.
pub struct Headline {
    pub requests: String,
    pub errors_4xx: String,
    pub errors_5xx: String,
    pub p50: String,
    pub p99: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    frame: Frame,
    traffic: Traffic,
    headline: Headline,
    busiest: Vec<ApiTotals>,
    nodes: Vec<NodeRow>,
}

/// `part` as a share of `whole`, for error rates.
fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    let percent = part as f64 * 100.0 / whole as f64;
    if percent > 0.0 && percent < 0.1 {
        "<0.1%".to_owned()
    } else {
        format!("{percent:.1}%")
    }
}

async fn overview(
    user: SignedIn,
    State(state): State<AppState>,
    Query(query): Query<RangeQuery>,
) -> PageResult {
    let range = query.range();
    let raw = range.query(RawQuery::default());
    let totals = match metrics::answer(&state, &raw).await {
        Ok(view) => view.totals,
        Err(e) => {
            tracing::warn!(error = %e, "reading the overview's traffic failed");
            return Err(render::problem(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&user),
                "Traffic unavailable",
                "The traffic figures could not be read. Try again in a moment.",
            )
            .into());
        }
    };
    let latency = totals.latency_ms.as_ref();
    let headline = Headline {
        requests: totals.count.to_string(),
        errors_4xx: share(totals.errors_4xx, totals.count),
        errors_5xx: share(totals.errors_5xx, totals.count),
        p50: millis(latency.map(|l| l.p50)),
        p99: millis(latency.map(|l| l.p99)),
    };
    let now = Utc::now();
    let from = now - chrono::Duration::seconds(range.span().0);
    let busiest = traffic::busiest_apis(&state.pool, from, now, BUSIEST).await?;
    Ok(render::page(&OverviewPage {
        frame: user.frame(Section::Overview),
        traffic: Traffic::new("/", &[], range),
        headline,
        busiest,
        nodes: nodes::rows(&state).await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_read_as_percentages() {
        assert_eq!(share(0, 0), "–");
        assert_eq!(share(1, 4), "25.0%");
        assert_eq!(share(1, 10_000), "<0.1%");
        assert_eq!(share(0, 10), "0.0%");
    }
}
