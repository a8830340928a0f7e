//! The hub: fans each published event out to the sessions of its account. It never waits on a
//! session: a session whose queue is full is told to close, and resumes from the outbox.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::messages::{Publish, Subscribe, ToSession, Unsubscribe};
use crate::domain::AccountId;

#[derive(Default)]
pub struct Hub {
    sessions: HashMap<AccountId, HashMap<u64, Recipient<ToSession>>>,
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
            }
        }
    }
}

impl Handler<Publish> for Hub {
    type Result = ();

    fn handle(&mut self, Publish(rows): Publish, _: &mut Context<Self>) {
        for row in rows {
            let Some(sessions) = self.sessions.get_mut(&row.account_id) else {
                continue;
            };
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
