//! The `traffic` table: minute buckets of every series (all traffic, each API, stage,
//! route and API key), rolled up to hours after a while and dropped after the retention.
//!
//! A report is written in one statement per batch: its entries are summed per series and
//! minute in memory first, sorted (so concurrent reports lock rows in the same order),
//! then upserted, adding counts and histograms to what other proxies reported.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use gatehouse_model::metrics::{Histogram, Latency, Traffic};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Seconds in a minute bucket and in an hour bucket.
pub const MINUTE: i32 = 60;
pub const HOUR: i32 = 3600;

/// What a series counts, as stored in the `scope` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    All = 0,
    Api = 1,
    Stage = 2,
    Route = 3,
    Key = 4,
}

/// One time series. Fields a scope does not use hold the nil id and the empty stage.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Series {
    pub scope: Scope,
    pub api_id: Uuid,
    pub subject: Uuid,
    pub stage: String,
}

impl Series {
    pub fn all() -> Series {
        Series::of(Scope::All, Uuid::nil(), "", Uuid::nil())
    }
    pub fn api(api_id: Uuid) -> Series {
        Series::of(Scope::Api, api_id, "", Uuid::nil())
    }
    pub fn stage(api_id: Uuid, stage: &str) -> Series {
        Series::of(Scope::Stage, api_id, stage, Uuid::nil())
    }
    pub fn route(api_id: Uuid, stage: &str, route_id: Uuid) -> Series {
        Series::of(Scope::Route, api_id, stage, route_id)
    }
    pub fn key(key_id: Uuid) -> Series {
        Series::of(Scope::Key, Uuid::nil(), "", key_id)
    }
    fn of(scope: Scope, api_id: Uuid, stage: &str, subject: Uuid) -> Series {
        Series {
            scope,
            api_id,
            subject,
            stage: stage.to_owned(),
        }
    }
}

/// Traffic to add, per series and minute.
pub type Additions = BTreeMap<(Series, DateTime<Utc>), Traffic>;

/// Adds `traffic` of `minute` to every series in `series`.
pub fn add(
    additions: &mut Additions,
    series: Vec<Series>,
    minute: DateTime<Utc>,
    traffic: &Traffic,
) {
    for s in series {
        additions.entry((s, minute)).or_default().merge(traffic);
    }
}

