//! `GET /api/v1/metrics`: traffic of all APIs, one API, stage, route or API key over a
//! time range, per step, in AWS's metric set (count, 4XX and 5XX errors, latency and
//! integration latency percentiles) plus bytes in and out.
//!
//! Every parameter is checked and a bad one is a 400 naming it. Steps are aligned to
//! multiples of the step since the Unix epoch, and every step of the range is listed, with
//! zeros where nothing happened. Data older than the rollup age is kept per hour: a step
//! shorter than an hour shows an hour's traffic in the step where the hour starts, and a
//! range reaching such data is widened to whole hours (the answer says which range).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use gatehouse_model::metrics::{Latency, Traffic};
use gatehouse_model::StageName;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Reader;
use crate::error::{ApiError, ApiResult, ErrorBody, FieldError};
use crate::repo::traffic::{self, Series};
use crate::AppState;

/// Most steps one query returns (a week of minutes).
pub const MAX_POINTS: i64 = 7 * 24 * 60;
const DEFAULT_RANGE: Duration = Duration::hours(1);

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(query))
}

/// The parameters as sent; each is parsed on its own so an error can name it.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawQuery {
    /// One API's traffic (all traffic without it).
    #[param(value_type = Option<Uuid>)]
    pub api_id: Option<String>,
    /// One stage of the API (needs `api_id`).
    #[param(value_type = Option<StageName>)]
    pub stage: Option<String>,
    /// One route of the API (needs `api_id`).
    #[param(value_type = Option<Uuid>)]
    pub route_id: Option<String>,
    /// One API key's traffic (not with `api_id`, `stage` or `route_id`).
    #[param(value_type = Option<Uuid>)]
    pub key_id: Option<String>,
    /// Start of the range; an hour before `to` by default.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub from: Option<String>,
    /// End of the range; now by default.
    #[param(value_type = Option<DateTime<Utc>>)]
    pub to: Option<String>,
    /// Seconds (`300`) or with a unit (`5m`, `1h`, `1d`): whole minutes from a minute to a
    /// day, at most 10080 steps in the range; a minute by default.
    #[param(value_type = Option<String>, pattern = "^[0-9]+[smhd]?$")]
    pub step: Option<String>,
}

/// A checked query.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsQuery {
    pub series: Series,
    /// Set when a route's traffic is wanted in one stage only.
    pub stage: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step: i64,
}

fn id(raw: &Option<String>, field: &str, errors: &mut Vec<FieldError>) -> Option<Uuid> {
    let raw = raw.as_deref()?;
    Uuid::parse_str(raw)
        .map_err(|_| errors.push(FieldError::new(field, "must be a UUID")))
        .ok()
}

fn time(raw: &Option<String>, field: &str, errors: &mut Vec<FieldError>) -> Option<DateTime<Utc>> {
    let raw = raw.as_deref()?;
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            errors.push(FieldError::new(
                field,
                "must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z",
            ))
        })
        .ok()
}

/// A step in seconds: `300`, or with a unit: `5m`, `1h`, `1d`.
pub fn parse_step(raw: &str) -> Option<i64> {
    let (number, unit) = match raw.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => raw.split_at(i),
        None => (raw, "s"),
    };
    let number: i64 = number.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(unit)
}

