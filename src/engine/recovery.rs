//! Recovery after a start: every open order of this engine gets its actor again, and afterwards a
//! sweep keeps looking for open orders that lost theirs (a request that vanished between its commit
//! and its actor, an order noted for this engine by another).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dashmap::DashSet;

use std::collections::HashMap;

use actix::Addr;

use super::decide::FirstCall;
use super::messages::Drive;
use super::order_actor::FirstStep;
use super::order_actor::OrderActor;
use super::Engine;
use super::EngineError;
use crate::db::orders::OpenOrder;
use crate::db::{self, orders as order_rows};
use crate::domain::{OrderId, VenueOrder, VenueStatus};
use crate::exchange::client::Listing;
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

    /// Whether every order open at the start has been handed to its actor.
    fn is_listed(&self) -> bool {
        self.listed.load(Ordering::Acquire)
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
    pub fn summary(&self) -> RecoverySummary {
        RecoverySummary {
            picked_up: self.picked_up.load(Ordering::Relaxed),
            recovered: self.orders_recovered.load(Ordering::Relaxed),
            fills_recovered: self.fills_recovered.load(Ordering::Relaxed),
            awaiting_first_step: self.awaiting_first_step.len(),
            ready_after_ms: self.ready_after.get().map(|d| d.as_millis() as u64),
        }
    }
}

/// What this start's recovery has done so far, as `/healthz` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RecoverySummary {
    /// Open orders this start took up.
    pub picked_up: usize,
    /// Orders whose recovery changed what the log said.
    pub recovered: usize,
    pub fills_recovered: i64,
    /// Orders whose first step has not finished: readiness waits for them.
    pub awaiting_first_step: usize,
    /// How long this start took to be ready, once it was.
    pub ready_after_ms: Option<u64>,
}

/// How far back, before the oldest placement in doubt was sent, recovery lists the venue's
/// changes: the venue's clock may be behind the database's. An order the window misses anyway is
/// placed again under its client order id, which the venue answers with the order it has.
const LISTING_MARGIN: Duration = Duration::from_secs(600);

/// How many times recovery asks for one listing before it falls back to asking order by order.
const LISTING_ATTEMPTS: u32 = 3;

/// The venue's orders as recovery listed them, by client order id.
type Listed = HashMap<String, VenueOrder>;

/// How recovery starts the actor of an open order, given the venue's listing (None: the venue
/// could not be listed).
fn first_step(order: &OpenOrder, listed: Option<&Listed>) -> FirstStep {
    let Some(listed) = listed else {
        return FirstStep::Recover;
    };
    let copy = listed.get(order.client_order_id.as_str());
    match (first_call(order), copy) {
        (FirstCall::LookUp, copy) => FirstStep::Reconcile(copy.cloned()),
        (FirstCall::Compare, Some(copy)) if in_step(order, copy) => FirstStep::Quiet,
        (FirstCall::Compare, Some(copy)) => FirstStep::Reconcile(Some(copy.clone())),
        _ => FirstStep::Recover,
    }
}

/// An order open at the venue here (its first call a comparison) that is open there too, with
/// the same quantity filled.
fn in_step(order: &OpenOrder, copy: &VenueOrder) -> bool {
    matches!(copy.status, VenueStatus::New | VenueStatus::PartiallyFilled)
        && copy.filled_qty == order.filled_qty
}

/// The venue call the order's first step would start with.
fn first_call(order: &OpenOrder) -> FirstCall {
    FirstCall::of_status(order.status, order.placement_sent)
}

