//! What authorizers did, for Prometheus: refusals by authorizer kind and reason, how long
//! REQUEST authorizers and key fetches took, and key fetches that failed. Labels are from
//! fixed sets (kinds, reasons), never from tokens or identities, so they stay bounded.
//! Requests let through are counted by their route's meter, like any other: nothing here
//! runs on the path of an authorized request.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

pub struct AuthMetrics {
    /// Requests refused by an authorizer, by `kind` (jwt, request) and `reason`.
    pub refused: IntCounterVec,
    /// Key fetches by `result` (ok, failed).
    pub jwks_fetches: IntCounterVec,
    /// Seconds a REQUEST authorizer took to answer, or a key fetch, by `kind`.
    pub latency: HistogramVec,
}

impl AuthMetrics {
    pub fn new(registry: &Registry) -> AuthMetrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "gatehouse_authorizer_latency_seconds",
                "How long REQUEST authorizers took to answer, and JWKS fetches, by kind",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["kind"],
        )
        .unwrap_or_else(|e| unreachable!("metric latency: {e}"));
        let _ = registry.register(Box::new(latency.clone()));
        AuthMetrics {
            refused: counter(
                "gatehouse_authorizer_refusals_total",
                "Requests an authorizer refused, by kind and reason",
                &["kind", "reason"],
            ),
            jwks_fetches: counter(
                "gatehouse_jwks_fetches_total",
                "Fetches of JWT issuers' keys, by result",
                &["result"],
            ),
            latency,
        }
    }
}
