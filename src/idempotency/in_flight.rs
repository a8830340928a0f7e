//! Keys whose first request is being processed right now, in this process. The database's primary
//! key on (account, key) stays the final word; this answers a concurrent duplicate at once.

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::IdempotencyKey;
use crate::domain::AccountId;

type Claimed = DashMap<(AccountId, IdempotencyKey), ()>;

#[derive(Default)]
pub struct InFlight(Claimed);

/// Holds a key as in flight until dropped.
pub struct InFlightGuard<'a> {
    claimed: &'a Claimed,
    key: (AccountId, IdempotencyKey),
}

impl InFlight {
    /// Claims the key, or None when another request holds it.
    pub fn claim(&self, account: AccountId, key: &IdempotencyKey) -> Option<InFlightGuard<'_>> {
        let key = (account, key.clone());
        match self.0.entry(key.clone()) {
            Entry::Occupied(_) => None,
            Entry::Vacant(slot) => {
                slot.insert(());
                Some(InFlightGuard {
                    claimed: &self.0,
                    key,
                })
            }
        }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.claimed.remove(&self.key);
    }
}
