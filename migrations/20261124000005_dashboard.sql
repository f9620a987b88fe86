-- Dashboard users, their server-side sessions, failed sign-ins (for throttling) and the
-- audit log of every change made from the dashboard or the admin API.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Names are unique whatever their case: "Ada" and "ada" are one user.
CREATE UNIQUE INDEX users_name_key ON users (lower(name));

-- A session is known by the SHA-256 of its cookie value: a copy of this table does not
-- let anyone sign in.
CREATE TABLE sessions (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    address     text NOT NULL,
    user_agent  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Failed sign-ins within the throttling window, by (lower-cased) user name and address.
CREATE TABLE signin_failures (
    id        bigserial PRIMARY KEY,
    user_name text NOT NULL,
    address   text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signin_failures_user ON signin_failures (user_name, at);
CREATE INDEX signin_failures_address ON signin_failures (address, at);

CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    -- 'dashboard', 'api' or 'cli'
    source  text NOT NULL,
    -- What was done, as "METHOD /route/template", e.g. "POST /apis/{api_id}/routes".
    action  text NOT NULL,
    -- The path acted on, with its ids.
    target  text NOT NULL,
    status  smallint NOT NULL,
    -- The request body with secrets removed, when there was one.
    detail  jsonb
);
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);
