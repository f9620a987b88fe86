//! Repositories: every SQL statement of the control plane lives here, in functions that
//! take a connection or a transaction, so handlers stay free of SQL and the admin API,
//! the sync endpoint and the dashboard share one set of queries.

pub mod apis;
pub mod audit;
pub mod authorizers;
pub mod config_state;
pub mod deployments;
pub mod keys;
pub mod nodes;
pub mod plans;
pub mod routes;
pub mod secrets;
pub mod sessions;
pub mod stages;
pub mod tokens;
pub mod traffic;
pub mod usage;
pub mod users;

use gatehouse_model::Throttle;

/// A throttle as two columns: `(rate, burst)`. Bursts are validated to at most 10^9, which
/// fits a PostgreSQL integer.
pub fn throttle_columns(throttle: Throttle) -> (f64, i32) {
    (
        throttle.rate,
        i32::try_from(throttle.burst).unwrap_or(i32::MAX),
    )
}

/// A throttle read back from its two columns (a CHECK keeps the burst above 0).
pub fn throttle_from_columns(rate: f64, burst: i32) -> Throttle {
    Throttle {
        rate,
        burst: u32::try_from(burst).unwrap_or(1),
    }
}
