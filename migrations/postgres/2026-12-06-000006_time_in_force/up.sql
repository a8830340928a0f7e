-- How long an order lives (gtc, day, ioc, fok); when a live day order expires; and whether the
-- order's end by cancel is its expiry (an ioc/fok order's rest, a day order at the close).
ALTER TABLE orders ADD COLUMN time_in_force TEXT NOT NULL DEFAULT 'gtc';
ALTER TABLE orders ADD COLUMN expires_at BIGINT;
ALTER TABLE orders ADD COLUMN expiring BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX orders_by_expiry ON orders (expires_at) WHERE expires_at IS NOT NULL;
