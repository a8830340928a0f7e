-- Several engines on one database. Each engine holds a lease (renewed before it expires) and an
-- epoch (raised each time it joins). Each open order names its owner and the epoch it was taken
-- under: a phase written under another owner or an older epoch is refused (fencing).
CREATE TABLE engines (
    id TEXT PRIMARY KEY NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    renewed_at BIGINT NOT NULL
);
ALTER TABLE orders ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN owner_epoch BIGINT NOT NULL DEFAULT 0;
CREATE INDEX orders_by_owner ON orders (owner, status);
-- A note to an order's owner from another engine: something happened to the order (a push, a
-- cancel) that its actor should look at now.
CREATE TABLE order_stirs (
    owner TEXT NOT NULL,
    order_id TEXT NOT NULL,
    PRIMARY KEY (owner, order_id)
);
