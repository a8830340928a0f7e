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

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub account: AccountId,
    pub session: u64,
    pub recipient: Recipient<ToSession>,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub account: AccountId,
    pub session: u64,
}

/// Newly committed events, in seq order per account, from the outbox relay.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Publish(pub Vec<OutboxRow>);
