-- APIs, their routes, immutable deployments, stages pointing at deployments, the proxies
-- that poll us, and the version counter that tells proxies a new snapshot exists.

CREATE TABLE apis (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    slug        text NOT NULL CONSTRAINT apis_slug_key UNIQUE,
    protocol    text NOT NULL CHECK (protocol IN ('HTTP', 'WEBSOCKET')),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE routes (
    id               uuid PRIMARY KEY,
    api_id           uuid NOT NULL REFERENCES apis (id) ON DELETE CASCADE,
    route_key        text NOT NULL,
    api_key_required boolean NOT NULL DEFAULT false,
    integration      jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT routes_api_route_key_key UNIQUE (api_id, route_key)
);

-- A deployment freezes the API's routes as they were; it is never updated.
CREATE TABLE deployments (
    id          uuid PRIMARY KEY,
    api_id      uuid NOT NULL REFERENCES apis (id) ON DELETE CASCADE,
    description text NOT NULL DEFAULT '',
    author      text NOT NULL,
    routes      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deployments_api_id_id_key UNIQUE (api_id, id)
);
CREATE INDEX deployments_api_created_idx ON deployments (api_id, created_at DESC);

-- The composite key makes it impossible for a stage to name another API's deployment,
-- and a deployment in use by a stage cannot be deleted.
CREATE TABLE stages (
    api_id        uuid NOT NULL REFERENCES apis (id) ON DELETE CASCADE,
    name          text NOT NULL,
    deployment_id uuid NOT NULL,
    variables     jsonb NOT NULL DEFAULT '{}',
    description   text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stages_pkey PRIMARY KEY (api_id, name),
    CONSTRAINT stages_deployment_fkey FOREIGN KEY (api_id, deployment_id)
        REFERENCES deployments (api_id, id) ON DELETE RESTRICT
);

CREATE TABLE nodes (
    id             text PRIMARY KEY,
    version        text NOT NULL,
    address        text NOT NULL DEFAULT '',
    config_version bigint,
    config_error   text,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now()
);

-- One row: bumped in the same transaction as every change to what is deployed.
CREATE TABLE config_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint NOT NULL
);
INSERT INTO config_state (singleton, version) VALUES (true, 1);
