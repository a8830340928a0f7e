-- The demo account's token, kept so the local dashboard can offer it. Only the demo account (created
-- on an empty database unless --no-demo) is ever written here.
CREATE TABLE demo_account (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id),
    token TEXT NOT NULL
);
