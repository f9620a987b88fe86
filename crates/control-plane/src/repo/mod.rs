//! Repositories: every SQL statement of the control plane lives here, in functions that
//! take a connection or a transaction, so handlers stay free of SQL and the admin API,
//! the sync endpoint and the dashboard share one set of queries.

pub mod apis;
pub mod config_state;
pub mod deployments;
pub mod keys;
pub mod nodes;
pub mod plans;
pub mod routes;
pub mod stages;
pub mod usage;
