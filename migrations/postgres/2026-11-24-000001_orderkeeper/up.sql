-- The schema of migrations/sqlite, as it stands after all of them, for PostgreSQL. Ids are TEXT (UUID
-- v7), money BIGINT cents, quantities BIGINT shares, times BIGINT microseconds since the Unix epoch.

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

-- Every movement of money or shares, keyed by the effect it records.
CREATE TABLE ledger_entries (
    entry_key TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    asset TEXT NOT NULL,
    order_id TEXT,
    available_delta BIGINT NOT NULL,
    reserved_delta BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ledger_entries_by_order ON ledger_entries (order_id);

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

CREATE TABLE orders (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    client_order_id TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    order_type TEXT NOT NULL,
    qty BIGINT NOT NULL CHECK (qty > 0),
    limit_price BIGINT,
    protection_price BIGINT,
    status TEXT NOT NULL,
    filled_qty BIGINT NOT NULL DEFAULT 0 CHECK (filled_qty >= 0 AND filled_qty <= qty),
    filled_notional BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    placement_sent BOOLEAN NOT NULL DEFAULT FALSE,
    last_action_seq BIGINT NOT NULL DEFAULT 0
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

CREATE TABLE alarms (
    alarm_key TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    order_id TEXT,
    detail TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    count BIGINT NOT NULL CHECK (count >= 1)
);
CREATE INDEX alarms_by_order ON alarms (order_id);

CREATE TABLE demo_account (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id),
    token TEXT NOT NULL
);

CREATE TABLE exchange_events (
    event_key TEXT PRIMARY KEY NOT NULL,
    event_id TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    order_id TEXT,
    received_at BIGINT NOT NULL
);
CREATE INDEX exchange_events_by_client_order_id ON exchange_events (client_order_id);
