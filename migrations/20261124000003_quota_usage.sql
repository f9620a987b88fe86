-- Quota usage per key, plan and period, counted from proxy reports. A report carries a
-- batch id: a retried batch is counted once.

CREATE TABLE quota_usage (
    key_id       uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    plan_id      uuid NOT NULL REFERENCES usage_plans (id) ON DELETE CASCADE,
    period_start timestamptz NOT NULL,
    used         bigint NOT NULL CHECK (used >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT quota_usage_pkey PRIMARY KEY (key_id, plan_id, period_start)
);
CREATE INDEX quota_usage_period_idx ON quota_usage (period_start);

CREATE TABLE usage_batches (
    id          uuid PRIMARY KEY,
    node_id     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_batches_received_idx ON usage_batches (received_at);
