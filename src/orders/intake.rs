//! Taking in a push from the exchange, in one atomic phase: the fill it brings is recorded once
//! with all its effects, and any other event is stored once (by what it says). The order's actor
//! is needed only for what may end the order.

use crate::db::DbConnection;

use super::lifecycle::{self, Applied};
use crate::db::exchange_events::{self, Received};
use crate::db::orders;
use crate::domain::{ClientOrderId, FillSource, OrderId, OrderStatus};
use crate::error::AppError;
use crate::exchange::wire::PushEvent;

/// What became of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// This very event was taken in before.
    Duplicate,
    /// No order of ours: kept and alarmed.
    Unmatched,
    /// Taken in for `order`; what became of its fill, and the order after it.
    New {
        order: OrderId,
        fill: Option<Applied>,
        status: OrderStatus,
        fully_filled: bool,
        /// The engine that carries the order on.
        owner: String,
    },
}

pub fn take_in(
    conn: &mut DbConnection,
    event: &PushEvent,
    raw: &str,
    now: i64,
) -> Result<Intake, AppError> {
    let row = match ClientOrderId(event.client_order_id.clone()).order_id() {
        Some(id) => orders::find_for_update(conn, id)?,
        None => None,
    };
    let Some(row) = row else {
        exchange_events::store(conn, event, raw, None, now)?;
        return Ok(Intake::Unmatched);
    };
    let (order, status, qty, owner) = (row.id, row.status, row.qty, row.owner.clone());
    let mut filled = row.filled_qty;
    let fill = match &event.fill {
        // A fill's own row is its record, and its key its dedup; the push itself is kept only
        // when the fill was refused, for whoever looks into the alarm.
        Some(fill) => {
            let applied = lifecycle::record_fill_on(conn, row, fill, FillSource::Push, now)?;
            match applied {
                Applied::Recorded => filled += fill.qty,
                Applied::Duplicate => return Ok(Intake::Duplicate),
                Applied::Refused(_) => {
                    exchange_events::store(conn, event, raw, Some(order), now)?;
                }
            }
            Some(applied)
        }
        None => {
            if exchange_events::store(conn, event, raw, Some(order), now)? == Received::Duplicate {
                return Ok(Intake::Duplicate);
            }
            None
        }
    };
    Ok(Intake::New {
        order,
        fill,
        status,
        fully_filled: filled == qty,
        owner,
    })
}
