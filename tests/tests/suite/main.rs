//! Gatehouse end to end, in one test binary so that the tests link once: a control plane
//! on a fresh database, proxies, upstreams and the `gatehouse` binary itself, over real
//! sockets. The modules follow the product; a filter runs one part, for instance
//! `cargo test -p gatehouse-tests --test suite -- dashboard::` (`just chaos` runs
//! `faults::`).
//!
//! Every test runs in this one process, beside others on parallel threads: state is
//! per test (a database, ports, folders of its own), and tests that load the machine or
//! measure time hold a guard of `gatehouse_tests::serial`.

mod admin_api;
mod authorizers;
mod dashboard;
mod faults;
mod fuzz_regressions;
mod keys;
mod metrics;
mod open_loop;
mod proxy;
mod secrets_in_logs;
mod websocket;
