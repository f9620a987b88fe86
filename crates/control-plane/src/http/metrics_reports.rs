//! `POST /dp/v1/metrics`: proxies' traffic reports.
//!
//! A report from a node that never polled, or with a bad token, is refused whole (403), so
//! is one from another token than the node's (409), and a malformed one (400, which a
//! proxy does not retry). Entries that cannot be true or that
//! name nothing that exists (an API deleted since) or no key proxies are sent (a key on no
//! plan of a stage, disabled or deleted since) are dropped one by one and the reasons
//! logged, so one odd entry does not cost the rest. A batch id already seen is answered
//! as a success and counted nothing.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Duration, DurationRound, Utc};
use gatehouse_model::metrics::{MetricsReport, TrafficEntry};
use gatehouse_model::StageName;
use serde::Serialize;

use crate::auth::Node;
use crate::error::{ApiError, ApiResult};
use crate::http::sync::{header_text, reporting_node, NODE_ID_HEADER};
use crate::json::JsonBody;
use crate::maintenance::BATCH_MEMORY;
use crate::repo::keys;
use crate::repo::traffic::{self, Additions, Series};
use crate::AppState;

/// Most entries one report may carry (proxies send at most 5,000).
pub const MAX_ENTRIES: usize = 10_000;
/// Largest report body.
const MAX_REPORT_BYTES: usize = 32 * 1024 * 1024;
/// How far ahead of this clock a proxy's minute may be.
const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/metrics",
        post(report).layer(DefaultBodyLimit::max(MAX_REPORT_BYTES)),
    )
}

#[derive(Debug, Serialize)]
pub struct Receipt {
    /// True when the batch had been received before (nothing was counted again).
    pub duplicate: bool,
    pub accepted: usize,
    pub rejected: usize,
}

async fn report(
    node: Node,
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(report): JsonBody<MetricsReport>,
) -> ApiResult<Json<Receipt>> {
    let node_id = header_text(&headers, NODE_ID_HEADER)?
        .ok_or_else(|| ApiError::BadRequest(format!("{NODE_ID_HEADER} is required")))?;
    if report.entries.len() > MAX_ENTRIES {
        return Err(ApiError::invalid(
            "entries",
            format!("at most {MAX_ENTRIES} per report"),
        ));
    }
    reporting_node(&state, &node, &node_id).await?;
    let retention = Duration::from_std(state.config.metrics_retention).unwrap_or(Duration::MAX);
    let mut tx = state.pool.begin().await?;
    if !traffic::claim_batch(&mut tx, report.batch_id, &node_id).await? {
        tx.rollback().await?;
        state
            .telemetry
            .reports
            .with_label_values(&["duplicate"])
            .inc();
        return Ok(Json(Receipt {
            duplicate: true,
            accepted: 0,
            rejected: 0,
        }));
    }
    let api_ids: Vec<_> = unique(report.entries.iter().map(|e| e.api_id));
    let key_ids: Vec<_> = unique(report.entries.iter().filter_map(|e| e.key_id));
    let known = Known {
        apis: traffic::existing_apis(&mut *tx, &api_ids)
            .await?
            .into_iter()
            .collect(),
        keys: keys::served(&mut *tx, &key_ids)
            .await?
            .into_iter()
            .collect(),
    };
    let sorted = sort(&report.entries, &known, Utc::now(), retention);
    if !sorted.additions.is_empty() {
        traffic::add_minutes(&mut tx, &sorted.additions).await?;
    }
    tx.commit().await?;
    let t = &state.telemetry;
    t.reports.with_label_values(&["accepted"]).inc();
    t.report_entries
        .with_label_values(&["accepted"])
        .inc_by(sorted.accepted as u64);
    t.report_entries
        .with_label_values(&["rejected"])
        .inc_by(sorted.rejected as u64);
    if !sorted.problems.is_empty() {
        tracing::warn!(node = %node_id, batch = %report.batch_id, problems = ?sorted.problems, "metrics report entries dropped or adjusted");
    }
    Ok(Json(Receipt {
        duplicate: false,
        accepted: sorted.accepted,
        rejected: sorted.rejected,
    }))
}

fn unique<T: Ord + Copy>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut items: Vec<T> = items.collect();
    items.sort_unstable();
    items.dedup();
    items
}

/// The APIs of a report that exist, and its keys that proxies are sent.
pub struct Known {
    pub apis: HashSet<uuid::Uuid>,
    pub keys: HashSet<uuid::Uuid>,
}

/// A report's entries, sorted into what to add and what was wrong.
pub struct Sorted {
    pub additions: Additions,
    pub accepted: usize,
    pub rejected: usize,
    /// How many entries had each problem (dropped, or for a misaligned minute, moved).
    pub problems: BTreeMap<&'static str, usize>,
}

