//! Keeps the bounded stores bounded while the engine runs: expired idempotency keys and outbox
//! events past their retention are deleted in small chunks, and idle accounts' rate windows are
//! forgotten.

use std::time::Duration;

use actix_web::web;

use crate::app::AppState;
use crate::db::{self, idempotency, now_micros, outbox, Writer};
use crate::shutdown::Shutdown;

/// Rows a reaper deletes in one transaction: small enough that the writer is never held for long,
/// with other phases taking their turns between chunks.
const REAP_CHUNK: i64 = 1000;

/// Deletes in chunks of [`REAP_CHUNK`], one transaction each, until a chunk comes back short;
/// returns how many were deleted.
async fn reap_in_chunks<F>(writer: &Writer, chunk: F) -> Result<usize, db::DbError>
where
    F: Fn(&mut db::DbConnection, i64) -> Result<usize, db::DbError> + Clone + Send + 'static,
{
    let mut deleted = 0;
    loop {
        let one = chunk.clone();
        let n = writer.run(move |conn| one(conn, REAP_CHUNK)).await?;
        deleted += n;
        if n < REAP_CHUNK as usize {
            return Ok(deleted);
        }
        actix_web::rt::task::yield_now().await;
    }
}

/// Once a minute (or sooner, for a short retention): deletes expired idempotency keys and outbox
/// events past their retention, and forgets rate-limit state of idle accounts.
pub fn spawn(state: web::Data<AppState>, shutdown: &Shutdown) {
    shutdown.spawn("store reaper", |stop| async move {
        // A short retention (a demonstration, a test) is kept to within about half of itself.
        let half_retention = u64::try_from(state.outbox_retention_micros / 2).unwrap_or(0);
        let every = Duration::from_micros(half_retention)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut ticker = tokio::time::interval(every);
        while stop.or(ticker.tick()).await.is_some() {
            state.order_rate.forget_idle();
            let now = now_micros();
            let expired = move |conn: &mut db::DbConnection, at_most| {
                idempotency::delete_expired(conn, now, at_most)
            };
            match reap_in_chunks(&state.writer, expired).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired idempotency keys reaped"),
                Err(e) => tracing::warn!(error = %e, "idempotency reaper failed"),
            }
            let before = now_micros().saturating_sub(state.outbox_retention_micros);
            let only_published = state.broker;
            let old = move |conn: &mut db::DbConnection, at_most| {
                outbox::prune(conn, before, only_published, at_most)
            };
            match reap_in_chunks(&state.writer, old).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "outbox events past their retention pruned"),
                Err(e) => tracing::warn!(error = %e, "outbox pruning failed"),
            }
        }
    });
}
