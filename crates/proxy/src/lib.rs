//! The Gatehouse proxy: serves API traffic from an in-memory snapshot of the deployed
//! configuration, which it long-polls from the control plane and keeps on disk.
//!
//! The request path touches no lock and no database: it loads the compiled snapshot
//! from one `ArcSwap`, finds the stage by hash and the route in a prefix tree, and either
//! answers a mock or streams the request to the upstream over a pooled client.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod admission;
pub mod body_timeout;
pub mod cache;
pub mod client_body;
pub mod compiled;
pub mod config;
pub mod connection_limit;
pub mod control_plane_client;
pub mod counted_connector;
pub mod drain;
pub mod errors;
pub mod forward;
pub mod handler;
pub mod handoff;
pub mod limiter;
pub mod meters;
pub mod metrics_outbox;
pub mod metrics_reporter;
pub mod passthrough;
pub mod poller;
pub mod quota;
pub mod ratelimit_headers;
pub mod recording;
pub mod request_id;
pub mod server;
pub mod shared_quota;
pub mod sigv4;
pub mod status;
pub mod telemetry;
pub mod usage_reporter;
pub mod websocket;
pub mod well_formed;
pub mod ws_connections;
pub mod ws_events;

pub use config::ProxyConfig;
pub use server::{start, RunningProxy};
