//! Cancelling: the request is recorded at once; the exchange side and the final release follow.

use diesel::SqliteConnection;
use serde_json::json;

use super::phase::{self, status_of};
use crate::db::orders::{self, OrderRow};
use crate::domain::{AccountId, Action, ActionKind, OrderId, OrderStatus, Side};
use crate::error::AppError;
use crate::ledger::{self, LedgerEntry, CASH};

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
                let action = Action::new(ActionKind::CancelRequested);
                phase::record(
                    conn,
                    &mut row,
                    action,
                    &json!({"by": "customer"}),
                    "order.cancel_requested",
                    None,
                    now,
                )?;
                Ok((CancelAnswer::Requested, row))
            }
        }
    })
}

/// Finishes the cancel of an order that was never sent to the exchange: nothing can be there, so
/// the reservation is released at once. Returns false (and changes nothing) for any other order.
pub fn finish_if_never_sent(
    conn: &mut SqliteConnection,
    order: OrderId,
    now: i64,
) -> Result<bool, AppError> {
    conn.immediate_transaction(|conn| {
        let Some(mut row) = orders::find(conn, order)? else {
            return Ok(false);
        };
        let state = orders::state(conn, &row)?;
        if state.placement_sent || state.status != OrderStatus::PendingCancel {
            return Ok(false);
        }
        release_remaining(conn, &row, now)?;
        let action = Action::new(ActionKind::Canceled);
        phase::record(
            conn,
            &mut row,
            action,
            &json!({"reason": "never sent to the exchange"}),
            "order.canceled",
            None,
            now,
        )?;
        Ok(true)
    })
}

/// Releases whatever the order still holds reserved: the compensating step of a terminal order.
pub fn release_remaining(
    conn: &mut SqliteConnection,
    row: &OrderRow,
    now: i64,
) -> Result<i64, AppError> {
    let order = orders::parse_order_id(&row.id)?;
    let account: AccountId = row
        .account_id
        .parse()
        .map_err(|_| AppError::Internal("bad account id".into()))?;
    let asset = match Side::parse(&row.side) {
        Some(Side::Buy) => CASH,
        _ => row.symbol.as_str(),
    };
    let remaining = ledger::reserved_for_order(conn, order, asset)?;
    if remaining > 0 {
        ledger::apply(
            conn,
            &LedgerEntry {
                key: format!("order:{order}:release"),
                account,
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
