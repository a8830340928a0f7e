//! What an order actor does, step by step. Each exchange call sits between two recorded phases and
//! names the order by its client order id, so a repeated call is harmless. Nothing is refunded
//! without the exchange's own answer, except an order that was provably never sent.

use serde_json::json;

use super::decide::{self, Command, FirstCall, Heard, LookUpFor};
use super::messages::Reason;
use super::Engine;
use super::EngineError;
use crate::db::alarms::{self, Alarm, AlarmKind};
use crate::db::leases;
use crate::db::{self, now_micros};
use crate::domain::{
    Action, ClientOrderId, FillSource, OrderId, OrderRef, OrderState, OrderStatus, OrderToPlace,
    ReplaceTerms, VenueFill,
};
use crate::fault_points::{armed_for, crash_point};
use crate::orders::lifecycle::{self, Applied, RecordedFill, Snapshot};
use crate::orders::recovered::RecoveredItem;
use crate::orders::status::{StatusItem, StatusStep};
use crate::orders::OrderError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Still open; `changed` says whether the step moved it at all, `awaiting_ack` whether it is
    /// still pending new (an acknowledgement would move it), `owes_a_call` whether a placement, a
    /// cancel or a replace is still to be settled with the venue (its call went unanswered), `held`
    /// whether it is a stop waiting for its trigger (the venue knows nothing of it).
    Open {
        changed: bool,
        awaiting_ack: bool,
        owes_a_call: bool,
        held: bool,
    },
    Terminal,
}

pub async fn drive(
    engine: Engine,
    order: OrderId,
    reason: Reason,
) -> Result<Progress, EngineError> {
    if armed_for("order.step_panic", &order.to_string()) {
        panic!("fault point order.step_panic: a step of order {order} panics");
    }
    if armed_for("order.step_error", &order.to_string()) {
        return Err(EngineError::Unavailable(
            "fault point order.step_error".into(),
        ));
    }
    // The permit comes first: a restart with many open orders must not load them all at once.
    // What a step holds while it runs is allocated only once it has its permit, so that a
    // backlog of steps waiting for theirs costs little memory.
    let _permit = engine.step_permit().await?;
    Box::pin(step(engine.clone(), order, reason)).await
}

async fn step(engine: Engine, order: OrderId, reason: Reason) -> Result<Progress, EngineError> {
    // A new order's first step starts from the row its submit committed.
    let snap = match engine.take_fresh_snapshot(order) {
        Some(snap) => snap,
        None => load(&engine, order).await?,
    };
    tracing::Span::current().record("account_id", tracing::field::display(snap.row.account_id));
    let fence = engine.fence();
    leases::ensure_owner(order, &snap.row.owner, snap.row.owner_epoch, &fence)?;
    let before = (snap.state.status, snap.state.filled_qty);
    // The first step of an order picked up after a crash, a takeover or a lost actor (not of a
    // new order): it is told to the customer as `order.recovered`.
    let recovering =
        matches!(reason, Reason::Recover | Reason::Reconcile(_)) && engine.is_recovering(order);
    if snap.state.status.is_terminal() {
        engine.finish_recovering(order);
        return Ok(Progress::Terminal);
    }
    // A held stop waits here for its trigger, in this engine's book (again, after a restart or
    // a takeover).
    if snap.state.status == OrderStatus::Held {
        engine.watch_stop(&snap.row);
    }
    let log = json!({
        "status": snap.state.status,
        "placement_sent": snap.state.placement_sent,
        "filled_qty": snap.state.filled_qty,
    });
    let kind = FirstCall::of(&snap.state).recovery_kind();
    let start = snap.state;
    let mut step = Step {
        engine: &engine,
        order,
        notes: StepNotes::from(start),
    };
    let stepped = match reason {
        Reason::Push(event) => step.run(&snap, Heard::Push(event)).await,
        Reason::Reconcile(copy) => {
            step.run(&snap, decide::from_listing(&snap.state, copy))
                .await
        }
        Reason::Place | Reason::Recover | Reason::Poll | Reason::Cancel | Reason::Replace => {
            step.run(&snap, Heard::Start).await
        }
    };
    let notes = step.notes;
    stepped?;
    let after = (notes.state.status, notes.state.filled_qty);
    if recovering && engine.finish_recovering(order) {
        engine.metrics().recovery_action(kind);
        engine.count_recovered(after.1 - before.1);
        let recovery = json!({
            "log": log,
            "exchange": notes.exchange.unwrap_or_else(|| json!("not asked")),
            "action": kind,
            "done": recovery_done(kind),
            "fills_recorded": after.1 - before.1,
        });
        record_recovered(&engine, order, recovery).await?;
    }
    Ok(if notes.ended || after.0.is_terminal() {
        Progress::Terminal
    } else {
        Progress::Open {
            changed: after != before,
            awaiting_ack: after.0 == OrderStatus::PendingNew,
            owes_a_call: FirstCall::of(&notes.state).owes_a_call(),
            held: after.0 == OrderStatus::Held,
        }
    })
}

