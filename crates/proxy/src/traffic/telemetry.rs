//! The proxy's own metrics for Prometheus, served as `/metrics` on the status port.
//!
//! Request counters and latency histograms are labelled by API slug and id, stage, route
//! id and status class (never by raw path or key), read from the route meters at scrape
//! time.
//! Latency buckets are the meters' own boundaries at each power of two microseconds, so
//! the exposed histograms are exact. Config, sync, upstream-pool and reporting figures are
//! plain Prometheus collectors, plus the process basics (CPU, memory, file descriptors).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use gatehouse_model::metrics::{bucket_index, Latency};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry, TextEncoder};

use crate::admission::shared_quota::RedisMetrics;
use crate::authorizers::metrics::AuthMetrics;
use crate::state::Shared;
use crate::traffic::meters::RouteMeter;

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Exposed bucket bounds: 2^6 µs (64 µs) to 2^26 µs (67 s).
const BOUND_POWERS: std::ops::RangeInclusive<u32> = 6..=26;

pub struct Telemetry {
    registry: Registry,
    pub config_version: IntGauge,
    /// When the snapshot in use was applied, in Unix milliseconds (0: never).
    pub config_applied_ms: AtomicI64,
    pub sync_errors: IntCounter,
    pub snapshots_refused: IntCounter,
    pub upstream_connections: IntGauge,
    pub upstream_connects: IntCounter,
    pub reports_sent: IntCounter,
    pub reports_dropped: IntCounter,
    pub report_queue: IntGauge,
    pub websocket_connections: IntGauge,
    pub websocket_closes: IntCounterVec,
    pub websocket_refused: IntCounter,
    pub client_connections: IntGauge,
    pub connections_refused: IntCounter,
    /// Redis, when quotas are shared through it: up or down, fallbacks, probes.
    pub redis: RedisMetrics,
    /// Authorizers: refusals by reason, answers, key fetches, latency.
    pub auth: AuthMetrics,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = registry.register(Box::new(c.clone()));
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let c = IntCounterVec::new(prometheus::Opts::new(name, help), &[label])
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = registry.register(Box::new(c.clone()));
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    let _ = registry.register(Box::new(g.clone()));
    g
}

impl Default for Telemetry {
    fn default() -> Self {
        let registry = Registry::new();
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        let r = &registry;
        Telemetry {
            config_version: gauge(
                r,
                "gatehouse_proxy_config_version",
                "Version of the configuration being served (0: none yet).",
            ),
            config_applied_ms: AtomicI64::new(0),
            sync_errors: counter(
                r,
                "gatehouse_proxy_config_sync_errors_total",
                "Config polls that failed (control plane unreachable or refusing).",
            ),
            snapshots_refused: counter(
                r,
                "gatehouse_proxy_config_refused_total",
                "Snapshots received, or read from the disk cache, that failed to decode or compile.",
            ),
            upstream_connections: gauge(
                r,
                "gatehouse_proxy_upstream_connections",
                "Upstream connections open, pooled or in use.",
            ),
            upstream_connects: counter(
                r,
                "gatehouse_proxy_upstream_connects_total",
                "Upstream connections opened.",
            ),
            reports_sent: counter(
                r,
                "gatehouse_proxy_metrics_reports_sent_total",
                "Metrics batches the control plane accepted.",
            ),
            reports_dropped: counter(
                r,
                "gatehouse_proxy_metrics_reports_dropped_total",
                "Metrics batches dropped: refused as malformed, or over the queue bound.",
            ),
            report_queue: gauge(
                r,
                "gatehouse_proxy_metrics_reports_queued",
                "Metrics batches waiting for the control plane.",
            ),
            websocket_connections: gauge(
                r,
                "gatehouse_proxy_websocket_connections",
                "WebSocket connections open.",
            ),
            websocket_closes: counter_vec(
                r,
                "gatehouse_proxy_websocket_closes_total",
                "WebSocket connections ended, by why: client, idle, lifetime, shutdown, backend, too_big, protocol_error, invalid_utf8, slow_reader, stage_gone.",
                "reason",
            ),
            websocket_refused: counter(
                r,
                "gatehouse_proxy_websocket_refused_total",
                "WebSocket handshakes refused because the proxy held its most connections.",
            ),
            client_connections: gauge(
                r,
                "gatehouse_proxy_client_connections",
                "Client connections open (HTTP and WebSocket).",
            ),
            connections_refused: counter(
                r,
                "gatehouse_proxy_client_connections_refused_total",
                "Client connections refused because the proxy held its most connections.",
            ),
            redis: RedisMetrics::registered(r),
            auth: AuthMetrics::new(r),
            registry,
        }
    }
}

