//! Accounts and their API tokens. A token is `{account id}.{secret}`; only the secret's SHA-256 is
//! stored, and it is compared in constant time.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::connection::{value_rows, Backend, Inner};
use super::prepared::prepared;
use super::DbConnection;
use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::schema::accounts;
use super::DbError;
use crate::db::ledger::{self, LedgerEntry, CASH};
use crate::domain::{AccountId, Cents, RiskLimits};

#[derive(Debug, Clone)]
pub struct CreatedAccount {
    pub id: AccountId,
    pub name: String,
    pub token: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `given`'s SHA-256 is `stored_hash` (hex), compared in constant time.
pub fn hash_matches(given: &str, stored_hash: &str) -> bool {
    sha256_hex(given.as_bytes())
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// Creates an account with its opening cash and positions, each booked as a ledger entry (inside
/// the caller's transaction).
pub fn create(
    conn: &mut DbConnection,
    name: &str,
    cash: Cents,
    positions: &BTreeMap<String, i64>,
    now: i64,
) -> Result<CreatedAccount, DbError> {
    let id = AccountId::new();
    let secret: [u8; 32] = rand::rng().random();
    let secret = hex::encode(secret);
    let token = format!("{}.{secret}", id.0.simple());
    with_conn!(conn, |c| diesel::insert_into(accounts::table)
        .values((
            accounts::id.eq(id),
            accounts::name.eq(name),
            accounts::token_hash.eq(sha256_hex(secret.as_bytes())),
            accounts::next_event_seq.eq(1_i64),
            accounts::created_at.eq(now),
        ))
        .execute(c))?;
    let opening =
        std::iter::once((CASH, cash.0)).chain(positions.iter().map(|(s, q)| (s.as_str(), *q)));
    for (asset, amount) in opening {
        ledger::apply(
            conn,
            &LedgerEntry {
                key: format!("account:{id}:open:{asset}"),
                account: id,
                asset: asset.into(),
                order: None,
                available_delta: amount,
                reserved_delta: 0,
            },
            now,
        )?;
    }
    Ok(CreatedAccount {
        id,
        name: name.to_owned(),
        token,
    })
}

/// The stored hash of an account's token secret.
pub fn token_hash(conn: &mut DbConnection, account: AccountId) -> Result<Option<String>, DbError> {
    with_conn!(conn, |conn| {
        Ok(accounts::table
            .find(account)
            .select(accounts::token_hash)
            .first(conn)
            .optional()?)
    })
}

/// Creates the demo account and keeps its token for the dashboard.
pub fn create_demo(
    conn: &mut DbConnection,
    cash: Cents,
    positions: &BTreeMap<String, i64>,
    now: i64,
) -> Result<CreatedAccount, DbError> {
    use super::schema::demo_account;
    let created = create(conn, "demo", cash, positions, now)?;
    with_conn!(conn, |c| diesel::insert_into(demo_account::table)
        .values((
            demo_account::account_id.eq(created.id),
            demo_account::token.eq(&created.token),
        ))
        .execute(c))?;
    Ok(created)
}

/// The demo account's token, when there is one.
pub fn demo_token(conn: &mut DbConnection) -> Result<Option<String>, DbError> {
    with_conn!(conn, |conn| {
        use super::schema::demo_account;
        Ok(demo_account::table
            .select(demo_account::token)
            .first(conn)
            .optional()?)
    })
}

pub fn count(conn: &mut DbConnection) -> Result<i64, DbError> {
    with_conn!(conn, |conn| {
        Ok(accounts::table.count().get_result(conn)?)
    })
}

/// Locks the accounts' rows in id order, `FOR NO KEY UPDATE` as [`take`] does,
/// for a phase that will take their event seqs one at a time (PostgreSQL; SQLite has one writer).
pub fn lock_in_order(
    conn: &mut DbConnection,
    ids: &std::collections::BTreeSet<AccountId>,
) -> Result<(), DbError> {
    if let (Inner::Postgres(c), false) = (&mut conn.inner, ids.is_empty()) {
        let ids: Vec<AccountId> = ids.iter().copied().collect();
        prepared(
            accounts::table
                .filter(accounts::id.eq_any(ids))
                .order(accounts::id.asc())
                .select(accounts::id)
                .for_no_key_update(),
            0,
        )
        .load::<AccountId>(c)?;
    }
    Ok(())
}

/// What a submit or a replace must know of an account before it moves anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gate {
    pub stored_keys: i64,
    pub limits: RiskLimits,
    pub halted: bool,
}

/// Each account's [`Gate`], read under the rows' lock (PostgreSQL, in id order, `FOR NO KEY
/// UPDATE` as [`take`] takes them; SQLite has one writer): an operator's change of limits or halt
/// waits for the phases that read the old ones, and holds for every phase after it.
pub fn gates_locked(
    conn: &mut DbConnection,
    ids: &std::collections::BTreeSet<AccountId>,
) -> Result<BTreeMap<AccountId, Gate>, DbError> {
    type Read = (
        AccountId,
        i64,
        Option<Cents>,
        Option<i64>,
        Option<i64>,
        bool,
    );
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ids: Vec<AccountId> = ids.iter().copied().collect();
    let query = accounts::table
        .filter(accounts::id.eq_any(ids))
        .order(accounts::id.asc())
        .select((
            accounts::id,
            accounts::stored_keys,
            accounts::max_order_notional,
            accounts::max_open_orders,
            accounts::price_band_percent,
            accounts::halted,
        ));
    let rows: Vec<Read> = match &mut conn.inner {
        Inner::Postgres(c) => prepared(query.for_no_key_update(), 0).load(c)?,
        Inner::Sqlite(c) => query.load(c)?,
    };
    Ok(rows
        .into_iter()
        .map(|(id, stored_keys, notional, open, band, halted)| {
            let limits = RiskLimits {
                max_order_notional: notional,
                max_open_orders: open,
                price_band_percent: band,
            };
            let gate = Gate {
                stored_keys,
                limits,
                halted,
            };
            (id, gate)
        })
        .collect())
}

/// Sets the account's risk limits; false when there is no such account.
pub fn set_limits(
    conn: &mut DbConnection,
    account: AccountId,
    limits: &RiskLimits,
) -> Result<bool, DbError> {
    let changed = with_conn!(conn, |c| diesel::update(accounts::table.find(account))
        .set((
            accounts::max_order_notional.eq(limits.max_order_notional),
            accounts::max_open_orders.eq(limits.max_open_orders),
            accounts::price_band_percent.eq(limits.price_band_percent),
        ))
        .execute(c))?;
    Ok(changed == 1)
}

/// Halts the account's trading, or lets it trade again; false when there is no such account.
pub fn set_halted(
    conn: &mut DbConnection,
    account: AccountId,
    halted: bool,
) -> Result<bool, DbError> {
    let changed = with_conn!(conn, |c| diesel::update(accounts::table.find(account))
        .set(accounts::halted.eq(halted))
        .execute(c))?;
    Ok(changed == 1)
}

/// Whether the account is halted (None: no such account).
pub fn halted(conn: &mut DbConnection, account: AccountId) -> Result<Option<bool>, DbError> {
    Ok(with_conn!(conn, |c| accounts::table
        .find(account)
        .select(accounts::halted)
        .first(c)
        .optional())?)
}

/// What a phase takes of one account: event seqs for the events it writes, and places for the
/// keys it stores (less the expired keys it deletes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taking {
    pub events: i64,
    pub keys: i64,
}

