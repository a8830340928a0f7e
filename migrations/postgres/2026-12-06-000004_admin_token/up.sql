-- The operator's admin token, as its SHA-256 only: one row, written on the first start (with a
-- generated token, printed once) and replaced whenever an engine starts with --admin-token.
CREATE TABLE admin_token (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    token_hash TEXT NOT NULL,
    set_at BIGINT NOT NULL
);
