//! Cancelling: the customer's request is recorded at once; the exchange side and the final
//! release are the order actor's work (`orders::status`).

use crate::db::DbConnection;

use super::phase::{self, Move, Planned};
use super::OrderError;
use crate::db::orders::{self, OrderRow};
use crate::domain::{AccountId, Action, OrderEvent, OrderId, OrderStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAnswer {
    /// The cancel was recorded now (202).
    Requested,
    /// A cancel was recorded before, or the order is already canceled (200).
    AlreadyRequested,
}

/// Records `cancel_requested` for an open order of `account`.
pub fn request(
    conn: &mut DbConnection,
    account: AccountId,
    order: OrderId,
    now: i64,
) -> Result<(CancelAnswer, OrderRow), OrderError> {
    let row = match orders::find_for_update(conn, order)? {
        Some(row) if row.account_id == account => row,
        _ => return Err(OrderError::NotFound),
    };
    match row.status {
        OrderStatus::PendingCancel | OrderStatus::Canceled => {
            Ok((CancelAnswer::AlreadyRequested, row))
        }
        status @ (OrderStatus::Filled | OrderStatus::Rejected) => {
            Err(OrderError::NotCancelable(status))
        }
        OrderStatus::PendingNew | OrderStatus::New | OrderStatus::PartiallyFilled => {
            let action = Action::CancelRequested;
            let next = row
                .state()
                .apply(action)
                .map_err(|e| OrderError::broken(format!("a cancel of an open order: {e}")))?;
            let moved = Move::of(row, next, &OrderEvent::CancelRequested, now);
            let row = moved.row.clone();
            phase::write(conn, &[Planned::moves(moved)], &[], now)?;
            Ok((CancelAnswer::Requested, row))
        }
    }
}
