//! Expires `day` orders at the session's close. Each engine expires the orders it carries on: it
//! records `expiry_requested` (once, in a phase of its own), then the order's actor cancels it on
//! the venue and records `expired` with what it releases. An order taken over after its close is
//! expired by its new owner; one whose engine restarts after the close, at the next sweep.

use std::time::Duration;

use super::messages::Reason;
use super::{Engine, EngineError};
use crate::db::{self, now_micros, orders};
use crate::fault_points::crash_point;
use crate::orders::cancel;
use crate::shutdown::Shutdown;

/// How often the engine looks for day orders past their close.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The most orders one sweep's phase expires; the rest wait for the next sweep.
const SWEEP_AT_MOST: i64 = 500;

pub fn spawn(engine: Engine, shutdown: &Shutdown) {
    shutdown.spawn("day order expiry", |stop| async move {
        let mut ticker = tokio::time::interval(SWEEP_EVERY);
        while stop.or(ticker.tick()).await.is_some() {
            match sweep(&engine).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(orders = n, "day orders expiring at the session close"),
                Err(e) => tracing::warn!(error = %e, "day order expiry could not run"),
            }
        }
    });
}

/// Records the expiry of every due order of this engine and sets its actor on it; returns how
/// many. Nothing is written while nothing is due.
async fn sweep(engine: &Engine) -> Result<usize, EngineError> {
    let me = engine.lease().engine_id().to_owned();
    let now = now_micros();
    let due = db::run(engine.pool(), move |conn| {
        orders::due_to_expire(conn, &me, now, SWEEP_AT_MOST)
    })
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let fence = engine.fence();
    let expiring = engine
        .hand_to_actors(Reason::Cancel, move |conn| {
            let expiring = cancel::request_expiries(conn, due, &fence, now)?;
            Ok((expiring.len(), expiring))
        })
        .await?;
    crash_point("expiry.after_commit");
    Ok(expiring)
}
