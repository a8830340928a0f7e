//! The inbox of push events received from the exchange.

use diesel::prelude::*;

use std::collections::HashSet;

use super::connection::Inner;
use super::prepared::prepared;
use super::DbConnection;

use super::alarms::{Alarm, AlarmKind};
use super::schema::exchange_events;
use super::DbError;
use crate::domain::OrderId;
use crate::domain::VenueReport;

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

/// A push event as the inbox keeps it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = exchange_events)]
pub struct NewExchangeEvent<'a> {
    pub event_key: String,
    pub event_id: &'a str,
    pub client_order_id: &'a str,
    pub event_type: String,
    pub payload: &'a str,
    pub order_id: Option<OrderId>,
    pub received_at: i64,
}

impl<'a> NewExchangeEvent<'a> {
    pub fn of(event: &'a VenueReport, raw: &'a str, order_id: Option<OrderId>, now: i64) -> Self {
        NewExchangeEvent {
            event_key: event.key.clone(),
            event_id: &event.report_id,
            client_order_id: &event.client_order_id,
            event_type: event.kind.as_str().to_owned(),
            payload: raw,
            order_id,
            received_at: now,
        }
    }
}

/// Stores each event not stored before, in one statement on PostgreSQL; returns the keys of those
/// it stored (a key already there is a duplicate delivery).
pub fn store_new(
    conn: &mut DbConnection,
    events: &[NewExchangeEvent<'_>],
) -> Result<HashSet<String>, DbError> {
    let stored = match &mut conn.inner {
        Inner::Postgres(c) => prepared(
            diesel::insert_into(exchange_events::table)
                .values(events)
                .on_conflict_do_nothing()
                .returning(exchange_events::event_key),
            events.len(),
        )
        .get_results::<String>(c)?
        .into_iter()
        .collect(),
        Inner::Sqlite(c) => {
            let mut stored = HashSet::new();
            for event in events {
                let inserted = diesel::insert_into(exchange_events::table)
                    .values(event)
                    .on_conflict_do_nothing()
                    .execute(c)?;
                if inserted > 0 {
                    stored.insert(event.event_key.clone());
                }
            }
            stored
        }
    };
    Ok(stored)
}

/// Stores `event` once per `event_key`, for the order it names (None: no order of ours).
pub fn store(
    conn: &mut DbConnection,
    event: &VenueReport,
    raw: &str,
    order_id: Option<OrderId>,
    now: i64,
) -> Result<Received, DbError> {
    let inserted = store_new(conn, &[NewExchangeEvent::of(event, raw, order_id, now)])?.len();
    Ok(match (inserted, order_id) {
        (0, _) => Received::Duplicate,
        (_, Some(order_id)) => Received::New { order_id },
        (_, None) => {
            let detail = format!(
                "push event {} for unknown client order id {}",
                event.report_id, event.client_order_id
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
