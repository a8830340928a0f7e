//! One WebSocket session per browser. It authenticates with its first message, replays the stored
//! events after `since`, then goes live; the overlap between the two is dropped by seq, so the
//! client sees every event once and in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use serde::Deserialize;

use super::hub::Hub;
use super::messages::{Subscribe, ToSession, Unsubscribe};
use crate::auth::Authenticator;
use crate::db::{self, outbox, DbPool};
use crate::domain::AccountId;
use crate::limits::{StreamSessions, StreamSlot};
use crate::metrics::WsSessionGauge;

pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
pub const PING_EVERY: Duration = Duration::from_secs(10);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How many live events a session may hold unsent before it counts as too slow.
pub const QUEUE_BOUND: usize = 256;
const REPLAY_PAGE: i64 = 500;

pub const CLOSE_UNAUTHORIZED: u16 = 4401;
pub const CLOSE_TOO_SLOW: u16 = 4008;
pub const CLOSE_TOO_MANY_SESSIONS: u16 = 4429;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Auth {
    #[serde(rename = "type")]
    kind: String,
    token: String,
    #[serde(default)]
    since: Option<i64>,
}

pub struct FeedSession {
    id: u64,
    pool: DbPool,
    auth: Authenticator,
    hub: Addr<Hub>,
    /// None until the first message authenticates.
    account: Option<AccountId>,
    last_seq: i64,
    last_heard: Instant,
    _counted: WsSessionGauge,
    sessions: StreamSessions,
    /// This session's place among its account's, once authenticated.
    _slot: Option<StreamSlot>,
}

impl FeedSession {
    pub fn new(
        id: u64,
        pool: DbPool,
        auth: Authenticator,
        hub: Addr<Hub>,
        counted: WsSessionGauge,
        sessions: StreamSessions,
    ) -> Self {
        Self {
            id,
            pool,
            auth,
            hub,
            account: None,
            last_seq: 0,
            last_heard: Instant::now(),
            _counted: counted,
            sessions,
            _slot: None,
        }
    }

    fn close(ctx: &mut ws::WebsocketContext<Self>, code: u16, why: &str) {
        ctx.close(Some(CloseReason {
            code: CloseCode::Other(code),
            description: Some(why.to_owned()),
        }));
        ctx.stop();
    }

    fn send(&mut self, ctx: &mut ws::WebsocketContext<Self>, seq: i64, payload: &str) {
        if seq > self.last_seq {
            ctx.text(payload.to_owned());
            self.last_seq = seq;
        }
    }

    fn authenticate(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let auth = match serde_json::from_str::<Auth>(text) {
            Ok(auth) if auth.kind == "auth" => auth,
            _ => {
                return Self::close(
                    ctx,
                    CLOSE_UNAUTHORIZED,
                    "the first message must be {\"type\":\"auth\",\"token\":…}",
                )
            }
        };
        let (authenticator, token) = (self.auth.clone(), auth.token);
        let check = async move { authenticator.account(&token).await };
        let since = auth.since.unwrap_or(0).max(0);
        ctx.wait(
            check
                .into_actor(self)
                .map(move |verdict, session, ctx| match verdict {
                    Ok(account) => match session.sessions.open(account) {
                        Some(slot) => {
                            session._slot = Some(slot);
                            session.resume(account, since, ctx)
                        }
                        None => Self::close(
                            ctx,
                            CLOSE_TOO_MANY_SESSIONS,
                            "too many feed sessions for this account",
                        ),
                    },
                    Err(_) => Self::close(ctx, CLOSE_UNAUTHORIZED, "unauthorized"),
                }),
        );
    }

