DROP TABLE exchange_events, demo_account, alarms, outbox, fills, order_actions, orders,
    idempotency_keys, ledger_entries, balances, accounts;