async fn load(engine: &Engine, order: OrderId) -> Result<Snapshot, EngineError> {
    let snap = db::run(engine.pool(), move |conn| lifecycle::load(conn, order)).await?;
    engine.registry().remember_fills(order, &snap.fills);
    Ok(snap)
}

/// What one step did, noted as it goes.
struct StepNotes {
    /// What the exchange said (the last word counts), for `order.recovered`.
    exchange: Option<serde_json::Value>,
    /// The order as the step's own recorded writes left it, moved through the transition table,
    /// so that nothing is read again after the step.
    state: OrderState,
    /// Whether one of them ended the order.
    ended: bool,
}

impl From<OrderState> for StepNotes {
    fn from(state: OrderState) -> Self {
        Self {
            exchange: None,
            state,
            ended: false,
        }
    }
}

/// One step of one order: what it needs, and what it notes on the way.
struct Step<'e> {
    engine: &'e Engine,
    order: OrderId,
    notes: StepNotes,
}

impl Step<'_> {
    /// Records a status step in the engine's batch, and notes what it did.
    async fn record_status(&mut self, step: StatusStep) -> Result<Applied, EngineError> {
        let action = match &step {
            StatusStep::PlacementSent => Some(Action::PlacementSent),
            StatusStep::Accepted { .. } => Some(Action::Accepted),
            StatusStep::ReleaseUnsent if self.notes.state.expiring => Some(Action::Expired),
            StatusStep::ReleaseUnsent => Some(Action::Canceled),
            StatusStep::End { .. } => None,
            StatusStep::Replaced { qty } => Some(Action::Replaced { qty: *qty }),
            StatusStep::ReplaceRejected { .. } => Some(Action::ReplaceRejected),
        };
        let item = StatusItem {
            order: self.order,
            fence: self.engine.fence(),
            step,
            now: now_micros(),
        };
        let applied = self.engine.record_status(item).await?;
        if applied == Applied::Recorded {
            match action {
                Some(action) => self.note_recorded(action),
                None => self.notes.ended = true,
            }
            let terminal = action.is_none_or(|a| a.kind().is_terminal());
            tracing::info!(action = ?action, "recorded");
            if terminal {
                crash_point("terminal.after_commit");
            }
        }
        Ok(applied)
    }

    /// Records the venue copy's fills that the log lacks, in one phase.
    async fn record_fills(
        &mut self,
        fills: Vec<VenueFill>,
        source: FillSource,
    ) -> Result<(), EngineError> {
        if fills.is_empty() {
            return Ok(());
        }
        let (order, fence) = (self.order, self.engine.fence());
        let (fills, applied) = self
            .engine
            .writer()
            .run(move |conn| {
                let applied =
                    lifecycle::record_fills(conn, order, &fence, &fills, source, now_micros())?;
                Ok::<_, OrderError>((fills, applied))
            })
            .await?;
        let mut any = false;
        for (fill, applied) in fills.iter().zip(applied) {
            if applied != Applied::Recorded {
                continue;
            }
            any = true;
            let recorded = RecordedFill::of(fill);
            self.note_recorded(Action::Fill { qty: recorded.qty });
            tracing::info!(fill_id = %fill.fill_id, source = source.as_str(), "fill recorded");
            self.engine
                .registry()
                .remember_fills(order, [(&fill.fill_id, &recorded)]);
            self.engine.metrics().fill_recorded(source);
        }
        if any {
            crash_point("fill.after_commit");
        }
        Ok(())
    }

    /// Decides on what the step heard, carries the commands out, and decides again on each
    /// answer, until a list of commands leaves nothing to answer.
    async fn run(&mut self, snap: &Snapshot, first: Heard) -> Result<(), EngineError> {
        let mut heard = Some(first);
        while let Some(news) = heard.take() {
            self.note_heard(&news);
            for command in decide::decide(self.notes.state, &snap.fills, news) {
                let answered = command.is_answered();
                heard = self.carry_out(snap, command).await?;
                debug_assert_eq!(
                    answered,
                    heard.is_some(),
                    "an answer as the command promised"
                );
                if heard.is_some() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Carries one command out; returns its answer, if it has one.
    async fn carry_out(
        &mut self,
        snap: &Snapshot,
        command: Command,
    ) -> Result<Option<Heard>, EngineError> {
        let named = OrderRef {
            client_order_id: snap.row.client_order_id.as_str(),
            symbol: snap.row.symbol.as_str(),
            side: snap.row.side,
        };
        let exchange = self.engine.exchange();
        Ok(match command {
            Command::Record(step) => {
                let marking = step == StatusStep::PlacementSent;
                let applied = self.record_status(step).await?;
                marking.then_some(Heard::MarkedSent(applied))
            }
            Command::RecordFills { fills, copy } => {
                self.record_fills(fills, FillSource::Poll).await?;
                Some(Heard::FillsIn(copy))
            }
            Command::LookUp(why) => Some(Heard::LookedUp(why, exchange.order(named).await)),
            Command::Place { sent_before } => {
                let row = &snap.row;
                let request = OrderToPlace {
                    client_order_id: row.client_order_id.to_string(),
                    symbol: row.symbol.to_string(),
                    side: row.side,
                    // A triggered stop goes on as a market order, a stop-limit as a limit order.
                    order_type: row.order_type.as_sent(),
                    qty: row.qty,
                    limit_price: row.protection_price,
                    time_in_force: row.time_in_force,
                };
                let answer = exchange.place(&request).await;
                Some(Heard::Placed {
                    sent_before,
                    answer,
                })
            }
            Command::CancelAtVenue(why) => {
                Some(Heard::CancelAnswered(why, exchange.cancel(named).await))
            }
            Command::ReplaceAtVenue => {
                let row = &snap.row;
                let terms = ReplaceTerms {
                    new_client_order_id: ClientOrderId::for_version(row.id, row.version + 1)
                        .to_string(),
                    qty: row.replacing_qty.unwrap_or(row.qty),
                    limit_price: row.replacing_limit_price.or(row.limit_price),
                };
                Some(Heard::ReplaceAnswered(
                    exchange.replace(named, &terms).await,
                ))
            }
            Command::RaiseMissing => {
                let detail = format!(
                    "{} is {} here but unknown to the exchange",
                    snap.row.client_order_id, snap.row.status
                );
                let kind = AlarmKind::OrderMissingOnExchange;
                raise_alarm(self.engine, kind, self.order, "lookup", detail).await?;
                None
            }
            Command::LeaveToNextPoll { call, error } => {
                let (order, call) = (self.order, call.as_str());
                self.notes.exchange = Some(json!(format!("no answer to the {call}: {error}")));
                tracing::info!(%order, call, %error, "exchange call unresolved; the next poll asks again");
                None
            }
        })
    }

    /// Notes what the exchange said (the last word counts), for `order.recovered`.
    fn note_heard(&mut self, heard: &Heard) {
        let said = match heard {
            Heard::LookedUp(_, Ok(Some(copy))) | Heard::CancelAnswered(_, Ok(copy)) => json!({
                "status": copy.status,
                "filled_qty": copy.filled_qty,
                "fills": copy.fills.len(),
            }),
            Heard::LookedUp(LookUpFor::LostPlacement, Ok(None)) => {
                json!("no such order: placed again")
            }
            Heard::Placed {
                answer: Ok(ack), ..
            } => {
                json!({"placed": ack.status, "exchange_order_id": ack.venue_order_id})
            }
            _ => return,
        };
        self.notes.exchange = Some(said);
    }

    /// Notes an action the step recorded. The phase applied it to the order as it stood then;
    /// where the step's copy is behind (a cancel came in meanwhile) the move may not apply to the
    /// copy, and is left out: the actor then only looks at the order once more than it needs to.
    fn note_recorded(&mut self, action: Action) {
        if let Ok(next) = self.notes.state.apply(action) {
            self.notes.state = next;
        }
    }
}

fn recovery_done(kind: &str) -> &'static str {
    match kind {
        "place" => "never sent before the crash: placed",
        "lookup" => "sent, its answer lost: looked up by client order id and followed",
        "release" => "cancelled before it was ever sent: released at once",
        "cancel" => {
            "its cancel was in flight: sent again, which tombstones an id the exchange never saw"
        }
        "replace" => "its replace was in flight: sent again, and the exchange's answer recorded",
        "held" => "a stop still held: it waits for its trigger again, nothing sent",
        _ => "compared with the exchange's copy; missing fills recorded by poll",
    }
}

/// Tells the customer, in the feed, that recovery carried this order on, and how.
async fn record_recovered(
    engine: &Engine,
    order: OrderId,
    recovery: serde_json::Value,
) -> Result<(), EngineError> {
    let item = RecoveredItem {
        order,
        recovery,
        fence: engine.fence(),
        now: now_micros(),
    };
    engine.record_recovered(item).await?;
    engine.relay().wake();
    Ok(())
}

async fn raise_alarm(
    engine: &Engine,
    kind: AlarmKind,
    order: OrderId,
    subject: &str,
    detail: String,
) -> Result<(), EngineError> {
    let subject = subject.to_owned();
    Ok(engine
        .writer()
        .run(move |conn| {
            let alarm = Alarm {
                kind,
                order: Some(order),
                subject: &subject,
                detail: &detail,
            };
            alarms::raise(conn, &alarm, now_micros())
        })
        .await?)
}
