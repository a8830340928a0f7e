CREATE TABLE alarms_plain (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    order_id TEXT,
    detail TEXT NOT NULL,
    at BIGINT NOT NULL
);
INSERT INTO alarms_plain SELECT alarm_key, kind, order_id, detail, last_at FROM alarms;
DROP TABLE alarms;
ALTER TABLE alarms_plain RENAME TO alarms;

CREATE TABLE exchange_events_by_id (
    event_id TEXT PRIMARY KEY NOT NULL,
    client_order_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    order_id TEXT,
    received_at BIGINT NOT NULL
);
INSERT OR IGNORE INTO exchange_events_by_id
    SELECT event_id, client_order_id, event_type, payload, order_id, received_at FROM exchange_events;
DROP TABLE exchange_events;
ALTER TABLE exchange_events_by_id RENAME TO exchange_events;
CREATE INDEX exchange_events_by_client_order_id ON exchange_events (client_order_id);
