-- A note one engine leaves for the engine that owns an order (a cancel it took in, a fill it
-- recorded): the owner picks it up and looks at the order.
ALTER TABLE order_stirs RENAME TO order_notes;
