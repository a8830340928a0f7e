-- One schema for SQLite and PostgreSQL: ids are TEXT (UUID v7), money is BIGINT cents, quantities are
-- BIGINT shares, times are BIGINT microseconds since the Unix epoch. No AUTOINCREMENT anywhere: tables that
-- take ON CONFLICT DO NOTHING are keyed by what makes a row unique.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    next_event_seq BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);

-- asset is 'CASH' (in cents) or a symbol (in shares).
CREATE TABLE balances (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    asset TEXT NOT NULL,
    available BIGINT NOT NULL CHECK (available >= 0),
    reserved BIGINT NOT NULL CHECK (reserved >= 0),
    PRIMARY KEY (account_id, asset)
);

-- Every movement of money or shares, keyed by the effect it records ('order:{id}:reserve', ...), so the
-- same effect applied twice is refused by the key. Balances always equal the sum of these deltas.
CREATE TABLE ledger_entries (
    entry_key TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    asset TEXT NOT NULL,
    order_id TEXT,
    available_delta BIGINT NOT NULL,
    reserved_delta BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ledger_entries_by_account ON ledger_entries (account_id, asset);
CREATE INDEX ledger_entries_by_order ON ledger_entries (order_id);

-- A stored answer per (account, Idempotency-Key).
CREATE TABLE idempotency_keys (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    location TEXT,
    response_body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, idem_key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);

-- The projection of each order's action log, for reads.
CREATE TABLE orders (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    client_order_id TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    order_type TEXT NOT NULL,
    qty BIGINT NOT NULL CHECK (qty > 0),
    limit_price BIGINT,
    -- The price sent to the exchange: the limit, or for a market buy the protection limit.
    protection_price BIGINT,
    status TEXT NOT NULL,
    filled_qty BIGINT NOT NULL DEFAULT 0 CHECK (filled_qty >= 0 AND filled_qty <= qty),
    filled_notional BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX orders_by_account ON orders (account_id, created_at);
CREATE INDEX orders_by_status ON orders (status);

CREATE TABLE order_actions (
    order_id TEXT NOT NULL REFERENCES orders (id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (order_id, seq)
);

CREATE TABLE fills (
    order_id TEXT NOT NULL REFERENCES orders (id),
    fill_id TEXT NOT NULL,
    qty BIGINT NOT NULL CHECK (qty > 0),
    price BIGINT NOT NULL CHECK (price > 0),
    source TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (order_id, fill_id)
);

-- Events for the live feed, written in the same transaction as what caused them. payload is the exact
-- frame sent to clients, so a replayed event equals the live one.
CREATE TABLE outbox (
    account_id TEXT NOT NULL REFERENCES accounts (id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    published_at BIGINT,
    PRIMARY KEY (account_id, seq)
);
CREATE INDEX outbox_unpublished ON outbox (created_at) WHERE published_at IS NULL;

-- Push events the engine could not match, or actions the transition table refused: kept for inspection.
CREATE TABLE alarms (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    order_id TEXT,
    detail TEXT NOT NULL,
    at BIGINT NOT NULL
);
