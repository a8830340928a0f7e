DROP TABLE exchange_events;
