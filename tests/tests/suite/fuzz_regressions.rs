//! Replays the fuzzers' committed inputs under a stable `cargo test`: the hand-written
//! seeds (`fuzz/seeds/<target>/`) and every crasher a fuzzer found (`fuzz/regressions/
//! <target>/`), through the same functions the fuzz targets call, so neither the fixes nor
//! the targets' checks can rot. No database needed.

use std::path::{Path, PathBuf};

use gatehouse_tests::fuzzing::TARGETS;
use gatehouse_tests::serial::timed_blocking;

/// Runs every committed input of `target` through its fuzz target's body.
fn replay(target: &str) {
    let (_, run) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target {target}"));
    let inputs = inputs(target);
    assert!(
        !inputs.is_empty(),
        "{target} has no committed seeds or regressions"
    );
    for input in inputs {
        let bytes = std::fs::read(&input).expect("readable input");
        eprintln!("replaying {}", input.display());
        run(&bytes);
    }
}

/// The files under `fuzz/seeds/<target>` and `fuzz/regressions/<target>`, sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files: Vec<PathBuf> = ["seeds", "regressions"]
        .iter()
        .filter_map(|kind| std::fs::read_dir(fuzz.join(kind).join(target)).ok())
        .flatten()
        .map(|entry| entry.expect("readable folder").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn route_key_inputs_parse_print_back_and_match_like_a_plain_matcher() {
    replay("route_key");
}

#[test]
fn substitution_inputs_never_let_a_parameter_move_the_upstream() {
    replay("substitution");
}

#[test]
fn selection_expression_inputs_select_what_a_walk_of_the_fields_selects() {
    replay("selection_expression");
}

#[test]
fn snapshot_inputs_decode_and_compile_or_are_refused_without_a_panic() {
    replay("snapshot");
}

#[test]
fn http1_inputs_leave_the_proxy_answering() {
    let _timed = timed_blocking();
    replay("http1");
}

#[test]
fn every_fuzz_target_has_a_test_here() {
    let here = include_str!("fuzz_regressions.rs");
    for (name, _) in TARGETS {
        assert!(
            here.contains(&format!("replay(\"{name}\")")),
            "add a test replaying {name}"
        );
    }
}
