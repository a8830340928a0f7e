ALTER TABLE order_notes RENAME TO order_stirs;
