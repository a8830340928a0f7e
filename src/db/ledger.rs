//! The ledger: every movement of cash or shares is an entry with its own key, and balances are the
//! running sum of the entries. Applying an entry whose key already exists changes nothing, so every
//! effect (a reservation, a fill, a release) happens at most once however often it is retried.

use diesel::prelude::*;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::connection::{text_literal, value_rows, Backend, Inner};
use super::prepared::{prepared, run_kept};
use super::DbConnection;

use super::schema::{balances, ledger_entries};
use super::DbError;
use crate::domain::{AccountId, OrderId};

pub use crate::domain::CASH;

#[derive(Debug, Clone)]
pub struct LedgerEntry<'a> {
    pub key: String,
    pub account: AccountId,
    /// Borrowed where the entry is written at once; owned where a plan keeps it for later.
    pub asset: Cow<'a, str>,
    pub order: Option<OrderId>,
    pub available_delta: i64,
    pub reserved_delta: i64,
}

impl LedgerEntry<'_> {
    /// The entry holding its own asset, to be kept past what it borrowed from.
    pub fn into_owned(self) -> LedgerEntry<'static> {
        LedgerEntry {
            asset: Cow::Owned(self.asset.into_owned()),
            ..self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Queryable)]
pub struct Balance {
    pub available: i64,
    pub reserved: i64,
}

/// Where an entry would leave its balance, worked out before anything is written: None when the
/// sum would overflow or fall below zero. The sums are taken here, with checked arithmetic:
/// SQLite would turn an overflowing integer sum into a float.
pub fn balance_after(
    conn: &mut DbConnection,
    entry: &LedgerEntry<'_>,
) -> Result<Option<Balance>, DbError> {
    Ok(balance_for_update(conn, entry.account, &entry.asset)?.after(entry))
}

impl Balance {
    /// This balance with `entry` applied: None when a sum would overflow or fall below zero.
    pub fn after(self, entry: &LedgerEntry<'_>) -> Option<Balance> {
        let available = self.available.checked_add(entry.available_delta)?;
        let reserved = self.reserved.checked_add(entry.reserved_delta)?;
        (available >= 0 && reserved >= 0).then_some(Balance {
            available,
            reserved,
        })
    }
}

/// Books an entry and sets its balance to `after`, inside the caller's transaction. Returns
/// false, changing nothing, when an entry with the same key was booked before. A CHECK (>= 0) on
/// both balance columns is the last line of defence.
pub fn book(
    conn: &mut DbConnection,
    entry: &LedgerEntry<'_>,
    after: Balance,
    now: i64,
) -> Result<bool, DbError> {
    let inserted = with_conn!(conn, |conn| Ok::<_, DbError>(
        diesel::insert_into(ledger_entries::table)
            .values(NewEntry::of(entry, now))
            .on_conflict_do_nothing()
            .execute(conn)?
    ))?;
    if inserted == 0 {
        return Ok(false);
    }
    set_balances(conn, &[BalanceRow::of(entry.account, &entry.asset, after)])?;
    Ok(true)
}

/// Books entries whose keys are new to the ledger, and sets every balance they touch to
/// `balances_after`, worked out by the caller under [`lock_balances`]. An entry booked before is
/// an error: the caller's transaction rolls back whole.
pub fn book_new(
    conn: &mut DbConnection,
    entries: &[&LedgerEntry<'_>],
    balances_after: &BTreeMap<(AccountId, String), Balance>,
    now: i64,
) -> Result<(), DbError> {
    let rows: Vec<NewEntry<'_>> = entries.iter().map(|e| NewEntry::of(e, now)).collect();
    insert_rows!(conn, ledger_entries::table, &rows)?;
    let balances: Vec<BalanceRow<'_>> = balances_after
        .iter()
        .map(|((account, asset), after)| BalanceRow::of(*account, asset, *after))
        .collect();
    set_balances(conn, &balances)
}

#[derive(Insertable)]
#[diesel(table_name = ledger_entries)]
struct NewEntry<'a> {
    entry_key: &'a str,
    account_id: AccountId,
    asset: &'a str,
    order_id: Option<OrderId>,
    available_delta: i64,
    reserved_delta: i64,
    created_at: i64,
}

