# Sourced by the test recipes once they have built the tests: makes sure DATABASE_URL and
# REDIS_URL point at running servers. Without DATABASE_URL, a private PostgreSQL is started
# under target/test-data from the machine's own binaries; without REDIS_URL, a private
# Redis on 127.0.0.1:6391.

if [ -z "${DATABASE_URL:-}" ]; then
    # target/debug/gatehouse starts it. The recipes build it with the tests, with the
    # features the tests resolve, so that no crate is compiled twice; sourced on its own,
    # this builds it (and the end-to-end tests) when it is missing.
    if [ ! -x target/debug/gatehouse ]; then
        cargo build --workspace --locked --bin gatehouse --test suite
    fi
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
