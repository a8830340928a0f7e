//! What an order actor does, step by step. Each exchange call sits between two recorded phases and
//! names the order by its client order id, so a repeated call is harmless. Nothing is refunded
//! without the exchange's own answer, except an order that was provably never sent.

use serde_json::json;

use super::decide::{self, AfterPlacement, FirstCall};
use super::messages::Reason;
use super::Engine;
use crate::db::alarms::{self, Alarm, AlarmKind};
use crate::db::leases;
use crate::db::{self, now_micros, orders, outbox};
use crate::domain::{
    AckSource, Action, EndCause, FillSource, OrderId, OrderState, OrderStatus, OrderToPlace,
    ReportKind, VenueEnd, VenueFill, VenueOrder, VenueReport,
};
use crate::error::AppError;
use crate::exchange::ExchangeError;
use crate::fault_points::{armed_for, crash_point};
use crate::orders::lifecycle::{self, Applied, Snapshot};
use crate::orders::status::{StatusItem, StatusStep};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Still open; `changed` says whether the step moved it at all, `awaiting_ack` whether it is
    /// still pending new (an acknowledgement would move it).
    Open {
        changed: bool,
        awaiting_ack: bool,
    },
    Terminal,
}

pub async fn drive(engine: Engine, order: OrderId, reason: Reason) -> Result<Progress, AppError> {
    if armed_for("order.step_panic", &order.to_string()) {
        panic!("fault point order.step_panic: a step of order {order} panics");
    }
    if armed_for("order.step_error", &order.to_string()) {
        return Err(AppError::Unavailable("fault point order.step_error".into()));
    }
    // The permit comes first: a restart with many open orders must not load them all at once.
    let _permit = engine.step_permit().await?;
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
    let recovering = matches!(reason, Reason::Recover) && engine.is_recovering(order);
    if snap.state.status.is_terminal() {
        engine.finish_recovering(order);
        return Ok(Progress::Terminal);
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
        Reason::Push(event) => step.on_push(snap, event).await,
        Reason::Recover | Reason::Poll | Reason::Cancel => step.on_state(snap).await,
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
        }
    })
}

