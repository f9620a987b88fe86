//! What the proxy counts about its traffic, without a lock on the request path.
//!
//! Every route of every deployed stage (and each stage's "no route matched") has a
//! [`RouteMeter`]: cumulative atomic counters and log-scale latency histograms that
//! Prometheus reads as they are and the metrics reporter reads as differences. Meters live
//! in the [`MeterRegistry`], so a redeploy keeps counting where the last snapshot left off.
//! Requests made with an API key also go, as small events, into a bounded queue the
//! reporter drains into per-key totals: memory for keys follows the keys in use, not the
//! keys that exist. When the queue is full an event is dropped and counted, never waited on.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Arc, Mutex, OnceLock};

use crate::traffic::handoff::Handoff;

use gatehouse_model::metrics::{
    bucket_index, Histogram, Latency, Traffic, HISTOGRAM_BUCKETS, MAX_LATENCY_US,
};
use uuid::Uuid;

/// Latencies in microseconds: a histogram, bucket by bucket atomic, their sum, and the
/// extremes since the reporter last took them.
pub struct AtomicLatency {
    buckets: [AtomicU64; HISTOGRAM_BUCKETS],
    sum_us: AtomicU64,
    min_us: AtomicU64,
    max_us: AtomicU64,
}

impl AtomicLatency {
    fn new() -> AtomicLatency {
        AtomicLatency {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            min_us: AtomicU64::new(u64::MAX),
            max_us: AtomicU64::new(0),
        }
    }

    fn record(&self, micros: u64) {
        let micros = micros.min(MAX_LATENCY_US);
        self.buckets[bucket_index(micros)].fetch_add(1, Relaxed);
        // After the bucket: a reader that sees this sum sees the bucket too.
        self.sum_us.fetch_add(micros, Release);
        // Read first: under load the extremes rarely move, and a plain load is cheaper
        // than a contended read-modify-write.
        if micros < self.min_us.load(Relaxed) {
            self.min_us.fetch_min(micros, Relaxed);
        }
        if micros > self.max_us.load(Relaxed) {
            self.max_us.fetch_max(micros, Relaxed);
        }
    }

    /// The counts and sum so far, with the extremes since the last `take_extremes`.
    fn read(&self, take_extremes: bool) -> Latency {
        let sum_us = self.sum_us.load(Acquire);
        let counts = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let (min, max) = if take_extremes {
            (
                self.min_us.swap(u64::MAX, Relaxed),
                self.max_us.swap(0, Relaxed),
            )
        } else {
            (self.min_us.load(Relaxed), self.max_us.load(Relaxed))
        };
        Latency {
            buckets: Histogram::from_counts(counts).unwrap_or_default(),
            sum_us,
            min_us: if min == u64::MAX { 0 } else { min },
            max_us: max,
        }
    }
}

struct Latencies {
    total: AtomicLatency,
    integration: AtomicLatency,
}

/// Which series a meter counts: labels for Prometheus, ids for reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeterKey {
    pub api_id: Uuid,
    pub api_slug: Arc<str>,
    pub stage: Arc<str>,
    /// `None`: requests to the stage that no route matched.
    pub route_id: Option<Uuid>,
}

/// Cumulative counts of one route (they only grow, as Prometheus expects).
pub struct RouteMeter {
    pub key: MeterKey,
    statuses: StatusCounts,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Allocated at the first request, so routes never called cost no histogram memory.
    latencies: OnceLock<Box<Latencies>>,
    /// What the reporter last sent; touched only by the reporter.
    pub(crate) reported: Mutex<Traffic>,
}

impl std::fmt::Debug for RouteMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMeter")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// One request's outcome, as recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub status: u16,
    pub latency_us: u64,
    /// Time to the upstream's response headers, when the request reached one.
    pub integration_us: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Responses by status class, 1xx to 5xx. A count is added after everything else a
