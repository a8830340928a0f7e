//! Accounts and their API tokens. A token is `{account id}.{secret}`; only the secret's SHA-256 is
//! stored, and it is compared in constant time.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::DbConnection;
use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::schema::accounts;
use crate::db::ledger::{self, LedgerEntry, CASH};
use crate::domain::{AccountId, Cents};
use crate::error::AppError;

#[derive(Debug, Clone)]
pub struct CreatedAccount {
    pub id: AccountId,
    pub name: String,
    pub token: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Constant-time equality of two secrets, whatever their lengths.
pub fn secrets_match(given: &str, expected: &str) -> bool {
    Sha256::digest(given.as_bytes())
        .ct_eq(&Sha256::digest(expected.as_bytes()))
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
) -> Result<CreatedAccount, AppError> {
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
                asset,
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
pub fn token_hash(conn: &mut DbConnection, account: AccountId) -> Result<Option<String>, AppError> {
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
) -> Result<CreatedAccount, AppError> {
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
pub fn demo_token(conn: &mut DbConnection) -> Result<Option<String>, AppError> {
    with_conn!(conn, |conn| {
        use super::schema::demo_account;
        Ok(demo_account::table
            .select(demo_account::token)
            .first(conn)
            .optional()?)
    })
}

pub fn count(conn: &mut DbConnection) -> Result<i64, AppError> {
    with_conn!(conn, |conn| {
        Ok(accounts::table.count().get_result(conn)?)
    })
}

/// Takes the next event seq of an account, inside the caller's transaction: 1, 2, 3… with no gaps.
pub fn take_event_seq(conn: &mut DbConnection, account: AccountId) -> Result<i64, AppError> {
    with_conn!(conn, |conn| {
        let next: i64 = diesel::update(accounts::table.find(account))
            .set(accounts::next_event_seq.eq(accounts::next_event_seq + 1))
            .returning(accounts::next_event_seq)
            .get_result(conn)?;
        Ok(next - 1)
    })
}
