//! The Gatehouse proxy: serves API traffic from an in-memory snapshot of the deployed
//! configuration, which it long-polls from the control plane and keeps on disk.
//!
//! The request path touches no lock and no database: it loads the compiled snapshot
//! from one `ArcSwap`, finds the stage by hash and the route in a prefix tree, runs the
//! phases the route was compiled with, and either answers a mock or streams the request
//! to the upstream over a pooled client. `docs/ARCHITECTURE.md` walks the modules:
//!
//! - `request`: the pipeline every request goes through, phase by phase;
//! - `admission`: API keys, throttles, quotas and their `RateLimit` headers;
//! - `snapshot`: the deployed configuration compiled for lookups;
//! - `sync`: keeping that snapshot current (poller, control-plane client, disk cache);
//! - `traffic`: what is measured (meters, recordings, access logs, telemetry, reports);
//! - `upstream`: the pooled client and the header rewriting owed to both sides;
//! - `websocket`: WebSocket APIs, `@connections` and pass-through upgrades;
//! - `server`: listeners, connection limits, drain and the status port;
//! - `state`: what every request and background task shares.

#![forbid(unsafe_code)]

mod admission;
mod authorizers;
pub mod config;
mod request;
mod server;
mod snapshot;
mod state;
mod sync;
mod traffic;
mod upstream;
mod websocket;

pub use config::ProxyConfig;
pub use server::{start, RunningProxy};
/// The disk cache's format, for tools and tests that seed a proxy with a snapshot.
pub use sync::cache;

/// What the benchmarks and fuzzers drive directly: compiling a snapshot, and the checks
/// that keep request paths from climbing out of their upstream's path.
pub use admission::quota::QuotaLedger;
pub use authorizers::Authorizers;
pub use request::dot_segments::{has_dot_segment, makes_dot_segment};
pub use snapshot::CompiledConfig;
pub use traffic::meters::MeterRegistry;
pub use upstream::connector_trusting;
