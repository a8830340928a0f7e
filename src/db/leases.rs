//! Engine leases and order ownership, so that several engines share one database and each open
//! order is carried on by exactly one of them.
//!
//! An engine joins with an epoch one above its last, and renews its lease before it expires. Each
//! open order names its owner and the owner's epoch; every phase an actor writes first checks that
//! both are still its engine's (the fence). When a lease expires, another engine takes the dead
//! engine's orders under its own epoch, and any write the old owner still attempts is refused.

use diesel::prelude::*;

use super::connection::Inner;
use super::schema::{engines, order_notes, orders};
use super::DbConnection;
use super::DbError;
pub use crate::domain::fence::{ensure_owner, Fence, Fenced};
use crate::domain::OrderId;

/// The database's clock, in microseconds. Leases are judged by it, never by an engine's own clock,
/// so an engine whose clock runs ahead neither sees live engines as dead, and one whose clock runs
/// behind does not wait on dead ones. (SQLite has one engine, on the machine whose clock it reads.)
pub fn database_now(conn: &mut DbConnection) -> Result<i64, DbError> {
    match &mut conn.inner {
        Inner::Postgres(c) => Ok(
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "(extract(epoch from clock_timestamp()) * 1000000)::bigint",
            ))
            .get_result(c)?,
        ),
        Inner::Sqlite(_) => Ok(super::now_micros()),
    }
}

/// Joins (or joins again after a restart) under a new epoch, and takes back the open orders this
/// engine owned, and any owned by no one. Returns the fence to write under.
pub fn join(conn: &mut DbConnection, engine: &str, ttl_micros: i64) -> Result<Fence, DbError> {
    let now = database_now(conn)?;
    let epoch: i64 = with_conn!(conn, |c| diesel::insert_into(engines::table)
        .values((
            engines::id.eq(engine),
            engines::epoch.eq(1_i64),
            engines::expires_at.eq(now + ttl_micros),
            engines::renewed_at.eq(now),
        ))
        .on_conflict(engines::id)
        .do_update()
        .set((
            engines::epoch.eq(engines::epoch + 1),
            engines::expires_at.eq(now + ttl_micros),
            engines::renewed_at.eq(now),
        ))
        .returning(engines::epoch)
        .get_result(c))?;
    with_conn!(conn, |c| diesel::update(
        orders::table
            .filter(orders::owner.eq(engine).or(orders::owner.eq("")))
            .filter(super::orders::is_open()),
    )
    .set((orders::owner.eq(engine), orders::owner_epoch.eq(epoch)))
    .execute(c))?;
    Ok(Fence {
        engine: engine.to_owned(),
        epoch,
    })
}

/// Extends the lease; false when it was lost (taken over, or joined again by another process
/// under the same id).
pub fn renew(conn: &mut DbConnection, fence: &Fence, ttl_micros: i64) -> Result<bool, DbError> {
    let now = database_now(conn)?;
    let renewed = with_conn!(conn, |c| diesel::update(
        engines::table
            .filter(engines::id.eq(&fence.engine))
            .filter(engines::epoch.eq(fence.epoch)),
    )
    .set((
        engines::expires_at.eq(now + ttl_micros),
        engines::renewed_at.eq(now),
    ))
    .execute(c))?;
    Ok(renewed == 1)
}

/// Ends the lease now (a clean shutdown), if it is still this one.
pub fn expire(conn: &mut DbConnection, fence: &Fence) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::update(
        engines::table
            .filter(engines::id.eq(&fence.engine))
            .filter(engines::epoch.eq(fence.epoch)),
    )
    .set(engines::expires_at.eq(0_i64))
    .execute(c))?;
    Ok(())
}

/// Engines whose lease ran out before `now`. There is no index on `expires_at` (the table has a
/// row per engine), so this is read whole; with scans turned off it is costed as if huge, and
/// must not be compiled with JIT at every lease tick (the engine's connections turn JIT off).
#[diesel::dsl::auto_type]
pub fn lapsed(now: i64) -> _ {
    engines::table
        .filter(engines::expires_at.lt(now))
        .select(engines::id)
}

/// Engines whose lease has run out while they still own open orders. The engines come first, and
/// few of them: each dead one is then looked up among the open orders through the owner index, so
/// no order of a live engine is read.
pub fn expired(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    let now = database_now(conn)?;
    let dead: Vec<String> = with_conn!(conn, |c| lapsed(now).load(c))?;
    let mut owning = Vec::new();
    for engine in dead {
        let owns_open = orders::table
            .filter(orders::owner.eq(&engine))
            .filter(super::orders::is_open());
        if with_conn!(conn, |c| diesel::select(diesel::dsl::exists(owns_open))
            .get_result::<bool>(c))?
        {
            owning.push(engine);
        }
    }
    Ok(owning)
}

