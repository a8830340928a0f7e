//! Positions: each account's fold of its fills in one symbol (`domain::position`), written by the
//! phase that records the fills.

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::connection::Inner;
use super::schema::positions;
use super::{DbConnection, DbError};
use crate::domain::{AccountId, Cents, Position};

/// A position as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = positions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct PositionRow {
    pub account_id: AccountId,
    pub symbol: String,
    pub qty: i64,
    pub avg_cost: Cents,
    pub realized_pnl: Cents,
    pub fills: i64,
    pub updated_at: i64,
}

impl PositionRow {
    pub fn of(account: AccountId, symbol: &str, position: Position, now: i64) -> Self {
        PositionRow {
            account_id: account,
            symbol: symbol.to_owned(),
            qty: position.qty,
            avg_cost: position.avg_cost,
            realized_pnl: position.realized,
            fills: position.fills,
            updated_at: now,
        }
    }

    pub fn position(&self) -> Position {
        Position {
            qty: self.qty,
            avg_cost: self.avg_cost,
            realized: self.realized_pnl,
            fills: self.fills,
        }
    }
}

/// The positions of `pairs` (account, symbol) that exist. The caller holds the pairs' balances
/// locked (a fill phase locks the symbol's balance before it reads its position), so no other
/// phase moves them meanwhile.
pub fn read(
    conn: &mut DbConnection,
    pairs: &BTreeSet<(AccountId, String)>,
) -> Result<HashMap<(AccountId, String), Position>, DbError> {
    if pairs.is_empty() {
        return Ok(HashMap::new());
    }
    let accounts: BTreeSet<AccountId> = pairs.iter().map(|(a, _)| *a).collect();
    let symbols: BTreeSet<&str> = pairs.iter().map(|(_, s)| s.as_str()).collect();
    let rows: Vec<PositionRow> = crate::with_conn!(conn, |c| {
        positions::table
            .filter(positions::account_id.eq_any(accounts))
            .filter(positions::symbol.eq_any(symbols))
            .select(PositionRow::as_select())
            .load(c)
    })?;
    Ok(rows
        .into_iter()
        .map(|row| ((row.account_id, row.symbol.clone()), row.position()))
        .filter(|(pair, _)| pairs.contains(pair))
        .collect())
}

/// Writes each position as the phase leaves it, made if new.
pub fn upsert(conn: &mut DbConnection, rows: &[PositionRow]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! upsert {
        ($values:expr) => {
            diesel::insert_into(positions::table)
                .values($values)
                .on_conflict((positions::account_id, positions::symbol))
                .do_update()
                .set((
                    positions::qty.eq(excluded(positions::qty)),
                    positions::avg_cost.eq(excluded(positions::avg_cost)),
                    positions::realized_pnl.eq(excluded(positions::realized_pnl)),
                    positions::fills.eq(excluded(positions::fills)),
                    positions::updated_at.eq(excluded(positions::updated_at)),
                ))
        };
    }
    match &mut conn.inner {
        Inner::Postgres(c) => {
            upsert!(rows).execute(c)?;
        }
        Inner::Sqlite(c) => {
            for row in rows {
                upsert!(row).execute(c)?;
            }
        }
    }
    Ok(())
}

/// Every position of `account`, by symbol.
pub fn of_account(
    conn: &mut DbConnection,
    account: AccountId,
) -> Result<Vec<PositionRow>, DbError> {
    Ok(crate::with_conn!(conn, |c| {
        positions::table
            .filter(positions::account_id.eq(account))
            .order(positions::symbol.asc())
            .select(PositionRow::as_select())
            .load(c)
    })?)
}
