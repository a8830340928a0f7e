DROP INDEX orders_by_expiry;
ALTER TABLE orders DROP COLUMN expiring;
ALTER TABLE orders DROP COLUMN expires_at;
ALTER TABLE orders DROP COLUMN time_in_force;
