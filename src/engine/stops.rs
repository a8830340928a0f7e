//! Triggers held stop orders. Each engine watches the stops it carries on (a held order's step
//! puts it in the engine's [`StopBook`], its actor's end takes it out) and reads the venue's last
//! prices every [`CHECK_EVERY`], through the price cache, which asks the venue at most once a
//! second. A stop the prices cross is recorded `triggered` in a phase of its own, then its actor
//! places it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::messages::{Drive, Reason};
use super::{Engine, EngineError};
use crate::db::now_micros;
use crate::domain::{Cents, OrderId};
use crate::exchange::PriceCache;
use crate::fault_points::crash_point;
use crate::orders::trigger;
use crate::shutdown::Shutdown;

/// How often the held stops are checked against the last prices.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

pub fn spawn(engine: Engine, prices: Arc<PriceCache>, shutdown: &Shutdown) {
    shutdown.spawn("stop triggers", |stop| async move {
        let mut ticker = tokio::time::interval(CHECK_EVERY);
        while stop.or(ticker.tick()).await.is_some() {
            if engine.stops_waiting() == 0 {
                continue;
            }
            let last = match prices.all().await {
                Ok(last) => last,
                Err(e) => {
                    tracing::debug!(error = %e, "no last prices for the stops this time");
                    continue;
                }
            };
            if let Err(e) = check(&engine, &last).await {
                tracing::warn!(error = %e, "stops could not be triggered; their actors watch them again");
            }
        }
    });
}

/// Triggers every stop the `last` prices cross; returns how many were recorded.
pub async fn check(engine: &Engine, last: &BTreeMap<String, Cents>) -> Result<usize, EngineError> {
    let due = engine.take_triggered_stops(last);
    if due.is_empty() {
        return Ok(0);
    }
    let ids: Vec<OrderId> = due.iter().map(|(id, _)| *id).collect();
    let fence = engine.fence();
    let recorded = engine
        .hand_to_actors(Reason::Place, move |conn| {
            let triggered = trigger::record(conn, &due, &fence, now_micros())?;
            Ok((triggered.len(), triggered))
        })
        .await;
    crash_point("stops.after_trigger");
    match recorded {
        Ok(n) => {
            tracing::info!(orders = n, "stops triggered");
            Ok(n)
        }
        Err(e) => {
            // Still held: each one's next step watches it again.
            for order in ids {
                engine.spawn(order).do_send(Drive(Reason::Recover));
            }
            Err(e)
        }
    }
}
