# Gatehouse tasks. `just` alone lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# PostgreSQL (private under .gatehouse/, or $DATABASE_URL), the control plane on :8001,
# one proxy on :8000 (status :8100) and a demo upstream on :8080. The first run compiles
# a release build: about 8 minutes on 2 cores. The binary is then target/release/gatehouse
# (`gatehouse admin ...` from the README is that binary, or `cargo run -q -p gatehouse --`).
# Start everything.
run *ARGS:
    @[ -x target/release/gatehouse ] || echo "First run: compiling a release build of Gatehouse, about 8 minutes on 2 cores." >&2
    cargo run --release --locked -p gatehouse -- up {{ARGS}}

# Without $DATABASE_URL, a private PostgreSQL is started under target/; without
# $REDIS_URL, a private Redis on 127.0.0.1:6391. Browser tests (screenshots in
# target/tmp/dashboard-screenshots) need Chromium and chromedriver, installed here when
# root with apt-get. The end-to-end tests are one binary, `suite` (tests/tests/suite),
# whose modules follow the product: `cargo test -p gatehouse-tests --test suite -- keys::`
# runs a part of it. Every test binary runs, and a summary line ends the output.
# Run every test.
test:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x "${CHROMEDRIVER:-/usr/bin/chromedriver}" ] || [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get install -y -q chromium chromium-driver >/dev/null \
                || (apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null)
        else
            echo "the browser tests need Chromium and chromedriver: install them (Debian: apt-get install chromium chromium-driver) or set CHROMIUM and CHROMEDRIVER" >&2
            exit 1
        fi
    fi
    if ! python3 -c "import botocore" >/dev/null 2>&1; then
        python3 -m pip install --quiet botocore \
            || { echo "the SigV4 test needs AWS's botocore: pip install botocore" >&2; exit 1; }
    fi
    if ! python3 -c "import jwt, cryptography" >/dev/null 2>&1; then
        python3 -m pip install --quiet pyjwt cryptography \
            || { echo "the JWT tests mint tokens with PyJWT: pip install pyjwt cryptography" >&2; exit 1; }
    fi
    mkdir -p target
    # The test binaries, and with them target/debug/gatehouse (it starts the private
    # PostgreSQL, and the fault tests run it as separate processes), in one build with
    # cargo's progress shown: from scratch it takes minutes.
    [ -x target/debug/gatehouse ] || echo "First run: building Gatehouse and its tests, about 6 minutes on 2 cores." >&2
    cargo build --workspace --locked --bins --tests
    source tests/scripts/services.sh
    status=0
    cargo test --workspace --locked --no-fail-fast --lib --bins --tests 2>&1 | tee target/test-output.txt || status=$?
    awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' target/test-output.txt
    exit "$status"

# Control plane killed under traffic through two proxies, proxy restarts on a disk cache
# (whole and damaged), PostgreSQL stopped and started, upstreams failing mid-body, SIGTERM
# under load, a redeploy every 100 ms for $CHAOS_REDEPLOY_SECS s (default 60; `just test`
# runs the same tests with 5 s), and the client limits.
# The fault suite at full length.
chaos:
    #!/usr/bin/env bash
    set -euo pipefail
    # Built as `just test` builds them (the workspace's features), so that neither
    # recompiles what the other built.
    cargo build --workspace --locked --bin gatehouse --test suite
    source tests/scripts/services.sh
    CHAOS_REDEPLOY_SECS="${CHAOS_REDEPLOY_SECS:-60}" cargo test --workspace --locked \
        --test suite -- faults:: --nocapture

# Licenses, banned crates and sources must pass, and so must the RustSec advisories: from
# github.com, or where it cannot be reached from the snapshot ../shared/rustsec-advisory-db.bundle
# (RUSTSEC_BUNDLE), whose date is printed. Without either the recipe fails, unless
# AUDIT_OFFLINE_OK=1, which checks the rest and says loudly that advisories were not checked.
# The dependency policy of deny.toml, with cargo-deny.
audit:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
    cargo deny --locked check bans licenses sources
    # Where cargo-deny keeps its databases (deny.toml's db-path reads this).
    export GATEHOUSE_ADVISORY_DBS="$PWD/target/advisory-dbs"
    if cargo deny fetch db; then
        cargo deny --locked --offline check advisories
        exit 0
    fi
    bundle="${RUSTSEC_BUNDLE:-../shared/rustsec-advisory-db.bundle}"
    if [ -f "$bundle" ]; then
        # A fresh clone of the snapshot where cargo-deny looks for its copy of the default
        # database (github.com/rustsec/advisory-db): a folder named by that URL's last
        # segment and hash. Should cargo-deny name it otherwise, the check fails: loudly.
        export GATEHOUSE_ADVISORY_DBS="$PWD/target/advisory-dbs-offline"
        db="$GATEHOUSE_ADVISORY_DBS/advisory-db-3157b0e258782691"
        rm -rf "$db"
        mkdir -p "$GATEHOUSE_ADVISORY_DBS"
        git -c init.defaultBranch=main clone --quiet "$bundle" "$db"
        echo "the RustSec advisory database is unreachable: checking against the snapshot in $bundle, of $(git -C "$db" log -1 --format=%cI)" >&2
        # Offline, cargo-deny reads the crate graph from the local registry only.
        cargo fetch --locked --quiet
        cargo deny --locked --offline check advisories
    elif [ "${AUDIT_OFFLINE_OK:-}" = 1 ]; then
        echo "WARNING: the RustSec advisory database is unreachable and $bundle is missing; known advisories were NOT checked" >&2
    else
        echo "the RustSec advisory database is unreachable and $bundle is missing; AUDIT_OFFLINE_OK=1 checks the rest only" >&2
        exit 1
    fi

# With the binary `just test` built: `cargo run -p gatehouse` would build it again, with
# other features.
# Stop the private PostgreSQL and Redis that `just test` started.
test-db-stop:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -x target/debug/gatehouse ] || cargo build --workspace --locked --bin gatehouse
    target/debug/gatehouse postgres --data-dir target/test-data --stop
    redis-cli -p 6391 shutdown nosave || true

