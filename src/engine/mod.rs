//! The engine: one supervised actor per open order, which carries its order on from its log.
//! Actors live on their own arbiter thread; database work runs on the blocking pool.
//!
//! Its parts, each with one job:
//! - [`writers`]: every phase, gathered into batches (one entry point per kind of phase);
//! - [`registry`]: the live actors, and the fills each order is known to hold;
//! - [`recovery`]: what a start or a takeover picks up, and when the engine is ready;
//! - [`lease`]: this engine's claim on its orders, and the notes other engines leave it;
//! - [`pushes`]: the venue's pushes, taken in and handed to the actors that need them;
//! - [`stops`]: the held stop orders, triggered when the last price crosses them;
//! - [`steps`], with [`decide`]: what an actor does, and the pure decisions behind it.

pub mod decide;
mod error;
pub mod expiry;
pub mod identity;
pub mod lease;
pub mod messages;
pub mod order_actor;
pub mod pushes;
pub mod recovery;
pub mod registry;
pub mod steps;
pub mod stops;
pub mod writers;

use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Arbiter, Supervisor};
use dashmap::DashMap;

pub use self::error::EngineError;
use self::lease::Lease;
use self::messages::{Drive, Reason};
use self::order_actor::{FirstStep, OrderActor};
pub use self::recovery::RecoverySummary;
use self::registry::Registry;
use self::writers::Writers;
use crate::db::leases::{self, Fence};
use crate::db::orders::OrderRow;
use crate::db::{now_micros, DbConnection, DbPool, Writer};
use crate::domain::{AccountId, Cents, ClientOrderId, OrderId, StopBook, Symbol};
use crate::exchange::ExchangeClient;
use crate::fault_points::crash_point;
use crate::feed::Relay;
use crate::metrics::Metrics;
use crate::orders::cancel::{self, CancelAnswer};
use crate::orders::lifecycle::{Applied, Snapshot};
use crate::orders::recovered::RecoveredItem;
use crate::orders::replace::{self, ReplaceAnswer, ReplaceRequest};
use crate::orders::status::StatusItem;
use crate::orders::submit::{Submission, SubmitItem, Submitted};
use crate::orders::OrderError;

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
    /// The held stops this engine carries on.
    stops: std::sync::Mutex<StopBook>,
    arbiter: Arbiter,
}

