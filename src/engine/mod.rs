//! The engine: one supervised actor per open order, which carries its order on from its log.
//! Actors live on their own arbiter thread; database work runs on the blocking pool.

pub mod decide;
pub mod identity;
pub mod lease;
pub mod messages;
pub mod order_actor;
pub mod recovery;
pub mod registry;
pub mod steps;
pub mod writers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Arbiter, Supervisor};
use dashmap::DashMap;

use self::lease::Lease;
use self::messages::{Drive, Reason, WatchClosely};
use self::order_actor::OrderActor;
use self::registry::Registry;
use self::writers::Writers;
use crate::db::leases::{self, Fence};
use crate::db::orders::{self as order_rows, OrderRow};
use crate::db::{self, now_micros, DbPool, Writer};
use crate::domain::{
    AccountId, ClientOrderId, FillSource, OrderId, OrderStatus, VenueReport, VenueStatus,
};
use crate::error::AppError;
use crate::exchange::ExchangeClient;
use crate::fault_points::crash_point;
use crate::feed::Relay;
use crate::metrics::Metrics;
use crate::orders::cancel::{self, CancelAnswer};
use crate::orders::intake::{Intake, PushItem};
use crate::orders::lifecycle::{Applied, RecordedFill, Snapshot};
use crate::orders::status::StatusItem;
use crate::orders::submit::{Submission, SubmitItem, Submitted};

#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Mean time between two polls of one order; each wait is drawn between half and one and a half
    /// times this, so polls spread out.
    pub poll_interval: Duration,
    /// How many order steps may run at once (a restart must not flood the exchange or the database).
    pub max_concurrent_steps: usize,
    /// How often open orders without a live actor are looked for and given one back.
    pub orphan_sweep_interval: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            max_concurrent_steps: 32,
            orphan_sweep_interval: Duration::from_secs(5),
        }
    }
}

struct Inner {
    pool: DbPool,
    writers: Writers,
    exchange: Arc<dyn ExchangeClient>,
    registry: Registry,
    settings: EngineSettings,
    step_permits: tokio::sync::Semaphore,
    /// Woken after every step, so new events reach the feed at once.
    relay: Relay,
    metrics: Arc<Metrics>,
    /// New orders as their submit committed them, until their first step takes them instead of
    /// reading the order. A cancel taken meanwhile (here, or noted by another engine) takes the
    /// order out, so that the first step reads the order and sees the cancel before anything is
    /// sent.
    fresh_snapshots: DashMap<OrderId, Snapshot>,
    /// What this start's recovery has done, and whether the engine is ready.
    recovery: recovery::RecoveryProgress,
    /// This engine's claim on its open orders, against the others on the database.
    lease: Lease,
    arbiter: Arbiter,
}

/// A cheap handle on the engine, shared by the HTTP handlers and the actors.
/// What became of a push, as the exchange is told (`{"status": …}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushOutcome {
    /// Taken in: its fill recorded, or its event stored, and the order's actor told if need be.
    Recorded,
    /// This very event (or its fill) was taken in before.
    Duplicate,
    /// It names no order of ours: kept and alarmed.
    Unmatched,
}

#[derive(Clone)]
pub struct Engine(Arc<Inner>);

impl Engine {
    pub fn new(
        pool: DbPool,
        writers: Writers,
        exchange: Arc<dyn ExchangeClient>,
        settings: EngineSettings,
        relay: Relay,
        metrics: Arc<Metrics>,
        lease: Lease,
    ) -> Self {
        Engine(Arc::new(Inner {
            pool,
            writers,
            exchange,
            registry: Registry::default(),
            settings,
            step_permits: tokio::sync::Semaphore::new(settings.max_concurrent_steps.max(1)),
            relay,
            metrics,
            fresh_snapshots: DashMap::new(),
            recovery: recovery::RecoveryProgress::new(std::time::Instant::now()),
            lease,
            arbiter: Arbiter::new(),
        }))
    }

    /// For reads.
    pub fn pool(&self) -> &DbPool {
        &self.0.pool
    }

    /// Records an actor's status step, in a batch with others'.
    pub async fn record_status(&self, item: StatusItem) -> Result<Applied, AppError> {
        self.0.writers.record_status(item).await
    }

    /// For every atomic phase.
    pub fn writer(&self) -> &Writer {
        self.0.writers.writer()
    }

