-- The seq of an order's latest action, kept on the projection row: the next action's seq is known
-- without asking the log for its largest seq.
ALTER TABLE orders ADD COLUMN last_action_seq BIGINT NOT NULL DEFAULT 0;
UPDATE orders SET last_action_seq =
    (SELECT COALESCE(MAX(seq), 0) FROM order_actions WHERE order_actions.order_id = orders.id);
