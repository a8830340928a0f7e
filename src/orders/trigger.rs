//! Triggering held stops: `triggered` is recorded in a phase of its own before anything is sent,
//! so a stop goes on once across crashes, restarts and engines. The order's actor then places it
//! as it places any new order.

use std::collections::HashMap;

use super::phase::{self, Move, Planned};
use super::OrderError;
use crate::db::leases::{self, Fence};
use crate::db::orders::{self, OrderRow};
use crate::db::DbConnection;
use crate::domain::stop::triggers;
use crate::domain::{Action, Cents, OrderEvent, OrderId};

/// Records `triggered` for each order of `due` (with the last price that triggered it) that this
/// engine still carries on, is still held, and whose stop that price crosses; returns those
/// orders as they now stand. One cancelled, triggered or taken over meanwhile is left out.
pub fn record(
    conn: &mut DbConnection,
    due: &[(OrderId, Cents)],
    fence: &Fence,
    now: i64,
) -> Result<Vec<OrderRow>, OrderError> {
    let last_prices: HashMap<OrderId, Cents> = due.iter().copied().collect();
    let mut triggered = Vec::new();
    let mut plans = Vec::new();
    for row in orders::find_many_for_update(conn, due.iter().map(|(id, _)| *id))? {
        if leases::ensure_owner(row.id, &row.owner, row.owner_epoch, fence).is_err() {
            continue;
        }
        let (Some(stop), Some(&last_price)) = (row.stop_price, last_prices.get(&row.id)) else {
            continue;
        };
        if !triggers(row.side, stop, last_price) {
            continue;
        }
        let Ok(next) = row.state().apply(Action::Triggered) else {
            continue;
        };
        let moved = Move::of(row, next, &OrderEvent::Triggered { last_price }, now);
        triggered.push(moved.row.clone());
        plans.push(Planned::moves(moved));
    }
    phase::write(conn, &plans, &[], now)?;
    Ok(triggered)
}
