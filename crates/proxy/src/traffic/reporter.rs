//! Turns what the meters counted into minute entries for the control plane.
//!
//! Every report interval (aligned to the wall clock, so no interval spans two minutes)
//! each route meter's growth since the last look becomes an entry of the interval's
//! minute, and the per-key totals drained from the key-event queue become key entries.
//! They go to the [`Outbox`], which sends them on a task of its own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use gatehouse_model::metrics::Traffic;
use tokio::sync::watch;
use uuid::Uuid;

use crate::server::stopped;
use crate::state::Shared;
use crate::sync::control_plane::ControlPlaneClient;
use crate::traffic::handoff::Reader;
use crate::traffic::meters::KeyEvent;
use crate::traffic::outbox::{EntryKey, Outbox};

/// How often key events are drained from their queue.
const DRAIN_EVERY: Duration = Duration::from_millis(250);
pub struct MetricsReporter {
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    interval: Duration,
    /// Where unsent batches are kept across a restart.
    data_dir: Option<PathBuf>,
    key_events: Option<Reader<KeyEvent>>,
    /// Key traffic drained since the last report, by minute, key, API and stage.
    keys: HashMap<(DateTime<Utc>, Uuid, Uuid, Arc<str>), Traffic>,
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
        data_dir: Option<PathBuf>,
    ) -> MetricsReporter {
        MetricsReporter {
            key_events: shared.key_events.take_reader(),
            shared,
            outbox: Arc::new(Outbox::new(control_plane)),
            interval,
            data_dir,
            keys: HashMap::new(),
            interval_start: SystemTime::now(),
        }
    }

    /// Reports until `shutdown`, then reports once more and lets the outbox try, briefly,
    /// to send what is left.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        if let Some(dir) = &self.data_dir {
            self.outbox.restore(dir).await;
        }
        let (stop_sending, sending_stopped) = watch::channel(false);
        let sender = tokio::spawn(
            self.outbox
                .clone()
                .send_until(self.shared.clone(), sending_stopped),
        );
        let mut next = next_tick(SystemTime::now(), self.interval);
        loop {
            let now = SystemTime::now();
            // A clock set back by more than an interval: start counting ticks afresh.
            if next
                .duration_since(now)
                .is_ok_and(|ahead| ahead > self.interval + DRAIN_EVERY)
            {
                next = next_tick(now, self.interval);
            }
            let until_tick = next.duration_since(now).unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(until_tick.min(DRAIN_EVERY)) => {}
                () = stopped(&mut shutdown) => break,
            }
            self.drain_keys();
            let now = SystemTime::now();
            if now >= next {
                self.cut(now);
                next = next_tick(now, self.interval);
            }
        }
        self.drain_keys();
        self.cut(SystemTime::now());
        let _ = stop_sending.send(true);
        let _ = sender.await;
        if let Some(dir) = &self.data_dir {
            self.outbox.save(dir).await;
        }
    }

    /// Adds the queued key events to the current minute's per-key totals.
    fn drain_keys(&mut self) {
        let Some(receiver) = &self.key_events else {
            return;
        };
        let minute = minute_of(SystemTime::now());
        while let Some(event) = receiver.try_next() {
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
            // Extremes read mid-update are the control plane's to repair, once, for every
            // report it takes in.
            let sent = current.since(&reported);
            if !sent.is_empty() {
                reported.merge(&sent);
                drop(reported);
                let k = &meter.key;
                entries.push(((minute, k.api_id, k.stage.clone(), k.route_id, None), sent));
            }
        }
        for ((minute, key_id, api_id, stage), traffic) in self.keys.drain() {
            entries.push(((minute, api_id, stage, None, Some(key_id)), traffic));
        }
        // A meter no snapshot uses any more, with nothing left to report, can go.
        self.shared.meters.retire(|m| {
            let left = m
                .read(false)
                .since(&m.reported.lock().unwrap_or_else(|e| e.into_inner()));
            left.is_empty()
        });
        self.outbox.add(entries, &self.shared.telemetry);
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
