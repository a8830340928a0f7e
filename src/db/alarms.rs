//! Alarms: things that must never happen, kept for an operator to inspect.

use std::sync::atomic::{AtomicU64, Ordering};

use diesel::prelude::*;

use super::schema::alarms;
use crate::error::AppError;

/// Alarms raised since the process started (each is also stored).
static RAISED: AtomicU64 = AtomicU64::new(0);

pub fn raised() -> u64 {
    RAISED.load(Ordering::Relaxed)
}

pub fn raise(
    conn: &mut SqliteConnection,
    kind: &str,
    order_id: Option<&str>,
    detail: &str,
    now: i64,
) -> Result<(), AppError> {
    tracing::warn!(kind, order_id, detail, "alarm");
    diesel::insert_into(alarms::table)
        .values((
            alarms::id.eq(uuid::Uuid::now_v7().to_string()),
            alarms::kind.eq(kind),
            alarms::order_id.eq(order_id),
            alarms::detail.eq(detail),
            alarms::at.eq(now),
        ))
        .execute(conn)?;
    RAISED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

pub fn count(conn: &mut SqliteConnection, kind: &str) -> Result<i64, AppError> {
    Ok(alarms::table
        .filter(alarms::kind.eq(kind))
        .count()
        .get_result(conn)?)
}
