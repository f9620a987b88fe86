//! Fuzz target: config snapshots through the proxy's decode and compile, as polled or as
//! read from its disk cache. The checks live in `gatehouse_tests::fuzzing::snapshot`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzzing::snapshot(data));
