-- Entries are read per order (what an order still holds reserved); per account, the balances table is
-- the running sum. The per-account index only slowed every entry down.
DROP INDEX ledger_entries_by_account;