impl RawQuery {
    /// Checks every parameter; the errors name each bad one.
    pub fn check(&self, now: DateTime<Utc>) -> Result<MetricsQuery, Vec<FieldError>> {
        let mut errors = Vec::new();
        let api_id = id(&self.api_id, "api_id", &mut errors);
        let route_id = id(&self.route_id, "route_id", &mut errors);
        let key_id = id(&self.key_id, "key_id", &mut errors);
        let stage = self.stage.as_deref().and_then(|s| {
            StageName::parse(s)
                .map_err(|e| errors.push(FieldError::new("stage", e.to_string())))
                .ok()
        });
        let to = time(&self.to, "to", &mut errors).unwrap_or(now);
        let from = time(&self.from, "from", &mut errors).unwrap_or(to - DEFAULT_RANGE);
        let step = match self.step.as_deref() {
            None => 60,
            Some(raw) => match parse_step(raw) {
                Some(step) if (60..=86_400).contains(&step) && step % 60 == 0 => step,
                _ => {
                    errors.push(FieldError::new(
                        "step",
                        "must be whole minutes from 1 minute to 1 day: 60, 300, 5m, 1h, 1d",
                    ));
                    60
                }
            },
        };
        if from >= to {
            errors.push(FieldError::new("from", "must be before `to`"));
        } else if (to - from).num_seconds() / step > MAX_POINTS {
            errors.push(FieldError::new(
                "step",
                format!("the range holds more than {MAX_POINTS} steps; use a larger step"),
            ));
        }
        if key_id.is_some() {
            for (given, field) in [
                (self.api_id.is_some(), "api_id"),
                (self.stage.is_some(), "stage"),
                (self.route_id.is_some(), "route_id"),
            ] {
                if given {
                    errors.push(FieldError::new(field, "cannot be combined with key_id"));
                }
            }
        } else if self.api_id.is_none() && (self.stage.is_some() || self.route_id.is_some()) {
            errors.push(FieldError::new(
                "api_id",
                "is required with stage or route_id",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let stage_name = stage.as_ref().map(|s| s.as_str().to_owned());
        let (series, stage) = match (key_id, api_id, route_id, stage_name) {
            (Some(key), ..) => (Series::key(key), None),
            (None, Some(api), Some(route), stage) => (Series::route(api, "", route), stage),
            (None, Some(api), None, Some(stage)) => (Series::stage(api, &stage), Some(stage)),
            (None, Some(api), None, None) => (Series::api(api), None),
            (None, None, ..) => (Series::all(), None),
        };
        Ok(MetricsQuery {
            series,
            stage,
            from: aligned(from, step, false),
            to: aligned(to, step, true),
            step,
        })
    }
}

/// `t` moved down (or up) to a multiple of `step` seconds since the epoch. Moved up,
/// a time a fraction of a second past a step ends at the next one: `12:35:00.3` is in
/// the minute of `12:35`, which a range ending there would leave out.
fn aligned(t: DateTime<Utc>, step: i64, up: bool) -> DateTime<Utc> {
    let secs = t.timestamp();
    let mut start = secs.div_euclid(step) * step;
    if up && (start < secs || t.timestamp_subsec_nanos() > 0) {
        start += step;
    }
    DateTime::from_timestamp(start, 0).unwrap_or(t)
}

impl MetricsQuery {
    /// Widens the range to whole hours where it reaches data older than `rolled_up`
    /// (kept per hour), so an hour is counted whole or not at all, never cut.
    pub fn cover_hours(&mut self, rolled_up: DateTime<Utc>) {
        if self.from < rolled_up {
            self.from = aligned(aligned(self.from, 3600, false), self.step, false);
        }
        if self.to < rolled_up + Duration::hours(1) {
            self.to = aligned(aligned(self.to, 3600, true), self.step, true);
        }
    }
}

/// Latency figures in milliseconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatencyFigures {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
}

/// AWS's metric set for one step (or the whole range).
#[derive(Debug, Serialize, ToSchema)]
pub struct Figures {
    pub count: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// From receiving a request to the last byte of its response; `null` without requests.
    pub latency_ms: Option<LatencyFigures>,
    /// From sending a request upstream to its response headers; `null` when no request
    /// reached an integration.
    pub integration_latency_ms: Option<LatencyFigures>,
}

fn figures(latency: &Latency) -> Option<LatencyFigures> {
    // Milliseconds, to the microsecond.
    let ms = |us: f64| us.round() / 1000.0;
    Some(LatencyFigures {
        p50: ms(latency.quantile(0.5)?),
        p90: ms(latency.quantile(0.9)?),
        p99: ms(latency.quantile(0.99)?),
        min: ms(latency.min_us as f64),
        max: ms(latency.max_us as f64),
        avg: ms(latency.mean()?),
    })
}

impl From<&Traffic> for Figures {
    fn from(t: &Traffic) -> Figures {
        Figures {
            count: t.count,
            errors_4xx: t.errors_4xx,
            errors_5xx: t.errors_5xx,
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            latency_ms: figures(&t.latency),
            integration_latency_ms: figures(&t.integration),
        }
    }
}

/// One step: its start and its figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct Point {
    pub time: DateTime<Utc>,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The range actually read (aligned to steps, and to hours where data is kept per hour),
/// its totals and every step of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsView {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step: i64,
    pub totals: Figures,
    pub points: Vec<Point>,
}

/// Traffic over a time range, per step.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "query_metrics",
    tag = "metrics",
    params(RawQuery),
    responses(
        (status = 200, description = "The figures", body = MetricsView),
        (status = 400, description = "A parameter is refused; `errors` names each",
            body = ErrorBody),
    )
)]
pub(crate) async fn query(
    _: Reader,
    State(state): State<AppState>,
    raw: Result<Query<RawQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<MetricsView>> {
    let Query(raw) = raw.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(Json(answer(&state, &raw).await?))
}

/// Checks `raw` and reads its steps, widened to whole hours where they were rolled up.
pub async fn answer(state: &AppState, raw: &RawQuery) -> ApiResult<MetricsView> {
    let now = Utc::now();
    let mut q = raw.check(now).map_err(ApiError::BadParameters)?;
    let rollup_after =
        Duration::from_std(state.config.metrics_rollup_after).unwrap_or(Duration::MAX);
    q.cover_hours(
        now.checked_sub_signed(rollup_after)
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    );
    Ok(view(&state.pool, &q).await?)
}

/// Reads the steps of `q`, filling the ones without traffic with zeros.
pub async fn view(pool: &sqlx::PgPool, q: &MetricsQuery) -> sqlx::Result<MetricsView> {
    let rows = traffic::steps(pool, &q.series, q.stage.as_deref(), q.from, q.to, q.step).await?;
    let mut totals = Traffic::default();
    let mut by_start: HashMap<i64, Traffic> = HashMap::with_capacity(rows.len());
    for (start, t) in rows {
        totals.merge(&t);
        by_start.insert(start, t);
    }
    let empty = Traffic::default();
    let points = (q.from.timestamp()..q.to.timestamp())
        .step_by(usize::try_from(q.step).unwrap_or(60))
        .map(|start| Point {
            time: DateTime::from_timestamp(start, 0).unwrap_or(q.from),
            figures: Figures::from(by_start.get(&start).unwrap_or(&empty)),
        })
        .collect();
    Ok(MetricsView {
        from: q.from,
        to: q.to,
        step: q.step,
        totals: Figures::from(&totals),
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pairs: &[(&str, &str)]) -> Result<MetricsQuery, Vec<FieldError>> {
        let mut raw = RawQuery::default();
        for (name, value) in pairs {
            let value = Some((*value).to_owned());
            match *name {
                "api_id" => raw.api_id = value,
                "stage" => raw.stage = value,
                "route_id" => raw.route_id = value,
                "key_id" => raw.key_id = value,
                "from" => raw.from = value,
                "to" => raw.to = value,
                "step" => raw.step = value,
                _ => unreachable!(),
            }
        }
        let now = DateTime::parse_from_rfc3339("2026-11-24T12:34:56Z")
            .expect("time")
            .with_timezone(&Utc);
        raw.check(now)
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn defaults_to_the_last_hour_by_minute_of_all_traffic() {
        let q = check(&[]).expect("valid");
        assert_eq!(q.series, Series::all());
        assert_eq!(q.step, 60);
        assert_eq!(q.from.to_rfc3339(), "2026-11-24T11:34:00+00:00");
        assert_eq!(q.to.to_rfc3339(), "2026-11-24T12:35:00+00:00");
    }

    #[test]
    fn a_range_ending_just_past_a_minute_holds_that_minute() {
        let at = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .expect("time")
                .with_timezone(&Utc)
        };
        let up = |t: &str| aligned(at(t), 60, true).to_rfc3339();
        assert_eq!(up("2026-11-24T12:35:00.300Z"), "2026-11-24T12:36:00+00:00");
        assert_eq!(up("2026-11-24T12:35:00Z"), "2026-11-24T12:35:00+00:00");
        assert_eq!(up("2026-11-24T12:35:59Z"), "2026-11-24T12:36:00+00:00");
        let down = aligned(at("2026-11-24T12:35:00.300Z"), 60, false).to_rfc3339();
        assert_eq!(down, "2026-11-24T12:35:00+00:00");
    }

    #[test]
    fn steps_take_units_and_must_be_whole_minutes() {
        assert_eq!(parse_step("300"), Some(300));
        assert_eq!(parse_step("5m"), Some(300));
        assert_eq!(parse_step("1d"), Some(86_400));
        assert_eq!(parse_step("1w"), None);
        for bad in ["30", "90", "2d", "abc", "-60", "99999999999999999999m"] {
            assert_eq!(fields(check(&[("step", bad)]).expect_err(bad)), ["step"]);
        }
        let week = [
            ("from", "2026-01-01T00:00:00Z"),
            ("to", "2026-02-01T00:00:00Z"),
        ];
        assert_eq!(fields(check(&week).expect_err("too many")), ["step"]);
        let mut daily = week.to_vec();
        daily.push(("step", "1h"));
        assert!(check(&daily).is_ok());
    }

    #[test]
    fn bad_parameters_are_named() {
        let errors = check(&[
            ("api_id", "nope"),
            ("from", "yesterday"),
            ("stage", "bad stage"),
        ])
        .expect_err("bad");
        assert_eq!(fields(errors), ["api_id", "stage", "from"]);
        let errors = check(&[("from", "2026-11-24T13:00:00Z")]).expect_err("after to");
        assert_eq!(fields(errors), ["from"]);
        let key = Uuid::now_v7().to_string();
        let api = Uuid::now_v7().to_string();
        let errors = check(&[("key_id", &key), ("api_id", &api)]).expect_err("both");
        assert_eq!(fields(errors), ["api_id"]);
        let errors = check(&[("stage", "prod")]).expect_err("no api");
        assert_eq!(fields(errors), ["api_id"]);
    }

    #[test]
    fn a_range_reaching_rolled_up_hours_is_widened_to_whole_hours() {
        let mut q = check(&[
            ("from", "2026-11-20T10:30:00Z"),
            ("to", "2026-11-20T11:15:00Z"),
            ("step", "5m"),
        ])
        .expect("valid");
        let rolled_up = DateTime::parse_from_rfc3339("2026-11-22T12:34:56Z")
            .expect("time")
            .with_timezone(&Utc);
        q.cover_hours(rolled_up);
        assert_eq!(q.from.to_rfc3339(), "2026-11-20T10:00:00+00:00");
        assert_eq!(q.to.to_rfc3339(), "2026-11-20T12:00:00+00:00");
        let mut recent = check(&[]).expect("valid");
        let before = recent.clone();
        recent.cover_hours(rolled_up);
        assert_eq!(recent, before, "minute data is left as asked");
    }

    #[test]
    fn picks_the_series_of_the_filters() {
        let api = Uuid::now_v7();
        let route = Uuid::now_v7();
        let a = api.to_string();
        let r = route.to_string();
        assert_eq!(
            check(&[("api_id", &a)]).expect("api").series,
            Series::api(api)
        );
        let q = check(&[("api_id", &a), ("stage", "prod")]).expect("stage");
        assert_eq!(q.series, Series::stage(api, "prod"));
        let q = check(&[("api_id", &a), ("route_id", &r)]).expect("route");
        assert_eq!((q.series.subject, q.stage), (route, None));
        let q = check(&[("api_id", &a), ("route_id", &r), ("stage", "prod")]).expect("route");
        assert_eq!(q.stage.as_deref(), Some("prod"));
    }
}
