//! A FIX session's state and the messages it sent (tables `fix_sessions`, `fix_messages`), read and
//! written for `exchange::fix::store`. Each call is one statement or one transaction, so a
//! crash leaves a session either before a change or after it.

use diesel::prelude::*;

use super::schema::{fix_messages, fix_sessions};
use super::DbConnection;
use super::DbError;

/// A session's counters as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = fix_sessions)]
pub struct SessionRow {
    pub next_sender_seq: i64,
    pub next_target_seq: i64,
    pub reset_owed: bool,
    pub app_watermark: i64,
    pub created_at: i64,
}

/// A message the session sent, under its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = fix_messages)]
pub struct SentRow {
    pub seq_num: i64,
    pub msg_type: String,
    pub payload: Vec<u8>,
}

/// The session's counters, made (at 1 and 1, created `now`) the first time it is named.
pub fn load_or_create(
    conn: &mut DbConnection,
    session: &str,
    now: i64,
) -> Result<SessionRow, DbError> {
    conn.transaction(|conn| {
        with_conn!(conn, |c| {
            diesel::insert_into(fix_sessions::table)
                .values((
                    fix_sessions::session_id.eq(session),
                    fix_sessions::next_sender_seq.eq(1),
                    fix_sessions::next_target_seq.eq(1),
                    fix_sessions::created_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(c)?;
            Ok(fix_sessions::table
                .find(session)
                .select(SessionRow::as_select())
                .first(c)?)
        })
    })
}

/// Keeps a sent message under its number (a number sent again after a reset replaces it).
pub fn save_message(
    conn: &mut DbConnection,
    session: &str,
    seq_num: i64,
    msg_type: &str,
    payload: &[u8],
) -> Result<(), DbError> {
    with_conn!(conn, |c| {
        diesel::insert_into(fix_messages::table)
            .values((
                fix_messages::session_id.eq(session),
                fix_messages::seq_num.eq(seq_num),
                fix_messages::msg_type.eq(msg_type),
                fix_messages::payload.eq(payload),
            ))
            .on_conflict((fix_messages::session_id, fix_messages::seq_num))
            .do_update()
            .set((
                fix_messages::msg_type.eq(msg_type),
                fix_messages::payload.eq(payload),
            ))
            .execute(c)?;
        Ok(())
    })
}

/// The messages sent with numbers from `begin` to `end`, both included, in order.
pub fn messages(
    conn: &mut DbConnection,
    session: &str,
    begin: i64,
    end: i64,
) -> Result<Vec<SentRow>, DbError> {
    with_conn!(conn, |c| {
        Ok(fix_messages::table
            .filter(fix_messages::session_id.eq(session))
            .filter(fix_messages::seq_num.between(begin, end))
            .order(fix_messages::seq_num.asc())
            .select(SentRow::as_select())
            .load(c)?)
    })
}

/// Which of the session's counters a write sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    NextSender(i64),
    NextTarget(i64),
    ResetOwed(bool),
    AppWatermark(i64),
}

pub fn set(conn: &mut DbConnection, session: &str, counter: Counter) -> Result<(), DbError> {
    let row = fix_sessions::table.filter(fix_sessions::session_id.eq(session));
    with_conn!(conn, |c| {
        let updated = match counter {
            Counter::NextSender(n) => diesel::update(row)
                .set(fix_sessions::next_sender_seq.eq(n))
                .execute(c)?,
            Counter::NextTarget(n) => diesel::update(row)
                .set(fix_sessions::next_target_seq.eq(n))
                .execute(c)?,
            Counter::ResetOwed(owed) => diesel::update(row)
                .set(fix_sessions::reset_owed.eq(owed))
                .execute(c)?,
            Counter::AppWatermark(n) => diesel::update(row)
                .set(fix_sessions::app_watermark.eq(n))
                .execute(c)?,
        };
        stored(session, updated)
    })
}

/// An update of the session's row found it.
fn stored(session: &str, updated: usize) -> Result<(), DbError> {
    match updated {
        1 => Ok(()),
        _ => Err(DbError::Inconsistent(format!(
            "FIX session {session} is not stored"
        ))),
    }
}

/// Forgets every message sent, starts both counters again where given and clears the watermark
/// (a sequence reset); whether a reset is owed is left as it was.
pub fn reset(
    conn: &mut DbConnection,
    session: &str,
    next_sender: i64,
    next_target: i64,
) -> Result<(), DbError> {
    conn.transaction(|conn| {
        with_conn!(conn, |c| {
            diesel::delete(fix_messages::table.filter(fix_messages::session_id.eq(session)))
                .execute(c)?;
            let updated = diesel::update(fix_sessions::table.find(session))
                .set((
                    fix_sessions::next_sender_seq.eq(next_sender),
                    fix_sessions::next_target_seq.eq(next_target),
                    fix_sessions::app_watermark.eq(0),
                ))
                .execute(c)?;
            stored(session, updated)
        })
    })
}
