-- Tokens for the admin API (roles 'admin' and 'viewer') and for proxies ('node'), issued
-- through the admin API beside the bootstrap tokens of the configuration.
--
-- A token is known by the SHA-256 of its value, never by the value itself. A fast hash is
-- right here, unlike for passwords: tokens are 256 bits from the operating system's
-- random source, so there is nothing to guess and no need for a slow, salted hash, while
-- every request can find its token with one indexed lookup.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    role         text NOT NULL CHECK (role IN ('admin', 'viewer', 'node')),
    -- The SHA-256 of the token; the unique constraint is the index requests look it up by.
    digest       bytea NOT NULL CONSTRAINT api_tokens_digest_key UNIQUE CHECK (length(digest) = 32),
    -- The first characters of the token, to tell tokens apart; not enough to use one.
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Who issued it, as the audit log names them.
    created_by   text NOT NULL,
    -- When it stops working: set at creation, or by rotation (the end of the overlap).
    expires_at   timestamptz,
    -- Set by revocation; the token stops working at once.
    revoked_at   timestamptz,
    -- Updated at most once a minute per token.
    last_used_at timestamptz,
    -- The token this one replaced, when it was issued by rotation.
    rotated_from uuid REFERENCES api_tokens (id)
);
CREATE INDEX api_tokens_created ON api_tokens (created_at, id);
