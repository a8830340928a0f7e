//! Recovery after a start: every open order of this engine gets its actor again, and afterwards a
//! sweep keeps looking for open orders that lost theirs (a request that vanished between its commit
//! and its actor, an order noted for this engine by another).

use std::time::Duration;

use super::Engine;
use crate::shutdown::Shutdown;

/// Gives every open order its actor again (retried until it succeeds), then keeps looking for open
/// orders that lost theirs.
pub fn spawn(engine: Engine, shutdown: &Shutdown) {
    let stop = shutdown.clone();
    shutdown.spawn("recovery and orphan sweep", async move {
        let mut wait = Duration::from_millis(100);
        while !stop.is_triggered() {
            match engine.recover().await {
                Ok(count) => {
                    tracing::info!(open_orders = count, "open orders picked up again");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, ?wait, "recovery failed; trying again");
                    stop.or(actix_web::rt::time::sleep(wait)).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
        let mut sweep = actix_web::rt::time::interval(engine.settings().orphan_sweep_interval);
        sweep.tick().await;
        while stop.or(sweep.tick()).await.is_some() {
            if let Err(e) = engine.adopt_orphans().await {
                tracing::warn!(error = %e, "orphan sweep failed");
            }
        }
    });
}