/// request records (`Release`) and read before it (`Acquire`).
#[derive(Default)]
pub struct StatusCounts([AtomicU64; 5]);

impl StatusCounts {
    pub fn record(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[class].fetch_add(1, Release);
    }

    /// Responses per status class, 1xx first.
    pub fn read(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.0[i].load(Acquire))
    }
}

impl RouteMeter {
    fn new(key: MeterKey) -> RouteMeter {
        RouteMeter {
            key,
            statuses: StatusCounts::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            latencies: OnceLock::new(),
            reported: Mutex::new(Traffic::default()),
        }
    }

    /// Counts one request. The latency goes in first and the status last, and
    /// [`RouteMeter::read`] reads in the opposite order, so a reading never holds a status
    /// without its latency, nor an integration latency without its total latency.
    pub fn record(&self, outcome: &Outcome) {
        if outcome.bytes_in > 0 {
            self.bytes_in.fetch_add(outcome.bytes_in, Relaxed);
        }
        if outcome.bytes_out > 0 {
            self.bytes_out.fetch_add(outcome.bytes_out, Relaxed);
        }
        let latencies = self.latencies.get_or_init(|| {
            Box::new(Latencies {
                total: AtomicLatency::new(),
                integration: AtomicLatency::new(),
            })
        });
        latencies.total.record(outcome.latency_us);
        if let Some(us) = outcome.integration_us {
            latencies.integration.record(us);
        }
        self.statuses.record(outcome.status);
    }

    /// Responses per status class, 1xx first.
    pub fn statuses(&self) -> [u64; 5] {
        self.statuses.read()
    }

    pub fn bytes(&self) -> (u64, u64) {
        (self.bytes_in.load(Relaxed), self.bytes_out.load(Relaxed))
    }

    /// Both latencies (total and integration), when anything was recorded.
    pub fn latencies(&self) -> Option<(Latency, Latency)> {
        let l = self.latencies.get()?;
        Some((l.total.read(false), l.integration.read(false)))
    }

    /// Everything counted so far, as one total. The count is that of the statuses; the
    /// latencies, read just after, may hold a few more requests, finished meanwhile (the
    /// next reading's difference has a few less). The extremes are those since the last
    /// call with `take_extremes`, which resets them.
    pub fn read(&self, take_extremes: bool) -> Traffic {
        let statuses = self.statuses();
        let (bytes_in, bytes_out) = self.bytes();
        let (integration, latency) = self
            .latencies
            .get()
            .map(|l| {
                (
                    l.integration.read(take_extremes),
                    l.total.read(take_extremes),
                )
            })
            .unwrap_or_default();
        Traffic {
            count: statuses.iter().sum(),
            errors_4xx: statuses[3],
            errors_5xx: statuses[4],
            bytes_in,
            bytes_out,
            latency,
            integration,
        }
    }
}

/// Every meter, by series. Locked only to compile a snapshot, to scrape and to report.
#[derive(Default)]
pub struct MeterRegistry {
    meters: Mutex<HashMap<MeterKey, Arc<RouteMeter>>>,
}

impl MeterRegistry {
    /// The meter of `key`, created if new.
    pub fn meter(&self, key: MeterKey) -> Arc<RouteMeter> {
        let mut meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        meters
            .entry(key)
            .or_insert_with_key(|key| Arc::new(RouteMeter::new(key.clone())))
            .clone()
    }

    pub fn all(&self) -> Vec<Arc<RouteMeter>> {
        let meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        meters.values().cloned().collect()
    }

    /// Forgets meters no snapshot or request holds any more, once `done` says everything
    /// they counted was reported.
    pub fn retire(&self, done: impl Fn(&RouteMeter) -> bool) {
        let mut meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        meters.retain(|_, meter| Arc::strong_count(meter) > 1 || !done(meter));
    }
}

/// One request made with an API key.
pub struct KeyEvent {
    pub key_id: Uuid,
    pub meter: Arc<RouteMeter>,
    pub outcome: Outcome,
}