async fn load(engine: &Engine, order: OrderId) -> Result<Snapshot, AppError> {
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
    async fn record_status(&mut self, step: StatusStep) -> Result<Applied, AppError> {
        let action = match &step {
            StatusStep::PlacementSent { .. } => Some(Action::PlacementSent),
            StatusStep::Accepted { .. } => Some(Action::Accepted),
            StatusStep::ReleaseUnsent => Some(Action::Canceled),
            StatusStep::End { .. } => None,
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

    async fn record_accepted(
        &mut self,
        venue_order_id: Option<String>,
        source: AckSource,
    ) -> Result<(), AppError> {
        let step = StatusStep::Accepted {
            venue_order_id,
            source,
        };
        self.record_status(step).await?;
        Ok(())
    }

    /// Ends the order as the exchange's copy ended.
    async fn record_end(
        &mut self,
        end: VenueEnd,
        venue_filled: i64,
        cause: EndCause,
    ) -> Result<(), AppError> {
        let step = StatusStep::End {
            end,
            venue_filled,
            cause,
        };
        self.record_status(step).await?;
        Ok(())
    }

    async fn record_fill(
        &mut self,
        fill: VenueFill,
        source: FillSource,
    ) -> Result<Applied, AppError> {
        let (order, fence) = (self.order, self.engine.fence());
        let (fill_id, qty) = (fill.fill_id.clone(), fill.qty);
        let applied = self
            .engine
            .writer()
            .run(move |conn| {
                lifecycle::record_fill(conn, order, &fence, &fill, source, now_micros())
            })
            .await?;
        if applied == Applied::Recorded {
            self.note_recorded(Action::Fill { qty });
            tracing::info!(%fill_id, source = source.as_str(), "fill recorded");
            self.engine.metrics().fill_recorded(source);
            crash_point("fill.after_commit");
        }
        Ok(applied)
    }

    /// Notes what the exchange said (the last word counts).
    fn note_venue_answer(&mut self, what: serde_json::Value) {
        self.notes.exchange = Some(what);
    }

    /// Notes an action the step recorded. The phase applied it to the order as it stood then;
    /// where the step's copy is behind (a cancel came in meanwhile) the move may not apply to the
    /// copy, and is left out: the actor then only looks at the order once more than it needs to.
    fn note_recorded(&mut self, action: Action) {
        if let Ok(next) = self.notes.state.apply(action) {
            self.notes.state = next;
        }
    }

    fn unresolved(&mut self, call: &str, error: &ExchangeError) -> Result<(), AppError> {
        self.note_venue_answer(json!(format!("no answer to the {call}: {error}")));
        let order = self.order;
        tracing::info!(%order, call, %error, "exchange call unresolved; the next poll asks again");
        Ok(())
    }

    /// A push, already taken in (its fill recorded) by `Engine::take_push`: what may end the
    /// order is checked with the exchange.
    async fn on_push(&mut self, snap: Snapshot, event: VenueReport) -> Result<(), AppError> {
        let fully_filled = snap.state.filled_qty == snap.state.qty;
        match event.kind {
            ReportKind::Accepted if snap.state.status == OrderStatus::PendingNew => {
                self.record_accepted(event.venue_order_id, AckSource::Push)
                    .await?;
            }
            ReportKind::Canceled | ReportKind::Rejected => self.check_with_exchange(snap).await?,
            ReportKind::Fill if fully_filled => self.check_with_exchange(snap).await?,
            _ => {}
        }
        Ok(())
    }

    /// Carries the order on from whatever its log says it is.
    async fn on_state(&mut self, snap: Snapshot) -> Result<(), AppError> {
        let cid = snap.row.client_order_id.to_string();
        let exchange = self.engine.exchange();
        match FirstCall::of(&snap.state) {
            FirstCall::Place => {
                let step = StatusStep::PlacementSent {
                    client_order_id: cid,
                };
                let sent = self.record_status(step).await?;
                if sent != Applied::Recorded {
                    return Ok(());
                }
                self.place(&snap, false).await
            }
            FirstCall::LookUp => match exchange.order(&cid).await {
                Ok(Some(found)) => self.reconcile(snap, found).await,
                Ok(None) => {
                    self.note_venue_answer(json!("no such order: placed again"));
                    self.place(&snap, true).await
                }
                Err(e) => self.unresolved("lookup", &e),
            },
            FirstCall::Release => {
                if self.record_status(StatusStep::ReleaseUnsent).await? == Applied::Recorded {
                    tracing::info!("cancelled before it was ever sent: released");
                }
                Ok(())
            }
            // The venue's answer to the cancel is the authority for what happened.
            FirstCall::Cancel => match exchange.cancel(&cid).await {
                Ok(after) => self.reconcile(snap, after).await,
                // A venue that refuses the cancel ("already canceled", "unknown order"): follow
                // what it holds instead.
                Err(ExchangeError::Refused(_) | ExchangeError::AmbiguousRefusal(_)) => {
                    self.check_with_exchange(snap).await
                }
                Err(e) => self.unresolved("cancel", &e),
            },
            FirstCall::Compare => self.check_with_exchange(snap).await,
        }
    }

    async fn check_with_exchange(&mut self, snap: Snapshot) -> Result<(), AppError> {
        let cid = snap.row.client_order_id.as_str();
        match self.engine.exchange().order(cid).await {
            Ok(Some(found)) => self.reconcile(snap, found).await,
            Ok(None) if snap.state.status == OrderStatus::PendingNew => Ok(()),
            Ok(None) => {
                let detail = format!(
                    "{} is {} here but unknown to the exchange",
                    snap.row.client_order_id, snap.row.status
                );
                let kind = AlarmKind::OrderMissingOnExchange;
                raise_alarm(self.engine, kind, self.order, "lookup", detail).await
            }
            Err(e) => self.unresolved("lookup", &e),
        }
    }

    /// Places the order. `sent_before`: an earlier placement went unanswered, so a refusal now may
    /// only be the venue refusing a repeat of an order it holds.
    async fn place(&mut self, snap: &Snapshot, sent_before: bool) -> Result<(), AppError> {
        let row = &snap.row;
        let request = OrderToPlace {
            client_order_id: row.client_order_id.to_string(),
            symbol: row.symbol.to_string(),
            side: row.side,
            order_type: row.order_type,
            qty: row.qty,
            limit_price: row.protection_price,
        };
        let answer = self.engine.exchange().place(&request).await;
        match decide::after_placement(answer, sent_before) {
            AfterPlacement::Accepted(ack) => {
                self.note_venue_answer(
                    json!({"placed": ack.status, "exchange_order_id": ack.venue_order_id}),
                );
                self.record_accepted(ack.venue_order_id, AckSource::Placement)
                    .await
            }
            AfterPlacement::Rejected(reason) => {
                let cause = EndCause::PlacementRejected { reason };
                self.record_end(VenueEnd::Rejected, 0, cause).await
            }
            AfterPlacement::FollowVenue => self.follow_after_refusal(snap).await,
            AfterPlacement::Unresolved(e) => self.unresolved("place", &e),
        }
    }

    /// A placement refused after an unanswered one: the exchange's copy decides. If it holds the
    /// order, the engine follows it; if not, the id is tombstoned (a late copy of the lost
    /// placement is then refused there) before the order is rejected and its funds released.
    async fn follow_after_refusal(&mut self, snap: &Snapshot) -> Result<(), AppError> {
        let cid = snap.row.client_order_id.as_str();
        let exchange = self.engine.exchange();
        match exchange.order(cid).await {
            Ok(Some(found)) => self.reconcile(snap.clone(), found).await,
            Ok(None) => match exchange.cancel(cid).await {
                Ok(after) => {
                    self.note_venue_answer(json!("no such order: tombstoned, then rejected here"));
                    self.reconcile(snap.clone(), after).await
                }
                Err(e) => self.unresolved("tombstone", &e),
            },
            Err(e) => self.unresolved("lookup", &e),
        }
    }

    /// Brings the order in line with the exchange's own copy: every fill it lacks, then its
    /// status.
    async fn reconcile(
        &mut self,
        mut snap: Snapshot,
        exchange: VenueOrder,
    ) -> Result<(), AppError> {
        self.note_venue_answer(json!({
            "status": exchange.status,
            "filled_qty": exchange.filled_qty,
            "fills": exchange.fills.len(),
        }));
        let mut recorded_any = false;
        for fill in decide::fills_to_record(&snap.fills, &exchange) {
            recorded_any |=
                self.record_fill(fill.clone(), FillSource::Poll).await? == Applied::Recorded;
        }
        if recorded_any {
            snap = load(self.engine, self.order).await?;
        }
        let moves = decide::status_moves(snap.state.status, &exchange);
        if moves.accept {
            let venue_order_id = exchange.venue_order_id.clone();
            self.record_accepted(venue_order_id, AckSource::Poll)
                .await?;
        }
        let Some(end) = moves.end else {
            return Ok(());
        };
        let cause = EndCause::VenueEnded {
            status: exchange.status,
            filled_qty: exchange.filled_qty,
        };
        self.record_end(end, exchange.filled_qty, cause).await
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
        _ => "compared with the exchange's copy; missing fills recorded by poll",
    }
}

/// Tells the customer, in the feed, that recovery carried this order on, and how.
async fn record_recovered(
    engine: &Engine,
    order: OrderId,
    recovery: serde_json::Value,
) -> Result<(), AppError> {
    let fence = engine.fence();
    engine
        .writer()
        .run(move |conn| {
            let (owner, epoch) = leases::lock_owner(conn, order)?;
            leases::ensure_owner(order, &owner, epoch, &fence)?;
            let row = orders::find(conn, order)?.ok_or(AppError::NotFound)?;
            let view = crate::orders::OrderView::from(&row);
            outbox::append_recovered(conn, row.account_id, &view, &recovery, now_micros())?;
            Ok::<_, AppError>(())
        })
        .await?;
    engine.relay().wake();
    Ok(())
}

async fn raise_alarm(
    engine: &Engine,
    kind: AlarmKind,
    order: OrderId,
    subject: &str,
    detail: String,
) -> Result<(), AppError> {
    let subject = subject.to_owned();
    engine
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
        .await
}