    /// Replays from `since` if the store holds every event after it. If some were pruned, or
    /// `since` is beyond the latest stored seq, the client is told to reload its state
    /// (`{"type":"resync","latest_seq":N}`) and the session goes on from N: never a silent gap,
    /// and never a wait for events that will not come.
    fn resume(&mut self, account: AccountId, since: i64, ctx: &mut ws::WebsocketContext<Self>) {
        let pool = self.pool.clone();
        let kept = async move { db::run(&pool, move |conn| outbox::kept(conn, account)).await };
        ctx.wait(kept.into_actor(self).map(move |kept, session, ctx| {
            let (first_kept, latest) = match kept {
                Ok(kept) => kept,
                Err(e) => {
                    tracing::warn!(error = %e, "feed resume failed");
                    return Self::close(ctx, 1011, "resume failed: try again");
                }
            };
            // From before what is kept, or from beyond what is stored (a restored or lagging
            // database, a client that remembers another): either way the client must reload.
            if since + 1 < first_kept || since > latest {
                ctx.text(serde_json::json!({"type": "resync", "latest_seq": latest}).to_string());
                session.start_replay(account, latest, latest, ctx);
            } else {
                session.start_replay(account, since, latest, ctx);
            }
        }));
    }

    /// Subscribes first, so nothing published during the replay is missed, then reads the store.
    /// The replay runs in `ctx.wait`: live events queue in the mailbox meanwhile, and those it
    /// already covered are dropped by seq when they come through.
    fn start_replay(
        &mut self,
        account: AccountId,
        since: i64,
        latest_stored: i64,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        self.last_seq = since;
        self.account = Some(account);
        self.hub.do_send(Subscribe {
            account,
            session: self.id,
            latest_stored,
            recipient: ctx.address().recipient(),
        });
        self.replay_page(account, ctx);
    }

    fn replay_page(&mut self, account: AccountId, ctx: &mut ws::WebsocketContext<Self>) {
        let (pool, after) = (self.pool.clone(), self.last_seq);
        let page = async move {
            db::run(&pool, move |conn| {
                outbox::since(conn, account, after, REPLAY_PAGE)
            })
            .await
        };
        ctx.wait(page.into_actor(self).map(
            move |rows: Result<_, crate::db::DbError>, session, ctx| {
                let rows = match rows {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e, "feed replay failed");
                        return Self::close(ctx, 1011, "replay failed: resume with since");
                    }
                };
                let full_page = rows.len() as i64 == REPLAY_PAGE;
                for row in rows {
                    session.send(ctx, row.seq, &row.payload);
                }
                if full_page {
                    session.replay_page(account, ctx);
                }
            },
        ));
    }

    /// A live event: sent in order. A gap (which should not happen) is filled from the store,
    /// which holds every published event.
    fn deliver(&mut self, seq: i64, payload: Arc<str>, ctx: &mut ws::WebsocketContext<Self>) {
        match self.account {
            Some(account) if seq > self.last_seq + 1 => self.replay_page(account, ctx),
            Some(_) => self.send(ctx, seq, &payload),
            None => {}
        }
    }
}

impl Actor for FeedSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(QUEUE_BOUND);
        ctx.run_later(AUTH_TIMEOUT, |session, ctx| {
            if session.account.is_none() {
                Self::close(ctx, CLOSE_UNAUTHORIZED, "no auth within 5 seconds");
            }
        });
        ctx.run_interval(PING_EVERY, |session, ctx| {
            if session.last_heard.elapsed() > CLIENT_TIMEOUT {
                return ctx.stop();
            }
            ctx.ping(b"");
        });
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        if let Some(account) = self.account {
            self.hub.do_send(Unsubscribe {
                account,
                session: self.id,
            });
        }
        Running::Stop
    }
}

impl Handler<ToSession> for FeedSession {
    type Result = ();

    fn handle(&mut self, msg: ToSession, ctx: &mut Self::Context) {
        match msg {
            ToSession::Event { seq, payload } => self.deliver(seq, payload, ctx),
            ToSession::TooSlow => {
                Self::close(ctx, CLOSE_TOO_SLOW, "too slow: reconnect with since")
            }
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for FeedSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(ws::Message::Text(text)) if self.account.is_none() => self.authenticate(&text, ctx),
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Close(_)) => ctx.stop(),
            Ok(ws::Message::Binary(_)) if self.account.is_none() => {
                Self::close(ctx, CLOSE_UNAUTHORIZED, "the first message must be text")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "feed protocol error");
                ctx.stop();
            }
        }
    }
}
