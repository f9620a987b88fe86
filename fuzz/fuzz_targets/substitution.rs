//! Fuzz target: path parameters and stage variables substituted into integration URIs.
//! The checks live in `gatehouse_tests::fuzzing::substitution`, which the tests replay.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzzing::substitution(data));
