//! Recovery after a start: every open order of this engine gets its actor again, and afterwards a
//! sweep keeps looking for open orders that lost theirs (a request that vanished between its commit
//! and its actor, an order noted for this engine by another).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dashmap::DashSet;

use super::Engine;
use crate::domain::OrderId;
use crate::shutdown::Shutdown;

/// What this start's recovery has done, and whether the engine is ready: every order picked up
/// at the start has finished its first step.
#[derive(Debug)]
pub struct RecoveryProgress {
    started: Instant,
    /// Every open order found at the start has been given its actor.
    listed: AtomicBool,
    /// Orders picked up at the start whose first step has not finished yet.
    awaiting_first_step: DashSet<OrderId>,
    /// Orders picked up by recovery (after a crash, a takeover, a lost actor) whose recovery
    /// step has not finished yet.
    recovering: DashSet<OrderId>,
    picked_up: AtomicUsize,
    orders_recovered: AtomicUsize,
    fills_recovered: AtomicI64,
    /// Set once, the first time every order picked up at the start has finished its first step.
    ready_after: OnceLock<Duration>,
}

impl RecoveryProgress {
    pub fn new(started: Instant) -> Self {
        RecoveryProgress {
            started,
            listed: AtomicBool::new(false),
            awaiting_first_step: DashSet::new(),
            recovering: DashSet::new(),
            picked_up: AtomicUsize::new(0),
            orders_recovered: AtomicUsize::new(0),
            fills_recovered: AtomicI64::new(0),
            ready_after: OnceLock::new(),
        }
    }

    /// An order found open at the start that needs a first step before the engine is ready.
    pub fn awaits_first_step(&self, order: OrderId) {
        self.awaiting_first_step.insert(order);
        self.recovering.insert(order);
    }

    /// An order recovery picks up after the start (a takeover, a lost actor).
    pub fn picks_up(&self, order: OrderId) {
        self.recovering.insert(order);
    }

    /// Every order open at the start (`count` of them) has its actor. Returns how long the start
    /// took, the first time the engine is ready.
    pub fn listed(&self, count: usize) -> Option<Duration> {
        self.picked_up.store(count, Ordering::Relaxed);
        self.listed.store(true, Ordering::Release);
        self.ready_now()
    }

    pub fn is_recovering(&self, order: OrderId) -> bool {
        self.recovering.contains(&order)
    }

    /// Takes the order out of those recovering; false if it was not recovering.
    pub fn finish_recovering(&self, order: OrderId) -> bool {
        self.recovering.remove(&order).is_some()
    }

    /// Counts an order recovery carried on, with the fills it recorded on the way.
    pub fn count_recovered(&self, fills: i64) {
        self.orders_recovered.fetch_add(1, Ordering::Relaxed);
        self.fills_recovered.fetch_add(fills, Ordering::Relaxed);
    }

    /// A step of `order` ended without an error. Returns how long the start took, the first
    /// time the engine is ready.
    pub fn step_completed(&self, order: OrderId) -> Option<Duration> {
        if self.awaiting_first_step.remove(&order).is_some() {
            return self.ready_now();
        }
        None
    }

    pub fn is_ready(&self) -> bool {
        self.listed.load(Ordering::Acquire) && self.awaiting_first_step.is_empty()
    }

    fn ready_now(&self) -> Option<Duration> {
        if !self.is_ready() {
            return None;
        }
        let elapsed = self.started.elapsed();
        self.ready_after.set(elapsed).ok().map(|()| elapsed)
    }

    /// What this start's recovery has done so far.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "picked_up": self.picked_up.load(Ordering::Relaxed),
            "recovered": self.orders_recovered.load(Ordering::Relaxed),
            "fills_recovered": self.fills_recovered.load(Ordering::Relaxed),
            "ready_after_ms": self.ready_after.get().map(|d| d.as_millis() as u64),
        })
    }
}

/// Gives every open order its actor again (retried until it succeeds), then keeps looking for open
/// orders that lost theirs.
pub fn spawn(engine: Engine, shutdown: &Shutdown) {
    shutdown.spawn("recovery and orphan sweep", |stop| async move {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_every_order_picked_up_at_the_start_has_stepped_and_only_once() {
        let progress = RecoveryProgress::new(Instant::now());
        let (a, b) = (OrderId::new(), OrderId::new());
        progress.awaits_first_step(a);
        progress.awaits_first_step(b);
        assert!(
            !progress.is_ready(),
            "not ready before the orders are listed"
        );
        assert_eq!(progress.listed(2), None, "two first steps still to go");
        assert_eq!(progress.step_completed(a), None);
        assert!(progress.is_recovering(b));
        assert!(
            progress.step_completed(b).is_some(),
            "ready at the last first step"
        );
        assert!(progress.is_ready());
        // Later steps, and later pick-ups, change nothing about the start.
        progress.picks_up(a);
        assert_eq!(progress.step_completed(a), None);
        assert!(progress.finish_recovering(a));
        assert!(!progress.finish_recovering(a));
        assert_eq!(progress.summary()["picked_up"], 2);
    }
}
