//! An atomic phase: one action checked by the transition table and written together with the
//! order's projection row and its feed event, inside the caller's transaction.

use diesel::SqliteConnection;

use super::view::{FillView, OrderView};
use crate::db::orders::{self, OrderRow};
use crate::db::outbox;
use crate::domain::{AccountId, Action, OrderState, OrderStatus, Side, TransitionError};
use crate::error::AppError;

/// Records `action` on `order`, whose current state is `state`, and updates `order` to match. The
/// caller has already written the action's own effects (ledger entries, fill rows) in the same
/// transaction. A move the transition table refuses writes nothing and is returned as an error.
pub fn record(
    conn: &mut SqliteConnection,
    order: &mut OrderRow,
    state: OrderState,
    action: Action,
    detail: &serde_json::Value,
    fill: Option<&FillView>,
    now: i64,
) -> Result<Result<OrderState, TransitionError>, AppError> {
    let next = match state.apply(action) {
        Ok(next) => next,
        Err(refused) => return Ok(Err(refused)),
    };
    let order_id = orders::parse_order_id(&order.id)?;
    orders::append_action(conn, order_id, action.kind, &detail.to_string(), now)?;
    order.status = next.status.as_str().to_owned();
    order.filled_qty = next.filled_qty;
    order.updated_at = now;
    orders::save_projection(conn, order)?;
    if let Some(kind) = action.kind.event_kind() {
        outbox::append(
            conn,
            account_of(order)?,
            kind,
            &OrderView::from(&*order),
            fill,
            now,
        )?;
    }
    Ok(Ok(next))
}

pub fn account_of(order: &OrderRow) -> Result<AccountId, AppError> {
    order
        .account_id
        .parse()
        .map_err(|_| AppError::Internal(format!("order {} has a bad account id", order.id)))
}

pub fn status_of(order: &OrderRow) -> Result<OrderStatus, AppError> {
    OrderStatus::parse(&order.status).ok_or_else(|| {
        AppError::Internal(format!(
            "order {} has unknown status {:?}",
            order.id, order.status
        ))
    })
}

pub fn side_of(order: &OrderRow) -> Result<Side, AppError> {
    Side::parse(&order.side).ok_or_else(|| {
        AppError::Internal(format!(
            "order {} has unknown side {:?}",
            order.id, order.side
        ))
    })
}