/// Moves each account's event seq and stored-key count on by what it takes, in one statement
/// inside the caller's transaction; returns the first of each account's seqs. On PostgreSQL the
/// account rows are locked in one order, and `FOR NO KEY UPDATE`, so that inserts of rows
/// referring to an account (orders, events) do not wait for the phase that holds it.
pub fn take(
    conn: &mut DbConnection,
    counts: &BTreeMap<AccountId, Taking>,
) -> Result<BTreeMap<AccountId, i64>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: AccountId,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        next_event_seq: i64,
    }
    if counts.is_empty() {
        return Ok(BTreeMap::new());
    }
    let in_order = match conn.backend() {
        Backend::Postgres => {
            " AND accounts.id IN (SELECT id FROM accounts \
             WHERE id IN (SELECT account FROM taking) ORDER BY id FOR NO KEY UPDATE)"
        }
        Backend::Sqlite => "",
    };
    let query = format!(
        "WITH taking (account, events, keys) AS (VALUES {values}) \
         UPDATE accounts SET next_event_seq = accounts.next_event_seq + taking.events, \
         stored_keys = accounts.stored_keys + taking.keys \
         FROM taking WHERE accounts.id = taking.account{in_order} \
         RETURNING id, next_event_seq",
        values = value_rows(conn.backend(), counts.len(), 3),
    );
    let rows: Vec<Row> = with_conn!(conn, |c| {
        let mut bound = diesel::sql_query(&query).into_boxed();
        for (account, taking) in counts {
            bound = bound
                .bind::<diesel::sql_types::Text, _>(account.to_string())
                .bind::<diesel::sql_types::BigInt, _>(taking.events)
                .bind::<diesel::sql_types::BigInt, _>(taking.keys);
        }
        prepared(bound, counts.len()).load(c)
    })?;
    let mut taken = BTreeMap::new();
    for row in rows {
        let n = counts.get(&row.id).map_or(0, |t| t.events);
        taken.insert(row.id, row.next_event_seq - n);
    }
    if taken.len() != counts.len() {
        return Err(DbError::Inconsistent(
            "an account to take seqs of is missing".into(),
        ));
    }
    Ok(taken)
}
