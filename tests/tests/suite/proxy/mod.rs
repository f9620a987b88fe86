//! The proxy with its control plane: deployments served and rolled back, the disk cache,
//! upstream failures, broken snapshots refused, and the sync link over TLS.

mod serving;
mod sync;
mod tls;
