-- API keys (stored as SHA-256 hashes only), usage plans, the API stages a plan covers and
-- the keys attached to it.

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    prefix       text NOT NULL,
    hash         text NOT NULL CONSTRAINT api_keys_hash_key UNIQUE,
    enabled      boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

CREATE TABLE usage_plans (
    id             uuid PRIMARY KEY,
    name           text NOT NULL CONSTRAINT usage_plans_name_key UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    description    text NOT NULL DEFAULT '',
    throttle_rate  double precision CHECK (throttle_rate > 0),
    throttle_burst integer CHECK (throttle_burst > 0),
    quota_limit    bigint CHECK (quota_limit > 0),
    quota_period   text CHECK (quota_period IN ('DAY', 'WEEK', 'MONTH')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((throttle_rate IS NULL) = (throttle_burst IS NULL)),
    CHECK ((quota_limit IS NULL) = (quota_period IS NULL))
);

-- A plan covers API stages; deleting the stage removes it from the plan.
CREATE TABLE usage_plan_stages (
    plan_id         uuid NOT NULL REFERENCES usage_plans (id) ON DELETE CASCADE,
    api_id          uuid NOT NULL,
    stage           text NOT NULL,
    route_throttles jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT usage_plan_stages_pkey PRIMARY KEY (plan_id, api_id, stage),
    CONSTRAINT usage_plan_stages_stage_fkey FOREIGN KEY (api_id, stage)
        REFERENCES stages (api_id, name) ON DELETE CASCADE
);
CREATE INDEX usage_plan_stages_stage_idx ON usage_plan_stages (api_id, stage);

-- Keys attached to plans. A plan with keys cannot be deleted.
CREATE TABLE usage_plan_keys (
    plan_id    uuid NOT NULL CONSTRAINT usage_plan_keys_plan_fkey REFERENCES usage_plans (id) ON DELETE RESTRICT,
    key_id     uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_plan_keys_pkey PRIMARY KEY (plan_id, key_id)
);
CREATE INDEX usage_plan_keys_key_idx ON usage_plan_keys (key_id);

-- Every stage throttles all its traffic; AWS's account default unless set.
ALTER TABLE stages
    ADD COLUMN throttle_rate double precision NOT NULL DEFAULT 10000 CHECK (throttle_rate > 0),
    ADD COLUMN throttle_burst integer NOT NULL DEFAULT 5000 CHECK (throttle_burst > 0);
