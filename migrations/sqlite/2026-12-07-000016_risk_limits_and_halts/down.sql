DROP INDEX orders_open_by_account;
DROP TABLE trading_state;
ALTER TABLE accounts DROP COLUMN halted;
ALTER TABLE accounts DROP COLUMN price_band_percent;
ALTER TABLE accounts DROP COLUMN max_open_orders;
ALTER TABLE accounts DROP COLUMN max_order_notional;
