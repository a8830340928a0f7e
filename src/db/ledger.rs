//! The ledger: every movement of cash or shares is an entry with its own key, and balances are the
//! running sum of the entries. Applying an entry whose key already exists changes nothing, so every
//! effect (a reservation, a fill, a release) happens at most once however often it is retried.

use diesel::prelude::*;

use super::connection::Inner;
use super::DbConnection;

use super::schema::{balances, ledger_entries};
use crate::domain::{AccountId, OrderId};
use crate::error::AppError;

pub use crate::domain::CASH;

#[derive(Debug, Clone)]
pub struct LedgerEntry<'a> {
    pub key: String,
    pub account: AccountId,
    pub asset: &'a str,
    pub order: Option<OrderId>,
    pub available_delta: i64,
    pub reserved_delta: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Queryable)]
pub struct Balance {
    pub available: i64,
    pub reserved: i64,
}

/// Where an entry would leave its balance, worked out before anything is written: None when the
/// sum would overflow or fall below zero. The sums are taken here, with checked arithmetic:
/// SQLite would turn an overflowing integer sum into a float.
pub fn landing(
    conn: &mut DbConnection,
    entry: &LedgerEntry<'_>,
) -> Result<Option<Balance>, AppError> {
    let current = balance_for_update(conn, entry.account, entry.asset)?;
    let available = current.available.checked_add(entry.available_delta);
    let reserved = current.reserved.checked_add(entry.reserved_delta);
    Ok(match (available, reserved) {
        (Some(available), Some(reserved)) if available >= 0 && reserved >= 0 => Some(Balance {
            available,
            reserved,
        }),
        _ => None,
    })
}

/// Books an entry and sets its balance to `landing`, inside the caller's transaction. Returns
/// false, changing nothing, when an entry with the same key was booked before. A CHECK (>= 0) on
/// both balance columns is the last line of defence.
pub fn book(
    conn: &mut DbConnection,
    entry: &LedgerEntry<'_>,
    landing: Balance,
    now: i64,
) -> Result<bool, AppError> {
    with_conn!(conn, |conn| {
        let inserted = diesel::insert_into(ledger_entries::table)
            .values((
                ledger_entries::entry_key.eq(&entry.key),
                ledger_entries::account_id.eq(entry.account),
                ledger_entries::asset.eq(entry.asset),
                ledger_entries::order_id.eq(entry.order),
                ledger_entries::available_delta.eq(entry.available_delta),
                ledger_entries::reserved_delta.eq(entry.reserved_delta),
                ledger_entries::created_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
        if inserted == 0 {
            return Ok(false);
        }
        diesel::insert_into(balances::table)
            .values((
                balances::account_id.eq(entry.account),
                balances::asset.eq(entry.asset),
                balances::available.eq(landing.available),
                balances::reserved.eq(landing.reserved),
            ))
            .on_conflict((balances::account_id, balances::asset))
            .do_update()
            .set((
                balances::available.eq(landing.available),
                balances::reserved.eq(landing.reserved),
            ))
            .execute(conn)?;
        Ok(true)
    })
}

/// Books an entry the caller has already checked the balance for: a landing below zero or past
/// the largest amount is an error here. Returns false when the entry was booked before.
pub fn apply(conn: &mut DbConnection, entry: &LedgerEntry<'_>, now: i64) -> Result<bool, AppError> {
    let landing = landing(conn, entry)?.ok_or_else(|| {
        AppError::Internal(format!(
            "ledger entry {} would overdraw or overflow",
            entry.key
        ))
    })?;
    book(conn, entry, landing, now)
}

/// A balance about to be changed. On PostgreSQL, where phases run side by side, its row is made
/// if missing and locked for the rest of the transaction, so that no other phase reads it before
/// this one has written it (on SQLite the one writer already runs phases in turn).
fn balance_for_update(
    conn: &mut DbConnection,
    account: AccountId,
    asset: &str,
) -> Result<Balance, AppError> {
    let Inner::Postgres(c) = &mut conn.inner else {
        return balance(conn, account, asset);
    };
    diesel::insert_into(balances::table)
        .values((
            balances::account_id.eq(account),
            balances::asset.eq(asset),
            balances::available.eq(0_i64),
            balances::reserved.eq(0_i64),
        ))
        .on_conflict_do_nothing()
        .execute(c)?;
    Ok(balances::table
        .find((account, asset))
        .select((balances::available, balances::reserved))
        .for_update()
        .first(c)?)
}

pub fn balance(
    conn: &mut DbConnection,
    account: AccountId,
    asset: &str,
) -> Result<Balance, AppError> {
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
) -> Result<Vec<(String, Balance)>, AppError> {
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

/// What an order still holds reserved of one asset: the sum of its entries' reserved deltas.
pub fn reserved_for_order(
    conn: &mut DbConnection,
    order: OrderId,
    asset: &str,
) -> Result<i64, AppError> {
    with_conn!(conn, |conn| {
        let deltas: Vec<i64> = ledger_entries::table
            .filter(ledger_entries::order_id.eq(order))
            .filter(ledger_entries::asset.eq(asset))
            .select(ledger_entries::reserved_delta)
            .load(conn)?;
        deltas
            .iter()
            .try_fold(0_i64, |sum, d| sum.checked_add(*d))
            .ok_or_else(|| AppError::Internal(format!("order {order}'s reservation overflows")))
    })
}
