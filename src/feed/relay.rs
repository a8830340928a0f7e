//! The feed relay: reads from the store the events of every account followed here, whichever
//! engine committed them, and hands them to the hub in seq order. Woken after local commits, and
//! sweeping on a timer for the events other engines commit.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::sync::Notify;

use super::hub::Hub;
use super::messages::{Cursors, Publish};
use crate::db::outbox;
use crate::db::{self, now_micros, DbPool};

/// Why a relay pass stopped short; the next pass starts again from the cursors.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("the feed hub is gone: {0}")]
    HubGone(#[from] actix::MailboxError),
}
use crate::shutdown::Shutdown;

const BATCH: i64 = 500;
const SWEEP: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct Relay {
    wake: Arc<Notify>,
    /// Age in milliseconds of the oldest event handed over in the last pass (0 when none).
    lag_ms: Arc<AtomicI64>,
}

impl Relay {
    /// Starts the relay task on the current runtime.
    pub fn start(pool: DbPool, hub: Addr<Hub>, shutdown: Shutdown) -> Relay {
        let relay = Relay {
            wake: Arc::new(Notify::new()),
            lag_ms: Arc::new(AtomicI64::new(0)),
        };
        let task = relay.clone();
        shutdown.spawn("feed relay", |shutdown| async move {
            loop {
                if let Err(e) = task.pass(&pool, &hub).await {
                    tracing::warn!(error = %e, "feed relay pass failed");
                }
                let woken = actix_web::rt::time::timeout(SWEEP, task.wake.notified());
                if shutdown.or(woken).await.is_none() {
                    return;
                }
            }
        });
        relay
    }

    /// Asks for a pass now: call after committing events.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn lag_ms(&self) -> i64 {
        self.lag_ms.load(Ordering::Relaxed)
    }

    async fn pass(&self, pool: &DbPool, hub: &Addr<Hub>) -> Result<(), RelayError> {
        loop {
            let cursors = hub.send(Cursors).await?;
            let rows = db::run(pool, move |conn| {
                outbox::after_cursors(conn, &cursors, BATCH)
            })
            .await?;
            let oldest = rows.iter().map(|r| r.created_at).min();
            self.lag_ms.store(
                oldest.map_or(0, |t| (now_micros() - t) / 1000),
                Ordering::Relaxed,
            );
            let full = rows.len() as i64 == BATCH;
            if !rows.is_empty() {
                hub.do_send(Publish(rows));
            }
            if !full {
                return Ok(());
            }
        }
    }
}
