//! Quota usage: what proxies report, summed per key, plan and period in `quota_usage`.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use gatehouse_model::usage::{UsageEntry, UsageTotal};
use sqlx::PgPool;
use uuid::Uuid;

use super::keys;

#[derive(sqlx::FromRow)]
struct TotalRow {
    key_id: Uuid,
    plan_id: Uuid,
    period_start: DateTime<Utc>,
    used: i64,
}

impl From<TotalRow> for UsageTotal {
    fn from(r: TotalRow) -> UsageTotal {
        UsageTotal {
            key_id: r.key_id,
            plan_id: r.plan_id,
            period_start: r.period_start,
            used: u64::try_from(r.used).unwrap_or(0),
        }
    }
}

/// What came of a usage report.
#[derive(Debug)]
pub struct Recorded {
    /// Across all proxies, of every key, plan and period the report counted in.
    pub totals: Vec<UsageTotal>,
    /// Entries counted (or, for a batch seen before, that had been).
    pub accepted: usize,
    /// Entries naming a key and plan no proxy is sent: a key not on that plan, a plan on no
    /// stage, a disabled or unknown key. Not counted, so a node token cannot spend the
    /// quota of keys it never served.
    pub rejected: usize,
}

/// Adds a batch to the totals (once per batch id), marks its keys used, and returns the
/// totals of every key, plan and period in it. Only entries of a key on a plan proxies are
/// sent it with ([`keys::SERVED`]) count; so do only such keys' uses.
pub async fn record(
    pool: &PgPool,
    batch_id: Uuid,
    node_id: &str,
    entries: &[UsageEntry],
    used_keys: &[Uuid],
) -> sqlx::Result<Recorded> {
    let mut tx = pool.begin().await?;
    let served: HashSet<(Uuid, Uuid)> = {
        let keys: Vec<Uuid> = entries.iter().map(|e| e.key_id).collect();
        let plans: Vec<Uuid> = entries.iter().map(|e| e.plan_id).collect();
        sqlx::query_as::<_, (Uuid, Uuid)>(&format!(
            "SELECT DISTINCT e.key_id, e.plan_id
             FROM unnest($1::uuid[], $2::uuid[]) AS e(key_id, plan_id)
             JOIN usage_plan_keys pk ON pk.key_id = e.key_id AND pk.plan_id = e.plan_id
             JOIN api_keys k ON k.id = e.key_id
             WHERE {} AND EXISTS (SELECT 1 FROM usage_plan_stages ps WHERE ps.plan_id = e.plan_id)",
            keys::SERVED
        ))
        .bind(&keys)
        .bind(&plans)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect()
    };
    // Merge repeats, so one statement never touches a row twice.
    let mut merged: BTreeMap<(Uuid, Uuid, DateTime<Utc>), i64> = BTreeMap::new();
    let mut rejected = 0;
    for e in entries {
        if !served.contains(&(e.key_id, e.plan_id)) {
            rejected += 1;
            continue;
        }
        let count = i64::try_from(e.count).unwrap_or(i64::MAX);
        let slot = merged
            .entry((e.key_id, e.plan_id, e.period_start))
            .or_default();
        *slot = slot.saturating_add(count);
    }
    let keys: Vec<Uuid> = merged.keys().map(|k| k.0).collect();
    let plans: Vec<Uuid> = merged.keys().map(|k| k.1).collect();
    let periods: Vec<DateTime<Utc>> = merged.keys().map(|k| k.2).collect();
    let counts: Vec<i64> = merged.values().copied().collect();

    let fresh = sqlx::query(
        "INSERT INTO usage_batches (id, node_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
    )
    .bind(batch_id)
    .bind(node_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if fresh {
        sqlx::query(
            "INSERT INTO quota_usage (key_id, plan_id, period_start, used)
             SELECT e.key_id, e.plan_id, e.period_start, e.count
             FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::bigint[]) AS e(key_id, plan_id, period_start, count)
             ON CONFLICT (key_id, plan_id, period_start)
             DO UPDATE SET used = quota_usage.used + EXCLUDED.used, updated_at = now()",
        )
        .bind(&keys)
        .bind(&plans)
        .bind(&periods)
        .bind(&counts)
        .execute(&mut *tx)
        .await?;
        // At most one write a minute per key, however busy it is.
        sqlx::query(&format!(
            "UPDATE api_keys k SET last_used_at = now()
             WHERE k.id = ANY($1) AND {} AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')",
            keys::SERVED
        ))
        .bind(used_keys)
        .execute(&mut *tx)
        .await?;
    }
    let totals: Vec<TotalRow> = sqlx::query_as(
        "SELECT q.key_id, q.plan_id, q.period_start, q.used
         FROM quota_usage q JOIN unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS e(key_id, plan_id, period_start)
           ON q.key_id = e.key_id AND q.plan_id = e.plan_id AND q.period_start = e.period_start",
    )
    .bind(&keys)
    .bind(&plans)
    .bind(&periods)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Recorded {
        totals: totals.into_iter().map(UsageTotal::from).collect(),
        accepted: entries.len() - rejected,
        rejected,
    })
}

/// The totals of each plan's current period (UTC days; ISO weeks from Monday; months).
pub async fn current(pool: &PgPool) -> sqlx::Result<Vec<UsageTotal>> {
    let rows: Vec<TotalRow> = sqlx::query_as(
        "SELECT q.key_id, q.plan_id, q.period_start, q.used
         FROM quota_usage q JOIN usage_plans p ON p.id = q.plan_id
         WHERE q.used > 0 AND p.quota_period IS NOT NULL
           AND q.period_start = date_trunc(lower(p.quota_period), now(), 'UTC')",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(UsageTotal::from).collect())
}

/// Forgets batch ids after a day (a retry comes within minutes) and periods over for
/// two months. Returns how many rows went.
pub async fn prune(pool: &PgPool) -> sqlx::Result<u64> {
    let batches =
        sqlx::query("DELETE FROM usage_batches WHERE received_at < now() - interval '1 day'")
            .execute(pool)
            .await?;
    let periods =
        sqlx::query("DELETE FROM quota_usage WHERE period_start < now() - interval '62 days'")
            .execute(pool)
            .await?;
    Ok(batches.rows_affected() + periods.rows_affected())
}

/// A key's usage in its plans, newest periods first.
pub async fn of_key(pool: &PgPool, key_id: Uuid) -> sqlx::Result<Vec<UsageTotal>> {
    let rows: Vec<TotalRow> = sqlx::query_as(
        "SELECT key_id, plan_id, period_start, used FROM quota_usage WHERE key_id = $1 ORDER BY period_start DESC, plan_id",
    )
    .bind(key_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(UsageTotal::from).collect())
}
