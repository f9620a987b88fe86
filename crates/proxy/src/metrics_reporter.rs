//! Sends traffic metrics to the control plane in minute buckets.
//!
//! Every report interval (aligned to the wall clock, so no interval spans two minutes)
//! each route meter's growth since the last look becomes an entry of the interval's
//! minute, and the per-key totals drained from the key-event queue become key entries.
//! Entries go into the newest batch not yet sent, merged by minute and series, so while
//! the control plane is away memory grows with minutes and series, not with intervals.
//! Batches are sent in order with their id; a batch is never changed once a send was
//! tried, so a retry the control plane already counted is recognised and counted once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use gatehouse_model::metrics::{MetricsReport, Traffic, TrafficEntry};
use http::{Method, StatusCode};
use tokio::sync::watch;
use uuid::Uuid;

use crate::control_plane_client::ControlPlaneClient;
use crate::handler::Shared;
use crate::meters::KeyEvent;
use crate::server::stopped;

/// How often key events are drained from their queue.
const DRAIN_EVERY: Duration = Duration::from_millis(250);
/// Most entries in one batch.
const MAX_BATCH_ENTRIES: usize = 5_000;
/// Most entries waiting in all batches; past it the oldest batch is dropped.
const MAX_QUEUED_ENTRIES: usize = 500_000;
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// One series in one minute.
type EntryKey = (DateTime<Utc>, Uuid, Arc<str>, Option<Uuid>, Option<Uuid>);

struct Batch {
    id: Uuid,
    entries: BTreeMap<EntryKey, Traffic>,
    /// Set once a send was tried: from then on the batch is frozen.
    tried: bool,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            id: Uuid::now_v7(),
            entries: BTreeMap::new(),
            tried: false,
        }
    }

    fn report(&self) -> MetricsReport {
        MetricsReport {
            batch_id: self.id,
            entries: self
                .entries
                .iter()
                .map(
                    |((minute, api_id, stage, route_id, key_id), traffic)| TrafficEntry {
                        minute: *minute,
                        api_id: *api_id,
                        stage: stage.to_string(),
                        route_id: *route_id,
                        key_id: *key_id,
                        traffic: traffic.clone(),
                    },
                )
                .collect(),
        }
    }
}

pub struct MetricsReporter {
    shared: Arc<Shared>,
    control_plane: Arc<ControlPlaneClient>,
    interval: Duration,
    key_events: Option<Receiver<KeyEvent>>,
    /// Key traffic drained since the last report, by minute, key, API and stage.
    keys: HashMap<(DateTime<Utc>, Uuid, Uuid, Arc<str>), Traffic>,
    queue: VecDeque<Batch>,
    /// Start of the interval being measured.
    interval_start: SystemTime,
}

/// Start of the minute `t` falls in.
fn minute_of(t: SystemTime) -> DateTime<Utc> {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let start = i64::try_from(secs - secs % 60).unwrap_or(0);
    DateTime::from_timestamp(start, 0).unwrap_or_default()
}

/// The first report time after `now`: the next multiple of `interval` since the epoch,
/// or the next minute if that comes first.
pub fn next_tick(now: SystemTime, interval: Duration) -> SystemTime {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let step = interval.as_millis().max(1);
    let ms = since.as_millis();
    let next_interval = (ms / step + 1) * step;
    let next_minute = (ms / 60_000 + 1) * 60_000;
    let next = next_interval.min(next_minute);
    UNIX_EPOCH + Duration::from_millis(u64::try_from(next).unwrap_or(u64::MAX))
}

impl MetricsReporter {
    pub fn new(
        shared: Arc<Shared>,
        control_plane: Arc<ControlPlaneClient>,
        interval: Duration,
    ) -> MetricsReporter {
        MetricsReporter {
            key_events: shared.key_events.take_receiver(),
            shared,
            control_plane,
            interval,
            keys: HashMap::new(),
            queue: VecDeque::new(),
            interval_start: SystemTime::now(),
        }
    }

