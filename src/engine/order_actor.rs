//! One actor per open order. Each message is handled to the end before the next (an atomic
//! response), so the actor's steps never overlap. A panic inside a step stops the actor, and its
//! supervisor restarts it from the order's log, after a backoff that grows with each restart in a
//! row, so a step that panics every time does not spin.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::FutureExt;
use rand::RngExt;

use super::messages::{Drive, Reason, WatchClosely};
use super::steps::{self, Progress};
use super::Engine;
use super::EngineError;
use crate::domain::{ClientOrderId, OrderId, VenueOrder};
use crate::orders::OrderError;
use tracing::Instrument;

/// The longest wait before a restarted actor carries on, and before a failed step is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A quiet order's poll interval doubles at most this many times.
const MAX_QUIET_DOUBLINGS: u32 = 5;

pub struct OrderActor {
    engine: Engine,
    order: OrderId,
    /// Restarts since the last step that ended without a panic.
    restarts: u32,
    /// After a restart, no step runs before this: whatever asks (a poll, a push) waits.
    resume_at: Option<Instant>,
    /// Failed steps in a row.
    failures: u32,
    /// Polls in a row that found nothing new.
    quiet_polls: u32,
    /// The next poll, so that activity can bring it forward; None while the order is a held stop,
    /// which is not polled.
    next_poll: Option<SpawnHandle>,
    /// How the actor begins, once; after a restart it always carries the order on from its log.
    first: FirstStep,
    /// Whether the order may still be pending new, as far as the last step saw. It never becomes
    /// pending new again, so once false an acknowledgement push has nothing to move.
    awaiting_ack: bool,
}

/// How an order's actor begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstStep {
    /// A new order: it places it.
    Place,
    /// In step with the venue, as recovery found it: it only polls.
    Quiet,
    /// It carries the order on from its log.
    Recover,
    /// It carries the order on from its log, with the venue's copy recovery listed.
    Reconcile(Option<VenueOrder>),
}

impl FirstStep {
    /// What the actor's first step is asked for; None when it only polls.
    pub fn reason(self) -> Option<Reason> {
        match self {
            FirstStep::Quiet => None,
            FirstStep::Place => Some(Reason::Place),
            FirstStep::Recover => Some(Reason::Recover),
            FirstStep::Reconcile(copy) => Some(Reason::Reconcile(copy)),
        }
    }
}

/// 100 ms, doubling with each attempt in a row, at most [`MAX_BACKOFF`].
fn backoff(attempt: u32) -> Duration {
    let shift = attempt.saturating_sub(1).min(16);
    (Duration::from_millis(100) * (1 << shift)).min(MAX_BACKOFF)
}

/// How the order's next polls are paced after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// Back to the base interval.
    Close,
    /// One doubling further apart.
    Slower,
    Same,
}

/// A step that moved the order, or left a call unsettled, keeps it closely watched: an unanswered
/// cancel is asked again at the base interval however long the venue stays unreachable, so that it
/// lands soon after the venue answers again. Only a poll that found a settled order as it was
/// slows the next.
fn poll_pace(changed: bool, owes_a_call: bool, polled: bool) -> Pace {
    if changed || owes_a_call {
        Pace::Close
    } else if polled {
        Pace::Slower
    } else {
        Pace::Same
    }
}

impl OrderActor {
    pub fn new(engine: Engine, order: OrderId, first: FirstStep) -> Self {
        Self {
            engine,
            order,
            first,
            restarts: 0,
            resume_at: None,
            failures: 0,
            quiet_polls: 0,
            next_poll: None,
            awaiting_ack: true,
        }
    }

    /// Polls the exchange's copy on a jittered timer. Pushes are the first channel and polling the
    /// safety net: every poll that finds nothing new doubles the wait (up to 32 times the
    /// interval), and any change or push brings it back, so many quiet resting orders do not
    /// flood the exchange while active ones stay closely watched.
    fn schedule_poll(&mut self, ctx: &mut Context<Self>) {
        let base = self.engine.settings().poll_interval.as_millis().max(2) as u64;
        let mean = base << self.quiet_polls.min(MAX_QUIET_DOUBLINGS);
        let wait = Duration::from_millis(rand::rng().random_range(mean / 2..=mean + mean / 2));
        self.next_poll = Some(ctx.run_later(wait, |actor, ctx| {
            ctx.notify(Drive(Reason::Poll));
            actor.schedule_poll(ctx);
        }));
    }

    /// Something happened to the order: watch it closely again from now on.
    fn watch_closely(&mut self, ctx: &mut Context<Self>) {
        // Not polled at all while held.
        if self.quiet_polls == 0 || self.next_poll.is_none() {
            return;
        }
        self.quiet_polls = 0;
        if let Some(pending) = self.next_poll.take() {
            ctx.cancel_future(pending);
        }
        self.schedule_poll(ctx);
    }

    /// The order is terminal: leave the registry, then stop. With no address left, the supervisor
    /// lets the actor go instead of restarting it.
    fn finish(&self, ctx: &mut Context<Self>) {
        self.engine.forget_stop(self.order);
        self.engine.registry().remove(self.order, &ctx.address());
        ctx.stop();
    }

