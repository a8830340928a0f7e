-- How many idempotency keys each account holds, kept with the keys, so the cap on stored keys is
-- one row update rather than a count over the account's keys.
ALTER TABLE accounts ADD COLUMN stored_keys BIGINT NOT NULL DEFAULT 0;
UPDATE accounts SET stored_keys = (
    SELECT count(*) FROM idempotency_keys k WHERE k.account_id = accounts.id
);
