//! The keys this engine answered last, so that a retried request is answered from memory and
//! never queues behind the writer's batches (a client retrying in a storm is waiting exactly
//! then). A stored key never changes while it lives, so a copy is as good as the row until the
//! key expires; past that the database decides again. Bounded: the newest `capacity` to twice
//! that many answers are kept, in two generations, the older dropped whole.

use std::collections::HashMap;
use std::sync::Mutex;

use super::IdempotencyKey;
use crate::db::idempotency::StoredKey;
use crate::domain::AccountId;

type Generation = HashMap<(AccountId, IdempotencyKey), StoredKey>;

pub struct Answered {
    capacity: usize,
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    newer: Generation,
    older: Generation,
}

impl Answered {
    pub fn new(capacity: usize) -> Self {
        Answered {
            capacity: capacity.max(1),
            generations: Mutex::default(),
        }
    }

    /// The stored key as this engine last answered it, while it lives at `now`.
    pub fn live(&self, account: AccountId, key: &IdempotencyKey, now: i64) -> Option<StoredKey> {
        let generations = self.lock();
        let id = (account, key.clone());
        generations
            .newer
            .get(&id)
            .or_else(|| generations.older.get(&id))
            .filter(|stored| stored.expires_at > now)
            .cloned()
    }

    /// Remembers a key as stored (committed) with its answer.
    pub fn remember(&self, account: AccountId, key: IdempotencyKey, stored: StoredKey) {
        let mut generations = self.lock();
        if generations.newer.len() >= self.capacity {
            generations.older = std::mem::take(&mut generations.newer);
        }
        generations.newer.insert((account, key), stored);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The maps hold copies only: one left half-written by a panic is still a map of copies.
        self.generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(body: &str, expires_at: i64) -> StoredKey {
        StoredKey {
            fingerprint: "f".into(),
            status_code: 201,
            location: None,
            response_body: body.into(),
            expires_at,
        }
    }

    fn key(n: usize) -> IdempotencyKey {
        IdempotencyKey::parse(format!("k-{n}").as_bytes()).unwrap()
    }

    #[test]
    fn a_key_is_answered_while_it_lives_and_only_for_its_account() {
        let answered = Answered::new(8);
        let (a, b) = (AccountId::new(), AccountId::new());
        answered.remember(a, key(1), stored("one", 100));
        assert_eq!(answered.live(a, &key(1), 99).unwrap().response_body, "one");
        assert!(answered.live(a, &key(1), 100).is_none(), "expired");
        assert!(answered.live(b, &key(1), 50).is_none(), "another account's");
        assert!(answered.live(a, &key(2), 50).is_none());
    }

    #[test]
    fn the_newest_answers_are_kept_and_the_oldest_dropped() {
        let answered = Answered::new(4);
        let a = AccountId::new();
        for n in 0..10 {
            answered.remember(a, key(n), stored(&n.to_string(), 100));
        }
        let kept: Vec<usize> = (0..10)
            .filter(|n| answered.live(a, &key(*n), 0).is_some())
            .collect();
        assert_eq!(kept, vec![4, 5, 6, 7, 8, 9]);
    }
}
