ALTER TABLE orders DROP COLUMN replacing_limit_price;
ALTER TABLE orders DROP COLUMN replacing_qty;
ALTER TABLE orders DROP COLUMN version;