impl Telemetry {
    /// Notes that a snapshot of `version` is now served.
    pub fn applied(&self, version: i64) {
        self.config_version.set(version);
        self.config_applied_ms
            .store(chrono::Utc::now().timestamp_millis(), Relaxed);
    }

    /// The text exposition of everything.
    pub fn render(&self, shared: &Shared) -> String {
        let mut families = self.registry.gather();
        families.extend(route_families(&shared.meters.all()));
        let unmatched = shared.unmatched.read();
        families.push(family(
            "gatehouse_proxy_unmatched_requests_total",
            "Responses to requests that matched no deployed stage, by status class.",
            MetricType::COUNTER,
            STATUS_CLASSES
                .iter()
                .zip(unmatched)
                .map(|(class, n)| counter_metric(&[("status", class)], n))
                .collect(),
        ));
        let applied = self.config_applied_ms.load(Relaxed);
        if applied > 0 {
            let age = (chrono::Utc::now().timestamp_millis() - applied).max(0) as f64 / 1000.0;
            let mut g = proto::Gauge::default();
            g.set_value(age);
            families.push(family(
                "gatehouse_proxy_config_age_seconds",
                "Seconds since the configuration being served was applied.",
                MetricType::GAUGE,
                vec![proto::Metric::from_gauge(g)],
            ));
        }
        for (name, help, value) in [
            (
                "gatehouse_proxy_key_events_dropped_total",
                "Keyed requests left out of per-key metrics because the queue was full.",
                shared.key_events.dropped.load(Relaxed),
            ),
            (
                "gatehouse_proxy_access_log_lines_total",
                "Access log lines written.",
                shared.access_log.written.load(Relaxed),
            ),
            (
                "gatehouse_proxy_access_log_dropped_total",
                "Access log lines dropped because the writer was behind or not running.",
                shared.access_log.dropped(),
            ),
        ] {
            families.push(family(
                name,
                help,
                MetricType::COUNTER,
                vec![counter_metric(&[], value)],
            ));
        }
        let mut text = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&families, &mut text) {
            tracing::warn!(error = %e, "could not encode metrics");
        }
        text
    }
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut l = LabelPair::default();
            l.set_name((*name).to_owned());
            l.set_value((*value).to_owned());
            l
        })
        .collect()
}

