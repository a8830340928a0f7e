DROP INDEX orders_open_by_account;
CREATE INDEX orders_open_by_account ON orders (account_id)
    WHERE status IN ('pending_new', 'new', 'partially_filled', 'pending_cancel', 'pending_replace');
ALTER TABLE orders DROP COLUMN stop_price;
