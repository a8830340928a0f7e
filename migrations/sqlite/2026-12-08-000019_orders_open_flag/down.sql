DROP INDEX orders_open_by_account;
DROP INDEX orders_open_by_owner;
CREATE INDEX orders_by_status ON orders (status);
CREATE INDEX orders_by_owner ON orders (owner, status);
CREATE INDEX orders_open_by_account ON orders (account_id)
    WHERE status IN ('held', 'pending_new', 'new', 'partially_filled', 'pending_cancel', 'pending_replace');
ALTER TABLE orders DROP COLUMN is_open;
