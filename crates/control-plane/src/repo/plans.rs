//! Usage plans: the `usage_plans` table, the stages each covers and the keys attached.

use chrono::{DateTime, Utc};
use gatehouse_model::{PlanStage, Quota, QuotaPeriod, StageName, Throttle};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use utoipa::ToSchema;
use uuid::Uuid;

/// A plan as stored; see [`PlanView`] for what the API shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub throttle_rate: Option<f64>,
    pub throttle_burst: Option<i32>,
    pub quota_limit: Option<i64>,
    pub quota_period: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A plan with the stages it covers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub throttle: Option<Throttle>,
    pub quota: Option<Quota>,
    pub stages: Vec<PlanStage>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PlanRow {
    pub fn throttle(&self) -> Option<Throttle> {
        Some(super::throttle_from_columns(
            self.throttle_rate?,
            self.throttle_burst?,
        ))
    }

    pub fn quota(&self) -> Option<Quota> {
        match (
            self.quota_limit.and_then(|l| u64::try_from(l).ok()),
            self.quota_period.as_deref().and_then(QuotaPeriod::parse),
        ) {
            (Some(limit), Some(period)) => Some(Quota { limit, period }),
            _ => None,
        }
    }

    fn view(self, stages: Vec<PlanStage>) -> PlanView {
        PlanView {
            throttle: self.throttle(),
            quota: self.quota(),
            id: self.id,
            name: self.name,
            description: self.description,
            stages,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A plan's whole content, whether new or changed.
pub struct PlanSpec {
    pub name: String,
    pub description: String,
    pub throttle: Option<Throttle>,
    pub quota: Option<Quota>,
    pub stages: Vec<PlanStage>,
}

const COLUMNS: &str =
    "id, name, description, throttle_rate, throttle_burst, quota_limit, quota_period, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct StageRow {
    plan_id: Uuid,
    api_id: Uuid,
    stage: String,
    route_throttles: Json<std::collections::BTreeMap<String, Throttle>>,
}

impl StageRow {
    fn into_stage(self) -> Option<PlanStage> {
        Some(PlanStage {
            api_id: self.api_id,
            stage: StageName::parse(&self.stage).ok()?,
            route_throttles: self.route_throttles.0,
        })
    }
}

/// Inserts or replaces a plan, with its stages, in the caller's transaction.
pub async fn save(
    tx: &mut PgConnection,
    id: Option<Uuid>,
    spec: &PlanSpec,
) -> sqlx::Result<PlanView> {
    let row: PlanRow = sqlx::query_as(&format!(
        "INSERT INTO usage_plans (id, name, description, throttle_rate, throttle_burst, quota_limit, quota_period)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,
             throttle_rate = EXCLUDED.throttle_rate, throttle_burst = EXCLUDED.throttle_burst,
             quota_limit = EXCLUDED.quota_limit, quota_period = EXCLUDED.quota_period, updated_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(id.unwrap_or_else(Uuid::now_v7))
    .bind(&spec.name)
    .bind(&spec.description)
    .bind(spec.throttle.map(|t| t.rate))
    .bind(spec.throttle.map(|t| super::throttle_columns(t).1))
    .bind(spec.quota.map(|q| i64::try_from(q.limit).unwrap_or(i64::MAX)))
    .bind(spec.quota.map(|q| q.period.as_str()))
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM usage_plan_stages WHERE plan_id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    for stage in &spec.stages {
        sqlx::query("INSERT INTO usage_plan_stages (plan_id, api_id, stage, route_throttles) VALUES ($1, $2, $3, $4)")
            .bind(row.id)
            .bind(stage.api_id)
            .bind(stage.stage.as_str())
            .bind(Json(&stage.route_throttles))
            .execute(&mut *tx)
            .await?;
    }
    Ok(row.view(spec.stages.clone()))
}

pub async fn get(db: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<PlanView>> {
    let Some(row): Option<PlanRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM usage_plans WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *db)
            .await?
    else {
        return Ok(None);
    };
    let stages: Vec<StageRow> = sqlx::query_as(
        "SELECT plan_id, api_id, stage, route_throttles FROM usage_plan_stages WHERE plan_id = $1 ORDER BY api_id, stage",
    )
    .bind(id)
    .fetch_all(&mut *db)
    .await?;
    Ok(Some(
        row.view(
            stages
                .into_iter()
                .filter_map(StageRow::into_stage)
                .collect(),
        ),
    ))
}

/// Every plan with its stages.
pub async fn list(db: &mut PgConnection) -> sqlx::Result<Vec<PlanView>> {
    let rows: Vec<PlanRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM usage_plans ORDER BY name"))
            .fetch_all(&mut *db)
            .await?;
    let stages: Vec<StageRow> =
        sqlx::query_as("SELECT plan_id, api_id, stage, route_throttles FROM usage_plan_stages ORDER BY plan_id, api_id, stage")
            .fetch_all(&mut *db)
            .await?;
    let mut by_plan: std::collections::HashMap<Uuid, Vec<PlanStage>> =
        std::collections::HashMap::new();
    for row in stages {
        let plan = row.plan_id;
        if let Some(stage) = row.into_stage() {
            by_plan.entry(plan).or_default().push(stage);
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let stages = by_plan.remove(&r.id).unwrap_or_default();
            r.view(stages)
        })
        .collect())
}

/// Deletes a plan with no keys attached (the foreign key refuses otherwise).
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM usage_plans WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn attach_key(db: impl PgExecutor<'_>, plan_id: Uuid, key_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO usage_plan_keys (plan_id, key_id) VALUES ($1, $2)")
        .bind(plan_id)
        .bind(key_id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn detach_key(
    db: impl PgExecutor<'_>,
    plan_id: Uuid,
    key_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM usage_plan_keys WHERE plan_id = $1 AND key_id = $2")
        .bind(plan_id)
        .bind(key_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// How many keys are attached to the plan.
pub async fn key_count(db: impl PgExecutor<'_>, plan_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM usage_plan_keys WHERE plan_id = $1")
        .bind(plan_id)
        .fetch_one(db)
        .await
}

/// An API stage covered by two plans that share a key: `(key, api, stage)`, among the
/// keys of `plan_id` or the key `key_id`. AWS allows one plan per key and API stage, so
/// the proxy always knows which plan applies.
pub async fn overlapping_coverage(
    db: impl PgExecutor<'_>,
    plan_id: Option<Uuid>,
    key_id: Option<Uuid>,
) -> sqlx::Result<Option<(Uuid, Uuid, String)>> {
    sqlx::query_as(
        "SELECT k.key_id, s.api_id, s.stage
         FROM usage_plan_keys k JOIN usage_plan_stages s ON s.plan_id = k.plan_id
         WHERE ($1::uuid IS NULL OR k.key_id IN (SELECT key_id FROM usage_plan_keys WHERE plan_id = $1))
           AND ($2::uuid IS NULL OR k.key_id = $2)
         GROUP BY k.key_id, s.api_id, s.stage HAVING count(*) > 1 LIMIT 1",
    )
    .bind(plan_id)
    .bind(key_id)
    .fetch_optional(db)
    .await
}

// ---- Dashboard reads (API keys and usage plans pages) ----

/// Every attachment of a key to a plan, as `(plan_id, key_id)`: one query for listings
/// that show a key's plans or a plan's key count.
pub async fn memberships(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as("SELECT plan_id, key_id FROM usage_plan_keys ORDER BY created_at, key_id")
        .fetch_all(db)
        .await
}
