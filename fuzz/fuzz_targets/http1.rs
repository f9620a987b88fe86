//! Fuzz target: raw bytes as an HTTP/1 client connection to a proxy running in-process.
//! The checks live in `gatehouse_tests::fuzzing::http1`, which the tests replay.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzzing::http1(data));