/// A cheap handle on the engine, shared by the HTTP handlers and the actors.
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
            stops: std::sync::Mutex::default(),
            arbiter: Arbiter::new(),
        }))
    }

    /// For reads.
    pub fn pool(&self) -> &DbPool {
        &self.0.pool
    }

    /// Watches a held stop for its trigger (again: watching twice is watching once).
    pub fn watch_stop(&self, row: &OrderRow) {
        if let Some(stop) = row.stop_price {
            crate::exchange::lock(&self.0.stops).watch(row.id, row.symbol.as_str(), row.side, stop);
        }
    }

    /// Stops watching `order`: it ended, or another engine carries it on.
    pub fn forget_stop(&self, order: OrderId) {
        crate::exchange::lock(&self.0.stops).forget(order);
    }

    /// How many held stops this engine watches.
    pub fn stops_waiting(&self) -> usize {
        crate::exchange::lock(&self.0.stops).len()
    }

    /// Takes out every watched stop the `last` prices trigger, with the price that did.
    fn take_triggered_stops(
        &self,
        last: &std::collections::BTreeMap<String, Cents>,
    ) -> Vec<(OrderId, Cents)> {
        crate::exchange::lock(&self.0.stops).take_all_triggered(last)
    }

    /// Records an actor's status step, in a batch with others'.
    pub async fn record_status(&self, item: StatusItem) -> Result<Applied, EngineError> {
        Ok(self.0.writers.record_status(item).await?)
    }

    /// Tells the customer that recovery carried an order on, in a batch with others'.
    pub async fn record_recovered(&self, item: RecoveredItem) -> Result<(), EngineError> {
        Ok(self.0.writers.record_recovered(item).await?)
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
    pub(super) fn owns(&self, owner: &str) -> bool {
        owner == self.0.lease.engine_id()
    }

    /// Waits for a place among the steps allowed to run at once.
    pub async fn step_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, EngineError> {
        self.0
            .step_permits
            .acquire()
            .await
            .map_err(|_| EngineError::Unavailable("the engine is stopping".into()))
    }

    /// Something else wrote the order (a cancel): the row its submit committed is stale.
    pub fn mark_snapshot_stale(&self, order: OrderId) {
        self.0.fresh_snapshots.remove(&order);
    }

    /// A new order as its submit committed it, if nothing else wrote it since, as far as this
    /// engine was told; taken once, by the first step.
    pub(super) fn take_fresh_snapshot(&self, order: OrderId) -> Option<Snapshot> {
        self.0.fresh_snapshots.remove(&order).map(|(_, snap)| snap)
    }

    /// Makes sure the order has a running actor, which starts by carrying the order on from its
    /// log; returns it.
    pub fn spawn(&self, order: OrderId) -> Addr<OrderActor> {
        self.start_actor(order, FirstStep::Recover)
    }

    pub(super) fn start_actor(&self, order: OrderId, first: FirstStep) -> Addr<OrderActor> {
        // An actor that died outside any step (it should not) is replaced, not trusted.
        if let Some(dead) = self.registry().get(order).filter(|a| !a.connected()) {
            tracing::error!(%order, "order actor found dead; starting a new one");
            self.registry().remove(order, &dead);
        }
        let engine = self.clone();
        self.registry().get_or_insert_with(order, || {
            Supervisor::start_in_arbiter(&self.0.arbiter.handle(), move |_| {
                OrderActor::new(engine, order, first)
            })
        })
    }

    /// Records a new order and starts its actor, which places it. Both run to their end even if
    /// the client hangs up meanwhile: otherwise an order could be committed, its cash reserved,
    /// and never be sent.
    pub async fn submit(&self, submission: Submission) -> Result<Submitted, EngineError> {
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
                    engine.start_actor(order, FirstStep::Place);
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
    ) -> Result<(CancelAnswer, OrderRow), EngineError> {
        self.hand_to_actors(Reason::Cancel, move |conn| {
            let answer = cancel::request(conn, account, order, now_micros())?;
            let moved = requested(std::slice::from_ref(&answer));
            Ok((answer, moved))
        })
        .await
    }

    /// Cancels every open order of `account` (of `symbol`, if named), in one phase.
    pub async fn cancel_all(
        &self,
        account: AccountId,
        symbol: Option<Symbol>,
    ) -> Result<Vec<(CancelAnswer, OrderRow)>, EngineError> {
        self.hand_to_actors(Reason::Cancel, move |conn| {
            let answers = cancel::request_all(conn, account, symbol.as_ref(), now_micros())?;
            let moved = requested(&answers);
            Ok((answers, moved))
        })
        .await
    }

    /// Records the customer's replace (or its refusal) under its key and answers at once; the
    /// order's actor sends it to the venue and records the answer.
    pub async fn replace(&self, request: ReplaceRequest) -> Result<ReplaceAnswer, EngineError> {
        self.hand_to_actors(Reason::Replace, move |conn| {
            let answer = replace::request(conn, &request)?;
            let moved = answer.moved.iter().cloned().collect();
            Ok((answer, moved))
        })
        .await
    }

    /// Records, in one phase, what a customer (or the session's close) asked of orders, and
    /// hands each order it moved to its actor: another engine's owner is told in the same
    /// commit, this engine's own actors are driven on at once for `reason`.
    pub(super) async fn hand_to_actors<T, F>(
        &self,
        reason: Reason,
        record: F,
    ) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<(T, Vec<OrderRow>), OrderError> + Send + 'static,
    {
        let engine = self.clone();
        self.0
            .writers
            .run_to_completion(async move {
                let me = engine.lease().engine_id().to_owned();
                let (answer, moved) = engine
                    .writer()
                    .run(move |conn| {
                        let (answer, moved) = record(conn)?;
                        for row in moved.iter().filter(|row| row.owner != me) {
                            leases::leave_note(conn, &row.owner, row.id)?;
                        }
                        Ok::<_, OrderError>((answer, moved))
                    })
                    .await?;
                if !moved.is_empty() {
                    engine.relay().wake();
                }
                for row in &moved {
                    engine.mark_snapshot_stale(row.id);
                    if engine.owns(&row.owner) {
                        engine.spawn(row.id).do_send(Drive(reason.clone()));
                    }
                }
                Ok(answer)
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

/// The orders a cancel moved to pending cancel (the others were answered as they stood).
fn requested(answers: &[(CancelAnswer, OrderRow)]) -> Vec<OrderRow> {
    answers
        .iter()
        .filter(|(answer, _)| *answer == CancelAnswer::Requested)
        .map(|(_, row)| row.clone())
        .collect()
}