impl<'a> NewEntry<'a> {
    fn of(entry: &'a LedgerEntry<'_>, now: i64) -> Self {
        NewEntry {
            entry_key: &entry.key,
            account_id: entry.account,
            asset: &entry.asset,
            order_id: entry.order,
            available_delta: entry.available_delta,
            reserved_delta: entry.reserved_delta,
            created_at: now,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = balances)]
struct BalanceRow<'a> {
    account_id: AccountId,
    asset: &'a str,
    available: i64,
    reserved: i64,
}

impl<'a> BalanceRow<'a> {
    fn of(account: AccountId, asset: &'a str, balance: Balance) -> Self {
        BalanceRow {
            account_id: account,
            asset,
            available: balance.available,
            reserved: balance.reserved,
        }
    }
}

/// Sets each balance to its row's amounts, making the rows that are missing.
fn set_balances(conn: &mut DbConnection, rows: &[BalanceRow<'_>]) -> Result<(), DbError> {
    use diesel::upsert::excluded;
    macro_rules! upsert {
        ($values:expr) => {
            diesel::insert_into(balances::table)
                .values($values)
                .on_conflict((balances::account_id, balances::asset))
                .do_update()
                .set((
                    balances::available.eq(excluded(balances::available)),
                    balances::reserved.eq(excluded(balances::reserved)),
                ))
        };
    }
    match &mut conn.inner {
        Inner::Postgres(c) => {
            run_kept(c, upsert!(rows), rows.len())?;
        }
        // diesel writes no many-row upsert for SQLite; in-process, a row at a time costs little.
        Inner::Sqlite(c) => {
            for row in rows {
                upsert!(row).execute(c)?;
            }
        }
    }
    Ok(())
}

/// The balances of `pairs` that exist, by (account, asset). On PostgreSQL they are locked for the
/// rest of the transaction in the order every phase locks balances (by account; within one, cash
/// before shares, as a fill settles), so that no two phases wait for each other in a circle.
pub fn lock_balances(
    conn: &mut DbConnection,
    pairs: &BTreeSet<(AccountId, String)>,
) -> Result<BTreeMap<(AccountId, String), Balance>, DbError> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Text)]
        account_id: AccountId,
        #[diesel(sql_type = diesel::sql_types::Text)]
        asset: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        available: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        reserved: i64,
    }
    if pairs.is_empty() {
        return Ok(BTreeMap::new());
    }
    let lock = match conn.backend() {
        Backend::Postgres => " FOR UPDATE OF b",
        Backend::Sqlite => "",
    };
    let query = format!(
        "WITH wanted (account, asset) AS (VALUES {values}) \
         SELECT b.account_id, b.asset, b.available, b.reserved \
         FROM balances b JOIN wanted w ON b.account_id = w.account AND b.asset = w.asset \
         ORDER BY b.account_id, b.asset = {cash} DESC, b.asset{lock}",
        values = value_rows(conn.backend(), pairs.len(), 2),
        cash = text_literal(CASH)
    );
    let rows: Vec<Locked> = with_conn!(conn, |c| {
        let mut bound = diesel::sql_query(&query).into_boxed();
        for (account, asset) in pairs {
            bound = bound
                .bind::<diesel::sql_types::Text, _>(account.to_string())
                .bind::<diesel::sql_types::Text, _>(asset.as_str());
        }
        prepared(bound, pairs.len()).load(c)
    })?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let balance = Balance {
                available: r.available,
                reserved: r.reserved,
            };
            ((r.account_id, r.asset), balance)
        })
        .collect())
}

/// The balances of `pairs`, about to be changed, by (account, asset); a missing one reads as
/// zero. On PostgreSQL each row is made if missing and locked, as [`lock_balances`] orders them,
/// so that no other phase reads one before this one has written it (on SQLite the one writer
/// already runs phases in turn).
pub fn balances_for_update(
    conn: &mut DbConnection,
    pairs: &BTreeSet<(AccountId, String)>,
) -> Result<BTreeMap<(AccountId, String), Balance>, DbError> {
    if let Inner::Postgres(c) = &mut conn.inner {
        let missing: Vec<BalanceRow<'_>> = pairs
            .iter()
            .map(|(account, asset)| BalanceRow::of(*account, asset, Balance::default()))
            .collect();
        if !missing.is_empty() {
            run_kept(
                c,
                diesel::insert_into(balances::table)
                    .values(&missing)
                    .on_conflict_do_nothing(),
                missing.len(),
            )?;
        }
    }
    lock_balances(conn, pairs)
}

