//! Fuzz target: WebSocket route selection expressions, parsed and evaluated on messages.
//! The checks live in `gatehouse_tests::fuzzing::selection_expression`, which the tests replay.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzzing::selection_expression(data));
