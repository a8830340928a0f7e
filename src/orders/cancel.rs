//! Cancelling: the customer's request is recorded at once; the exchange side and the final
//! release are the order actor's work.

use crate::db::DbConnection;

use super::phase;
use crate::db::ledger::{self, LedgerEntry};
use crate::db::orders::{self, OrderRow};
use crate::domain::{AccountId, Action, OrderEvent, OrderId, OrderStatus};
use crate::error::AppError;

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
) -> Result<(CancelAnswer, OrderRow), AppError> {
    let mut row = match orders::find_for_update(conn, order)? {
        Some(row) if row.account_id == account => row,
        _ => return Err(AppError::NotFound),
    };
    match row.status {
        OrderStatus::PendingCancel | OrderStatus::Canceled => {
            Ok((CancelAnswer::AlreadyRequested, row))
        }
        status @ (OrderStatus::Filled | OrderStatus::Rejected) => {
            Err(AppError::OrderNotCancelable(status.to_string()))
        }
        OrderStatus::PendingNew | OrderStatus::New | OrderStatus::PartiallyFilled => {
            let action = Action::CancelRequested;
            let next = row
                .state()
                .apply(action)
                .map_err(|e| AppError::internal(format!("a cancel of an open order: {e}")))?;
            let event = OrderEvent::CancelRequested;
            phase::write_action(conn, &mut row, next, &event, None, now)?;
            Ok((CancelAnswer::Requested, row))
        }
    }
}

/// Releases whatever the order still holds reserved: the compensating step of a terminal order.
pub fn release_remaining(
    conn: &mut DbConnection,
    row: &OrderRow,
    now: i64,
) -> Result<i64, AppError> {
    let asset = row.reserved_asset();
    let remaining = ledger::reserved_for_order(conn, row.id, asset)?;
    if remaining > 0 {
        ledger::apply(
            conn,
            &LedgerEntry {
                key: format!("order:{}:release", row.id),
                account: row.account_id,
                asset,
                order: Some(row.id),
                available_delta: remaining,
                reserved_delta: -remaining,
            },
            now,
        )?;
    }
    Ok(remaining)
}
