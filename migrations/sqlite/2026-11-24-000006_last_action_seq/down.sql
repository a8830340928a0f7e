ALTER TABLE orders DROP COLUMN last_action_seq;