/// Records a batch id; false when it was recorded before (the batch is a retry).
pub async fn claim_batch(
    tx: &mut Transaction<'_, Postgres>,
    batch_id: Uuid,
    node_id: &str,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO traffic_batches (id, node_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
    )
    .bind(batch_id)
    .bind(node_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Columns of an upsert, one array each.
#[derive(Default)]
struct Columns {
    scope: Vec<i16>,
    api_id: Vec<Uuid>,
    subject: Vec<Uuid>,
    stage: Vec<String>,
    start: Vec<DateTime<Utc>>,
    count: Vec<i64>,
    errors_4xx: Vec<i64>,
    errors_5xx: Vec<i64>,
    bytes_in: Vec<i64>,
    bytes_out: Vec<i64>,
    latency: Vec<String>,
    latency_sum: Vec<i64>,
    latency_min: Vec<Option<i64>>,
    latency_max: Vec<Option<i64>>,
    integration: Vec<String>,
    integration_sum: Vec<i64>,
    integration_min: Vec<Option<i64>>,
    integration_max: Vec<Option<i64>>,
}

fn column(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A histogram as a PostgreSQL array literal, e.g. `{0,3,1}`.
fn array_literal(histogram: &Histogram) -> String {
    let mut text = String::with_capacity(2 + histogram.counts().len() * 3);
    text.push('{');
    for (i, count) in histogram.counts().iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        let _ = write!(text, "{}", column(*count));
    }
    text.push('}');
    text
}

/// The end of an insert into `traffic`: a bucket that exists already gets the new counts
/// added (saturating), histograms merged and extremes widened.
macro_rules! add_to_existing {
    () => {
        "ON CONFLICT (scope, api_id, subject, stage, resolution, start) DO UPDATE SET
             count = gatehouse_add(traffic.count, EXCLUDED.count),
             errors_4xx = gatehouse_add(traffic.errors_4xx, EXCLUDED.errors_4xx),
             errors_5xx = gatehouse_add(traffic.errors_5xx, EXCLUDED.errors_5xx),
             bytes_in = gatehouse_add(traffic.bytes_in, EXCLUDED.bytes_in),
             bytes_out = gatehouse_add(traffic.bytes_out, EXCLUDED.bytes_out),
             latency = gatehouse_hist_add(traffic.latency, EXCLUDED.latency),
             latency_sum_us = gatehouse_add(traffic.latency_sum_us, EXCLUDED.latency_sum_us),
             latency_min_us = least(traffic.latency_min_us, EXCLUDED.latency_min_us),
             latency_max_us = greatest(traffic.latency_max_us, EXCLUDED.latency_max_us),
             integration = gatehouse_hist_add(traffic.integration, EXCLUDED.integration),
             integration_sum_us = gatehouse_add(traffic.integration_sum_us, EXCLUDED.integration_sum_us),
             integration_min_us = least(traffic.integration_min_us, EXCLUDED.integration_min_us),
             integration_max_us = greatest(traffic.integration_max_us, EXCLUDED.integration_max_us)"
    };
}

/// Adds minute buckets to the table (in the caller's transaction).
pub async fn add_minutes(
    tx: &mut Transaction<'_, Postgres>,
    additions: &Additions,
) -> sqlx::Result<()> {
    let mut c = Columns::default();
    for ((series, minute), t) in additions {
        c.scope.push(series.scope as i16);
        c.api_id.push(series.api_id);
        c.subject.push(series.subject);
        c.stage.push(series.stage.clone());
        c.start.push(*minute);
        c.count.push(column(t.count));
        c.errors_4xx.push(column(t.errors_4xx));
        c.errors_5xx.push(column(t.errors_5xx));
        c.bytes_in.push(column(t.bytes_in));
        c.bytes_out.push(column(t.bytes_out));
        let extreme = |l: &Latency, v: u64| (l.count() > 0).then(|| column(v));
        c.latency.push(array_literal(&t.latency.buckets));
        c.latency_sum.push(column(t.latency.sum_us));
        c.latency_min.push(extreme(&t.latency, t.latency.min_us));
        c.latency_max.push(extreme(&t.latency, t.latency.max_us));
        c.integration.push(array_literal(&t.integration.buckets));
        c.integration_sum.push(column(t.integration.sum_us));
        c.integration_min
            .push(extreme(&t.integration, t.integration.min_us));
        c.integration_max
            .push(extreme(&t.integration, t.integration.max_us));
    }
    sqlx::query(concat!(
        "INSERT INTO traffic (scope, api_id, subject, stage, resolution, start, count, errors_4xx,
             errors_5xx, bytes_in, bytes_out, latency, latency_sum_us, latency_min_us,
             latency_max_us, integration, integration_sum_us, integration_min_us,
             integration_max_us)
         SELECT r.scope, r.api_id, r.subject, r.stage, 60, r.start, r.count, r.errors_4xx,
             r.errors_5xx, r.bytes_in, r.bytes_out, r.latency::bigint[], r.latency_sum,
             r.latency_min, r.latency_max, r.integration::bigint[], r.integration_sum,
             r.integration_min, r.integration_max
         FROM unnest($1::smallint[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[],
             $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[],
             $12::bigint[], $13::bigint[], $14::bigint[], $15::text[], $16::bigint[],
             $17::bigint[], $18::bigint[])
           AS r(scope, api_id, subject, stage, start, count, errors_4xx, errors_5xx, bytes_in,
             bytes_out, latency, latency_sum, latency_min, latency_max, integration,
             integration_sum, integration_min, integration_max)
         ",
        add_to_existing!()
    ))
    .bind(&c.scope)
    .bind(&c.api_id)
    .bind(&c.subject)
    .bind(&c.stage)
    .bind(&c.start)
    .bind(&c.count)
    .bind(&c.errors_4xx)
    .bind(&c.errors_5xx)
    .bind(&c.bytes_in)
    .bind(&c.bytes_out)
    .bind(&c.latency)
    .bind(&c.latency_sum)
    .bind(&c.latency_min)
    .bind(&c.latency_max)
    .bind(&c.integration)
    .bind(&c.integration_sum)
    .bind(&c.integration_min)
    .bind(&c.integration_max)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Which of `ids` name existing APIs.
pub async fn existing_apis(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM apis WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(db)
        .await
}

#[derive(sqlx::FromRow)]
struct StepRow {
    step_start: i64,
    count: i64,
    errors_4xx: i64,
    errors_5xx: i64,
    bytes_in: i64,
    bytes_out: i64,
    latency: Vec<i64>,
    latency_sum_us: i64,
    latency_min_us: Option<i64>,
    latency_max_us: Option<i64>,
    integration: Vec<i64>,
    integration_sum_us: i64,
    integration_min_us: Option<i64>,
    integration_max_us: Option<i64>,
}

fn histogram(counts: Vec<i64>) -> Histogram {
    let counts = counts
        .into_iter()
        .map(|c| u64::try_from(c).unwrap_or(0))
        .collect();
    Histogram::from_counts(counts).unwrap_or_default()
}

fn latency(counts: Vec<i64>, sum_us: i64, min_us: Option<i64>, max_us: Option<i64>) -> Latency {
    Latency {
        buckets: histogram(counts),
        sum_us: unsigned(sum_us),
        min_us: min_us.map_or(0, unsigned),
        max_us: max_us.map_or(0, unsigned),
    }
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Traffic of a series per step of `step` seconds, for buckets starting in
/// `[from, to)`, summed across minutes and hours (and, when `stage` is `None`, across the
/// stages of a route). Steps without traffic are absent. Returns `(step start in Unix
/// seconds, traffic)`, oldest first.
pub async fn steps(
    db: impl PgExecutor<'_>,
    series: &Series,
    stage: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: i64,
) -> sqlx::Result<Vec<(i64, Traffic)>> {
    let rows: Vec<StepRow> = sqlx::query_as(
        "SELECT (floor(extract(epoch FROM start) / $6) * $6)::bigint AS step_start,
             least(sum(count), 9223372036854775807)::bigint AS count, least(sum(errors_4xx), 9223372036854775807)::bigint AS errors_4xx,
             least(sum(errors_5xx), 9223372036854775807)::bigint AS errors_5xx, least(sum(bytes_in), 9223372036854775807)::bigint AS bytes_in,
             least(sum(bytes_out), 9223372036854775807)::bigint AS bytes_out,
             coalesce(gatehouse_hist_sum(latency), '{}') AS latency,
             least(sum(latency_sum_us), 9223372036854775807)::bigint AS latency_sum_us,
             min(latency_min_us) AS latency_min_us, max(latency_max_us) AS latency_max_us,
             coalesce(gatehouse_hist_sum(integration), '{}') AS integration,
             least(sum(integration_sum_us), 9223372036854775807)::bigint AS integration_sum_us,
             min(integration_min_us) AS integration_min_us,
             max(integration_max_us) AS integration_max_us
         FROM traffic
         WHERE scope = $1 AND api_id = $2 AND subject = $3
           AND ($4::text IS NULL OR stage = $4)
           AND start >= $5 AND start < $7
         GROUP BY 1 ORDER BY 1",
    )
    .bind(series.scope as i16)
    .bind(series.api_id)
    .bind(series.subject)
    .bind(stage)
    .bind(from)
    .bind(step)
    .bind(to)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.step_start,
                Traffic {
                    count: unsigned(r.count),
                    errors_4xx: unsigned(r.errors_4xx),
                    errors_5xx: unsigned(r.errors_5xx),
                    bytes_in: unsigned(r.bytes_in),
                    bytes_out: unsigned(r.bytes_out),
                    latency: latency(
                        r.latency,
                        r.latency_sum_us,
                        r.latency_min_us,
                        r.latency_max_us,
                    ),
                    integration: latency(
                        r.integration,
                        r.integration_sum_us,
                        r.integration_min_us,
                        r.integration_max_us,
                    ),
                },
            )
        })
        .collect())
}

