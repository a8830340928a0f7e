-- Alarms are counted, not repeated: one row per condition (kind, order, subject), whose count grows each
-- time the condition is seen again. Existing rows keep their own ids as their condition.
CREATE TABLE alarms_counted (
    alarm_key TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    order_id TEXT,
    detail TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    count BIGINT NOT NULL CHECK (count >= 1)
);
INSERT INTO alarms_counted (alarm_key, kind, order_id, detail, first_at, last_at, count)
    SELECT id, kind, order_id, detail, at, at, 1 FROM alarms;
DROP TABLE alarms;
ALTER TABLE alarms_counted RENAME TO alarms;
CREATE INDEX alarms_by_order ON alarms (order_id);

-- Push events are kept once per content, not per event_id: a venue that restarts may number its events
-- from the start again, and a new event under a reused id must not be taken for a duplicate.
CREATE TABLE exchange_events_by_content (
    event_key TEXT PRIMARY KEY NOT NULL,
    event_id TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    order_id TEXT,
    received_at BIGINT NOT NULL
);
INSERT INTO exchange_events_by_content
    SELECT 'id:' || event_id, event_id, client_order_id, event_type, payload, order_id, received_at
    FROM exchange_events;
DROP TABLE exchange_events;
ALTER TABLE exchange_events_by_content RENAME TO exchange_events;
CREATE INDEX exchange_events_by_client_order_id ON exchange_events (client_order_id);
