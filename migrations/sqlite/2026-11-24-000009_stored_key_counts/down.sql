ALTER TABLE accounts DROP COLUMN stored_keys;
