//! What an order actor does, step by step. Each exchange call sits between two recorded phases and
//! names the order by its client order id, so a repeated call is harmless. Nothing is refunded
//! without the exchange's own answer, except an order that was provably never sent.

use std::cell::RefCell;

use serde_json::json;

use super::decide::{self, AfterPlacement, FirstCall};
use super::messages::Reason;
use super::Engine;
use crate::db::alarms::{self, Alarm, AlarmKind};
use crate::db::leases;
use crate::db::{self, now_micros, orders, outbox};
use crate::domain::{Action, FillSource, OrderId, OrderState, OrderStatus, VenueEnd};
use crate::error::AppError;
use crate::exchange::wire::{ExchangeFill, ExchangeOrder, PlaceOrder, PushEvent, PushType};
use crate::exchange::ExchangeError;
use crate::fault_points::{armed_for, crash_point};
use crate::orders::lifecycle::{self, Applied, Snapshot};
use crate::orders::status_batch::StatusItem;

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
    if snap.row.owner != fence.engine || snap.row.owner_epoch != fence.epoch {
        return Err(AppError::Fenced(format!(
            "order {order} is {}'s (epoch {}) now",
            snap.row.owner, snap.row.owner_epoch
        )));
    }
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
    let (stepped, notes) = STEP_NOTES
        .scope(RefCell::new(StepNotes::from(start)), async {
            let stepped = match reason {
                Reason::Push(event) => on_push(&engine, order, snap, event).await,
                Reason::Recover | Reason::Poll | Reason::Cancel => {
                    on_state(&engine, order, snap).await
                }
            };
            (
                stepped,
                STEP_NOTES.with(|notes| notes.replace(StepNotes::from(start))),
            )
        })
        .await;
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

/// Records an action that moves no shares.
async fn record_status(
    engine: &Engine,
    order: OrderId,
    action: Action,
    detail: serde_json::Value,
) -> Result<Applied, AppError> {
    let item = StatusItem {
        order,
        fence: engine.fence(),
        action,
        detail,
        now: now_micros(),
    };
    let applied = engine.record_status(item).await?;
    note_recorded(&applied, Wrote::Action(action));
    if applied == Applied::Recorded {
        tracing::info!(action = ?action, "recorded");
        if action.kind().is_terminal() {
            crash_point("terminal.after_commit");
        }
    }
    Ok(applied)
}

/// Runs one of the order's phases under this engine's fence, and notes what it recorded.
async fn run_phase<F>(engine: &Engine, wrote: Wrote, phase: F) -> Result<Applied, AppError>
where
    F: FnOnce(&mut db::DbConnection, &leases::Fence, i64) -> Result<Applied, AppError>
        + Send
        + 'static,
{
    let fence = engine.fence();
    let applied = engine
        .writer()
        .run(move |conn| phase(conn, &fence, now_micros()))
        .await?;
    note_recorded(&applied, wrote);
    Ok(applied)
}

/// Ends the order as the exchange's copy ended.
async fn record_end(
    engine: &Engine,
    order: OrderId,
    end: VenueEnd,
    venue_filled: i64,
    detail: serde_json::Value,
) -> Result<(), AppError> {
    let applied = run_phase(engine, Wrote::End, move |conn, fence, now| {
        lifecycle::record_end(conn, order, fence, end, venue_filled, detail, now)
    })
    .await?;
    if applied == Applied::Recorded {
        tracing::info!(end = ?end, "recorded the end the exchange reported");
        crash_point("terminal.after_commit");
    }
    Ok(())
}

/// Cancels and releases an order never sent, if its own row still says so.
async fn release_unsent(engine: &Engine, order: OrderId) -> Result<(), AppError> {
    let applied = run_phase(
        engine,
        Wrote::Action(Action::Canceled),
        move |conn, fence, now| lifecycle::release_unsent(conn, order, fence, now),
    )
    .await?;
    if applied == Applied::Recorded {
        tracing::info!("cancelled before it was ever sent: released");
        crash_point("terminal.after_commit");
    }
    Ok(())
}

async fn record_fill(
    engine: &Engine,
    order: OrderId,
    fill: ExchangeFill,
    source: FillSource,
) -> Result<Applied, AppError> {
    let (fill_id, qty) = (fill.fill_id.clone(), fill.qty);
    let applied = run_phase(
        engine,
        Wrote::Action(Action::Fill { qty }),
        move |conn, fence, now| lifecycle::record_fill(conn, order, fence, &fill, source, now),
    )
    .await?;
    if applied == Applied::Recorded {
        tracing::info!(%fill_id, source = source.as_str(), "fill recorded");
        engine.metrics().fill_recorded(source);
        crash_point("fill.after_commit");
    }
    Ok(applied)
}

