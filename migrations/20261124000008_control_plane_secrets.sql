-- Secrets the control plane keeps for itself, by name, shared by every replica of one
-- database. 'form' signs the tokens of the dashboard's forms shown before sign-in (sign-in
-- and setup), so that a token planted in a browser by anything on the same host, which the
-- control plane never issued, is refused; a form served by one replica is accepted by any.
-- The first replica that needs a secret creates it.
CREATE TABLE control_plane_secrets (
    name       text PRIMARY KEY,
    secret     bytea NOT NULL CHECK (length(secret) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
