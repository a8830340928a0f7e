//! Stored answers to requests made with an `Idempotency-Key`, scoped per account.

use diesel::prelude::*;

use super::DbConnection;

use super::schema::{accounts, idempotency_keys};
use super::DbError;
use crate::domain::AccountId;

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
    /// The key as stored with `response`.
    pub fn of(response: &StoredResponse, fingerprint: String, expires_at: i64) -> Self {
        StoredKey {
            fingerprint,
            status_code: i32::from(response.status),
            location: response.location.clone(),
            response_body: response.body.clone(),
            expires_at,
        }
    }

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
) -> Result<Option<StoredKey>, DbError> {
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

fn count_down(conn: &mut DbConnection, account: AccountId, n: i64) -> Result<(), DbError> {
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

/// Stores keys with their answers, in one statement.
pub fn insert_many(conn: &mut DbConnection, keys: &[NewKey<'_>]) -> Result<(), DbError> {
    let rows: Vec<KeyRow<'_>> = keys.iter().map(KeyRow::of).collect();
    insert_rows!(conn, idempotency_keys::table, &rows).map_err(|e| match e {
        // Another engine stored this key first (PostgreSQL waited for its commit): the database
        // has decided, and this request's phase rolls back.
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ) => DbError::KeyInUse,
        other => other.into(),
    })
}

#[derive(Insertable)]
#[diesel(table_name = idempotency_keys)]
struct KeyRow<'a> {
    account_id: AccountId,
    idem_key: &'a str,
    fingerprint: &'a str,
    status_code: i32,
    location: Option<&'a str>,
    response_body: &'a str,
    created_at: i64,
    expires_at: i64,
}

impl<'a> KeyRow<'a> {
    fn of(new: &'a NewKey<'a>) -> Self {
        KeyRow {
            account_id: new.account,
            idem_key: new.key,
            fingerprint: new.fingerprint,
            status_code: i32::from(new.response.status),
            location: new.response.location.as_deref(),
            response_body: &new.response.body,
            created_at: new.now,
            expires_at: new.expires_at,
        }
    }
}

/// The stored keys among these (account, key) pairs, expired or not: one index probe per pair.
/// (Two `= ANY` lists would probe every account with every key.)
pub fn find_among(
    conn: &mut DbConnection,
    wanted: &[(AccountId, &str)],
) -> Result<std::collections::HashMap<(AccountId, String), StoredKey>, DbError> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Text)]
        account_id: AccountId,
        #[diesel(sql_type = diesel::sql_types::Text)]
        idem_key: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        fingerprint: String,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        status_code: i32,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        location: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Text)]
        response_body: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        expires_at: i64,
    }
    if wanted.is_empty() {
        return Ok(Default::default());
    }
    // The keys are the customers' own text: bound, never written into the statement.
    let pairs = super::connection::value_rows(conn.backend(), wanted.len(), 2);
    let query = format!(
        "WITH wanted (account_id, idem_key) AS (VALUES {pairs}) \
         SELECT k.account_id, k.idem_key, k.fingerprint, k.status_code, k.location, \
                k.response_body, k.expires_at FROM idempotency_keys k \
         JOIN wanted w ON k.account_id = w.account_id AND k.idem_key = w.idem_key"
    );
    let found: Vec<Found> = with_conn!(conn, |c| {
        let mut bound = diesel::sql_query(&query).into_boxed();
        for (account, key) in wanted {
            bound = bound
                .bind::<diesel::sql_types::Text, _>(account.to_string())
                .bind::<diesel::sql_types::Text, _>(*key);
        }
        super::prepared::prepared(bound, wanted.len()).load(c)
    })?;
    Ok(found
        .into_iter()
        .map(|f| {
            let stored = StoredKey {
                fingerprint: f.fingerprint,
                status_code: f.status_code,
                location: f.location,
                response_body: f.response_body,
                expires_at: f.expires_at,
            };
            ((f.account_id, f.idem_key), stored)
        })
        .collect())
}

/// Deletes these keys; the caller moves the accounts' stored-key counts down with them.
pub fn delete_uncounted(
    conn: &mut DbConnection,
    keys: &[(AccountId, &str)],
) -> Result<(), DbError> {
    for (account, key) in keys {
        with_conn!(conn, |c| diesel::delete(
            idempotency_keys::table.find((*account, *key))
        )
        .execute(c))?;
    }
    Ok(())
}

/// Deletes up to `at_most` keys past their expiry, in one statement: the reaper takes them a chunk
/// per transaction, so a burst of keys expiring together never holds the writer for long. A key is
/// stored only when its request commits, so nothing in flight is ever here to be deleted.
pub fn delete_expired(conn: &mut DbConnection, now: i64, at_most: i64) -> Result<usize, DbError> {
    #[derive(QueryableByName)]
    struct Owner {
        #[diesel(sql_type = diesel::sql_types::Text)]
        account_id: String,
    }
    let sql = format!(
        "{} RETURNING account_id",
        super::connection::bounded_delete(conn.backend(), "idempotency_keys", "expires_at <= {}")
    );
    let owners: Vec<Owner> = with_conn!(conn, |c| diesel::sql_query(&sql)
        .bind::<diesel::sql_types::BigInt, _>(now)
        .bind::<diesel::sql_types::BigInt, _>(at_most)
        .load(c))?;
    let mut per_account = std::collections::BTreeMap::<AccountId, i64>::new();
    for owner in &owners {
        let account: AccountId = owner.account_id.parse().map_err(|_| {
            DbError::Inconsistent(format!("a stored key of account {:?}", owner.account_id))
        })?;
        *per_account.entry(account).or_default() += 1;
    }
    for (account, n) in per_account {
        count_down(conn, account, n)?;
    }
    Ok(owners.len())
}

/// Keys stored, every account's (a scrape-time figure; an index-only count).
pub fn count(conn: &mut DbConnection) -> Result<i64, DbError> {
    with_conn!(conn, |conn| Ok(idempotency_keys::table
        .count()
        .get_result(conn)?))
}
