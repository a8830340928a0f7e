//! Limits that keep one client from hurting the others: a rate of order submissions per account,
//! and a number of live feed sessions per account. Both are this engine's own; with several
//! engines, each lets an account have its share on it. (The cap on stored keys is kept in the
//! database, with the keys: see `db::idempotency`.)

use std::num::NonZeroU32;
use std::sync::Arc;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::domain::AccountId;

/// A submission over the account's order rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many orders: at most {per_second} per second per account")]
pub struct RateLimited {
    pub per_second: u32,
    /// Whole seconds until the next submission is let in.
    pub retry_after: u64,
}

/// Order submissions per second per account, in bursts of twice that; None lets everything in.
pub struct OrderRate {
    limiter: Option<(DefaultKeyedRateLimiter<AccountId>, u32)>,
}

impl OrderRate {
    /// `per_second` = 0 turns the limit off.
    pub fn new(per_second: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
            let quota = Quota::per_second(rate).allow_burst(burst);
            (RateLimiter::keyed(quota), per_second)
        });
        OrderRate { limiter }
    }

    /// Lets one submission in, or says how long until the next one would be.
    pub fn admit(&self, account: AccountId) -> Result<(), RateLimited> {
        let Some((limiter, per_second)) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&account).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            RateLimited {
                per_second: *per_second,
                // Retry-After is whole seconds: round up, so a client that waits is let in.
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    /// Forgets accounts that are back under their limit, so the map does not grow without end.
    pub fn forget_idle(&self) {
        if let Some((limiter, _)) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Live feed sessions per account, at most `max` (0 = no cap).
#[derive(Clone)]
pub struct StreamSessions {
    open: Arc<DashMap<AccountId, usize>>,
    max: usize,
}

/// One session's place; given back when dropped.
pub struct StreamSlot {
    sessions: StreamSessions,
    account: AccountId,
}

impl StreamSessions {
    pub fn new(max: usize) -> Self {
        StreamSessions {
            open: Arc::new(DashMap::new()),
            max,
        }
    }

    /// A place for one more session of `account`, or None when it has `max` already.
    pub fn open(&self, account: AccountId) -> Option<StreamSlot> {
        let mut open = self.open.entry(account).or_insert(0);
        if self.max != 0 && *open >= self.max {
            return None;
        }
        *open += 1;
        Some(StreamSlot {
            sessions: self.clone(),
            account,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.sessions.open.remove_if_mut(&self.account, |_, open| {
            *open = open.saturating_sub(1);
            *open == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_lets_a_burst_of_twice_the_rate_in_then_refuses() {
        let rate = OrderRate::new(5);
        let account = AccountId::new();
        for _ in 0..10 {
            rate.admit(account).unwrap();
        }
        match rate.admit(account) {
            Err(RateLimited { retry_after, .. }) => assert_eq!(retry_after, 1),
            other => panic!("the 11th was let in: {other:?}"),
        }
        // Another account has its own allowance.
        rate.admit(AccountId::new()).unwrap();
        let unlimited = OrderRate::new(0);
        for _ in 0..1000 {
            unlimited.admit(account).unwrap();
        }
    }

    #[test]
    fn sessions_are_capped_per_account_and_given_back() {
        let sessions = StreamSessions::new(2);
        let (a, b) = (AccountId::new(), AccountId::new());
        let first = sessions.open(a).unwrap();
        let _second = sessions.open(a).unwrap();
        assert!(sessions.open(a).is_none());
        assert!(sessions.open(b).is_some());
        drop(first);
        assert!(sessions.open(a).is_some());
    }
}
