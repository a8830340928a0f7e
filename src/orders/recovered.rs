//! Telling a customer that recovery carried their order on: an `order.recovered` event with what
//! the log said, what the venue said and what was done, written once the order's first step
//! after a start or a takeover is done. A restart with a backlog recovers thousands of orders at
//! once, so any number of them are told in one phase, their accounts' seqs taken in one
//! statement.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{phase, OrderError, OrderView};
use crate::db::accounts::{self, Taking};
use crate::db::leases::Fence;
use crate::db::orders::OrderRow;
use crate::db::{outbox, DbConnection};
use crate::domain::{AccountId, OrderId};

/// An order recovery carried on, with what to tell of it.
pub struct RecoveredItem {
    pub order: OrderId,
    pub recovery: serde_json::Value,
    /// The engine that recovered it: an order taken over since is told by its new owner.
    pub fence: Fence,
    pub now: i64,
}

/// Writes each item's event, and answers each: told, or an error that wrote nothing for it (its
/// order is missing, or another engine's or epoch's).
pub fn record(
    conn: &mut DbConnection,
    items: &[Arc<RecoveredItem>],
) -> Result<Vec<Result<(), OrderError>>, OrderError> {
    let rows = phase::lock_orders(conn, items.iter().map(|i| i.order))?;
    let mut answers = Vec::with_capacity(items.len());
    let mut told: Vec<(&OrderRow, &RecoveredItem)> = Vec::with_capacity(items.len());
    for item in items {
        let owned = phase::owned(&rows, item.order, &item.fence);
        if let Ok(row) = owned {
            told.push((row, item));
        }
        answers.push(owned.map(|_| ()));
    }
    let mut taking = BTreeMap::<AccountId, Taking>::new();
    for (row, _) in &told {
        taking.entry(row.account_id).or_default().events += 1;
    }
    let mut next_seq = accounts::take(conn, &taking)?;
    let views: Vec<OrderView> = told.iter().map(|(row, _)| OrderView::from(*row)).collect();
    let events = told
        .iter()
        .zip(&views)
        .map(|((row, item), view)| {
            outbox::next_recovered(
                &mut next_seq,
                row.account_id,
                view,
                &item.recovery,
                item.now,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    outbox::append_events(conn, &events)?;
    Ok(answers)
}
