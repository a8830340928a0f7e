//! Every message of the live feed, in one place.

use std::sync::Arc;

use actix::{Message, Recipient};

use crate::db::outbox::OutboxRow;
use crate::domain::AccountId;

/// What the hub sends a session.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum ToSession {
    /// One stored event, exactly as stored.
    Event { seq: i64, payload: Arc<str> },
    /// The session fell too far behind and must close (4008); its client resumes with `since`.
    TooSlow,
}

/// A session joins its account's live events; `since` is the seq it replays from the store, so
/// an account new to the hub is followed from there.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub account: AccountId,
    pub session: u64,
    /// The account's latest stored seq as the session found it: the hub relays what comes after
    /// it. A session's own `since` plays no part, so no client can hold another's events back.
    pub latest_stored: i64,
    pub recipient: Recipient<ToSession>,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub account: AccountId,
    pub session: u64,
}

/// Where the hub is in each followed account's events: what the relay reads after.
#[derive(Debug, Message)]
#[rtype(result = "Vec<(AccountId, i64)>")]
pub struct Cursors;

/// Newly committed events, in seq order per account, from the outbox relay.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Publish(pub Vec<OutboxRow>);
