-- Rows of these tables are only ever appended, each in the transaction that also writes (or after
-- the commit of) the account or order it names, and accounts and orders are never deleted. A
-- foreign key would check the parent again on every insert, under a KEY SHARE lock on its row,
-- which concurrent transactions on one account turn into shared multixacts. The money audit
-- checks that every row names an existing parent.
ALTER TABLE ledger_entries DROP CONSTRAINT IF EXISTS ledger_entries_account_id_fkey;
ALTER TABLE idempotency_keys DROP CONSTRAINT IF EXISTS idempotency_keys_account_id_fkey;
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_account_id_fkey;
ALTER TABLE order_actions DROP CONSTRAINT IF EXISTS order_actions_order_id_fkey;
ALTER TABLE fills DROP CONSTRAINT IF EXISTS fills_order_id_fkey;
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_account_id_fkey;
