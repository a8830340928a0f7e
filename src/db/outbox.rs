//! The transactional outbox: events written with the change that caused them, numbered per account.

use diesel::prelude::*;

use super::DbConnection;
use serde::Serialize;

use super::schema::outbox;
use super::DbError;
use crate::domain::{AccountId, EventKind};

/// The frame a feed client receives. It is serialised once, stored, and always sent as stored.
#[derive(Debug, Serialize)]
pub struct EventFrame<'a, O: Serialize, F: Serialize> {
    #[serde(rename = "type")]
    pub frame_type: &'static str,
    pub seq: i64,
    pub kind: EventKind,
    pub order: &'a O,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill: Option<&'a F>,
    /// `order.recovered` only: what the log said, what the exchange said, what was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<&'a serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = outbox, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct OutboxRow {
    pub account_id: AccountId,
    pub seq: i64,
    pub kind: String,
    pub payload: String,
    pub created_at: i64,
    pub published_at: Option<i64>,
}

/// An event to be added under a seq already taken.
#[derive(Debug, Insertable)]
#[diesel(table_name = outbox)]
pub struct NewEvent<'a> {
    account_id: AccountId,
    seq: i64,
    kind: &'a str,
    payload: String,
    created_at: i64,
}

impl<'a> NewEvent<'a> {
    pub fn of<O: Serialize, F: Serialize>(
        account: AccountId,
        frame: &EventFrame<'a, O, F>,
        now: i64,
    ) -> Result<Self, DbError> {
        Ok(NewEvent {
            account_id: account,
            seq: frame.seq,
            kind: frame.kind.as_str(),
            payload: serde_json::to_string(frame)?,
            created_at: now,
        })
    }
}

/// The next event of `account`, numbered from `next_seq` (the seqs the caller took for each
/// account in this transaction), which moves on by one.
pub fn next_event<'a, O: Serialize, F: Serialize>(
    next_seq: &mut std::collections::BTreeMap<AccountId, i64>,
    account: AccountId,
    kind: EventKind,
    order: &'a O,
    fill: Option<&'a F>,
    now: i64,
) -> Result<NewEvent<'a>, DbError> {
    next_frame(next_seq, account, kind, order, fill, None, now)
}

/// The next `order.recovered` event of `account`, with what recovery found and did, numbered
/// as [`next_event`] numbers.
pub fn next_recovered<'a, O: Serialize>(
    next_seq: &mut std::collections::BTreeMap<AccountId, i64>,
    account: AccountId,
    order: &'a O,
    recovery: &'a serde_json::Value,
    now: i64,
) -> Result<NewEvent<'a>, DbError> {
    next_frame::<O, ()>(
        next_seq,
        account,
        EventKind::Recovered,
        order,
        None,
        Some(recovery),
        now,
    )
}

fn next_frame<'a, O: Serialize, F: Serialize>(
    next_seq: &mut std::collections::BTreeMap<AccountId, i64>,
    account: AccountId,
    kind: EventKind,
    order: &'a O,
    fill: Option<&'a F>,
    recovery: Option<&'a serde_json::Value>,
    now: i64,
) -> Result<NewEvent<'a>, DbError> {
    let seq = next_seq
        .get_mut(&account)
        .ok_or_else(|| DbError::Inconsistent("no seqs taken for an account".into()))?;
    let frame = EventFrame {
        frame_type: "event",
        seq: *seq,
        kind,
        order,
        fill,
        recovery,
    };
    *seq += 1;
    NewEvent::of(account, &frame, now)
}

