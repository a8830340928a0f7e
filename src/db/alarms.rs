//! Alarms: things that must never happen, kept for an operator to inspect. A condition seen again
//! (every poll of a wedged order, say) counts up its one row instead of adding rows.

use std::sync::atomic::{AtomicU64, Ordering};

use diesel::prelude::*;

use super::DbConnection;

use super::schema::alarms;
use super::DbError;
use crate::domain::OrderId;

text_enum!(
    /// What went wrong.
    AlarmKind {
        RefusedAction => "refused_action",
        UnmatchedPushEvent => "unmatched_push_event",
        FillAfterTerminal => "fill_after_terminal",
        FillMismatch => "fill_mismatch",
        FillOutsideLimit => "fill_outside_limit",
        FillUnsettleable => "fill_unsettleable",
        FillQuantityMismatch => "fill_quantity_mismatch",
        OrderMissingOnExchange => "order_missing_on_exchange",
        InvariantViolation => "invariant_violation",
    }
);

/// Alarms raised since the process started, repeats included, by kind (in `AlarmKind::ALL` order).
static RAISED: [AtomicU64; AlarmKind::ALL.len()] =
    [const { AtomicU64::new(0) }; AlarmKind::ALL.len()];

fn slot(kind: AlarmKind) -> Option<&'static AtomicU64> {
    let at = AlarmKind::ALL.iter().position(|k| *k == kind)?;
    RAISED.get(at)
}

/// Alarms of `kind` raised since the process started.
pub fn raised(kind: AlarmKind) -> u64 {
    slot(kind).map_or(0, |n| n.load(Ordering::Relaxed))
}

/// Alarms of every kind raised since the process started.
pub fn raised_in_all() -> u64 {
    RAISED.iter().map(|n| n.load(Ordering::Relaxed)).sum()
}

/// One alarm condition: its kind, its order, and what it is about (a fill id, an action…).
#[derive(Debug, Clone)]
pub struct Alarm<'a> {
    pub kind: AlarmKind,
    pub order: Option<OrderId>,
    pub subject: &'a str,
    pub detail: &'a str,
}

/// Records the alarm, or counts it again when the same condition was recorded before.
pub fn raise(conn: &mut DbConnection, alarm: &Alarm<'_>, now: i64) -> Result<(), DbError> {
    record(conn, alarm, now)?;
    // Counted once the alarm is kept: a phase that rolls back raised nothing.
    if let Some(raised) = slot(alarm.kind) {
        conn.on_commit(move || {
            raised.fetch_add(1, Ordering::Relaxed);
        });
    }
    Ok(())
}

fn record(conn: &mut DbConnection, alarm: &Alarm<'_>, now: i64) -> Result<(), DbError> {
    with_conn!(conn, |conn| {
        let order = alarm.order.map(|o| o.to_string());
        let key = format!(
            "{}|{}|{}",
            alarm.kind,
            order.as_deref().unwrap_or("-"),
            alarm.subject
        );
        let count: i64 = diesel::insert_into(alarms::table)
            .values((
                alarms::alarm_key.eq(&key),
                alarms::kind.eq(alarm.kind.as_str()),
                alarms::order_id.eq(order.as_deref()),
                alarms::detail.eq(alarm.detail),
                alarms::first_at.eq(now),
                alarms::last_at.eq(now),
                alarms::count.eq(1_i64),
            ))
            .on_conflict(alarms::alarm_key)
            .do_update()
            .set((
                alarms::count.eq(alarms::count + 1),
                alarms::last_at.eq(now),
                alarms::detail.eq(alarm.detail),
            ))
            .returning(alarms::count)
            .get_result(conn)?;
        if count == 1 {
            tracing::warn!(kind = %alarm.kind, order_id = ?order, detail = alarm.detail, "alarm");
        } else {
            tracing::debug!(kind = %alarm.kind, order_id = ?order, count, "alarm seen again");
        }
        Ok(())
    })
}

/// How many distinct conditions of `kind` are recorded.
pub fn count(conn: &mut DbConnection, kind: AlarmKind) -> Result<i64, DbError> {
    with_conn!(conn, |conn| {
        Ok(alarms::table
            .filter(alarms::kind.eq(kind.as_str()))
            .count()
            .get_result(conn)?)
    })
}

/// An order's alarms: (kind, detail, how often seen).
pub fn of_order(
    conn: &mut DbConnection,
    order: OrderId,
) -> Result<Vec<(String, String, i64)>, DbError> {
    with_conn!(conn, |conn| {
        Ok(alarms::table
            .filter(alarms::order_id.eq(order))
            .order(alarms::first_at)
            .select((alarms::kind, alarms::detail, alarms::count))
            .load(conn)?)
    })
}
