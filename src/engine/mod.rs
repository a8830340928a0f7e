//! The engine: one supervised actor per open order, the only writer of its order once it exists.
//! Actors live on their own arbiter thread; database work runs on the blocking pool.

pub mod messages;
pub mod order_actor;
pub mod registry;
pub mod steps;

use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Arbiter, Supervisor};

use self::messages::{Drive, Reason, RequestCancel};
use self::order_actor::OrderActor;
use self::registry::Registry;
use crate::db::orders::{self as order_rows, OrderRow};
use crate::db::{self, now_micros, DbPool};
use crate::domain::{AccountId, OrderId};
use crate::error::AppError;
use crate::exchange::wire::PushEvent;
use crate::exchange::ExchangeClient;
use crate::feed::Relay;
use crate::metrics::Metrics;
use crate::orders::cancel::{self, CancelAnswer};
use crate::orders::lifecycle;

#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Mean time between two polls of one order; each wait is drawn between half and one and a half
    /// times this, so polls spread out.
    pub poll_interval: Duration,
    /// How many orders may talk to the exchange at once (a restart must not flood it).
    pub max_concurrent_steps: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            max_concurrent_steps: 32,
        }
    }
}

pub struct Inner {
    pub pool: DbPool,
    pub exchange: Arc<dyn ExchangeClient>,
    pub registry: Registry,
    pub settings: EngineSettings,
    pub step_permits: tokio::sync::Semaphore,
    /// Woken after every step, so new events reach the feed at once.
    pub relay: Relay,
    pub metrics: Arc<Metrics>,
    arbiter: Arbiter,
}

/// A cheap handle on the engine, shared by the HTTP handlers and the actors.
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

impl std::ops::Deref for Engine {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Engine {
    pub fn new(
        pool: DbPool,
        exchange: Arc<dyn ExchangeClient>,
        settings: EngineSettings,
        relay: Relay,
        metrics: Arc<Metrics>,
    ) -> Self {
        Engine(Arc::new(Inner {
            pool,
            exchange,
            registry: Registry::default(),
            settings,
            step_permits: tokio::sync::Semaphore::new(settings.max_concurrent_steps.max(1)),
            relay,
            metrics,
            arbiter: Arbiter::new(),
        }))
    }

    /// Makes sure the order has a running actor, and returns it.
    pub fn spawn(&self, order: OrderId) -> Addr<OrderActor> {
        // An actor that died outside any step (it should not) is replaced, not trusted.
        if let Some(dead) = self.registry.get(order).filter(|a| !a.connected()) {
            tracing::error!(%order, "order actor found dead; starting a new one");
            self.registry.remove(order, &dead);
        }
        let engine = self.clone();
        self.registry.get_or_insert_with(order, || {
            Supervisor::start_in_arbiter(&self.arbiter.handle(), move |_| {
                OrderActor::new(engine, order)
            })
        })
    }

    /// Starts an actor for every open order; returns how many.
    pub async fn recover(&self) -> Result<usize, AppError> {
        let open = db::run(&self.pool, order_rows::open_orders).await?;
        for row in &open {
            self.spawn(order_rows::parse_order_id(&row.id)?);
        }
        Ok(open.len())
    }

    /// Records the customer's cancel through the order's actor.
    pub async fn cancel(
        &self,
        account: AccountId,
        order: OrderId,
    ) -> Result<(CancelAnswer, OrderRow), AppError> {
        if let Some(actor) = self.registry.get(order) {
            if let Ok(answer) = actor.send(RequestCancel { account }).await {
                return answer;
            }
        }
        // No live actor: the order is terminal, or its actor is just being replaced. Record
        // directly (the transaction and the transition table keep this safe) and let an actor carry on.
        let answer = db::run(&self.pool, move |conn| {
            cancel::request(conn, account, order, now_micros())
        })
        .await?;
        self.relay.wake();
        if answer.0 == CancelAnswer::Requested {
            self.spawn(order);
        }
        Ok(answer)
    }

    /// Hands a push event to its order's actor, unless it brings a fill already recorded. An order
    /// with no actor is either ended, where a new fill can only be an alarm, or waiting for its
    /// actor, which is started.
    pub async fn deliver(&self, order: OrderId, event: PushEvent) -> Result<(), AppError> {
        if event
            .fill
            .as_ref()
            .is_some_and(|f| self.registry.has_seen_fill(order, &f.fill_id))
        {
            return Ok(());
        }
        if let Some(actor) = self.registry.get(order) {
            actor.do_send(Drive(Reason::Push(event)));
            return Ok(());
        }
        let snap = db::run(&self.pool, move |conn| lifecycle::load(conn, order)).await?;
        if snap.state.status.is_terminal() {
            return steps::alarm_if_late_fill(self, &snap, &event).await;
        }
        self.spawn(order).do_send(Drive(Reason::Push(event)));
        Ok(())
    }

    /// Test-only: makes the order's actor panic inside a step.
    pub fn crash(&self, order: OrderId) {
        if let Some(actor) = self.registry.get(order) {
            actor.do_send(Drive(Reason::Crash));
        }
    }

    pub fn live_actors(&self) -> usize {
        self.registry.len()
    }

    /// Stops every actor's thread (at shut-down).
    pub fn stop(&self) {
        self.arbiter.stop();
    }
}
