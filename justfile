# Gatehouse tasks. `just` alone lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Start everything: PostgreSQL (private under .gatehouse/, or $DATABASE_URL), the control
# plane on :8001, one proxy on :8000 (status :8100) and a demo upstream on :8080.
run *ARGS:
    cargo run --release --locked -p gatehouse -- up {{ARGS}}

# Run every test. Without $DATABASE_URL, a private PostgreSQL is started under target/.
test:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -z "${DATABASE_URL:-}" ]; then
        cargo build --locked -q -p gatehouse
        DATABASE_URL="$(target/debug/gatehouse postgres --data-dir target/test-data)"
        export DATABASE_URL
    fi
    mkdir -p target
    cargo test --workspace --locked --lib --bins --tests 2>&1 | tee target/test-output.txt
    awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' target/test-output.txt

# Stop the private PostgreSQL that `just test` started.
test-db-stop:
    cargo run --locked -q -p gatehouse -- postgres --data-dir target/test-data --stop

# Formatting and lints, warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Benchmarks: config propagation and proxy overhead against a direct call, in one run.
bench:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -z "${DATABASE_URL:-}" ]; then
        cargo build --locked -q -p gatehouse
        DATABASE_URL="$(target/debug/gatehouse postgres --data-dir target/test-data)"
        export DATABASE_URL
    fi
    cargo bench --locked -p gatehouse-tests --bench gateway
