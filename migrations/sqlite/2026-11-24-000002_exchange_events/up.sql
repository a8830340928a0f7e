-- Every valid push event from the exchange, once per event_id: nothing a push said is lost, and a
-- duplicate delivery changes nothing.
CREATE TABLE exchange_events (
    event_id TEXT PRIMARY KEY NOT NULL,
    client_order_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    order_id TEXT,
    received_at BIGINT NOT NULL
);
CREATE INDEX exchange_events_by_client_order_id ON exchange_events (client_order_id);