    pub fn exchange(&self) -> &dyn ExchangeClient {
        self.0.exchange.as_ref()
    }

    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.0.settings
    }

    pub fn relay(&self) -> &Relay {
        &self.0.relay
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn shared_metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.0.metrics)
    }

    pub fn lease(&self) -> &Lease {
        &self.0.lease
    }

    /// What a phase of one of this engine's orders is written under.
    pub fn fence(&self) -> Fence {
        self.0.lease.fence()
    }

    /// Whether this engine owns the order now (else the note goes to its owner).
    fn owns(&self, owner: &str) -> bool {
        owner == self.0.lease.engine_id()
    }

    /// Waits for a place among the steps allowed to run at once.
    pub async fn step_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, AppError> {
        self.0
            .step_permits
            .acquire()
            .await
            .map_err(AppError::internal)
    }

    /// Something else wrote the order (a cancel): the row its submit committed is stale.
    pub fn mark_snapshot_stale(&self, order: OrderId) {
        self.0.fresh_snapshots.remove(&order);
    }

    /// A new order as its submit committed it, if nothing else wrote it since, as far as this
    /// engine was told; taken once, by the first step.
    fn take_fresh_snapshot(&self, order: OrderId) -> Option<Snapshot> {
        self.0.fresh_snapshots.remove(&order).map(|(_, snap)| snap)
    }

    /// Makes sure the order has a running actor, which starts by carrying the order on from its
    /// log; returns it.
    pub fn spawn(&self, order: OrderId) -> Addr<OrderActor> {
        self.start_actor(order, true)
    }

    fn start_actor(&self, order: OrderId, recover_first: bool) -> Addr<OrderActor> {
        // An actor that died outside any step (it should not) is replaced, not trusted.
        if let Some(dead) = self.registry().get(order).filter(|a| !a.connected()) {
            tracing::error!(%order, "order actor found dead; starting a new one");
            self.registry().remove(order, &dead);
        }
        let engine = self.clone();
        self.registry().get_or_insert_with(order, || {
            Supervisor::start_in_arbiter(&self.0.arbiter.handle(), move |_| {
                OrderActor::new(engine, order, recover_first)
            })
        })
    }

    /// Gives every open order its actor back after a start; returns how many. The engine is ready
    /// once each of them has finished its first step.
    ///
    /// The exchange's whole book is asked for once: an order it holds exactly as the engine last
    /// recorded it (open on both sides, the same quantity filled) needs no first step, and its
    /// actor simply goes on polling. Only the others look themselves up, so a restart with many
    /// quiet open orders makes one call to the exchange, not one per order. Without that list
    /// (the exchange is down), every order recovers on its own.
    pub async fn recover(&self) -> Result<usize, AppError> {
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
    pub async fn adopt_orphans(&self) -> Result<usize, AppError> {
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
    fn note_ready(&self, took: Option<std::time::Duration>) {
        if let Some(elapsed) = took {
            self.metrics().rehydrated_in(elapsed);
            tracing::info!(?elapsed, "ready: every open order has its actor back");
        }
    }

    /// Whether every order picked up at start-up has finished its first step.
    pub fn is_ready(&self) -> bool {
        self.0.recovery.is_ready()
    }

    /// Records a new order and starts its actor, which places it. Both run to their end even if
    /// the client hangs up meanwhile: otherwise an order could be committed, its cash reserved,
    /// and never be sent.
    pub async fn submit(&self, submission: Submission) -> Result<Submitted, AppError> {
        let engine = self.clone();
        self.0
            .writers
            .run_to_completion(async move {
                let account = submission.account;
                let item = SubmitItem {
                    submission,
                    owner: engine.fence(),
                };
                let submitted = engine.0.writers.submit(item).await?;
                if let Some(row) = &submitted.created {
                    let order = row.id;
                    crash_point("submit.after_commit");
                    let span = tracing::Span::current();
                    span.record("order_id", tracing::field::display(order));
                    let cid = ClientOrderId::for_order(order);
                    span.record("client_order_id", tracing::field::display(&cid));
                    tracing::info!(%account, "order created");
                    engine.metrics().order_created();
                    engine.relay().wake();
                    engine
                        .0
                        .fresh_snapshots
                        .insert(order, Snapshot::of_new(row.clone()));
                    engine.spawn(order);
                }
                Ok(submitted)
            })
            .await
    }

    /// Records the customer's cancel and answers at once; the order's actor does the rest, after
    /// whatever step it is in the middle of. The phase reads the order inside its own transaction,
    /// so it is safe beside the actor's phases.
    pub async fn cancel(
        &self,
        account: AccountId,
        order: OrderId,
    ) -> Result<(CancelAnswer, OrderRow), AppError> {
        let engine = self.clone();
        self.0
            .writers
            .run_to_completion(async move {
                let me = engine.lease().engine_id().to_owned();
                let answer = engine
                    .writer()
                    .run(move |conn| {
                        let answer = cancel::request(conn, account, order, now_micros())?;
                        // Another engine's order: its owner is told in the same commit.
                        if answer.0 == CancelAnswer::Requested && answer.1.owner != me {
                            leases::leave_note(conn, &answer.1.owner, order)?;
                        }
                        Ok::<_, AppError>(answer)
                    })
                    .await?;
                engine.relay().wake();
                engine.mark_snapshot_stale(order);
                if answer.0 == CancelAnswer::Requested && engine.owns(&answer.1.owner) {
                    engine.spawn(order).do_send(Drive(Reason::Cancel));
                }
                Ok(answer)
            })
            .await
    }

    /// Takes in a push from the exchange: stores it and records its fill in one phase, then hands
    /// the order's actor only what may end the order or change its status. A fill already
    /// recorded exactly so is answered at once, without a write. Returns what became of it.
    ///
    /// Runs on a task of its own: once the event is stored, a later delivery is a duplicate, so
    /// what follows must not depend on the request surviving.
    pub async fn take_push(
        &self,
        event: VenueReport,
        raw: String,
    ) -> Result<PushOutcome, AppError> {
        let order = ClientOrderId(event.client_order_id.clone()).order_id();
        if let (Some(order), Some(fill)) = (order, &event.fill) {
            if self.registry().has_recorded(order, fill) {
                self.metrics().fill_duplicate(FillSource::Push);
                return Ok(PushOutcome::Duplicate);
            }
        }
        let engine = self.clone();
        self.0
            .writers
            .run_to_completion(async move {
                let item = PushItem {
                    event: event.clone(),
                    raw,
                    now: now_micros(),
                    engine: engine.lease().engine_id().to_owned(),
                };
                let intake = engine.0.writers.take_in_push(item).await?;
                let Intake::New {
                    order,
                    fill,
                    status,
                    fully_filled,
                    owner,
                } = intake
                else {
                    if intake == Intake::Duplicate {
                        engine.metrics().fill_duplicate(FillSource::Push);
                        return Ok(PushOutcome::Duplicate);
                    }
                    return Ok(PushOutcome::Unmatched);
                };
                if let (Some(recorded), Some(exchange_fill)) = (&fill, &event.fill) {
                    match recorded {
                        Applied::Recorded => {
                            engine.metrics().fill_recorded(FillSource::Push);
                            crash_point("fill.after_commit");
                            engine.relay().wake();
                        }
                        Applied::Duplicate => engine.metrics().fill_duplicate(FillSource::Push),
                        Applied::Refused(_) => {}
                    }
                    // Only an order with a live actor here is remembered: the actor's end forgets it,
                    // so the cache never grows with other engines' orders.
                    if !matches!(recorded, Applied::Refused(_)) && engine.registry().contains(order)
                    {
                        let seen = RecordedFill::of(exchange_fill);
                        engine
                            .registry()
                            .remember_fills(order, [(&exchange_fill.fill_id, &seen)]);
                    }
                }
                // A fill that leaves the order open needs nothing more, nor does an acknowledgement of
                // an order already acknowledged; the rest goes to the actor.
                let needs_actor = if event.is_bare_ack() {
                    status == OrderStatus::PendingNew
                } else {
                    event.fill.is_none() || fully_filled
                };
                if !engine.owns(&owner) {
                    // Told to its owner above.
                } else if needs_actor && status.is_open() {
                    engine.spawn(order).do_send(Drive(Reason::Push(event)));
                } else if let Some(actor) = engine.registry().get(order) {
                    actor.do_send(WatchClosely);
                }
                Ok(PushOutcome::Recorded)
            })
            .await
    }

    pub fn live_actors(&self) -> usize {
        self.registry().len()
    }

    /// Stops every actor's thread (at shut-down).
    pub fn stop(&self) {
        self.0.arbiter.stop();
    }
}