    /// Reports until `shutdown`, then reports once more and tries, briefly, to send it.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut next = next_tick(SystemTime::now(), self.interval);
        loop {
            let until_tick = next.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(until_tick.min(DRAIN_EVERY)) => {}
                () = stopped(&mut shutdown) => {
                    self.drain_keys();
                    self.cut(SystemTime::now());
                    let _ = tokio::time::timeout(Duration::from_secs(2), self.flush()).await;
                    return;
                }
            }
            self.drain_keys();
            let now = SystemTime::now();
            if now >= next {
                self.cut(now);
                self.flush().await;
                next = next_tick(now, self.interval);
            }
        }
    }

    /// Adds the queued key events to the current minute's per-key totals.
    fn drain_keys(&mut self) {
        let Some(receiver) = &self.key_events else {
            return;
        };
        let minute = minute_of(SystemTime::now());
        for event in receiver.try_iter() {
            let o = &event.outcome;
            let traffic = self
                .keys
                .entry((
                    minute,
                    event.key_id,
                    event.meter.key.api_id,
                    event.meter.key.stage.clone(),
                ))
                .or_default();
            traffic.record(o.status, o.latency_us, o.integration_us);
            traffic.bytes_in += o.bytes_in;
            traffic.bytes_out += o.bytes_out;
        }
    }

    /// Closes the interval that ends at `now`: what every meter and key counted in it
    /// goes into the open batch.
    fn cut(&mut self, now: SystemTime) {
        let minute = minute_of(self.interval_start);
        self.interval_start = now;
        let mut entries: Vec<(EntryKey, Traffic)> = Vec::new();
        for meter in self.shared.meters.all() {
            let current = meter.read(true);
            let mut reported = meter.reported.lock().unwrap_or_else(|e| e.into_inner());
            let added = current.since(&reported);
            *reported = current;
            drop(reported);
            if added.count > 0 {
                let k = &meter.key;
                entries.push(((minute, k.api_id, k.stage.clone(), k.route_id, None), added));
            }
        }
        for ((minute, key_id, api_id, stage), traffic) in self.keys.drain() {
            entries.push(((minute, api_id, stage, None, Some(key_id)), traffic));
        }
        // A meter no snapshot uses any more, with nothing left to report, can go.
        self.shared.meters.retire(|m| {
            m.read(false)
                .since(&m.reported.lock().unwrap_or_else(|e| e.into_inner()))
                .count
                == 0
        });
        for (key, traffic) in entries {
            self.add(key, traffic);
        }
        self.bound_queue();
    }

    /// Merges an entry into the newest untried batch, opening one when needed.
    fn add(&mut self, key: EntryKey, traffic: Traffic) {
        let open = self.queue.back().is_some_and(|b| {
            !b.tried && (b.entries.len() < MAX_BATCH_ENTRIES || b.entries.contains_key(&key))
        });
        if !open {
            self.queue.push_back(Batch::new());
        }
        if let Some(batch) = self.queue.back_mut() {
            batch.entries.entry(key).or_default().merge(&traffic);
        }
    }

    fn bound_queue(&mut self) {
        let mut queued: usize = self.queue.iter().map(|b| b.entries.len()).sum();
        while queued > MAX_QUEUED_ENTRIES && self.queue.len() > 1 {
            if let Some(dropped) = self.queue.pop_front() {
                queued -= dropped.entries.len();
                self.shared.telemetry.reports_dropped.inc();
                tracing::warn!(
                    entries = dropped.entries.len(),
                    "metrics queue full; dropped the oldest batch"
                );
            }
        }
        self.shared
            .telemetry
            .report_queue
            .set(self.queue.len() as i64);
    }

    /// Sends batches in order, stopping at the first that fails.
    async fn flush(&mut self) {
        while let Some(batch) = self.queue.front_mut() {
            batch.tried = true;
            let body = match serde_json::to_vec(&batch.report()) {
                Ok(body) => Bytes::from(body),
                Err(e) => {
                    tracing::error!(error = %e, "could not encode a metrics batch; dropping it");
                    self.queue.pop_front();
                    continue;
                }
            };
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
                Ok(answer) if answer.status == StatusCode::OK => {
                    self.queue.pop_front();
                    self.shared.telemetry.reports_sent.inc();
                }
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
                    self.queue.pop_front();
                    self.shared.telemetry.reports_dropped.inc();
                }
                Ok(answer) => {
                    tracing::debug!(status = %answer.status, "metrics batch not accepted; will retry");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "metrics batch not sent; will retry");
                    break;
                }
            }
        }
        self.shared
            .telemetry
            .report_queue
            .set(self.queue.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn ticks_align_to_the_interval_and_never_cross_a_minute() {
        let five = Duration::from_secs(5);
        assert_eq!(next_tick(at(61_000), five), at(65_000));
        assert_eq!(next_tick(at(65_000), five), at(70_000));
        let seven = Duration::from_secs(7);
        assert_eq!(next_tick(at(118_000), seven), at(119_000));
        assert_eq!(next_tick(at(119_500), seven), at(120_000));
    }

    #[test]
    fn minutes_start_on_the_minute() {
        assert_eq!(minute_of(at(119_999)).timestamp(), 60);
        assert_eq!(minute_of(at(120_000)).timestamp(), 120);
    }
}
