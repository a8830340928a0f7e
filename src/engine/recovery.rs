//! Recovery after a start: every open order of this engine gets its actor again, and afterwards a
//! sweep keeps looking for open orders that lost theirs (a request that vanished between its commit
//! and its actor, an order noted for this engine by another).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dashmap::DashSet;

use std::collections::HashMap;

use super::Engine;
use super::EngineError;
use crate::db::{self, orders as order_rows};
use crate::domain::{OrderId, OrderStatus, VenueStatus};
use crate::fault_points::crash_point;
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

/// Recovery, as the engine runs it.
impl Engine {
    /// Gives every open order its actor back after a start; returns how many. The engine is ready
    /// once each of them has finished its first step.
    ///
    /// The exchange's whole book is asked for once: an order it holds exactly as the engine last
    /// recorded it (open on both sides, the same quantity filled) needs no first step, and its
    /// actor simply goes on polling. Only the others look themselves up, so a restart with many
    /// quiet open orders makes one call to the exchange, not one per order. Without that list
    /// (the exchange is down), every order recovers on its own.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let me = self.lease().engine_id().to_owned();
        let open = db::run(self.pool(), move |conn| {
            order_rows::open_orders_brief(conn, &me)
        })
        .await?;
        let book = if open.is_empty() {
            Ok(Vec::new())
        } else {
            self.exchange().all_orders().await
        };
        let book: HashMap<String, (VenueStatus, i64)> = match book {
            Ok(orders) => orders
                .into_iter()
                .map(|o| (o.client_order_id, (o.status, o.filled_qty)))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "the exchange's book is unavailable; each order recovers on its own");
                HashMap::new()
            }
        };
        let in_sync = |o: &order_rows::OpenOrder| {
            matches!(o.status, OrderStatus::New | OrderStatus::PartiallyFilled)
                && book
                    .get(o.client_order_id.as_str())
                    .is_some_and(|(status, filled)| {
                        matches!(status, VenueStatus::New | VenueStatus::PartiallyFilled)
                            && *filled == o.filled_qty
                    })
        };
        let quiet: Vec<bool> = open.iter().map(in_sync).collect();
        drop(book);
        for (order, _) in open.iter().zip(&quiet).filter(|(_, quiet)| !**quiet) {
            self.0.recovery.awaits_first_step(order.id);
        }
        for (i, (order, quiet)) in open.iter().zip(&quiet).enumerate() {
            self.start_actor(order.id, !quiet);
            if i == open.len() / 2 {
                crash_point("recovery.during");
            }
        }
        let ready = self.0.recovery.listed(open.len());
        self.note_ready(ready);
        let quiet = quiet.iter().filter(|q| **q).count();
        tracing::info!(open = open.len(), quiet, "open orders given their actors");
        Ok(open.len())
    }

    /// Gives an actor to every open order that has none: an order whose actor was never started
    /// (its request vanished between the commit and the spawn) or was lost. The same path as
    /// recovery; returns how many were found.
    pub async fn adopt_orphans(&self) -> Result<usize, EngineError> {
        let me = self.lease().engine_id().to_owned();
        let open = db::run(self.pool(), move |conn| {
            order_rows::open_order_ids(conn, &me)
        })
        .await?;
        let orphans: Vec<OrderId> = open
            .into_iter()
            .filter(|o| !self.registry().contains(*o))
            .collect();
        for order in &orphans {
            tracing::warn!(%order, "open order without an actor; starting one");
            self.0.recovery.picks_up(*order);
            self.spawn(*order);
        }
        Ok(orphans.len())
    }

    pub fn is_recovering(&self, order: OrderId) -> bool {
        self.0.recovery.is_recovering(order)
    }

    /// The order's recovery step is done; false if it was not recovering.
    pub fn finish_recovering(&self, order: OrderId) -> bool {
        self.0.recovery.finish_recovering(order)
    }

    /// Counts an order recovery carried on, with the fills it recorded on the way.
    pub fn count_recovered(&self, fills: i64) {
        self.0.recovery.count_recovered(fills);
    }

    /// What this start's recovery has done so far.
    pub fn recovery_summary(&self) -> serde_json::Value {
        self.0.recovery.summary()
    }

    /// Called after each step that ended without an error.
    pub fn step_completed(&self, order: OrderId) {
        let ready = self.0.recovery.step_completed(order);
        self.note_ready(ready);
    }

    /// Records, once, how long the start took to be ready (`orderkeeper_rehydration_seconds`).
    pub(super) fn note_ready(&self, took: Option<std::time::Duration>) {
        if let Some(elapsed) = took {
            self.metrics().rehydrated_in(elapsed);
            tracing::info!(?elapsed, "ready: every open order has its actor back");
        }
    }

    /// Whether every order picked up at start-up has finished its first step.
    pub fn is_ready(&self) -> bool {
        self.0.recovery.is_ready()
    }
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
