//! One actor per open order. Each message is handled to the end before the next (an atomic
//! response), so the actor is the single writer of its order. A panic inside a step stops the
//! actor, and its supervisor restarts it from the order's log.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;
use rand::RngExt;

use super::messages::{Drive, Reason, RequestCancel};
use super::steps::{self, Progress};
use super::Engine;
use crate::db::orders::OrderRow;
use crate::db::{self, now_micros};
use crate::domain::OrderId;
use crate::error::AppError;
use crate::orders::cancel::{self, CancelAnswer};

pub struct OrderActor {
    engine: Engine,
    order: OrderId,
}

impl OrderActor {
    pub fn new(engine: Engine, order: OrderId) -> Self {
        Self { engine, order }
    }

    fn schedule_poll(&self, ctx: &mut Context<Self>) {
        let mean = self.engine.settings.poll_interval.as_millis().max(2) as u64;
        let wait = Duration::from_millis(rand::rng().random_range(mean / 2..=mean + mean / 2));
        ctx.run_later(wait, |actor, ctx| {
            ctx.notify(Drive(Reason::Poll));
            actor.schedule_poll(ctx);
        });
    }

    /// The order is terminal: leave the registry, then stop. With no address left, the supervisor
    /// lets the actor go instead of restarting it.
    fn finish(&self, ctx: &mut Context<Self>) {
        self.engine.registry.remove(self.order, &ctx.address());
        ctx.stop();
    }
}

impl Actor for OrderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Drive(Reason::Recover));
        self.schedule_poll(ctx);
    }
}

impl Supervised for OrderActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::info!(order = %self.order, "order actor restarting from its log");
    }
}

impl Handler<Drive> for OrderActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, Drive(reason): Drive, _: &mut Context<Self>) -> Self::Result {
        let step = steps::drive(self.engine.clone(), self.order, reason);
        let guarded = AssertUnwindSafe(step).catch_unwind();
        AtomicResponse::new(Box::pin(guarded.into_actor(self).map(
            |outcome, actor, ctx| {
                actor.engine.relay.wake();
                actor.after_step(outcome, ctx)
            },
        )))
    }
}

impl OrderActor {
    fn after_step(
        &self,
        outcome: std::thread::Result<Result<Progress, AppError>>,
        ctx: &mut Context<Self>,
    ) {
        match outcome {
            Ok(Ok(Progress::Terminal)) => self.finish(ctx),
            Ok(Ok(Progress::Open)) => {}
            Ok(Err(error)) => {
                tracing::warn!(order = %self.order, %error, "step failed; the next poll retries");
            }
            Err(_) => {
                tracing::error!(order = %self.order, "step panicked; restarting the actor");
                ctx.stop();
            }
        }
    }
}

impl Handler<RequestCancel> for OrderActor {
    type Result = AtomicResponse<Self, Result<(CancelAnswer, OrderRow), AppError>>;

    fn handle(&mut self, message: RequestCancel, _: &mut Context<Self>) -> Self::Result {
        let (pool, order) = (self.engine.pool.clone(), self.order);
        let record = async move {
            db::run(&pool, move |conn| {
                cancel::request(conn, message.account, order, now_micros())
            })
            .await
        };
        AtomicResponse::new(Box::pin(record.into_actor(self).map(
            |answer, actor, ctx| {
                actor.engine.relay.wake();
                if matches!(answer, Ok((CancelAnswer::Requested, _))) {
                    ctx.notify(Drive(Reason::Cancel));
                }
                answer
            },
        )))
    }
}
