//! Writing an action: the action itself, the order's projection row and its feed event, inside the
//! caller's transaction. The transition table has already checked the move, once, in the caller.

use crate::db::DbConnection;

use super::view::{FillView, OrderView};
use crate::db::orders::{self, OrderRow};
use crate::db::outbox;
use crate::domain::{Action, OrderState};
use crate::error::AppError;

/// Writes `action`, which the table allowed and which leads to `next`, and brings `order` to match.
/// The caller has already written the action's own effects (ledger entries, fill rows) in the same
/// transaction.
pub fn write_action(
    conn: &mut DbConnection,
    order: &mut OrderRow,
    next: OrderState,
    action: Action,
    detail: &serde_json::Value,
    fill: Option<&FillView>,
    now: i64,
) -> Result<(), AppError> {
    let seq = advance(order, next, now);
    orders::append_action(conn, order.id, seq, action.kind(), &detail.to_string(), now)?;
    orders::save_projection(conn, order)?;
    if let Some(kind) = action.kind().event_kind() {
        outbox::append(
            conn,
            order.account_id,
            kind,
            &OrderView::from(&*order),
            fill,
            now,
        )?;
    }
    Ok(())
}

/// Brings the projection row to `next`, with its next action seq; returns that seq.
pub fn advance(order: &mut OrderRow, next: OrderState, now: i64) -> i64 {
    order.last_action_seq += 1;
    order.status = next.status;
    order.filled_qty = next.filled_qty;
    order.placement_sent = next.placement_sent;
    order.updated_at = now;
    order.last_action_seq
}
