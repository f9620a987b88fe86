# Gatehouse tasks. `just` alone lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Start everything: PostgreSQL (private under .gatehouse/, or $DATABASE_URL), the control
# plane on :8001, one proxy on :8000 (status :8100) and a demo upstream on :8080.
run *ARGS:
    cargo run --release --locked -p gatehouse -- up {{ARGS}}

# Run every test. Without $DATABASE_URL, a private PostgreSQL is started under target/;
# without $REDIS_URL, a private Redis on 127.0.0.1:6391. Browser tests (screenshots in
# target/tmp/dashboard-screenshots) need Chromium and chromedriver, installed here when
# root with apt-get.
test:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -z "${DATABASE_URL:-}" ]; then
        cargo build --locked -q -p gatehouse
        DATABASE_URL="$(target/debug/gatehouse postgres --data-dir target/test-data)"
        export DATABASE_URL
    fi
    if [ -z "${REDIS_URL:-}" ]; then
        if ! command -v redis-server >/dev/null; then
            echo "Redis is needed for the shared-quota tests: install redis-server or set REDIS_URL" >&2
            exit 1
        fi
        mkdir -p target/test-data
        if ! (exec 3<>/dev/tcp/127.0.0.1/6391) 2>/dev/null; then
            redis-server --bind 127.0.0.1 --port 6391 --daemonize yes --save '' --appendonly no \
                --dir "$PWD/target/test-data" --logfile "$PWD/target/test-data/redis.log"
            for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/6391) 2>/dev/null && break; sleep 0.1; done
        fi
        export REDIS_URL=redis://127.0.0.1:6391
    fi
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
    mkdir -p target
    cargo test --workspace --locked --lib --bins --tests 2>&1 | tee target/test-output.txt
    awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' target/test-output.txt

# Stop the private PostgreSQL and Redis that `just test` started.
test-db-stop:
    cargo run --locked -q -p gatehouse -- postgres --data-dir target/test-data --stop
    -redis-cli -p 6391 shutdown nosave

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
        cargo build --locked -q -p gatehouse
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
    cargo bench --locked -p gatehouse-tests --bench keys
    cargo bench --locked -p gatehouse-tests --bench metrics
    cargo bench --locked -p gatehouse-tests --bench websocket
