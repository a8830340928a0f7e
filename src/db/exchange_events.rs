//! The inbox of push events received from the exchange.

use diesel::prelude::*;

use super::DbConnection;

use super::alarms::{Alarm, AlarmKind};
use super::schema::exchange_events;
use crate::domain::OrderId;
use crate::error::AppError;
use crate::exchange::wire::PushEvent;

/// What became of a received event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// First delivery, for an order the engine knows.
    New { order_id: OrderId },
    /// First delivery, for no order the engine knows: kept and alarmed.
    Unmatched,
    /// A delivery of an event already received.
    Duplicate,
}

/// What identifies an event: its id together with what it says. A venue that restarts and numbers
/// its events from the start again sends new events under old ids; only a delivery of the same event
/// (the same id saying the same thing) is a duplicate.
pub fn event_key(event: &PushEvent) -> String {
    let canonical = serde_json::to_vec(event).unwrap_or_default();
    crate::db::accounts::sha256_hex(&canonical)
}

/// Stores `event` once per [`event_key`], for the order it names (None: no order of ours).
pub fn store(
    conn: &mut DbConnection,
    event: &PushEvent,
    raw: &str,
    order_id: Option<OrderId>,
    now: i64,
) -> Result<Received, AppError> {
    let event_type = serde_json::to_value(event.event_type)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let inserted = with_conn!(conn, |c| diesel::insert_into(exchange_events::table)
        .values((
            exchange_events::event_key.eq(event_key(event)),
            exchange_events::event_id.eq(&event.event_id),
            exchange_events::client_order_id.eq(&event.client_order_id),
            exchange_events::event_type.eq(&event_type),
            exchange_events::payload.eq(raw),
            exchange_events::order_id.eq(order_id),
            exchange_events::received_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(match (inserted, order_id) {
        (0, _) => Received::Duplicate,
        (_, Some(order_id)) => Received::New { order_id },
        (_, None) => {
            let detail = format!(
                "push event {} for unknown client order id {}",
                event.event_id, event.client_order_id
            );
            let alarm = Alarm {
                kind: AlarmKind::UnmatchedPushEvent,
                order: None,
                subject: &event.client_order_id,
                detail: &detail,
            };
            super::alarms::raise(conn, &alarm, now)?;
            Received::Unmatched
        }
    })
}
