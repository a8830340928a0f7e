//! The halt of every engine on the database: one row, read by each submit and replace phase.

use diesel::prelude::*;

use super::connection::Inner;
use super::schema::trading_state;
use super::{DbConnection, DbError};

/// Whether trading is halted for every account. Read by a phase that would trade: on PostgreSQL
/// the row is share-locked until the phase commits, so a halt (which updates it) waits for the
/// phases that read it open, and every order committed after the halt saw it.
pub fn halted_for_phase(conn: &mut DbConnection) -> Result<bool, DbError> {
    read_halted(conn, true)
}

/// Whether trading is halted for every account, as last committed.
pub fn halted(conn: &mut DbConnection) -> Result<bool, DbError> {
    read_halted(conn, false)
}

fn read_halted(conn: &mut DbConnection, share_lock: bool) -> Result<bool, DbError> {
    let query = trading_state::table.find(1).select(trading_state::halted);
    let halted: Option<bool> = match &mut conn.inner {
        Inner::Postgres(c) if share_lock => query.for_share().first(c).optional()?,
        Inner::Postgres(c) => query.first(c).optional()?,
        Inner::Sqlite(c) => query.first(c).optional()?,
    };
    Ok(halted.unwrap_or(false))
}

/// Halts trading for every account, or lets it go on. On PostgreSQL it first locks the table in a
/// mode the phases' share lock conflicts with, and takes its place in the queue: the phases that
/// already read the halt commit first, and those that come after it wait for it and see it. With
/// row locks alone, each new phase's share lock would go ahead of the waiting update, for as long
/// as phases kept coming.
pub fn set_halted(conn: &mut DbConnection, halted: bool, now: i64) -> Result<(), DbError> {
    conn.transaction(|conn| {
        if let Inner::Postgres(c) = &mut conn.inner {
            diesel::sql_query("LOCK TABLE trading_state IN EXCLUSIVE MODE").execute(c)?;
        }
        crate::with_conn!(conn, |c| diesel::update(trading_state::table.find(1))
            .set((
                trading_state::halted.eq(halted),
                trading_state::updated_at.eq(now),
            ))
            .execute(c))?;
        Ok(())
    })
}
