//! Fuzz target: route keys parsed, printed back and looked up in a compiled route table.
//! The checks live in `gatehouse_tests::fuzzing::route_key`, which the tests replay.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzzing::route_key(data));
