//! What is measured of the traffic a proxy serves, and where it goes: route meters and
//! per-request recordings (reported to the control plane as minute entries through an
//! outbox), access log lines, and the proxy's own telemetry for Prometheus.

pub mod access_log;
pub mod handoff;
pub mod meters;
pub mod outbox;
pub mod recording;
pub mod reporter;
pub mod telemetry;
