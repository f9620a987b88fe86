//! The pieces of the `gatehouse` binary that tests reuse: database setup, the private
//! PostgreSQL `up` starts, the demo upstream, and the runners of each subcommand.

#![forbid(unsafe_code)]

pub mod cli;
pub mod database;
pub mod demo;
pub mod embedded_pg;
pub mod open_files;
pub mod run;
pub mod secrets;
