//! Status actions of many orders in one phase: `placement_sent` and `accepted`, which move no
//! money, are what every order's actor records on its way to the exchange. Written together, they
//! cost a statement per table instead of a transaction per order.

use std::collections::HashMap;
use std::sync::Arc;

use super::lifecycle::Applied;
use super::phase;
use crate::db::leases::{self, Fence};
use crate::db::orders::{self, OrderRow};
use crate::db::DbConnection;
use crate::domain::{Action, OrderId, TransitionError};
use crate::error::AppError;

/// One order's status action, as its actor asks for it.
pub struct StatusItem {
    pub order: OrderId,
    pub fence: Fence,
    pub action: Action,
    pub detail: serde_json::Value,
    pub now: i64,
}

impl StatusItem {
    /// Whether a batch may take the action: one that moves no money and ends nothing.
    pub fn batchable(action: Action) -> bool {
        matches!(action, Action::PlacementSent | Action::Accepted)
    }
}

/// Records every item the transition table allows, with its action, projection and event, a
/// statement per table, and answers a repeat of a step already recorded as a duplicate, as alone.
/// An item is left out (None), for its caller to run alone through `lifecycle::record_status`,
/// which answers it, when its order is missing, owned by another engine or epoch, already in this
/// batch, or the move is refused or not batchable.
pub fn record_many(
    conn: &mut DbConnection,
    items: &[Arc<StatusItem>],
) -> Result<Vec<Option<Applied>>, AppError> {
    let named = items.iter().map(|i| i.order);
    let mut rows: HashMap<OrderId, OrderRow> = orders::find_many_for_update(conn, named)?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    // An order named twice keeps only its first item here: `remove` finds it once.
    let mut answers = Vec::with_capacity(items.len());
    let mut written = Vec::new();
    for item in items {
        match rows.remove(&item.order).and_then(|row| advance(row, item)) {
            Some(Planned::Move(moved)) => {
                written.push(*moved);
                answers.push(Some(Applied::Recorded));
            }
            Some(Planned::Duplicate) => answers.push(Some(Applied::Duplicate)),
            None => answers.push(None),
        }
    }
    phase::write_moves(conn, &written)?;
    Ok(answers)
}

/// What the batch does with an item.
enum Planned {
    Move(Box<phase::Move>),
    /// The step was recorded before (a late acknowledgement, a placement already marked sent).
    Duplicate,
}

/// The order as the item's action leaves it, if the batch may write that: the fence holds, and the
/// transition table allows a move that ends nothing.
fn advance(row: OrderRow, item: &StatusItem) -> Option<Planned> {
    leases::ensure_owner(row.id, &row.owner, row.owner_epoch, &item.fence).ok()?;
    if !StatusItem::batchable(item.action) {
        return None;
    }
    let next = match row.state().apply(item.action) {
        Ok(next) => next,
        Err(TransitionError::AlreadyAcknowledged | TransitionError::AlreadySent) => {
            return Some(Planned::Duplicate)
        }
        Err(_) => return None,
    };
    if next.status.is_terminal() {
        return None;
    }
    let detail = item.detail.to_string();
    Some(Planned::Move(Box::new(phase::Move::of(
        row,
        next,
        item.action,
        detail,
        item.now,
    ))))
}