/// Adds events whose seqs the caller took, inside its transaction, in one statement.
pub fn append_events(conn: &mut DbConnection, events: &[NewEvent<'_>]) -> Result<(), DbError> {
    Ok(insert_rows!(conn, outbox::table, events)?)
}

/// An account's events after `since`, in order.
pub fn since(
    conn: &mut DbConnection,
    account: AccountId,
    since: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, DbError> {
    with_conn!(conn, |conn| {
        Ok(outbox::table
            .filter(outbox::account_id.eq(account))
            .filter(outbox::seq.gt(since))
            .order(outbox::seq.asc())
            .limit(limit)
            .select(OutboxRow::as_select())
            .load(conn)?)
    })
}

/// The events after each account's cursor, per account in seq order: what the feed has not
/// delivered yet. An account's seqs commit in order (they are taken under the account's row), so
/// reading past a cursor never skips one that commits later.
pub fn after_cursors(
    conn: &mut DbConnection,
    cursors: &[(AccountId, i64)],
    limit: i64,
) -> Result<Vec<OutboxRow>, DbError> {
    if cursors.is_empty() {
        return Ok(Vec::new());
    }
    // The cursors are typed values (a UUID and an integer), written out as literals.
    let values = cursors
        .iter()
        .map(|(account, after)| format!("('{account}', {after})"))
        .collect::<Vec<_>>()
        .join(", ");
    let query = format!(
        "WITH cursors (account_id, after_seq) AS (VALUES {values}) \
         SELECT o.account_id, o.seq, o.kind, o.payload, o.created_at, o.published_at \
         FROM outbox o JOIN cursors c ON o.account_id = c.account_id AND o.seq > c.after_seq \
         ORDER BY o.account_id, o.seq LIMIT {limit}"
    );
    with_conn!(conn, |conn| Ok(diesel::sql_query(&query).load(conn)?))
}

/// Events not yet published to the broker, per account in seq order.
pub fn unpublished(conn: &mut DbConnection, limit: i64) -> Result<Vec<OutboxRow>, DbError> {
    with_conn!(conn, |conn| {
        Ok(outbox::table
            .filter(outbox::published_at.is_null())
            .order((outbox::account_id, outbox::seq))
            .limit(limit)
            .select(OutboxRow::as_select())
            .load(conn)?)
    })
}

/// Marks exactly these events as published to the broker (not a range: another engine's
/// publisher may hold the seqs between).
pub fn mark_published(
    conn: &mut DbConnection,
    keys: &[(AccountId, i64)],
    now: i64,
) -> Result<(), DbError> {
    let mut by_account: std::collections::BTreeMap<AccountId, Vec<i64>> =
        std::collections::BTreeMap::new();
    for (account, seq) in keys {
        by_account.entry(*account).or_default().push(*seq);
    }
    with_conn!(conn, |conn| {
        for (account, seqs) in by_account {
            diesel::update(
                outbox::table
                    .filter(outbox::account_id.eq(account))
                    .filter(outbox::seq.eq_any(seqs)),
            )
            .set(outbox::published_at.eq(now))
            .execute(conn)?;
        }
        Ok(())
    })
}

/// Events the broker has not acknowledged yet.
pub fn unpublished_count(conn: &mut DbConnection) -> Result<i64, DbError> {
    with_conn!(conn, |conn| Ok(outbox::table
        .filter(outbox::published_at.is_null())
        .count()
        .get_result(conn)?))
}

/// What the store still holds of an account's events: the first seq kept (its next seq when
/// none is) and the latest seq taken.
pub fn kept(conn: &mut DbConnection, account: AccountId) -> Result<(i64, i64), DbError> {
    use super::schema::accounts;
    with_conn!(conn, |conn| {
        let next: i64 = accounts::table
            .find(account)
            .select(accounts::next_event_seq)
            .first(conn)?;
        let first: Option<i64> = outbox::table
            .filter(outbox::account_id.eq(account))
            .select(diesel::dsl::min(outbox::seq))
            .first(conn)?;
        Ok((first.unwrap_or(next), next - 1))
    })
}

/// Deletes up to `at_most` events committed before `before` (with a broker, only those it has
/// acknowledged), a chunk per call, as keys are reaped.
pub fn prune(
    conn: &mut DbConnection,
    before: i64,
    only_published: bool,
    at_most: i64,
) -> Result<usize, DbError> {
    let condition = if only_published {
        "created_at < {} AND published_at IS NOT NULL"
    } else {
        "created_at < {}"
    };
    let sql = super::connection::bounded_delete(conn.backend(), "outbox", condition);
    Ok(with_conn!(conn, |c| diesel::sql_query(&sql)
        .bind::<diesel::sql_types::BigInt, _>(before)
        .bind::<diesel::sql_types::BigInt, _>(at_most)
        .execute(c))?)
}
