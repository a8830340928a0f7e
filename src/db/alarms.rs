//! Alarms: things that must never happen, kept for an operator to inspect.

use diesel::prelude::*;

use super::schema::alarms;
use crate::error::AppError;

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
    Ok(())
}

pub fn count(conn: &mut SqliteConnection, kind: &str) -> Result<i64, AppError> {
    Ok(alarms::table
        .filter(alarms::kind.eq(kind))
        .count()
        .get_result(conn)?)
}
