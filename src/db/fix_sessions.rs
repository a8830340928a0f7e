//! A FIX session's state and the messages it sent (tables `fix_sessions`, `fix_messages`), read and
//! written for `exchange::fix::store`. Each call is one statement or one transaction, so a
//! crash leaves a session either before a change or after it.
//!
//! A session has one line to the venue, so one engine of a fleet holds it at a time: it claims the
//! session (raising its epoch) while no live engine holds it, and every write it makes to the
//! session is fenced by that epoch.

use diesel::prelude::*;

use super::leases::database_now;
use super::schema::{engines, fix_messages, fix_sessions};
use super::DbConnection;
use super::DbError;

/// What a write to a session's row is fenced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// A store nobody else writes (the venue's side of the line).
    Unshared,
    /// Held under this epoch: refused once another engine has claimed the session since.
    Claimed(i64),
}

impl Holding {
    /// The epoch the session's row must be at: an unshared session is never claimed, so stays at 0.
    fn epoch(self) -> i64 {
        match self {
            Holding::Unshared => 0,
            Holding::Claimed(epoch) => epoch,
        }
    }
}

/// What a claim of a session found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The session is the claimant's, under `epoch`, with the counters it is taken on with.
    Held { epoch: i64, row: SessionRow },
    /// A live engine holds it.
    HeldBy(String),
}

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
        create_if_absent(conn, session, now)?;
        Ok(with_conn!(conn, |c| fix_sessions::table
            .find(session)
            .select(SessionRow::as_select())
            .first(c))?)
    })
}

fn create_if_absent(conn: &mut DbConnection, session: &str, now: i64) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::insert_into(fix_sessions::table)
        .values((
            fix_sessions::session_id.eq(session),
            fix_sessions::next_sender_seq.eq(1),
            fix_sessions::next_target_seq.eq(1),
            fix_sessions::created_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(())
}

/// Claims `session` (made the first time it is named, created `now`) for `engine` if no live
/// engine holds it: it is held by no one, by `engine` itself (a restart), or by an engine whose
/// lease has run out (judged by the database's clock, as order takeovers are). One conditional
/// statement, so two engines claiming at once cannot both succeed. A claim reads the counters as
/// the previous holder left them.
pub fn claim(
    conn: &mut DbConnection,
    session: &str,
    engine: &str,
    now: i64,
) -> Result<Claim, DbError> {
    conn.transaction(|conn| {
        create_if_absent(conn, session, now)?;
        let clock = database_now(conn)?;
        let live = engines::table
            .filter(engines::expires_at.ge(clock))
            .select(engines::id.nullable());
        let claimed = with_conn!(conn, |c| diesel::update(
            fix_sessions::table
                .filter(fix_sessions::session_id.eq(session))
                .filter(
                    fix_sessions::holder
                        .is_null()
                        .or(fix_sessions::holder.eq(engine))
                        .or(diesel::dsl::not(fix_sessions::holder.eq_any(live))),
                ),
        )
        .set((
            fix_sessions::holder.eq(engine),
            fix_sessions::holder_epoch.eq(fix_sessions::holder_epoch + 1),
        ))
        .execute(c))?;
        let (row, holder, epoch): (SessionRow, Option<String>, i64) =
            with_conn!(conn, |c| fix_sessions::table
                .find(session)
                .select((
                    SessionRow::as_select(),
                    fix_sessions::holder,
                    fix_sessions::holder_epoch
                ))
                .first(c))?;
        match (claimed, holder) {
            (1, _) => Ok(Claim::Held { epoch, row }),
            (_, Some(other)) => Ok(Claim::HeldBy(other)),
            // A session held by no one is always claimed.
            (_, None) => Err(DbError::Inconsistent(format!(
                "FIX session {session} is held by no one, yet was not claimed"
            ))),
        }
    })
}

/// Whether `holding` still holds the session (no other engine has claimed it since).
pub fn holds(conn: &mut DbConnection, session: &str, holding: Holding) -> Result<bool, DbError> {
    let now: i64 = with_conn!(conn, |c| fix_sessions::table
        .find(session)
        .select(fix_sessions::holder_epoch)
        .first(c))?;
    Ok(now == holding.epoch())
}

/// Fails unless `holding` still holds the session; on PostgreSQL the row stays locked to the end of
/// the caller's transaction, so no claim comes in between.
fn check_holding(conn: &mut DbConnection, session: &str, holding: Holding) -> Result<(), DbError> {
    let Holding::Claimed(epoch) = holding else {
        return Ok(());
    };
    let touched = with_conn!(conn, |c| diesel::update(
        fix_sessions::table
            .filter(fix_sessions::session_id.eq(session))
            .filter(fix_sessions::holder_epoch.eq(epoch)),
    )
    .set(fix_sessions::holder_epoch.eq(epoch))
    .execute(c))?;
    held(session, touched)
}

/// Keeps a sent message under its number, if `holding` still holds the session.
pub fn save_held_message(
    conn: &mut DbConnection,
    session: &str,
    holding: Holding,
    message: (i64, &str, &[u8]),
) -> Result<(), DbError> {
    conn.transaction(|conn| {
        check_holding(conn, session, holding)?;
        save_message(conn, session, message.0, message.1, message.2)
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

pub fn set(
    conn: &mut DbConnection,
    session: &str,
    holding: Holding,
    counter: Counter,
) -> Result<(), DbError> {
    let row = fix_sessions::table
        .filter(fix_sessions::session_id.eq(session))
        .filter(fix_sessions::holder_epoch.eq(holding.epoch()));
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
        held(session, updated)
    })
}

/// An update of the session's row found it, under the epoch it was fenced by.
fn held(session: &str, updated: usize) -> Result<(), DbError> {
    match updated {
        1 => Ok(()),
        _ => Err(DbError::Inconsistent(format!(
            "FIX session {session} is not stored, or another engine holds it now"
        ))),
    }
}

/// Forgets every message sent, starts both counters again where given and clears the watermark
/// (a sequence reset); whether a reset is owed is left as it was.
pub fn reset(
    conn: &mut DbConnection,
    session: &str,
    holding: Holding,
    next_sender: i64,
    next_target: i64,
) -> Result<(), DbError> {
    conn.transaction(|conn| {
        check_holding(conn, session, holding)?;
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
            held(session, updated)
        })
    })
}
