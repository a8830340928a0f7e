//! Stored answers to requests made with an `Idempotency-Key`, scoped per account.

use diesel::prelude::*;

use super::DbConnection;

use super::schema::{accounts, idempotency_keys};
use crate::domain::AccountId;
use crate::error::AppError;

/// An answer exactly as it was first sent: replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone, Queryable)]
pub struct StoredKey {
    pub fingerprint: String,
    pub status_code: i32,
    pub location: Option<String>,
    pub response_body: String,
    pub expires_at: i64,
}

impl StoredKey {
    pub fn response(self) -> StoredResponse {
        StoredResponse {
            status: u16::try_from(self.status_code).unwrap_or(500),
            location: self.location,
            body: self.response_body,
        }
    }
}

pub fn find(
    conn: &mut DbConnection,
    account: AccountId,
    key: &str,
) -> Result<Option<StoredKey>, AppError> {
    with_conn!(conn, |conn| {
        Ok(idempotency_keys::table
            .find((account, key))
            .select((
                idempotency_keys::fingerprint,
                idempotency_keys::status_code,
                idempotency_keys::location,
                idempotency_keys::response_body,
                idempotency_keys::expires_at,
            ))
            .first(conn)
            .optional()?)
    })
}

pub fn delete(conn: &mut DbConnection, account: AccountId, key: &str) -> Result<(), AppError> {
    let deleted = with_conn!(conn, |conn| Ok::<_, AppError>(
        diesel::delete(idempotency_keys::table.find((account, key))).execute(conn)?
    ))?;
    count_down(conn, account, deleted as i64)
}

/// Takes one of the account's places for a stored key, refused past `max` (0 = no cap); undone
/// with the phase's transaction if the phase fails.
pub fn take_place(conn: &mut DbConnection, account: AccountId, max: i64) -> Result<(), AppError> {
    let held: i64 = with_conn!(conn, |conn| Ok::<_, AppError>(
        diesel::update(accounts::table.find(account))
            .set(accounts::stored_keys.eq(accounts::stored_keys + 1))
            .returning(accounts::stored_keys)
            .get_result(conn)?
    ))?;
    if max > 0 && held > max {
        return Err(AppError::TooManyStoredKeys(max));
    }
    Ok(())
}

fn count_down(conn: &mut DbConnection, account: AccountId, n: i64) -> Result<(), AppError> {
    if n == 0 {
        return Ok(());
    }
    with_conn!(conn, |conn| {
        diesel::update(accounts::table.find(account))
            .set(accounts::stored_keys.eq(accounts::stored_keys - n))
            .execute(conn)?;
        Ok(())
    })
}

pub struct NewKey<'a> {
    pub account: AccountId,
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub response: &'a StoredResponse,
    pub now: i64,
    pub expires_at: i64,
}

pub fn insert(conn: &mut DbConnection, new: &NewKey<'_>) -> Result<(), AppError> {
    with_conn!(conn, |conn| {
        diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::account_id.eq(new.account),
                idempotency_keys::idem_key.eq(new.key),
                idempotency_keys::fingerprint.eq(new.fingerprint),
                idempotency_keys::status_code.eq(i32::from(new.response.status)),
                idempotency_keys::location.eq(new.response.location.as_deref()),
                idempotency_keys::response_body.eq(&new.response.body),
                idempotency_keys::created_at.eq(new.now),
                idempotency_keys::expires_at.eq(new.expires_at),
            ))
            .execute(conn)
            .map_err(|e| match e {
                // Another engine stored this key first (PostgreSQL waited for its commit): the
                // database has decided, and this request's phase rolls back.
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => AppError::IdempotencyKeyInUse,
                other => other.into(),
            })?;
        Ok(())
    })
}

/// Deletes keys past their expiry. A key is stored only when its request commits, so nothing in
/// flight is ever here to be deleted.
pub fn delete_expired(conn: &mut DbConnection, now: i64) -> Result<usize, AppError> {
    let owners: Vec<AccountId> = with_conn!(conn, |conn| Ok::<_, AppError>(
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::expires_at.le(now)))
            .returning(idempotency_keys::account_id)
            .get_results(conn)?
    ))?;
    let mut per_account = std::collections::BTreeMap::<AccountId, i64>::new();
    for account in &owners {
        *per_account.entry(*account).or_default() += 1;
    }
    for (account, n) in per_account {
        count_down(conn, account, n)?;
    }
    Ok(owners.len())
}

/// Keys stored, every account's (a scrape-time figure; an index-only count).
pub fn count(conn: &mut DbConnection) -> Result<i64, AppError> {
    with_conn!(conn, |conn| Ok(idempotency_keys::table
        .count()
        .get_result(conn)?))
}
