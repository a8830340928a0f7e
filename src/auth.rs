//! Who a bearer token belongs to. A token is `{account id}.{secret}`; only the secret's SHA-256 is
//! stored. Tokens never change, so each account's stored hash is read once and then kept: an
//! authenticated request costs a hash and a comparison, not a database read.

use std::sync::Arc;

use dashmap::DashMap;
use subtle::ConstantTimeEq;

use crate::db::{self, accounts, DbError, DbPool};
use crate::domain::AccountId;

/// Why a bearer token names no account.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token, or not one of ours.
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Clone)]
pub struct Authenticator {
    pool: DbPool,
    /// Stored token hashes of the accounts seen so far. Only accounts that exist are kept, so a
    /// stranger's made-up ids cannot grow it.
    hashes: Arc<DashMap<AccountId, String>>,
}

impl Authenticator {
    pub fn new(pool: DbPool) -> Self {
        Self {
            pool,
            hashes: Arc::default(),
        }
    }

    /// The account `token` belongs to, or 401.
    pub async fn account(&self, token: &str) -> Result<AccountId, AuthError> {
        let (id, secret) = token.split_once('.').ok_or(AuthError::Unauthorized)?;
        let id: AccountId = id.parse().map_err(|_| AuthError::Unauthorized)?;
        let stored = match self.hashes.get(&id) {
            Some(hash) => hash.clone(),
            None => {
                let hash = db::run(&self.pool, move |conn| accounts::token_hash(conn, id))
                    .await?
                    .ok_or(AuthError::Unauthorized)?;
                self.hashes.insert(id, hash.clone());
                hash
            }
        };
        let given = accounts::sha256_hex(secret.as_bytes());
        if bool::from(given.as_bytes().ct_eq(stored.as_bytes())) {
            Ok(id)
        } else {
            Err(AuthError::Unauthorized)
        }
    }
}
