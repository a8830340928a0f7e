-- Each account's position in each symbol it traded: the fold of its fills in the order they were
-- recorded (`domain::position`), kept up to date by the phase that records a fill. A fill's
-- position_seq is its place in that fold (1, 2, …), so the audit can fold them again; fills
-- recorded before this table existed have none and are not in a position.
CREATE TABLE positions (
    account_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    qty BIGINT NOT NULL,
    avg_cost BIGINT NOT NULL,
    realized_pnl BIGINT NOT NULL,
    fills BIGINT NOT NULL CHECK (fills >= 1),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, symbol)
);

ALTER TABLE fills ADD COLUMN position_seq BIGINT;