/// Most key events waiting for the reporter (it drains four times a second).
pub const KEY_EVENT_CAPACITY: usize = 65_536;

/// Keyed requests on their way to the reporter's per-key totals.
pub type KeyEvents = Handoff<KeyEvent>;

pub fn key_events() -> KeyEvents {
    Handoff::new(KEY_EVENT_CAPACITY)
}

/// Responses to paths that match no deployed stage, per status class.
pub type Unmatched = StatusCounts;

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MeterKey {
        MeterKey {
            api_id: Uuid::nil(),
            api_slug: "pets".into(),
            stage: "prod".into(),
            route_id: Some(Uuid::nil()),
        }
    }

    #[test]
    fn a_meter_counts_classes_bytes_and_latencies() {
        let meter = RouteMeter::new(key());
        for (status, integration) in [(200, Some(50)), (404, None), (503, Some(900))] {
            meter.record(&Outcome {
                status,
                latency_us: 1_000,
                integration_us: integration,
                bytes_in: 3,
                bytes_out: 10,
            });
        }
        let t = meter.read(true);
        assert_eq!((t.count, t.errors_4xx, t.errors_5xx), (3, 1, 1));
        assert_eq!((t.bytes_in, t.bytes_out), (9, 30));
        assert_eq!(
            (t.latency.count(), t.latency.sum_us, t.latency.max_us),
            (3, 3_000, 1_000)
        );
        let i = &t.integration;
        assert_eq!((i.count(), i.min_us, i.max_us), (2, 50, 900));
        let again = meter.read(true);
        assert_eq!(
            (again.latency.min_us, again.latency.max_us),
            (0, 0),
            "extremes are since the last take"
        );
    }

    #[test]
    fn readings_taken_while_requests_are_recorded_add_up_exactly() {
        let meter = Arc::new(RouteMeter::new(key()));
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let meter = meter.clone();
                std::thread::spawn(move || {
                    for i in 0..50_000u64 {
                        meter.record(&Outcome {
                            status: if i % 10 == 0 { 500 } else { 200 },
                            latency_us: 100 + (i * 7 + w) % 5_000,
                            integration_us: (i % 3 != 0).then_some(50 + i % 4_000),
                            bytes_in: 1,
                            bytes_out: 2,
                        });
                    }
                })
            })
            .collect();
        // What the reporter does: send what grew since the last reading.
        let (mut reported, mut total) = (Traffic::default(), Traffic::default());
        let report = |reported: &mut Traffic, total: &mut Traffic| {
            let mut sent = meter.read(true).since(reported);
            sent.repair();
            if !sent.is_empty() {
                assert_eq!(sent.implausible(), None, "{sent:?}");
                reported.merge(&sent);
                total.merge(&sent);
            }
        };
        while writers.iter().any(|w| !w.is_finished()) {
            report(&mut reported, &mut total);
        }
        for writer in writers {
            writer.join().expect("writer");
        }
        report(&mut reported, &mut total);
        assert_eq!((total.count, total.errors_5xx), (200_000, 20_000));
        assert_eq!(total.latency.count(), 200_000);
        assert_eq!(total.integration.count(), 4 * 33_333);
        assert_eq!((total.bytes_in, total.bytes_out), (200_000, 400_000));
    }

    #[test]
    fn the_registry_keeps_meters_across_snapshots_until_retired() {
        let registry = MeterRegistry::default();
        let first = registry.meter(key());
        assert!(Arc::ptr_eq(&first, &registry.meter(key())));
        registry.retire(|_| true);
        assert_eq!(registry.all().len(), 1, "still held by a snapshot");
        drop(first);
        registry.retire(|_| false);
        assert_eq!(registry.all().len(), 1, "not reported yet");
        registry.retire(|_| true);
        assert!(registry.all().is_empty());
    }
}
