-- Whether a placement was ever sent, kept on the projection row like the status, so an order's state is
-- read from its row instead of folding its whole log on every step. Written in the same transaction as
-- the `placement_sent` action, so it always equals the fold.
ALTER TABLE orders ADD COLUMN placement_sent BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE orders SET placement_sent = TRUE
    WHERE id IN (SELECT order_id FROM order_actions WHERE kind = 'placement_sent');
