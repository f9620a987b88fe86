//! Metrics batches waiting for the control plane, and the task that sends them.
//!
//! New entries merge into the newest batch not yet tried, by minute and series, so while
//! the control plane is away memory grows with minutes and series, not with report
//! intervals. Batches go out in order, each with its id; a batch is never changed once a
//! send was tried, so a retry the control plane already counted is recognised and counted
//! once. Sending runs on its own task: a slow control plane never delays measuring.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use gatehouse_model::metrics::{MetricsReport, Traffic, TrafficEntry};
use http::{Method, StatusCode};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::server::stopped;
use crate::state::Shared;
use crate::sync::cache;
use crate::sync::control_plane::ControlPlaneClient;
use crate::traffic::telemetry::Telemetry;

/// Most entries in one batch.
const MAX_BATCH_ENTRIES: usize = 5_000;
/// Most entries waiting in all batches; past it the oldest batch is dropped.
const MAX_QUEUED_ENTRIES: usize = 500_000;
/// Answers of 5xx after which a batch is taken for poisoned and dropped (network
/// failures, a control plane away, never count).
const MAX_SERVER_ERRORS: u32 = 30;
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How long the last send may take when the proxy stops.
const LAST_SEND: Duration = Duration::from_secs(2);
/// Where a stopping proxy keeps the batches it could not send.
const SAVED: &str = "metrics-outbox.json";

/// One series in one minute: minute, API, stage, route, key.
pub type EntryKey = (DateTime<Utc>, Uuid, Arc<str>, Option<Uuid>, Option<Uuid>);

struct Batch {
    id: Uuid,
    entries: BTreeMap<EntryKey, Traffic>,
    /// Set once a send was tried: from then on the batch is frozen.
    tried: bool,
    server_errors: u32,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            id: Uuid::now_v7(),
            entries: BTreeMap::new(),
            tried: false,
            server_errors: 0,
        }
    }

    fn report(&self) -> MetricsReport {
        let entry =
            |((minute, api_id, stage, route_id, key_id), traffic): (&EntryKey, &Traffic)| {
                TrafficEntry {
                    minute: *minute,
                    api_id: *api_id,
                    stage: stage.to_string(),
                    route_id: *route_id,
                    key_id: *key_id,
                    traffic: traffic.clone(),
                }
            };
        MetricsReport {
            batch_id: self.id,
            entries: self.entries.iter().map(entry).collect(),
        }
    }
}

/// What a send attempt came to.
enum Sent {
    Accepted,
    /// Refused for good (malformed, or poisoned): dropped.
    Dropped,
    /// To be tried again later; `answered` when the control plane answered with an error.
    Failed {
        answered: bool,
    },
}

pub struct Outbox {
    queue: Mutex<VecDeque<Batch>>,
    wake: Notify,
    control_plane: Arc<ControlPlaneClient>,
}

