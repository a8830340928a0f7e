DROP TABLE order_stirs;
DROP INDEX orders_by_owner;
ALTER TABLE orders DROP COLUMN owner_epoch;
ALTER TABLE orders DROP COLUMN owner;
DROP TABLE engines;