/// Checks each entry and spreads the good ones over the series they count in.
pub fn sort(
    entries: &[TrafficEntry],
    known: &Known,
    now: DateTime<Utc>,
    retention: Duration,
) -> Sorted {
    let mut sorted = Sorted {
        additions: Additions::new(),
        accepted: 0,
        rejected: 0,
        problems: BTreeMap::new(),
    };
    // A batch id is remembered for BATCH_MEMORY: anything older could be a retry of a
    // batch already counted and forgotten.
    let oldest = now
        .checked_sub_signed(retention.min(BATCH_MEMORY - Duration::days(1)))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    for entry in entries {
        let minute = entry
            .minute
            .duration_trunc(Duration::minutes(1))
            .unwrap_or(entry.minute);
        if minute != entry.minute {
            *sorted
                .problems
                .entry("minute moved to its start")
                .or_default() += 1;
        }
        let problem = entry
            .traffic
            .implausible()
            .or_else(|| (minute > now + MAX_CLOCK_SKEW).then_some("minute is in the future"))
            .or_else(|| (minute < oldest).then_some("minute is too old"))
            .or_else(|| {
                StageName::parse(&entry.stage)
                    .is_err()
                    .then_some("stage is not a stage name")
            })
            .or_else(|| (!known.apis.contains(&entry.api_id)).then_some("unknown API"))
            .or_else(|| match entry.key_id {
                Some(_) if entry.route_id.is_some() => Some("a key entry names a route"),
                Some(key) if !known.keys.contains(&key) => Some("unknown API key"),
                _ => None,
            });
        if let Some(problem) = problem {
            *sorted.problems.entry(problem).or_default() += 1;
            sorted.rejected += 1;
            continue;
        }
        let mut traffic = entry.traffic.clone();
        traffic.repair();
        traffic::add(&mut sorted.additions, series_of(entry), minute, &traffic);
        sorted.accepted += 1;
    }
    sorted
}

/// Every series an entry counts in: a key entry in its key's; a route entry in all
/// traffic, its API, its stage and its route (when a route matched).
pub fn series_of(entry: &TrafficEntry) -> Vec<Series> {
    if let Some(key) = entry.key_id {
        return vec![Series::key(key)];
    }
    let mut series = vec![
        Series::all(),
        Series::api(entry.api_id),
        Series::stage(entry.api_id, &entry.stage),
    ];
    if let Some(route) = entry.route_id {
        series.push(Series::route(entry.api_id, &entry.stage, route));
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_model::metrics::Traffic;
    use uuid::Uuid;

    fn entry(minute: DateTime<Utc>, api_id: Uuid, count: u64) -> TrafficEntry {
        let mut traffic = Traffic {
            count,
            ..Traffic::default()
        };
        for _ in 0..count {
            traffic.latency.record(100);
        }
        TrafficEntry {
            minute,
            api_id,
            stage: "prod".into(),
            route_id: Some(Uuid::now_v7()),
            key_id: None,
            traffic,
        }
    }

    #[test]
    fn good_entries_count_in_every_series_and_bad_ones_are_named() {
        let api = Uuid::now_v7();
        let now = Utc::now();
        let minute = now.duration_trunc(Duration::minutes(1)).expect("truncates");
        let known = Known {
            apis: HashSet::from([api]),
            keys: HashSet::new(),
        };
        let mut misaligned = entry(minute + Duration::seconds(7), api, 2);
        misaligned.route_id = None;
        let mut bad_key = entry(minute, api, 1);
        bad_key.route_id = None;
        bad_key.key_id = Some(Uuid::now_v7());
        let mut lying = entry(minute, api, 1);
        lying.traffic.errors_5xx = 2;
        let entries = vec![
            entry(minute, api, 3),
            misaligned,
            entry(minute, Uuid::now_v7(), 1),
            entry(minute + Duration::hours(1), api, 1),
            entry(minute - Duration::days(100), api, 1),
            bad_key,
            lying,
        ];
        let sorted = sort(&entries, &known, now, Duration::days(90));
        assert_eq!((sorted.accepted, sorted.rejected), (2, 5));
        assert_eq!(sorted.problems["unknown API"], 1);
        assert_eq!(sorted.problems["unknown API key"], 1);
        assert_eq!(sorted.problems["minute is in the future"], 1);
        assert_eq!(sorted.problems["minute is too old"], 1);
        assert_eq!(sorted.problems["more errors than requests"], 1);
        assert_eq!(sorted.problems["minute moved to its start"], 1);
        let total = |s: Series| sorted.additions[&(s, minute)].count;
        assert_eq!(total(Series::all()), 5);
        assert_eq!(total(Series::api(api)), 5);
        assert_eq!(total(Series::stage(api, "prod")), 5);
        // The all, API and stage series, and one route series.
        assert_eq!(sorted.additions.len(), 4);
    }
}