/// A push: record its fill at once; anything that may end the order is checked with the exchange.
/// A push, already taken in (its fill recorded) by `Engine::take_push`: what may end the order
/// is checked with the exchange.
async fn on_push(
    engine: &Engine,
    order: OrderId,
    snap: Snapshot,
    event: PushEvent,
) -> Result<(), AppError> {
    let fully_filled = snap.state.filled_qty == snap.state.qty;
    match event.event_type {
        PushType::Accepted if snap.state.status == OrderStatus::PendingNew => {
            let detail = json!({"exchange_order_id": event.exchange_order_id, "source": "push"});
            record_status(engine, order, Action::Accepted, detail).await?;
        }
        PushType::Canceled | PushType::Rejected => check_with_exchange(engine, order, snap).await?,
        PushType::Fill if fully_filled => check_with_exchange(engine, order, snap).await?,
        _ => {}
    }
    Ok(())
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

/// What a recorded write did to the order.
enum Wrote {
    Action(Action),
    /// Ended it as the exchange's copy ended (the phase chose the action).
    End,
}

tokio::task_local! {
    static STEP_NOTES: RefCell<StepNotes>;
}

/// Notes what the exchange said (the last word counts).
fn note_venue_answer(what: serde_json::Value) {
    let _ = STEP_NOTES.try_with(|notes| notes.borrow_mut().exchange = Some(what));
}

/// Notes what a write the step recorded did. The phase applied it to the order as it stood then;
/// where the step's copy is behind (a cancel came in meanwhile) the move may not apply to the
/// copy, and is left out: the actor then only looks at the order once more than it needs to.
fn note_recorded(applied: &Applied, what: Wrote) {
    if *applied != Applied::Recorded {
        return;
    }
    let _ = STEP_NOTES.try_with(|notes| {
        let mut notes = notes.borrow_mut();
        match what {
            Wrote::End => notes.ended = true,
            Wrote::Action(action) => {
                if let Ok(next) = notes.state.apply(action) {
                    notes.state = next;
                }
            }
        }
    });
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
            leases::check(conn, order, &fence)?;
            let row = orders::find(conn, order)?.ok_or(AppError::NotFound)?;
            let view = crate::orders::OrderView::from(&row);
            outbox::append_recovered(conn, row.account_id, &view, &recovery, now_micros())
        })
        .await?;
    engine.relay().wake();
    Ok(())
}

/// Carries the order on from whatever its log says it is.
async fn on_state(engine: &Engine, order: OrderId, snap: Snapshot) -> Result<(), AppError> {
    let cid = snap.row.client_order_id.to_string();
    match FirstCall::of(&snap.state) {
        FirstCall::Place => {
            let detail = json!({"client_order_id": cid});
            let sent = record_status(engine, order, Action::PlacementSent, detail).await?;
            if sent != Applied::Recorded {
                return Ok(());
            }
            place(engine, order, &snap, false).await
        }
        FirstCall::LookUp => match engine.exchange().order(&cid).await {
            Ok(Some(found)) => reconcile(engine, order, snap, found).await,
            Ok(None) => {
                note_venue_answer(json!("no such order: placed again"));
                place(engine, order, &snap, true).await
            }
            Err(e) => unresolved(order, "lookup", &e),
        },
        FirstCall::Release => release_unsent(engine, order).await,
        // The venue's answer to the cancel is the authority for what happened.
        FirstCall::Cancel => match engine.exchange().cancel(&cid).await {
            Ok(after) => reconcile(engine, order, snap, after).await,
            // A venue that refuses the cancel ("already canceled", "unknown order"): follow what it
            // holds instead.
            Err(ExchangeError::Refused(_) | ExchangeError::AmbiguousRefusal(_)) => {
                check_with_exchange(engine, order, snap).await
            }
            Err(e) => unresolved(order, "cancel", &e),
        },
        FirstCall::Compare => check_with_exchange(engine, order, snap).await,
    }
}

