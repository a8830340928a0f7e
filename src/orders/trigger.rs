//! Triggering held stops: `triggered` is recorded in a phase of its own before anything is sent,
//! so a stop goes on once across crashes, restarts and engines. The order's actor then places it
//! as it places any new order.

use std::collections::HashMap;

use super::phase;
use super::OrderError;
use crate::db::leases::Fence;
use crate::db::orders::OrderRow;
use crate::db::DbConnection;
use crate::domain::stop::triggers;
use crate::domain::{Cents, OrderEvent, OrderId};

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
    let ids = due.iter().map(|(id, _)| *id);
    phase::move_owned(conn, ids, fence, now, |row| {
        let (stop, &last_price) = (row.stop_price?, last_prices.get(&row.id)?);
        triggers(row.side, stop, last_price).then_some(OrderEvent::Triggered { last_price })
    })
}
