-- Securing APIs: an API's authorizers (JWT and REQUEST, AWS HTTP APIs' kinds), the
-- authorization each route asks for, the API's CORS configuration, and the copies a
-- deployment freezes of them, as it freezes routes. Parameter mappings live inside each
-- route's integration and are frozen with it.

CREATE TABLE authorizers (
    id          uuid PRIMARY KEY,
    api_id      uuid NOT NULL REFERENCES apis (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    -- The checked definition (gatehouse_model::AuthorizerSpec), name included.
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT authorizers_api_name_key UNIQUE (api_id, name),
    CONSTRAINT authorizers_api_id_id_key UNIQUE (api_id, id)
);

-- A route can only name an authorizer of its own API, and an authorizer a route uses
-- cannot be deleted (NO ACTION, so deleting the API still removes both).
ALTER TABLE routes
    ADD COLUMN authorization_type text NOT NULL DEFAULT 'NONE'
        CHECK (authorization_type IN ('NONE', 'JWT', 'CUSTOM')),
    ADD COLUMN authorizer_id uuid,
    ADD COLUMN authorization_scopes text[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT routes_authorizer_fkey FOREIGN KEY (api_id, authorizer_id)
        REFERENCES authorizers (api_id, id),
    ADD CONSTRAINT routes_authorizer_check
        CHECK ((authorization_type = 'NONE') = (authorizer_id IS NULL));
CREATE INDEX routes_authorizer_idx ON routes (api_id, authorizer_id) WHERE authorizer_id IS NOT NULL;

ALTER TABLE apis ADD COLUMN cors_configuration jsonb;

ALTER TABLE deployments
    ADD COLUMN authorizers jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN cors_configuration jsonb;
