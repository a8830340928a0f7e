//! Cancelling: the customer's request (or the engine's, for a day order at the session's close)
//! is recorded at once; the exchange side and the final release are the order actor's work
//! (`orders::status`).

use crate::db::DbConnection;

use super::phase::{self, Move, Planned};
use super::OrderError;
use crate::db::leases::Fence;
use crate::db::orders::{self, OrderRow};
use crate::domain::{AccountId, Action, OrderEvent, OrderId, OrderStatus, Symbol};

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
    let (answer, row, planned) = plan(row, now)?;
    phase::write(conn, planned.as_slice(), &[], now)?;
    Ok((answer, row))
}

/// Records `cancel_requested` for every open order of `account` (of `symbol`, if named) in one
/// phase; an order already pending cancel is answered as it stands. Newest first.
pub fn request_all(
    conn: &mut DbConnection,
    account: AccountId,
    symbol: Option<&Symbol>,
    now: i64,
) -> Result<Vec<(CancelAnswer, OrderRow)>, OrderError> {
    let open = orders::open_ids_of(conn, account, symbol)?;
    let mut answers = Vec::new();
    let mut plans = Vec::new();
    // Locked, then looked at again: an order that ended meanwhile is left out.
    for row in orders::find_many_for_update(conn, open)? {
        if row.account_id != account || row.status.is_terminal() {
            continue;
        }
        let (answer, row, planned) = plan(row, now)?;
        answers.push((answer, row));
        plans.extend(planned);
    }
    phase::write(conn, &plans, &[], now)?;
    answers.sort_by_key(|(_, row)| std::cmp::Reverse((row.created_at, row.id)));
    Ok(answers)
}

/// A cancel of one order: the answer, the order as it will stand, and the move to write if any.
fn plan(row: OrderRow, now: i64) -> Result<(CancelAnswer, OrderRow, Option<Planned>), OrderError> {
    match row.status {
        OrderStatus::PendingCancel | OrderStatus::Canceled => {
            Ok((CancelAnswer::AlreadyRequested, row, None))
        }
        status @ (OrderStatus::Filled | OrderStatus::Rejected | OrderStatus::Expired) => {
            Err(OrderError::NotCancelable(status))
        }
        OrderStatus::Held
        | OrderStatus::PendingNew
        | OrderStatus::New
        | OrderStatus::PartiallyFilled
        | OrderStatus::PendingReplace => {
            let next = row
                .state()
                .apply(Action::CancelRequested)
                .map_err(|e| OrderError::broken(format!("a cancel of an open order: {e}")))?;
            let moved = Move::of(row, next, &OrderEvent::CancelRequested, now);
            let row = moved.row.clone();
            Ok((CancelAnswer::Requested, row, Some(Planned::moves(moved))))
        }
    }
}

/// Records `expiry_requested` for day orders of this engine whose session has closed by `now`
/// (at most `limit` of them) in one phase; returns them as they now stand. An order that moved
/// on meanwhile (cancelled, ended, taken over) is left out: each expiry is recorded once.
pub fn request_expiries(
    conn: &mut DbConnection,
    due: Vec<OrderId>,
    fence: &Fence,
    now: i64,
) -> Result<Vec<OrderRow>, OrderError> {
    phase::move_owned(conn, due, fence, now, |row| {
        let at = row.expires_at.filter(|at| *at <= now)?;
        Some(OrderEvent::ExpiryRequested { at })
    })
}
