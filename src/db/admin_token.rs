//! The operator's admin token. Only its SHA-256 is stored, in one row, so a token survives
//! restarts, is shared by every engine on the database, and is never written down in clear.

use diesel::prelude::*;

use super::schema::admin_token;
use super::DbConnection;
use super::DbError;

const ROW: i32 = 1;

/// Stores `hash` in place of whatever was stored (an operator's `--admin-token`).
pub fn replace(conn: &mut DbConnection, hash: &str, now: i64) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::insert_into(admin_token::table)
        .values((
            admin_token::id.eq(ROW),
            admin_token::token_hash.eq(hash),
            admin_token::set_at.eq(now),
        ))
        .on_conflict(admin_token::id)
        .do_update()
        .set((
            admin_token::token_hash.eq(hash),
            admin_token::set_at.eq(now),
        ))
        .execute(c))?;
    Ok(())
}

/// Stores `hash` unless a hash is stored already; returns the one stored now. When two engines
/// start on an empty database together, both end with the first one's.
pub fn keep_first(conn: &mut DbConnection, hash: &str, now: i64) -> Result<String, DbError> {
    with_conn!(conn, |c| {
        diesel::insert_into(admin_token::table)
            .values((
                admin_token::id.eq(ROW),
                admin_token::token_hash.eq(hash),
                admin_token::set_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(c)?;
        Ok(admin_token::table
            .select(admin_token::token_hash)
            .filter(admin_token::id.eq(ROW))
            .first(c)?)
    })
}