/// Whether the order's standing with the venue is unknown until its first step: anything but an
/// order never sent (placed through the normal path, as new orders are), released before it was
/// sent, or a held stop (not at the venue: its first step only watches it again).
fn in_doubt(order: &OpenOrder) -> bool {
    !matches!(
        first_call(order),
        FirstCall::Place | FirstCall::Release | FirstCall::Wait
    )
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
    /// once every order whose standing with the venue was in doubt has finished its first step.
    ///
    /// The venue is listed first, in at most two calls (`Engine::list_venue`). An order it
    /// holds exactly as the engine last recorded it (open on both sides, the same quantity
    /// filled) needs no first step: its actor only polls. An order whose placement was sent and
    /// not answered takes its listed copy as its lookup's answer. An order never sent is in no
    /// doubt: it is placed through the normal path, and the engine does not wait for it. So a
    /// restart with many open orders and a placement backlog makes two calls to the venue, not
    /// one per order. Without a listing (the venue is down), every order recovers on its own.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let me = self.lease().engine_id().to_owned();
        let open = db::run(self.pool(), move |conn| {
            order_rows::open_orders_brief(conn, &me)
        })
        .await?;
        let listed = if open.is_empty() {
            Some(HashMap::new())
        } else {
            self.list_venue(&open).await
        };
        let firsts: Vec<FirstStep> = open
            .iter()
            .map(|order| first_step(order, listed.as_ref()))
            .collect();
        drop(listed);
        // Steps take their permits first come, first served: the orders in doubt start first,
        // so that readiness does not wait behind a backlog of placements.
        let mut starts: Vec<(OrderId, bool, FirstStep)> = open
            .iter()
            .zip(firsts)
            .map(|(order, first)| {
                let doubt = first != FirstStep::Quiet && in_doubt(order);
                (order.id, doubt, first)
            })
            .collect();
        starts.sort_by_key(|(_, doubt, _)| !doubt);
        let (count, mut quiet) = (starts.len(), 0);
        for (i, (order, doubt, first)) in starts.into_iter().enumerate() {
            if i == count / 2 {
                crash_point("recovery.during");
            }
            match first {
                FirstStep::Quiet => quiet += 1,
                _ if doubt => self.0.recovery.awaits_first_step(order),
                _ => self.0.recovery.picks_up(order),
            }
            // A push may have given the order its actor before this listing: that actor waits,
            // quiet, for recovery to drive it as it would its own.
            match self.registry().get(order).filter(|actor| actor.connected()) {
                Some(actor) => {
                    if let Some(reason) = first.reason() {
                        actor.do_send(Drive(reason));
                    }
                }
                None => {
                    self.start_actor(order, first);
                }
            }
        }
        let ready = self.0.recovery.listed(open.len());
        self.note_ready(ready);
        tracing::info!(open = open.len(), quiet, "open orders given their actors");
        Ok(open.len())
    }

    /// The venue's copies recovery needs, by client order id: its open orders (to find those in
    /// step), and, when placements were in flight, every order it changed since the oldest of
    /// them was sent, less [`LISTING_MARGIN`] for the two clocks. None when the venue cannot be
    /// listed.
    async fn list_venue(&self, open: &[OpenOrder]) -> Option<Listed> {
        let oldest_sent = open
            .iter()
            .filter(|o| first_call(o) == FirstCall::LookUp)
            .map(|o| o.updated_at)
            .min();
        let mut listings = vec![Listing {
            open_only: true,
            updated_since: None,
        }];
        if let Some(sent) = oldest_sent {
            listings.push(Listing {
                open_only: false,
                updated_since: Some(sent - LISTING_MARGIN.as_micros() as i64),
            });
        }
        let mut listed = Listed::new();
        for listing in &listings {
            match self.list_once_answered(listing).await {
                // The later listing is the fresher: its copy of an order listed twice stands.
                Ok(orders) => listed.extend(
                    orders
                        .into_iter()
                        .map(|order| (order.client_order_id.clone(), order)),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "the venue cannot be listed; each order recovers on its own");
                    return None;
                }
            }
        }
        Some(listed)
    }

    /// One listing, asked again while its answer is lost: one listing settles every order in
    /// doubt, where the fallback asks order by order (over FIX a lost answer is a dropped
    /// session, which the next attempt finds back up).
    async fn list_once_answered(
        &self,
        listing: &Listing,
    ) -> Result<Vec<crate::domain::VenueOrder>, crate::exchange::ExchangeError> {
        let mut attempts = 1;
        loop {
            match self.exchange().orders_listed(listing).await {
                Err(e) if e.is_unknown() && attempts < LISTING_ATTEMPTS => {
                    tracing::info!(error = %e, attempts, "the venue's listing went unanswered; asking again");
                    attempts += 1;
                    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
                }
                answer => return answer,
            }
        }
    }

    /// Gives an order a pushed report concerns its actor. Before start-up recovery has listed the
    /// venue, the actor only takes the push: recovery drives it from the listing next.
    pub fn actor_for_push(&self, order: OrderId) -> Addr<OrderActor> {
        let first = if self.0.recovery.is_listed() {
            FirstStep::Recover
        } else {
            FirstStep::Quiet
        };
        self.start_actor(order, first)
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
    pub fn recovery_summary(&self) -> RecoverySummary {
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
    use crate::domain::{ClientOrderId, OrderStatus};

    fn open_order(status: OrderStatus, placement_sent: bool, filled_qty: i64) -> OpenOrder {
        let id = OrderId::new();
        OpenOrder {
            id,
            client_order_id: ClientOrderId::for_order(id),
            status,
            filled_qty,
            placement_sent,
            updated_at: 0,
        }
    }

    fn copy_of(order: &OpenOrder, status: VenueStatus, filled_qty: i64) -> VenueOrder {
        VenueOrder {
            client_order_id: order.client_order_id.to_string(),
            venue_order_id: Some("X1".into()),
            status,
            qty: 10,
            filled_qty,
            fills: Vec::new(),
        }
    }

    #[test]
    fn a_listing_answers_the_lookups_and_spares_the_orders_in_step() {
        use OrderStatus::*;
        let resting = open_order(New, true, 3);
        let moved = open_order(PartiallyFilled, true, 3);
        let sent = open_order(PendingNew, true, 0);
        let unseen = open_order(PendingNew, true, 0);
        let ended_there = open_order(New, true, 0);
        let listed: Listed = [
            copy_of(&resting, VenueStatus::PartiallyFilled, 3),
            copy_of(&moved, VenueStatus::Filled, 10),
            copy_of(&sent, VenueStatus::New, 0),
        ]
        .into_iter()
        .map(|c| (c.client_order_id.clone(), c))
        .collect();
        let first = |o: &OpenOrder| first_step(o, Some(&listed));
        assert_eq!(first(&resting), FirstStep::Quiet);
        assert_eq!(
            first(&moved),
            FirstStep::Reconcile(Some(copy_of(&moved, VenueStatus::Filled, 10)))
        );
        assert_eq!(
            first(&sent),
            FirstStep::Reconcile(Some(copy_of(&sent, VenueStatus::New, 0)))
        );
        assert_eq!(
            first(&unseen),
            FirstStep::Reconcile(None),
            "sent and listed nowhere: placed again under its id"
        );
        assert_eq!(
            first(&ended_there),
            FirstStep::Recover,
            "open here, not open there: looked up on its own"
        );
        for (status, sent) in [
            (PendingNew, false),
            (PendingCancel, true),
            (PendingReplace, true),
        ] {
            assert_eq!(first(&open_order(status, sent, 0)), FirstStep::Recover);
        }
        assert_eq!(first_step(&resting, None), FirstStep::Recover, "no listing");
    }

    #[test]
    fn only_orders_never_sent_released_unsent_or_held_are_in_no_doubt() {
        use OrderStatus::*;
        assert!(!in_doubt(&open_order(PendingNew, false, 0)));
        assert!(!in_doubt(&open_order(PendingCancel, false, 0)));
        assert!(!in_doubt(&open_order(Held, false, 0)));
        for (status, sent) in [
            (PendingNew, true),
            (New, true),
            (PartiallyFilled, true),
            (PendingCancel, true),
            (PendingReplace, true),
        ] {
            assert!(in_doubt(&open_order(status, sent, 0)), "{status:?}");
        }
    }

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
        assert_eq!(progress.summary().picked_up, 2);
    }
}
