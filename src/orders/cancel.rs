//! Cancelling: the customer's request is recorded at once; the exchange side and the final
//! release are the order actor's work.

use diesel::SqliteConnection;
use serde_json::json;

use super::phase::{self, account_of, side_of, status_of};
use crate::db::ledger::{self, LedgerEntry, CASH};
use crate::db::orders::{self, OrderRow};
use crate::domain::{AccountId, Action, ActionKind, OrderId, OrderStatus, Side};
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
    conn: &mut SqliteConnection,
    account: AccountId,
    order: OrderId,
    now: i64,
) -> Result<(CancelAnswer, OrderRow), AppError> {
    conn.immediate_transaction(|conn| {
        let mut row = orders::find_owned(conn, account, order)?;
        match status_of(&row)? {
            OrderStatus::PendingCancel | OrderStatus::Canceled => {
                Ok((CancelAnswer::AlreadyRequested, row))
            }
            status @ (OrderStatus::Filled | OrderStatus::Rejected) => {
                Err(AppError::OrderNotCancelable(status.to_string()))
            }
            OrderStatus::PendingNew | OrderStatus::New | OrderStatus::PartiallyFilled => {
                let state = orders::state(conn, &row)?;
                let action = Action::new(ActionKind::CancelRequested);
                phase::record(
                    conn,
                    &mut row,
                    state,
                    action,
                    &json!({"by": "customer"}),
                    None,
                    now,
                )?
                .map_err(|e| AppError::Internal(e.to_string()))?;
                Ok((CancelAnswer::Requested, row))
            }
        }
    })
}

/// The asset an order reserves: cash for a buy, the symbol's shares for a sell.
pub fn reserved_asset(row: &OrderRow) -> Result<&str, AppError> {
    Ok(match side_of(row)? {
        Side::Buy => CASH,
        Side::Sell => row.symbol.as_str(),
    })
}

/// Releases whatever the order still holds reserved: the compensating step of a terminal order.
pub fn release_remaining(
    conn: &mut SqliteConnection,
    row: &OrderRow,
    now: i64,
) -> Result<i64, AppError> {
    let order = orders::parse_order_id(&row.id)?;
    let asset = reserved_asset(row)?;
    let remaining = ledger::reserved_for_order(conn, order, asset)?;
    if remaining > 0 {
        ledger::apply(
            conn,
            &LedgerEntry {
                key: format!("order:{order}:release"),
                account: account_of(row)?,
                asset,
                order: Some(order),
                available_delta: remaining,
                reserved_delta: -remaining,
            },
            now,
        )?;
    }
    Ok(remaining)
}