async fn check_with_exchange(
    engine: &Engine,
    order: OrderId,
    snap: Snapshot,
) -> Result<(), AppError> {
    match engine
        .exchange()
        .order(snap.row.client_order_id.as_str())
        .await
    {
        Ok(Some(found)) => reconcile(engine, order, snap, found).await,
        Ok(None) if snap.state.status == OrderStatus::PendingNew => Ok(()),
        Ok(None) => {
            let detail = format!(
                "{} is {} here but unknown to the exchange",
                snap.row.client_order_id, snap.row.status
            );
            raise_alarm(
                engine,
                AlarmKind::OrderMissingOnExchange,
                order,
                "lookup",
                detail,
            )
            .await
        }
        Err(e) => unresolved(order, "lookup", &e),
    }
}

fn unresolved(order: OrderId, call: &str, error: &ExchangeError) -> Result<(), AppError> {
    note_venue_answer(json!(format!("no answer to the {call}: {error}")));
    tracing::info!(%order, call, %error, "exchange call unresolved; the next poll asks again");
    Ok(())
}

/// Places the order. `sent_before`: an earlier placement went unanswered, so a refusal now may
/// only be the venue refusing a repeat of an order it holds.
async fn place(
    engine: &Engine,
    order: OrderId,
    snap: &Snapshot,
    sent_before: bool,
) -> Result<(), AppError> {
    let row = &snap.row;
    let request = PlaceOrder {
        client_order_id: row.client_order_id.to_string(),
        symbol: row.symbol.to_string(),
        side: row.side,
        order_type: row.order_type,
        qty: row.qty,
        limit_price: row.protection_price,
    };
    let answer = engine.exchange().place(&request).await;
    match decide::after_placement(answer, sent_before) {
        AfterPlacement::Accepted(ack) => {
            note_venue_answer(
                json!({"placed": ack.status, "exchange_order_id": ack.exchange_order_id}),
            );
            let detail = json!({"exchange_order_id": ack.exchange_order_id, "source": "placement"});
            record_status(engine, order, Action::Accepted, detail).await?;
            Ok(())
        }
        AfterPlacement::Rejected(reason) => {
            let detail = json!({"reason": reason});
            record_end(engine, order, VenueEnd::Rejected, 0, detail).await
        }
        AfterPlacement::FollowVenue => follow_after_refusal(engine, order, snap).await,
        AfterPlacement::Unresolved(e) => unresolved(order, "place", &e),
    }
}

/// A placement refused after an unanswered one: the exchange's copy decides. If it holds the
/// order, the engine follows it; if not, the id is tombstoned (a late copy of the lost placement
/// is then refused there) before the order is rejected and its funds released.
async fn follow_after_refusal(
    engine: &Engine,
    order: OrderId,
    snap: &Snapshot,
) -> Result<(), AppError> {
    let cid = snap.row.client_order_id.as_str();
    match engine.exchange().order(cid).await {
        Ok(Some(found)) => reconcile(engine, order, snap.clone(), found).await,
        Ok(None) => match engine.exchange().cancel(cid).await {
            Ok(after) => {
                note_venue_answer(json!("no such order: tombstoned, then rejected here"));
                reconcile(engine, order, snap.clone(), after).await
            }
            Err(e) => unresolved(order, "tombstone", &e),
        },
        Err(e) => unresolved(order, "lookup", &e),
    }
}

/// Brings the order in line with the exchange's own copy: every fill it lacks, then its status.
async fn reconcile(
    engine: &Engine,
    order: OrderId,
    mut snap: Snapshot,
    exchange: ExchangeOrder,
) -> Result<(), AppError> {
    note_venue_answer(json!({
        "status": exchange.status,
        "filled_qty": exchange.filled_qty,
        "fills": exchange.fills.len(),
    }));
    let mut recorded_any = false;
    for fill in decide::fills_to_record(&snap.fills, &exchange) {
        recorded_any |=
            record_fill(engine, order, fill.clone(), FillSource::Poll).await? == Applied::Recorded;
    }
    if recorded_any {
        snap = load(engine, order).await?;
    }
    let moves = decide::status_moves(snap.state.status, &exchange);
    if moves.accept {
        let detail = json!({"exchange_order_id": exchange.exchange_order_id, "source": "poll"});
        record_status(engine, order, Action::Accepted, detail).await?;
    }
    let Some(end) = moves.end else {
        return Ok(());
    };
    let detail =
        json!({"exchange_status": exchange.status, "exchange_filled_qty": exchange.filled_qty});
    record_end(engine, order, end, exchange.filled_qty, detail).await
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
