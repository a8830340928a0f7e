CREATE INDEX ledger_entries_by_account ON ledger_entries (account_id, asset);