# Formatting and lints, warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# The proxy against nginx as a reverse proxy in the same run (throughput, CPU per
# request, added latency, config propagation under load, memory, routing cost; raw
# results in bench/results/), then what a million API keys cost against ten, what metrics
# and access logs cost, and WebSocket memory and round trips.
# Benchmarks; `just bench --quick` runs the proxy part only, briefly.
bench *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -z "${DATABASE_URL:-}" ]; then
        # With the workspace's features, as `just test` builds it, so neither rebuilds it.
        cargo build --workspace --locked --bin gatehouse
        DATABASE_URL="$(target/debug/gatehouse postgres --data-dir target/test-data)"
        export DATABASE_URL
    fi
    missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    [ -x "${NGINX:-/usr/sbin/nginx}" ] || missing+=(nginx-light)
    if [ "${#missing[@]}" -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get install -y -q "${missing[@]}" >/dev/null \
                || (apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null)
        else
            echo "the benchmarks need ${missing[*]}: install them (Debian: apt-get install ${missing[*]})" >&2
            exit 1
        fi
    fi
    # Debian starts the nginx service it installs; the benchmark runs its own.
    if [ -d /run/systemd/system ]; then systemctl stop nginx 2>/dev/null || true; fi
    cargo build --release --locked -q -p gatehouse
    if [ "{{ARGS}}" = "--quick" ]; then
        cargo bench --locked -p gatehouse-tests --bench proxy -- --quick
        exit 0
    fi
    cargo bench --locked -p gatehouse-tests --bench proxy
    cargo bench --locked -p gatehouse-tests --bench auth
    cargo bench --locked -p gatehouse-tests --bench keys
    cargo bench --locked -p gatehouse-tests --bench metrics
    cargo bench --locked -p gatehouse-tests --bench websocket

# Inputs found go to fuzz/corpus/<target> (ignored); the committed seeds in fuzz/seeds/<target>
# are read, never written. A crash fails the run and leaves its input in fuzz/artifacts/:
# fix it, then commit the input under fuzz/regressions/<target>/ so `just test` replays it.
# Fuzzing with cargo-fuzz (nightly): each target for $FUZZ_SECONDS s (default 60), or TARGET.
fuzz TARGET="":
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v rustup >/dev/null || ! rustup toolchain list | grep -q '^nightly'; then
        echo "fuzzing needs a nightly Rust toolchain (for the sanitizer and coverage flags): install it with 'rustup toolchain install nightly' (rustup: https://rustup.rs)" >&2
        exit 1
    fi
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    seconds="${FUZZ_SECONDS:-60}"
    # Target and largest input, in bytes.
    targets=(route_key:4096 substitution:4096 selection_expression:16384 snapshot:65536 http1:16384)
    ran=0
    failed=()
    for entry in "${targets[@]}"; do
        target="${entry%%:*}"
        max_len="${entry#*:}"
        if [ -n "{{TARGET}}" ] && [ "{{TARGET}}" != "$target" ]; then continue; fi
        ran=1
        mkdir -p "fuzz/corpus/$target"
        echo "fuzzing $target for ${seconds}s"
        cargo +nightly fuzz run --debug-assertions "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
            -max_total_time="$seconds" -max_len="$max_len" -timeout=30 -print_final_stats=1 \
            || failed+=("$target")
    done
    if [ "$ran" = 0 ]; then
        echo "no fuzz target {{TARGET}}; the targets: ${targets[*]%%:*}" >&2
        exit 1
    fi
    if [ "${#failed[@]}" -gt 0 ]; then
        echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
        exit 1
    fi

# The control plane runs on a free port against a scratch database (on the server of
# $DATABASE_URL, else the private PostgreSQL of `just test`), dropped afterwards; a report
# goes to target/fuzz-api/. Every check except positive_data_acceptance: cross-field and
# cross-resource rules (a route key's parameters in its integration URI, a deployment of
# the same API) are 422s that a JSON schema cannot state, and JSON Schema counts 5.0 as an
# integer where the API wants 5. Nor use_after_free on GET /tokens/{id}: a revoked token
# stays readable. $FUZZ_API_EXAMPLES cases per operation and phase (default 50),
# $FUZZ_API_SEED to replay a run.
# Property-based tests of the admin API with schemathesis, from its OpenAPI document.
fuzz-api:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! python3 -c "import schemathesis" >/dev/null 2>&1; then
        python3 -m pip install --quiet schemathesis \
            || { echo "fuzz-api needs schemathesis: python3 -m pip install schemathesis" >&2; exit 1; }
    fi
    if ! command -v psql >/dev/null; then
        echo "fuzz-api creates its scratch database with psql: install the PostgreSQL client (Debian: apt-get install postgresql-client)" >&2
        exit 1
    fi
    cargo build --workspace --locked --bin gatehouse
    server_url="${DATABASE_URL:-}"
    if [ -z "$server_url" ]; then
        server_url="$(target/debug/gatehouse postgres --data-dir target/test-data)"
    fi
    # The same URL with another database: the path after the host, before any query.
    with_database() {
        local base="${server_url%%\?*}" query=""
        if [ "$base" != "$server_url" ]; then query="?${server_url#*\?}"; fi
        local rest="${base#*://}"
        printf '%s://%s/%s%s' "${base%%://*}" "${rest%%/*}" "$1" "$query"
    }
    database="fuzz_api_$(date +%s)_$$"
    psql "$server_url" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $database"
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    token="fuzz-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    mkdir -p target/fuzz-api
    DATABASE_URL="$(with_database "$database")" GATEHOUSE_ADMIN_TOKEN="$token" \
        GATEHOUSE_NODE_TOKEN="node-$token" RUST_LOG="${RUST_LOG:-warn}" \
        target/debug/gatehouse control-plane --control-plane-listen "127.0.0.1:$port" \
        >target/fuzz-api/control-plane.log 2>&1 &
    control_plane=$!
    stop() {
        kill "$control_plane" 2>/dev/null && wait "$control_plane" 2>/dev/null || true
        psql "$server_url" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
    }
    trap stop EXIT
    url="http://127.0.0.1:$port"
    for _ in $(seq 100); do
        if python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url/readyz" 2>/dev/null; then break; fi
        if ! kill -0 "$control_plane" 2>/dev/null; then
            echo "the control plane stopped; its log:" >&2
            cat target/fuzz-api/control-plane.log >&2
            exit 1
        fi
        sleep 0.1
    done
    seed=()
    if [ -n "${FUZZ_API_SEED:-}" ]; then seed=(--seed "$FUZZ_API_SEED"); fi
    # From target/fuzz-api: schemathesis keeps a cache in the folder it runs in.
    cd target/fuzz-api
    # Checks go in the file, not on the command line, where they would override the
    # per-operation exception: DELETE /tokens/{id} revokes a token, which stays readable
    # with status `revoked` (use_after_free expects a 404 there).
    printf '%s\n' '[checks]' 'enabled = true' 'positive_data_acceptance.enabled = false' \
        '[[operations]]' 'include-operation-id = "read_token"' \
        'checks.use_after_free.enabled = false' >schemathesis.toml
    python3 -m schemathesis.cli --config-file schemathesis.toml run "$url/api/v1/openapi.json" \
        --header "Authorization: Bearer $token" \
        --max-examples "${FUZZ_API_EXAMPLES:-50}" "${seed[@]}" \
        --request-timeout 10 --generation-database none \
        --report junit --report-dir . \
        --no-color