/// Rolls minute buckets older than `before` up into hour buckets, one hour per
/// transaction so no lock is held long. Minutes that arrive late for an hour already
/// rolled up are added to it on the next run. Returns how many hours were rolled up.
pub async fn roll_up(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    let hours: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT DISTINCT date_trunc('hour', start, 'UTC') AS hour FROM traffic
         WHERE resolution = 60 AND start < date_trunc('hour', $1::timestamptz, 'UTC')
         ORDER BY hour",
    )
    .bind(before)
    .fetch_all(pool)
    .await?;
    for hour in &hours {
        let mut tx = pool.begin().await?;
        // Lock the hour's minutes in key order (bytewise, as reports sort them before they
        // lock them), so a late report and the rollup never deadlock.
        sqlx::query(
            "SELECT 1 FROM traffic
             WHERE resolution = 60 AND start >= $1 AND start < $1 + interval '1 hour'
             ORDER BY scope, api_id, subject, stage COLLATE \"C\", resolution, start FOR UPDATE",
        )
        .bind(hour)
        .execute(&mut *tx)
        .await?;
        sqlx::query(concat!(
            "WITH moved AS (
                 DELETE FROM traffic
                 WHERE resolution = 60 AND start >= $1 AND start < $1 + interval '1 hour'
                 RETURNING *)
             INSERT INTO traffic (scope, api_id, subject, stage, resolution, start, count,
                 errors_4xx, errors_5xx, bytes_in, bytes_out, latency, latency_sum_us,
                 latency_min_us, latency_max_us, integration, integration_sum_us,
                 integration_min_us, integration_max_us)
             SELECT scope, api_id, subject, stage, 3600, $1,
                 least(sum(count), 9223372036854775807)::bigint,
                 least(sum(errors_4xx), 9223372036854775807)::bigint,
                 least(sum(errors_5xx), 9223372036854775807)::bigint,
                 least(sum(bytes_in), 9223372036854775807)::bigint,
                 least(sum(bytes_out), 9223372036854775807)::bigint,
                 gatehouse_hist_sum(latency),
                 least(sum(latency_sum_us), 9223372036854775807)::bigint,
                 min(latency_min_us), max(latency_max_us),
                 gatehouse_hist_sum(integration),
                 least(sum(integration_sum_us), 9223372036854775807)::bigint,
                 min(integration_min_us), max(integration_max_us)
             FROM moved GROUP BY scope, api_id, subject, stage
             ",
            add_to_existing!()
        ))
        .bind(hour)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(hours.len() as u64)
}

