//! Sends quota usage to the control plane and learns the totals back.
//!
//! Every report interval the counts admitted since the last report are drained into a
//! batch with a fresh id; batches are sent in order and a failed one is retried as is, so
//! the control plane counts each once. While batches wait (bounded), their counts keep
//! counting against the quota here. Every so often, and at start, the proxy also fetches
//! all current totals, which is how it learns what other proxies used.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use gatehouse_model::usage::{UsageEntry, UsageReport, UsageTotals};
use http::{Method, StatusCode};
use tokio::sync::watch;
use uuid::Uuid;

use crate::admission::quota::QuotaCounter;
use crate::server::stopped;
use crate::state::Shared;
use crate::sync::control_plane::ControlPlaneClient;

/// Most batches kept while the control plane is away.
const MAX_QUEUED_BATCHES: usize = 1000;
/// Most entries in one batch (the control plane takes up to 20,000).
const MAX_BATCH_ENTRIES: usize = 10_000;
/// How often all totals are fetched, to learn other proxies' use.
const LEARN_EVERY: Duration = Duration::from_secs(10);
const MAX_TOTALS_BYTES: usize = 256 * 1024 * 1024;

struct Batch {
    report: UsageReport,
    /// Each counter drained into the batch, with the period and count it gave.
    counters: Vec<(Arc<QuotaCounter>, i64, u64)>,
}

pub struct UsageReporter {
    shared: Arc<Shared>,
    control_plane: Arc<ControlPlaneClient>,
    interval: Duration,
    queue: VecDeque<Batch>,
    /// When all totals were last fetched.
    last_learned: Option<Instant>,
}

impl UsageReporter {
    pub fn new(
        shared: Arc<Shared>,
        control_plane: Arc<ControlPlaneClient>,
        config: &crate::ProxyConfig,
    ) -> UsageReporter {
        UsageReporter {
            shared,
            control_plane,
            interval: config.usage_report_interval,
            queue: VecDeque::new(),
            last_learned: None,
        }
    }

    /// Reports until `shutdown`, then makes one last attempt to send what is left.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = stopped(&mut shutdown) => {
                    self.collect().await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), self.flush()).await;
                    return;
                }
            }
            if self.last_learned.is_none_or(|t| t.elapsed() >= LEARN_EVERY) {
                let _ = self.learn().await;
            }
            self.collect().await;
            self.flush().await;
        }
    }

    /// Fetches every current total from the control plane.
    pub async fn learn(&mut self) -> anyhow::Result<()> {
        let (status, body) = self.exchange(Method::GET, Bytes::new()).await?;
        anyhow::ensure!(status == StatusCode::OK, "control plane answered {status}");
        let totals: UsageTotals = serde_json::from_slice(&body)?;
        for total in totals.totals {
            // Created if absent: a snapshot compiled later picks the counter up.
            let counter = self.shared.quotas.counter(total.key_id, total.plan_id);
            counter.learn(total.period_start.timestamp(), total.used);
        }
        self.last_learned = Some(Instant::now());
        Ok(())
    }

    /// Drains every counter's new use, and the keys used, into batches. The scan over
    /// every key runs on a blocking thread, away from the request workers.
    async fn collect(&mut self) {
        let shared = self.shared.clone();
        let Ok((mut entries, mut counters, mut used_keys)) =
            tokio::task::spawn_blocking(move || gather(&shared)).await
        else {
            return;
        };
        while !entries.is_empty() || !used_keys.is_empty() {
            let rest_used = used_keys.split_off(used_keys.len().min(MAX_BATCH_ENTRIES));
            let rest_entries = entries.split_off(entries.len().min(MAX_BATCH_ENTRIES));
            let rest_counters = counters.split_off(counters.len().min(MAX_BATCH_ENTRIES));
            if self.queue.len() == MAX_QUEUED_BATCHES {
                tracing::warn!("usage report queue full; dropping the oldest batch");
                self.queue.pop_front();
            }
            let report = UsageReport {
                batch_id: Uuid::now_v7(),
                entries: std::mem::replace(&mut entries, rest_entries),
                used_keys: std::mem::replace(&mut used_keys, rest_used),
            };
            self.queue.push_back(Batch {
                report,
                counters: std::mem::replace(&mut counters, rest_counters),
            });
        }
    }

    /// Sends queued batches in order, stopping at the first failure.
    async fn flush(&mut self) {
        while let Some(batch) = self.queue.front() {
            let body = match serde_json::to_vec(&batch.report) {
                Ok(body) => Bytes::from(body),
                Err(_) => {
                    self.queue.pop_front();
                    continue;
                }
            };
            match self.exchange(Method::POST, body).await {
                Ok((StatusCode::OK, answer)) => {
                    if let Ok(totals) = serde_json::from_slice::<UsageTotals>(&answer) {
                        for total in totals.totals {
                            if let Some(counter) =
                                self.shared.quotas.get(total.key_id, total.plan_id)
                            {
                                counter.learn(total.period_start.timestamp(), total.used);
                            }
                        }
                    }
                    if let Some(done) = self.queue.pop_front() {
                        for (counter, start, delta) in done.counters {
                            counter.settle(start, delta);
                        }
                    }
                }
                Ok((status, answer))
                    if status.is_client_error() && status != StatusCode::UNAUTHORIZED =>
                {
                    // Sending it again would be refused again: drop it rather than block
                    // every report behind it.
                    tracing::error!(%status, answer = %String::from_utf8_lossy(&answer), "usage report refused; dropping it");
                    self.queue.pop_front();
                }
                Ok((status, _)) => {
                    tracing::warn!(%status, "usage report not accepted; will retry");
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "usage report failed; will retry");
                    return;
                }
            }
        }
    }

    async fn exchange(&self, method: Method, body: Bytes) -> anyhow::Result<(StatusCode, Bytes)> {
        let answer = self
            .control_plane
            .call(
                method,
                "/dp/v1/usage",
                body,
                &[],
                MAX_TOTALS_BYTES,
                Duration::from_secs(10),
            )
            .await?;
        Ok((answer.status, answer.body))
    }
}

/// New use of every quota counter, and the keys used since the last call.
#[allow(clippy::type_complexity)]
fn gather(
    shared: &Shared,
) -> (
    Vec<UsageEntry>,
    Vec<(Arc<QuotaCounter>, i64, u64)>,
    Vec<Uuid>,
) {
    let mut entries = Vec::new();
    let mut counters = Vec::new();
    for ((key_id, plan_id), counter) in shared.quotas.all() {
        let (start, delta) = counter.drain();
        if delta == 0 {
            continue;
        }
        let Some(period_start) = DateTime::<Utc>::from_timestamp(start, 0) else {
            continue;
        };
        entries.push(UsageEntry {
            key_id,
            plan_id,
            period_start,
            count: delta,
        });
        counters.push((counter, start, delta));
    }
    let used_keys = shared.key_use.take();
    (entries, counters, used_keys)
}