impl Outbox {
    pub fn new(control_plane: Arc<ControlPlaneClient>) -> Outbox {
        Outbox {
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            control_plane,
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Batch>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds entries to the newest untried batch (opening one when needed), drops the
    /// oldest batches beyond the bound, and wakes the sender.
    pub fn add(&self, entries: Vec<(EntryKey, Traffic)>, telemetry: &Telemetry) {
        let mut queue = self.queue();
        for (key, traffic) in entries {
            let open = queue.back().is_some_and(|b| {
                !b.tried && (b.entries.len() < MAX_BATCH_ENTRIES || b.entries.contains_key(&key))
            });
            if !open {
                queue.push_back(Batch::new());
            }
            if let Some(batch) = queue.back_mut() {
                batch.entries.entry(key).or_default().merge(&traffic);
            }
        }
        let mut queued: usize = queue.iter().map(|b| b.entries.len()).sum();
        while queued > MAX_QUEUED_ENTRIES && queue.len() > 1 {
            if let Some(dropped) = queue.pop_front() {
                queued -= dropped.entries.len();
                telemetry.reports_dropped.inc();
                tracing::warn!(
                    entries = dropped.entries.len(),
                    "metrics queue full; dropped the oldest batch"
                );
            }
        }
        telemetry.report_queue.set(queue.len() as i64);
        drop(queue);
        self.wake.notify_one();
    }

    /// Sends whenever woken, until `stop`; then tries once more, briefly.
    pub async fn send_until(self: Arc<Self>, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
        let telemetry = &shared.telemetry;
        loop {
            tokio::select! {
                () = self.wake.notified() => self.flush(telemetry).await,
                () = stopped(&mut stop) => {
                    let _ = tokio::time::timeout(LAST_SEND, self.flush(telemetry)).await;
                    return;
                }
            }
        }
    }

    /// Sends batches in order, stopping at the first that fails.
    async fn flush(&self, telemetry: &Telemetry) {
        loop {
            let (id, body) = {
                let mut queue = self.queue();
                let Some(batch) = queue.front_mut() else {
                    break;
                };
                batch.tried = true;
                (batch.id, serde_json::to_vec(&batch.report()))
            };
            let outcome = match body {
                Ok(body) => self.send(Bytes::from(body)).await,
                Err(e) => {
                    tracing::error!(error = %e, "could not encode a metrics batch; dropping it");
                    Sent::Dropped
                }
            };
            let mut queue = self.queue();
            let front = queue.front_mut().filter(|b| b.id == id);
            match (outcome, front) {
                (Sent::Accepted, Some(_)) => {
                    queue.pop_front();
                    telemetry.reports_sent.inc();
                }
                (Sent::Dropped, Some(_)) => {
                    queue.pop_front();
                    telemetry.reports_dropped.inc();
                }
                (Sent::Failed { answered }, Some(batch)) => {
                    batch.server_errors += u32::from(answered);
                    if batch.server_errors < MAX_SERVER_ERRORS {
                        telemetry.report_queue.set(queue.len() as i64);
                        return;
                    }
                    tracing::error!(batch = %id, "metrics batch failed {MAX_SERVER_ERRORS} times on the control plane; dropping it");
                    queue.pop_front();
                    telemetry.reports_dropped.inc();
                }
                // Dropped meanwhile by the queue bound.
                (_, None) => {}
            }
            telemetry.report_queue.set(queue.len() as i64);
        }
    }

    /// Writes the batches still waiting to `dir`, so a proxy stopped while the control
    /// plane is away sends them after its restart (same ids: nothing counts twice).
    pub async fn save(&self, dir: &Path) {
        let reports: Vec<MetricsReport> = self.queue().iter().map(Batch::report).collect();
        let file = dir.join(SAVED);
        let result = if reports.is_empty() {
            match tokio::fs::remove_file(&file).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            match serde_json::to_vec(&reports) {
                Ok(bytes) => cache::store_file(dir, SAVED, &bytes).await,
                Err(e) => Err(e.into()),
            }
        };
        match result {
            Ok(()) if !reports.is_empty() => {
                tracing::info!(batches = reports.len(), file = %file.display(), "kept unsent metrics for the next start")
            }
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, file = %file.display(), "could not keep unsent metrics")
            }
        }
    }

    /// Takes back the batches a previous run saved, ahead of anything new.
    pub async fn restore(&self, dir: &Path) {
        let file = dir.join(SAVED);
        let bytes = match tokio::fs::read(&file).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(error = %e, file = %file.display(), "could not read unsent metrics");
                return;
            }
        };
        match serde_json::from_slice::<Vec<MetricsReport>>(&bytes) {
            Ok(reports) => {
                let mut queue = self.queue();
                for report in reports.into_iter().rev() {
                    let entries = report
                        .entries
                        .into_iter()
                        .map(|e| {
                            (
                                (
                                    e.minute,
                                    e.api_id,
                                    Arc::from(e.stage.as_str()),
                                    e.route_id,
                                    e.key_id,
                                ),
                                e.traffic,
                            )
                        })
                        .collect();
                    // Tried already, perhaps: frozen, and sent under the same id.
                    queue.push_front(Batch {
                        id: report.batch_id,
                        entries,
                        tried: true,
                        server_errors: 0,
                    });
                }
                tracing::info!(
                    batches = queue.len(),
                    "sending metrics kept by the last run"
                );
                drop(queue);
                self.wake.notify_one();
            }
            Err(e) => {
                tracing::warn!(error = %e, file = %file.display(), "unsent metrics file is damaged; ignoring it")
            }
        }
        let _ = tokio::fs::remove_file(&file).await;
    }

    async fn send(&self, body: Bytes) -> Sent {
        let answer = self
            .control_plane
            .call(
                Method::POST,
                "/dp/v1/metrics",
                body,
                &[],
                MAX_ANSWER_BYTES,
                Duration::from_secs(10),
            )
            .await;
        match answer {
            Ok(answer) if answer.status == StatusCode::OK => Sent::Accepted,
            Ok(answer)
                if matches!(
                    answer.status,
                    StatusCode::BAD_REQUEST
                        | StatusCode::PAYLOAD_TOO_LARGE
                        | StatusCode::UNPROCESSABLE_ENTITY
                ) =>
            {
                // Sending it again would be refused again.
                tracing::error!(status = %answer.status, answer = %String::from_utf8_lossy(&answer.body), "metrics batch refused; dropping it");
                Sent::Dropped
            }
            Ok(answer) if answer.status.is_server_error() => {
                tracing::warn!(status = %answer.status, "metrics batch not accepted; will retry");
                Sent::Failed { answered: true }
            }
            Ok(answer) => {
                // 401 or 403: a token or node problem, fixed by an operator, not by time.
                tracing::warn!(status = %answer.status, "metrics batch refused; will retry");
                Sent::Failed { answered: false }
            }
            Err(e) => {
                tracing::debug!(error = %e, "metrics batch not sent; will retry");
                Sent::Failed { answered: false }
            }
        }
    }
}
