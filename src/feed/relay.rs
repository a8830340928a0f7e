//! The outbox relay: publishes committed events to the hub in seq order, then marks them
//! published. Woken after commits, and sweeping on a timer in case a wake-up was missed.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::sync::Notify;

use super::hub::Hub;
use super::messages::Publish;
use crate::db::outbox;
use crate::db::{self, now_micros, DbPool, Writer};
use crate::domain::AccountId;
use crate::error::AppError;
use crate::fault_points::crash_point;

const BATCH: i64 = 500;
const SWEEP: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct Relay {
    wake: Arc<Notify>,
    /// Age in milliseconds of the oldest event still waiting at the last pass (0 when none).
    lag_ms: Arc<AtomicI64>,
}

impl Relay {
    /// Starts the relay task on the current runtime.
    pub fn start(pool: DbPool, writer: Writer, hub: Addr<Hub>) -> Relay {
        let relay = Relay {
            wake: Arc::new(Notify::new()),
            lag_ms: Arc::new(AtomicI64::new(0)),
        };
        let task = relay.clone();
        actix_web::rt::spawn(async move {
            loop {
                if let Err(e) = task.pass(&pool, &writer, &hub).await {
                    tracing::warn!(error = %e, "outbox relay pass failed");
                }
                let _ = actix_web::rt::time::timeout(SWEEP, task.wake.notified()).await;
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

    async fn pass(&self, pool: &DbPool, writer: &Writer, hub: &Addr<Hub>) -> Result<(), AppError> {
        loop {
            let rows = db::run(pool, |conn| outbox::unpublished(conn, BATCH)).await?;
            let oldest = rows.iter().map(|r| r.created_at).min();
            self.lag_ms.store(
                oldest.map_or(0, |t| (now_micros() - t) / 1000),
                Ordering::Relaxed,
            );
            if rows.is_empty() {
                return Ok(());
            }
            let count = rows.len();
            let keys: Vec<(AccountId, i64)> = rows.iter().map(|r| (r.account_id, r.seq)).collect();
            crash_point("outbox.before_publish");
            hub.do_send(Publish(rows));
            writer
                .run(move |conn| outbox::mark_published(conn, &keys, now_micros()))
                .await?;
            crash_point("outbox.after_publish");
            if (count as i64) < BATCH {
                self.lag_ms.store(0, Ordering::Relaxed);
                return Ok(());
            }
        }
    }
}
