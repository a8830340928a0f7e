ALTER TABLE orders DROP COLUMN placement_sent;
