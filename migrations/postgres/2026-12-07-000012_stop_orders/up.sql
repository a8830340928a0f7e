-- Stop and stop-limit orders: the last price that triggers one. Until then the order is `held`
-- (open, reserved, not at the venue), so the index of open orders counts it.
ALTER TABLE orders ADD COLUMN stop_price BIGINT;

DROP INDEX orders_open_by_account;
CREATE INDEX orders_open_by_account ON orders (account_id)
    WHERE status IN ('held', 'pending_new', 'new', 'partially_filled', 'pending_cancel', 'pending_replace');
