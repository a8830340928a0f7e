-- An order's version at the venue (one more for each replace it took), and the terms a replace in
-- flight asks for.
ALTER TABLE orders ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE orders ADD COLUMN replacing_qty BIGINT;
ALTER TABLE orders ADD COLUMN replacing_limit_price BIGINT;
