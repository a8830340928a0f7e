//! An atomic phase: one action checked by the transition table and written together with the
//! order's projection row and its feed event, inside the caller's transaction.

use diesel::SqliteConnection;

use super::view::{FillView, OrderView};
use crate::db::orders::{self, OrderRow};
use crate::db::outbox;
use crate::domain::{AccountId, Action, OrderStatus};
use crate::error::AppError;

/// Records `action` on `order` and updates `order` to match. The caller has already written the
/// action's own effects (ledger entries, fill rows) in the same transaction.
pub fn record(
    conn: &mut SqliteConnection,
    order: &mut OrderRow,
    action: Action,
    detail: &serde_json::Value,
    event_kind: &str,
    fill: Option<&FillView>,
    now: i64,
) -> Result<(), AppError> {
    let state = orders::state(conn, order)?;
    let next = state
        .apply(action)
        .map_err(|e| AppError::Internal(format!("order {}: {e}", order.id)))?;
    let order_id = orders::parse_order_id(&order.id)?;
    orders::append_action(conn, order_id, action.kind, &detail.to_string(), now)?;
    order.status = next.status.as_str().to_owned();
    order.filled_qty = next.filled_qty;
    order.updated_at = now;
    orders::save_projection(conn, order)?;
    let account: AccountId = order
        .account_id
        .parse()
        .map_err(|_| AppError::Internal(format!("order {} has a bad account id", order.id)))?;
    outbox::append(
        conn,
        account,
        event_kind,
        &OrderView::from(&*order),
        fill,
        now,
    )?;
    Ok(())
}

pub fn status_of(order: &OrderRow) -> Result<OrderStatus, AppError> {
    OrderStatus::parse(&order.status).ok_or_else(|| {
        AppError::Internal(format!(
            "order {} has unknown status {:?}",
            order.id, order.status
        ))
    })
}
