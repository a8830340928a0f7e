//! The hub: follows the accounts that have sessions here, and fans each of their events out to
//! those sessions. It never waits on a session: a session whose queue is full is told to close,
//! and resumes from the outbox.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::messages::{Cursors, Publish, Subscribe, ToSession, Unsubscribe};
use crate::domain::AccountId;

#[derive(Default)]
pub struct Hub {
    sessions: HashMap<AccountId, HashMap<u64, Recipient<ToSession>>>,
    /// The last seq handed out per followed account: whichever engine wrote an event, the relay
    /// reads it from the store after this.
    cursors: HashMap<AccountId, i64>,
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The relay may publish in bursts; let them queue rather than block it.
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<Subscribe> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        self.cursors.entry(msg.account).or_insert(msg.latest_stored);
        self.sessions
            .entry(msg.account)
            .or_default()
            .insert(msg.session, msg.recipient);
    }
}

impl Handler<Unsubscribe> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        if let Some(sessions) = self.sessions.get_mut(&msg.account) {
            sessions.remove(&msg.session);
            if sessions.is_empty() {
                self.sessions.remove(&msg.account);
                self.cursors.remove(&msg.account);
            }
        }
    }
}

impl Handler<Cursors> for Hub {
    type Result = MessageResult<Cursors>;

    fn handle(&mut self, _: Cursors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.cursors.iter().map(|(a, s)| (*a, *s)).collect())
    }
}

impl Handler<Publish> for Hub {
    type Result = ();

    fn handle(&mut self, Publish(rows): Publish, _: &mut Context<Self>) {
        for row in rows {
            let Some(sessions) = self.sessions.get_mut(&row.account_id) else {
                continue;
            };
            match self.cursors.get_mut(&row.account_id) {
                // Read twice (a wake-up during a pass): handed out already.
                Some(cursor) if row.seq <= *cursor => continue,
                Some(cursor) => *cursor = row.seq,
                None => continue,
            }
            let payload: Arc<str> = Arc::from(row.payload.as_str());
            sessions.retain(|_, session| {
                match session.try_send(ToSession::Event {
                    seq: row.seq,
                    payload: Arc::clone(&payload),
                }) {
                    Ok(()) => true,
                    Err(SendError::Full(_)) => {
                        // `do_send` ignores the mailbox's bound: the notice always gets through.
                        session.do_send(ToSession::TooSlow);
                        false
                    }
                    Err(SendError::Closed(_)) => false,
                }
            });
        }
    }
}
