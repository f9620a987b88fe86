//! Background upkeep of the database: metrics rolled up from minutes to hours, and old
//! usage, metrics, expired sessions and old sign-in failures deleted. Each step is safe to
//! run on several replicas at once.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::changes;
use crate::config::ControlPlaneConfig;
use crate::repo::{sessions, traffic, usage};

/// How often metrics are rolled up.
const ROLLUP_EVERY: Duration = Duration::from_secs(300);
/// How often old rows are deleted, in rollup rounds (hourly).
const PRUNE_EVERY_ROUNDS: u32 = 12;
/// How long a metrics batch id is remembered. Reports of minutes older than a day less
/// than this are refused, so a batch is never counted twice.
pub const BATCH_MEMORY: chrono::Duration = chrono::Duration::days(7);

pub fn spawn(pool: PgPool, config: &ControlPlaneConfig, shutdown: watch::Receiver<bool>) {
    let rollup_after =
        chrono::Duration::from_std(config.metrics_rollup_after).unwrap_or(chrono::Duration::MAX);
    let retention =
        chrono::Duration::from_std(config.metrics_retention).unwrap_or(chrono::Duration::MAX);
    tokio::spawn(async move {
        for round in 0u32.. {
            if round % PRUNE_EVERY_ROUNDS == 0 {
                prune(&pool, retention).await;
            }
            roll_up(&pool, rollup_after).await;
            tokio::select! {
                () = tokio::time::sleep(ROLLUP_EVERY) => {}
                () = changes::stopped(shutdown.clone()) => return,
            }
        }
    });
}

/// Rolls up minute metrics older than `rollup_after`.
pub async fn roll_up(pool: &PgPool, rollup_after: chrono::Duration) {
    let before = Utc::now()
        .checked_sub_signed(rollup_after)
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    match traffic::roll_up(pool, before).await {
        Ok(0) => {}
        Ok(hours) => tracing::info!(hours, "rolled minute metrics up into hours"),
        Err(e) => tracing::warn!(error = %e, "rolling up metrics failed"),
    }
}

async fn prune(pool: &PgPool, retention: chrono::Duration) {
    let now = Utc::now();
    let before = now
        .checked_sub_signed(retention)
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    match traffic::prune(pool, before, now - BATCH_MEMORY).await {
        Ok(0) => {}
        Ok(rows) => tracing::info!(rows, "deleted metrics past the retention"),
        Err(e) => tracing::warn!(error = %e, "deleting old metrics failed"),
    }
    match usage::prune(pool).await {
        Ok(0) => {}
        Ok(rows) => tracing::info!(rows, "pruned old usage rows"),
        Err(e) => tracing::warn!(error = %e, "pruning usage rows failed"),
    }
    let window = crate::dashboard::signin::FAILURE_WINDOW.num_seconds();
    if let Err(e) = sessions::prune(pool, window).await {
        tracing::warn!(error = %e, "pruning expired sessions failed");
    }
}
