-- Pre-trade risk limits per account, set by the operator (NULL: no limit), and halts: one per
-- account and one for every engine on the database (the single row of trading_state). The submit
-- and replace phases read them under the account's lock, so a limit or a halt holds for every
-- order that commits after it.
ALTER TABLE accounts ADD COLUMN max_order_notional BIGINT;
ALTER TABLE accounts ADD COLUMN max_open_orders BIGINT;
ALTER TABLE accounts ADD COLUMN price_band_percent BIGINT;
ALTER TABLE accounts ADD COLUMN halted BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE trading_state (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    halted BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO trading_state (id, halted, updated_at) VALUES (1, FALSE, 0);

-- max_open_orders counts an account's open orders without reading its history.
CREATE INDEX orders_open_by_account ON orders (account_id)
    WHERE status IN ('pending_new', 'new', 'partially_filled', 'pending_cancel', 'pending_replace');
