//! What every request and background task of one proxy shares: the published snapshot,
//! the upstream client, the limits, the counters and the queues traffic is reported
//! through. Built once at start; the request path reads it through an `Arc`.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::admission::quota::{KeyUse, QuotaLedger};
use crate::admission::shared_quota::SharedCounters;
use crate::authorizers::Authorizers;
use crate::config::ProxyConfig;
use crate::request::request_id::RequestIds;
use crate::server::drain::Drain;
use crate::snapshot::CompiledConfig;
use crate::traffic::access_log::AccessLog;
use crate::traffic::meters::{key_events, KeyEvents, MeterRegistry, Unmatched};
use crate::traffic::telemetry::Telemetry;
use crate::upstream::{event_client, upstream_client, EventClient, UpstreamClient};
use crate::websocket::WebSockets;

/// The proxy's state.
pub struct Shared {
    pub config: ArcSwapOption<CompiledConfig>,
    pub client: UpstreamClient,
    pub request_ids: RequestIds,
    pub max_body_bytes: u64,
    /// Longest request target served (path and query).
    pub max_uri_bytes: usize,
    /// Longest wait for the next part of a request body.
    pub body_timeout: Duration,
    /// Quota counters, shared by every snapshot compiled.
    pub quotas: QuotaLedger,
    /// Keys used since the last usage report.
    pub key_use: KeyUse,
    /// Quota counts shared with other proxies through Redis, when configured.
    pub shared_counters: Arc<SharedCounters>,
    /// Whether traffic is measured (route meters, key events, access logs).
    pub metrics_enabled: bool,
    pub meters: MeterRegistry,
    pub key_events: KeyEvents,
    pub unmatched: Unmatched,
    pub access_log: AccessLog,
    pub telemetry: Telemetry,
    pub websockets: WebSockets,
    /// What shutdown waits for: client connections and WebSocket sessions.
    pub drain: Drain,
    /// Authorizers' keys, verified tokens and cached answers, across snapshots.
    pub authorizers: Authorizers,
    /// The client issuers' keys are fetched and REQUEST authorizers called with.
    pub auth_client: EventClient,
}

impl Shared {
    /// The state of a proxy started with `config`, serving nothing yet.
    pub fn new(config: &ProxyConfig) -> Shared {
        let telemetry = Telemetry::default();
        Shared {
            config: ArcSwapOption::empty(),
            client: upstream_client(config.connect_timeout, &telemetry),
            request_ids: RequestIds::default(),
            max_body_bytes: config.max_body_bytes,
            max_uri_bytes: config.limits.max_uri_bytes,
            body_timeout: config.limits.body_timeout,
            quotas: QuotaLedger::default(),
            key_use: KeyUse::default(),
            shared_counters: Arc::new(SharedCounters::new(telemetry.redis.clone())),
            metrics_enabled: config.metrics,
            meters: MeterRegistry::default(),
            key_events: key_events(),
            unmatched: Unmatched::default(),
            access_log: AccessLog::default(),
            websockets: WebSockets::new(
                config.management_token.clone(),
                config.max_websocket_connections,
                config.connect_timeout,
                &telemetry,
            ),
            drain: Drain::default(),
            authorizers: Authorizers::default(),
            auth_client: event_client(config.connect_timeout, &telemetry),
            telemetry,
        }
    }

    /// The meters snapshots are compiled with; `None` when metrics are off.
    pub fn meter_registry(&self) -> Option<&MeterRegistry> {
        self.metrics_enabled.then_some(&self.meters)
    }
}