fn counter_metric(pairs: &[(&str, &str)], value: u64) -> proto::Metric {
    let mut c = proto::Counter::default();
    c.set_value(value as f64);
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

fn histogram_metric(pairs: &[(&str, &str)], latency: &Latency) -> proto::Metric {
    let counts = latency.buckets.counts();
    let mut buckets = Vec::with_capacity(BOUND_POWERS.count());
    let mut cumulative = 0u64;
    let mut next = 0usize;
    for power in BOUND_POWERS {
        let bound_us = 1u64 << power;
        // The buckets below the bound's own hold the latencies under it. Latencies are
        // whole microseconds rounded down, so those are exactly the requests that took no
        // longer than the bound (a recorded 64 took from 64 to 65 µs).
        let end = bucket_index(bound_us).min(counts.len());
        cumulative += counts[next.min(end)..end].iter().sum::<u64>();
        next = next.max(end);
        let mut b = proto::Bucket::default();
        b.set_upper_bound(bound_us as f64 / 1e6);
        b.set_cumulative_count(cumulative);
        buckets.push(b);
    }
    let mut h = proto::Histogram::default();
    h.set_sample_count(latency.count());
    h.set_sample_sum(latency.sum_us as f64 / 1e6);
    h.set_bucket(buckets);
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_histogram(h);
    m
}

/// Request, byte and latency families of every route meter.
fn route_families(meters: &[std::sync::Arc<RouteMeter>]) -> Vec<MetricFamily> {
    // Sorted, so scrapes list series in a stable order.
    let mut sorted: BTreeMap<(&str, &str, String, String), &RouteMeter> = BTreeMap::new();
    for meter in meters {
        let k = &meter.key;
        let route = k
            .route_id
            .map_or_else(|| "none".to_owned(), |id| id.to_string());
        sorted.insert((&k.api_slug, &k.stage, route, k.api_id.to_string()), meter);
    }
    let mut requests = Vec::new();
    let mut bytes_in = Vec::new();
    let mut bytes_out = Vec::new();
    let mut latency = Vec::new();
    let mut integration = Vec::new();
    for ((api, stage, route, api_id), meter) in &sorted {
        // The API's id too: a slug can be taken again by a new API.
        let route_labels = [
            ("api", *api),
            ("api_id", api_id.as_str()),
            ("stage", *stage),
            ("route", route.as_str()),
        ];
        for (class, n) in STATUS_CLASSES.iter().zip(meter.statuses()) {
            if n > 0 {
                let mut with_status = route_labels.to_vec();
                with_status.push(("status", class));
                requests.push(counter_metric(&with_status, n));
            }
        }
        let (i, o) = meter.bytes();
        bytes_in.push(counter_metric(&route_labels, i));
        bytes_out.push(counter_metric(&route_labels, o));
        if let Some((total, upstream)) = meter.latencies() {
            latency.push(histogram_metric(&route_labels, &total));
            integration.push(histogram_metric(&route_labels, &upstream));
        }
    }
    vec![
        family(
            "gatehouse_proxy_requests_total",
            "Responses by API, stage, route id and status class.",
            MetricType::COUNTER,
            requests,
        ),
        family(
            "gatehouse_proxy_request_bytes_total",
            "Request body bytes forwarded upstream.",
            MetricType::COUNTER,
            bytes_in,
        ),
        family(
            "gatehouse_proxy_response_bytes_total",
            "Response body bytes sent to clients.",
            MetricType::COUNTER,
            bytes_out,
        ),
        family(
            "gatehouse_proxy_request_duration_seconds",
            "Time from receiving a request to the last byte of its response.",
            MetricType::HISTOGRAM,
            latency,
        ),
        family(
            "gatehouse_proxy_integration_duration_seconds",
            "Time from sending a request upstream to its response headers.",
            MetricType::HISTOGRAM,
            integration,
        ),
    ]
    .into_iter()
    .filter(|f| !f.get_metric().is_empty())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_buckets_are_exact_cumulative_counts() {
        let mut latency = Latency::default();
        for us in [10, 63, 64, 65, 1_000, 100_000_000] {
            latency.record(us);
        }
        let m = histogram_metric(&[("api", "pets")], &latency);
        let hist = m.get_histogram();
        let bounds: Vec<(f64, u64)> = hist
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        assert_eq!(
            bounds[0],
            (0.000064, 2),
            "10 and 63 µs; 64 µs means 64 to 65"
        );
        assert_eq!(bounds[1], (0.000128, 4));
        assert_eq!(bounds[4], (0.001024, 5));
        assert_eq!(
            bounds.last().map(|b| b.1),
            Some(5),
            "100 s is above the last bound"
        );
        assert_eq!(hist.get_sample_count(), 6);
    }
}