    fn after_step(
        &mut self,
        outcome: std::thread::Result<Result<Progress, EngineError>>,
        polled: bool,
        ctx: &mut Context<Self>,
    ) {
        match outcome {
            Ok(Ok(progress)) => {
                self.restarts = 0;
                self.resume_at = None;
                self.failures = 0;
                self.engine.step_completed(self.order);
                match progress {
                    Progress::Terminal => self.finish(ctx),
                    // A stop held for its trigger is not polled: the venue knows nothing of it.
                    // The trigger, a cancel, an expiry or a note drives its next step.
                    Progress::Open { held: true, .. } => {
                        if let Some(pending) = self.next_poll.take() {
                            ctx.cancel_future(pending);
                        }
                    }
                    Progress::Open {
                        changed,
                        awaiting_ack,
                        owes_a_call,
                        held: false,
                    } => {
                        self.awaiting_ack = awaiting_ack;
                        if self.next_poll.is_none() {
                            // Triggered: at the venue, so polled as any order there.
                            self.quiet_polls = 0;
                            self.schedule_poll(ctx);
                        }
                        match poll_pace(changed, owes_a_call, polled) {
                            Pace::Close => self.watch_closely(ctx),
                            Pace::Slower => self.quiet_polls += 1,
                            Pace::Same => {}
                        }
                    }
                }
            }
            Ok(Err(EngineError::Order(OrderError::Fenced(why)))) => {
                // Another engine carries the order on now: this actor must not act on it again.
                tracing::warn!(order = %self.order, %why, "order taken over; its actor here stops");
                self.engine.metrics().step_fenced();
                self.engine.step_completed(self.order);
                self.finish(ctx);
            }
            Ok(Err(error)) => {
                // Nothing of a failed phase was kept: carry on from the log again, soon.
                self.failures += 1;
                let wait = backoff(self.failures);
                tracing::warn!(order = %self.order, %error, ?wait, "step failed; trying again");
                ctx.notify_later(Drive(Reason::Recover), wait);
            }
            Err(_) => {
                tracing::error!(order = %self.order, "step panicked; restarting the actor");
                ctx.stop();
            }
        }
    }
}

impl Actor for OrderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.restarts > 0 {
            self.resume_at = Some(Instant::now() + backoff(self.restarts));
        }
        // Taken once: a restarted actor carries the order on from its log.
        if let Some(reason) = std::mem::replace(&mut self.first, FirstStep::Recover).reason() {
            ctx.notify(Drive(reason));
        }
        self.schedule_poll(ctx);
    }
}

impl Supervised for OrderActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts += 1;
        self.engine.metrics().actor_restarted();
        tracing::info!(order = %self.order, restarts = self.restarts, "order actor restarting from its log");
    }
}

impl Handler<Drive> for OrderActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, Drive(reason): Drive, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(wait) = self
            .resume_at
            .and_then(|t| t.checked_duration_since(Instant::now()))
        {
            ctx.notify_later(Drive(reason), wait);
            return AtomicResponse::new(Box::pin(actix::fut::ready(())));
        }
        let polled = matches!(reason, Reason::Poll);
        if matches!(reason, Reason::Push(_) | Reason::Cancel | Reason::Replace) {
            self.watch_closely(ctx);
        }
        // The acknowledgement often arrives while the step that placed the order is recording the
        // placement's own: once that step saw the order acknowledged, the push has nothing to do.
        if !self.awaiting_ack && reason.is_bare_ack() {
            return AtomicResponse::new(Box::pin(actix::fut::ready(())));
        }
        self.engine.metrics().order_step(reason.name());
        let span = tracing::info_span!(
            "order_step",
            order_id = %self.order,
            client_order_id = %ClientOrderId::for_order(self.order),
            account_id = tracing::field::Empty,
            reason = reason.name(),
        );
        let step = steps::drive(self.engine.clone(), self.order, reason).instrument(span);
        let guarded = AssertUnwindSafe(step).catch_unwind();
        AtomicResponse::new(Box::pin(guarded.into_actor(self).map(
            move |outcome, actor, ctx| {
                actor.engine.relay().wake();
                actor.after_step(outcome, polled, ctx)
            },
        )))
    }
}

impl Handler<WatchClosely> for OrderActor {
    type Result = ();

    fn handle(&mut self, _: WatchClosely, ctx: &mut Context<Self>) {
        self.watch_closely(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_settled_order_that_did_not_move_is_polled_less_often() {
        assert_eq!(poll_pace(false, false, true), Pace::Slower);
        assert_eq!(poll_pace(false, false, false), Pace::Same);
        assert_eq!(poll_pace(true, false, true), Pace::Close);
        // A cancel, placement or replace whose call went unanswered is never quiet.
        assert_eq!(poll_pace(false, true, true), Pace::Close);
        assert_eq!(poll_pace(false, true, false), Pace::Close);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
