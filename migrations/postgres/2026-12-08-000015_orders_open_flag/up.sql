-- Whether an order is still open. It changes once, when the order ends, and it is what the indexes
-- of open orders are keyed on in place of the status: a move that keeps the order open (placed,
-- accepted, partly filled) then changes no indexed column, and PostgreSQL writes it as a heap-only
-- update, with no new entry in any index. Pages keep room for such updates (fillfactor).
ALTER TABLE orders ADD COLUMN is_open BOOLEAN NOT NULL DEFAULT TRUE;
UPDATE orders SET is_open = status IN
    ('held', 'pending_new', 'new', 'partially_filled', 'pending_cancel', 'pending_replace');

DROP INDEX orders_by_status;
DROP INDEX orders_by_owner;
DROP INDEX orders_open_by_account;
CREATE INDEX orders_open_by_owner ON orders (owner, created_at) WHERE is_open;
CREATE INDEX orders_open_by_account ON orders (account_id) WHERE is_open;
ALTER TABLE orders SET (fillfactor = 80);
