-- Traffic metrics reported by proxies, in minute buckets rolled up to hours.
--
-- Each row is one series in one time bucket. A series is a scope and a subject:
--   scope 0: all traffic          (api_id nil, stage '', subject nil)
--   scope 1: one API              (api_id,     stage '', subject nil)
--   scope 2: one API stage        (api_id,     stage,    subject nil)
--   scope 3: one route of a stage (api_id,     stage,    subject = route id)
--   scope 4: one API key          (api_id nil, stage '', subject = key id)
-- Latency histograms are arrays of counts per fixed log-scale bucket (see the model's
-- metrics module), so rows merge exactly by adding arrays element by element.

-- Sums of counters saturate instead of failing: one absurd report must not stop every
-- later one from being stored. Both arguments are never negative.
CREATE FUNCTION gatehouse_add(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a > 9223372036854775807 - b THEN 9223372036854775807 ELSE a + b END
$$;

CREATE FUNCTION gatehouse_hist_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN a IS NULL THEN b
        WHEN b IS NULL THEN a
        ELSE ARRAY(
            SELECT gatehouse_add(coalesce(x, 0), coalesce(y, 0))
            FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
            ORDER BY i)
    END
$$;

CREATE AGGREGATE gatehouse_hist_sum(bigint[]) (
    SFUNC = gatehouse_hist_add,
    STYPE = bigint[]
);

CREATE TABLE traffic (
    scope              smallint NOT NULL CHECK (scope BETWEEN 0 AND 4),
    api_id             uuid NOT NULL,
    subject            uuid NOT NULL,
    stage              text NOT NULL,
    -- Seconds the bucket spans: 60, or 3600 once rolled up.
    resolution         integer NOT NULL CHECK (resolution IN (60, 3600)),
    start              timestamptz NOT NULL,
    count              bigint NOT NULL CHECK (count >= 0),
    errors_4xx         bigint NOT NULL CHECK (errors_4xx >= 0),
    errors_5xx         bigint NOT NULL CHECK (errors_5xx >= 0),
    bytes_in           bigint NOT NULL CHECK (bytes_in >= 0),
    bytes_out          bigint NOT NULL CHECK (bytes_out >= 0),
    latency            bigint[] NOT NULL,
    latency_sum_us     bigint NOT NULL CHECK (latency_sum_us >= 0),
    latency_min_us     bigint,
    latency_max_us     bigint,
    integration        bigint[] NOT NULL,
    integration_sum_us bigint NOT NULL CHECK (integration_sum_us >= 0),
    -- NULL while the histogram beside it is empty.
    integration_min_us bigint,
    integration_max_us bigint,
    CONSTRAINT traffic_pkey PRIMARY KEY (scope, api_id, subject, stage, resolution, start)
) WITH (fillfactor = 80);

-- Rollup and retention walk rows by age.
CREATE INDEX traffic_age_idx ON traffic (resolution, start);

CREATE TABLE traffic_batches (
    id          uuid PRIMARY KEY,
    node_id     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX traffic_batches_received_idx ON traffic_batches (received_at);

-- Per-stage access logs, written by the proxies.
ALTER TABLE stages ADD COLUMN access_log boolean NOT NULL DEFAULT false;