/// Deletes buckets that started before `before`, a few thousand rows per statement, and
/// batch ids older than `batches_before`. Returns how many rows went.
pub async fn prune(
    pool: &PgPool,
    before: DateTime<Utc>,
    batches_before: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM traffic WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM traffic WHERE start < $1 LIMIT 5000))",
        )
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected();
        total += deleted;
        if deleted < 5000 {
            break;
        }
    }
    let batches = sqlx::query("DELETE FROM traffic_batches WHERE received_at < $1")
        .bind(batches_before)
        .execute(pool)
        .await?;
    Ok(total + batches.rows_affected())
}

/// An API's traffic totals over a range.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiTotals {
    pub api_id: Uuid,
    pub name: String,
    pub slug: String,
    pub count: i64,
    pub errors_4xx: i64,
    pub errors_5xx: i64,
}

/// The `limit` APIs with the most requests in `[from, to)`, busiest first.
pub async fn busiest_apis(
    db: impl PgExecutor<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<ApiTotals>> {
    sqlx::query_as(
        "SELECT a.id AS api_id, a.name, a.slug,
                least(sum(t.count), 9223372036854775807)::bigint AS count,
                least(sum(t.errors_4xx), 9223372036854775807)::bigint AS errors_4xx,
                least(sum(t.errors_5xx), 9223372036854775807)::bigint AS errors_5xx
         FROM traffic t JOIN apis a ON a.id = t.api_id
         WHERE t.scope = $1 AND t.start >= $2 AND t.start < $3
         GROUP BY a.id, a.name, a.slug
         HAVING sum(t.count) > 0
         ORDER BY count DESC, a.slug
         LIMIT $4",
    )
    .bind(Scope::Api as i16)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(db)
    .await
}