/// Books an entry the caller has already checked the balance for: a balance it would leave below
/// zero or past the largest amount is an error here. Returns false when the entry was booked
/// before.
pub fn apply(conn: &mut DbConnection, entry: &LedgerEntry<'_>, now: i64) -> Result<bool, DbError> {
    let after = balance_after(conn, entry)?.ok_or_else(|| {
        DbError::Inconsistent(format!(
            "ledger entry {} would overdraw or overflow",
            entry.key
        ))
    })?;
    book(conn, entry, after, now)
}

/// A balance about to be changed, as [`balances_for_update`] reads one.
fn balance_for_update(
    conn: &mut DbConnection,
    account: AccountId,
    asset: &str,
) -> Result<Balance, DbError> {
    let pair = (account, asset.to_owned());
    let mut read = balances_for_update(conn, &BTreeSet::from([pair]))?;
    Ok(read
        .pop_first()
        .map(|(_, balance)| balance)
        .unwrap_or_default())
}

pub fn balance(
    conn: &mut DbConnection,
    account: AccountId,
    asset: &str,
) -> Result<Balance, DbError> {
    with_conn!(conn, |conn| {
        Ok(balances::table
            .find((account, asset))
            .select((balances::available, balances::reserved))
            .first(conn)
            .optional()?
            .unwrap_or_default())
    })
}

/// Every balance of an account, by asset.
pub fn balances(
    conn: &mut DbConnection,
    account: AccountId,
) -> Result<Vec<(String, Balance)>, DbError> {
    with_conn!(conn, |conn| {
        let rows: Vec<(String, i64, i64)> = balances::table
            .filter(balances::account_id.eq(account))
            .select((balances::asset, balances::available, balances::reserved))
            .order(balances::asset)
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|(asset, available, reserved)| {
                (
                    asset,
                    Balance {
                        available,
                        reserved,
                    },
                )
            })
            .collect())
    })
}

/// What each order still holds reserved of its asset: the sum of its entries' reserved deltas
/// in that asset (0 for an order with none).
pub fn reserved_for_orders(
    conn: &mut DbConnection,
    orders: &[(OrderId, &str)],
) -> Result<HashMap<OrderId, i64>, DbError> {
    let rows: Vec<(Option<OrderId>, String, i64)> = match &mut conn.inner {
        // One statement for them all where each is a round trip.
        Inner::Postgres(c) => {
            let ids: Vec<OrderId> = orders.iter().map(|(order, _)| *order).collect();
            ledger_entries::table
                .filter(ledger_entries::order_id.eq_any(&ids))
                .select(ENTRY_DELTA)
                .load(c)?
        }
        // In process, a lookup by the order's index each, its statement prepared once.
        Inner::Sqlite(c) => {
            let mut rows = Vec::new();
            for (order, _) in orders {
                rows.extend(
                    ledger_entries::table
                        .filter(ledger_entries::order_id.eq(*order))
                        .select(ENTRY_DELTA)
                        .load::<(Option<OrderId>, String, i64)>(c)?,
                );
            }
            rows
        }
    };
    let assets: HashMap<OrderId, &str> = orders.iter().copied().collect();
    let mut held: HashMap<OrderId, i64> = assets.keys().map(|order| (*order, 0)).collect();
    for (order, asset, delta) in rows {
        let Some(order) = order.filter(|o| assets.get(o) == Some(&asset.as_str())) else {
            continue;
        };
        let sum = held.entry(order).or_default();
        *sum = sum.checked_add(delta).ok_or_else(|| {
            DbError::Inconsistent(format!("order {order}'s reservation overflows"))
        })?;
    }
    Ok(held)
}

const ENTRY_DELTA: (
    ledger_entries::order_id,
    ledger_entries::asset,
    ledger_entries::reserved_delta,
) = (
    ledger_entries::order_id,
    ledger_entries::asset,
    ledger_entries::reserved_delta,
);