/// Takes over a dead engine's open orders, if its lease is still expired (it may have come back);
/// returns how many. The dead engine's epoch is raised, so that if it comes back its renewal
/// fails and it joins again, never reusing an epoch.
pub fn take_over(conn: &mut DbConnection, dead: &str, fence: &Fence) -> Result<usize, DbError> {
    if dead == fence.engine {
        return Ok(0);
    }
    let now = database_now(conn)?;
    let fenced = with_conn!(conn, |c| diesel::update(
        engines::table
            .filter(engines::id.eq(dead))
            .filter(engines::expires_at.lt(now)),
    )
    .set(engines::epoch.eq(engines::epoch + 1))
    .execute(c))?;
    if fenced == 0 {
        return Ok(0);
    }
    let taken = with_conn!(conn, |c| diesel::update(
        orders::table
            .filter(orders::owner.eq(dead))
            .filter(super::orders::is_open()),
    )
    .set((
        orders::owner.eq(&fence.engine),
        orders::owner_epoch.eq(fence.epoch),
    ))
    .execute(c))?;
    with_conn!(conn, |c| diesel::delete(
        order_notes::table.filter(order_notes::owner.eq(dead))
    )
    .execute(c))?;
    Ok(taken)
}

/// The fence a new order is to be recorded under: `given`'s engine at the epoch its row holds now,
/// read inside the caller's transaction. An engine that was paused may still carry the epoch it
/// held before; an order stamped with that one would belong to no live engine. On PostgreSQL the
/// row is key-share-locked to the end of the transaction: the epoch is a key column (a unique
/// index holds it), so a join or takeover that raises it waits for the order to commit and then
/// counts it among the engine's orders, while a renewal, which changes no key, waits for nothing.
/// An engine with no row (an order recorded before any engine joined) keeps `given`.
pub fn owner_now(conn: &mut DbConnection, given: &Fence) -> Result<Fence, DbError> {
    let row = engines::table.find(&given.engine).select(engines::epoch);
    let epoch: Option<i64> = match &mut conn.inner {
        Inner::Postgres(c) => row.for_key_share().first(c).optional()?,
        Inner::Sqlite(c) => row.first(c).optional()?,
    };
    Ok(Fence {
        engine: given.engine.clone(),
        epoch: epoch.unwrap_or(given.epoch),
    })
}

/// The order's owner and epoch, for a phase to check against its fence. On PostgreSQL the order's
/// row stays locked to the end of the phase, so a takeover waits for it or the phase waits for the
/// takeover.
pub fn lock_owner(conn: &mut DbConnection, order: OrderId) -> Result<(String, i64), DbError> {
    let owner: Option<(String, i64)> = match &mut conn.inner {
        Inner::Postgres(c) => orders::table
            .find(order)
            .select((orders::owner, orders::owner_epoch))
            .for_no_key_update()
            .first(c)
            .optional()?,
        Inner::Sqlite(c) => orders::table
            .find(order)
            .select((orders::owner, orders::owner_epoch))
            .first(c)
            .optional()?,
    };
    owner.ok_or(DbError::NotFound)
}

/// Leaves a note for an order's owner to look at the order now.
pub fn leave_note(conn: &mut DbConnection, owner: &str, order: OrderId) -> Result<(), DbError> {
    with_conn!(conn, |c| diesel::insert_into(order_notes::table)
        .values((
            order_notes::owner.eq(owner),
            order_notes::order_id.eq(order.to_string()),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(())
}

/// The notes left for this engine, taken (each is handed out once).
pub fn take_notes(conn: &mut DbConnection, engine: &str) -> Result<Vec<OrderId>, DbError> {
    let ids: Vec<String> = with_conn!(conn, |c| diesel::delete(
        order_notes::table.filter(order_notes::owner.eq(engine))
    )
    .returning(order_notes::order_id)
    .get_results(c))?;
    Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
}

/// Whether any note waits for this engine (a read, so that an idle engine writes nothing).
pub fn has_notes(conn: &mut DbConnection, engine: &str) -> Result<bool, DbError> {
    with_conn!(conn, |c| Ok(diesel::select(diesel::dsl::exists(
        order_notes::table.filter(order_notes::owner.eq(engine))
    ))
    .get_result(c)?))
}
