//! The control plane's own metrics for Prometheus, served as `/metrics`: HTTP requests by
//! method, route template (never the raw path) and status class, how long they took,
//! metrics reports ingested, the database pool, and the process basics.
//!
//! Every label value comes from a fixed set, whatever clients send: a standard method or
//! `other`, a route template or `unmatched`, a status class. A label copied from the
//! request would let anyone, without a token, add series until memory runs out.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::AppState;

pub struct Telemetry {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    /// Metrics reports by outcome: `accepted`, `duplicate` or `refused`.
    pub reports: IntCounterVec,
    /// Report entries by outcome: `accepted` or `rejected`.
    pub report_entries: IntCounterVec,
    pool: IntGaugeVec,
}

impl Default for Telemetry {
    fn default() -> Self {
        let registry = Registry::new();
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let http_requests = counter(
            "gatehouse_http_requests_total",
            "Requests to the control plane by method, route template and status class.",
            &["method", "route", "status"],
        );
        let reports = counter(
            "gatehouse_metrics_reports_total",
            "Metrics reports from proxies by outcome (accepted, duplicate, refused).",
            &["outcome"],
        );
        let report_entries = counter(
            "gatehouse_metrics_report_entries_total",
            "Entries of metrics reports by outcome (accepted, rejected).",
            &["outcome"],
        );
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "gatehouse_http_request_duration_seconds",
                "Time to answer a control-plane request (long polls included).",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["method", "route"],
        )
        .unwrap_or_else(|e| unreachable!("duration histogram: {e}"));
        let _ = registry.register(Box::new(http_duration.clone()));
        let pool = IntGaugeVec::new(
            Opts::new(
                "gatehouse_db_pool_connections",
                "PostgreSQL connections of the pool, idle or in use.",
            ),
            &["state"],
        )
        .unwrap_or_else(|e| unreachable!("pool gauge: {e}"));
        let _ = registry.register(Box::new(pool.clone()));
        Telemetry {
            registry,
            http_requests,
            http_duration,
            reports,
            report_entries,
            pool,
        }
    }
}

impl Telemetry {
    fn render(&self, pool: &sqlx::PgPool) -> String {
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        self.pool.with_label_values(&["idle"]).set(idle);
        self.pool
            .with_label_values(&["in_use"])
            .set(i64::from(pool.size()) - idle);
        let mut text = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text) {
            tracing::warn!(error = %e, "could not encode metrics");
        }
        text
    }
}

/// Counts and times every request, labelled by the route it matched.
pub async fn measure(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(request.method());
    // A template of the router (bounded by the code), never the path as sent.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    let class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let t = &state.telemetry;
    t.http_requests
        .with_label_values(&[method, route.as_str(), class])
        .inc();
    t.http_duration
        .with_label_values(&[method, route.as_str()])
        .observe(start.elapsed().as_secs_f64());
    response
}

/// The method's label: one of the standard methods, else `other` (any token is a valid
/// method on the wire).
fn method_label(method: &Method) -> &'static str {
    static KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.telemetry.render(&state.pool).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_labelled_from_a_fixed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["FOO", "get", "X1", "PROPFIND"] {
            let method = Method::from_bytes(made_up.as_bytes()).expect("a token");
            assert_eq!(method_label(&method), "other", "{made_up}");
        }
    }
}
