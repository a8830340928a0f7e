//! What an order actor does, step by step. Each exchange call sits between two recorded phases and
//! names the order by its client order id, so a repeated call is harmless. Nothing is refunded
//! without the exchange's own answer, except an order that was provably never sent.

use serde_json::json;

use super::messages::Reason;
use super::Engine;
use crate::db::{self, alarms, now_micros};
use crate::domain::{ActionKind, Cents, OrderId, OrderStatus, OrderType, Side};
use crate::error::AppError;
use crate::exchange::wire::{
    ExchangeFill, ExchangeOrder, ExchangeStatus, PlaceOrder, PushEvent, PushType,
};
use crate::exchange::ExchangeError;
use crate::metrics::FillSource;
use crate::orders::lifecycle::{self, Applied, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Open,
    Terminal,
}

pub async fn drive(engine: Engine, order: OrderId, reason: Reason) -> Result<Progress, AppError> {
    if matches!(reason, Reason::Crash) {
        panic!("test-only crash inside a step of order {order}");
    }
    let snap = load(&engine, order).await?;
    if snap.state.status.is_terminal() {
        if let Reason::Push(event) = &reason {
            alarm_if_late_fill(&engine, &snap, event).await?;
        }
        return Ok(Progress::Terminal);
    }
    let _permit = engine
        .step_permits
        .acquire()
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    match reason {
        Reason::Push(event) => on_push(&engine, order, event).await?,
        _ => on_state(&engine, order, snap).await?,
    }
    let after = load(&engine, order).await?;
    Ok(if after.state.status.is_terminal() {
        Progress::Terminal
    } else {
        Progress::Open
    })
}

async fn load(engine: &Engine, order: OrderId) -> Result<Snapshot, AppError> {
    let snap = db::run(&engine.pool, move |conn| lifecycle::load(conn, order)).await?;
    engine.registry.remember_fills(order, &snap.fill_ids);
    Ok(snap)
}

/// Records one action through its atomic phase.
async fn record(
    engine: &Engine,
    order: OrderId,
    kind: ActionKind,
    detail: serde_json::Value,
) -> Result<Applied, AppError> {
    db::run(&engine.pool, move |conn| {
        lifecycle::record(conn, order, kind, detail, now_micros())
    })
    .await
}

async fn record_fill(
    engine: &Engine,
    order: OrderId,
    fill: ExchangeFill,
    source: &'static str,
) -> Result<(), AppError> {
    let applied = db::run(&engine.pool, move |conn| {
        lifecycle::fill(conn, order, &fill, source, now_micros())
    })
    .await?;
    if applied == Applied::Recorded {
        engine
            .metrics
            .fills_recorded
            .get_or_create(&FillSource { source })
            .inc();
    }
    Ok(())
}

/// A push: record its fill at once; anything that may end the order is checked with the exchange.
async fn on_push(engine: &Engine, order: OrderId, event: PushEvent) -> Result<(), AppError> {
    if let Some(fill) = event.fill {
        record_fill(engine, order, fill, "push").await?;
    }
    // Reloading also remembers the fill in the registry's fast path.
    let snap = load(engine, order).await?;
    let fully_filled = snap.state.filled_qty == snap.state.qty;
    match event.event_type {
        PushType::Accepted if snap.state.status == OrderStatus::PendingNew => {
            record(
                engine,
                order,
                ActionKind::Accepted,
                json!({"source": "push"}),
            )
            .await?;
        }
        PushType::Canceled | PushType::Rejected => check_with_exchange(engine, order, snap).await?,
        PushType::Fill if fully_filled => check_with_exchange(engine, order, snap).await?,
        _ => {}
    }
    Ok(())
}

/// Carries the order on from whatever its log says it is.
async fn on_state(engine: &Engine, order: OrderId, snap: Snapshot) -> Result<(), AppError> {
    let cid = snap.row.client_order_id.clone();
    match (snap.state.status, snap.state.placement_sent) {
        (OrderStatus::PendingNew, false) => {
            record(
                engine,
                order,
                ActionKind::PlacementSent,
                json!({"client_order_id": cid}),
            )
            .await?;
            place(engine, order, &snap).await
        }
        // Sent before, answer unknown (or a crash came between): ask before placing again.
        (OrderStatus::PendingNew, true) => match engine.exchange.order(&cid).await {
            Ok(Some(found)) => reconcile(engine, order, snap, found).await,
            Ok(None) => place(engine, order, &snap).await,
            Err(e) => unresolved(order, "lookup", &e),
        },
        (OrderStatus::PendingCancel, false) => {
            record(
                engine,
                order,
                ActionKind::Canceled,
                json!({"reason": "never sent to the exchange"}),
            )
            .await?;
            Ok(())
        }
        // Cancelling on the exchange also tombstones an id it never saw, so a placement still in
        // flight is refused there; its answer is the authority for what happened.
        (OrderStatus::PendingCancel, true) => match engine.exchange.cancel(&cid).await {
            Ok(after) => reconcile(engine, order, snap, after).await,
            Err(e) => unresolved(order, "cancel", &e),
        },
        _ => check_with_exchange(engine, order, snap).await,
    }
}

async fn check_with_exchange(
    engine: &Engine,
    order: OrderId,
    snap: Snapshot,
) -> Result<(), AppError> {
    match engine.exchange.order(&snap.row.client_order_id).await {
        Ok(Some(found)) => reconcile(engine, order, snap, found).await,
        Ok(None) if snap.state.status == OrderStatus::PendingNew => Ok(()),
        Ok(None) => {
            let detail = format!(
                "{} is {} here but unknown to the exchange",
                snap.row.client_order_id, snap.row.status
            );
            raise_alarm(engine, "order_missing_on_exchange", &snap, detail).await
        }
        Err(e) => unresolved(order, "lookup", &e),
    }
}

fn unresolved(order: OrderId, call: &str, error: &ExchangeError) -> Result<(), AppError> {
    tracing::info!(%order, call, %error, "exchange call unresolved; the next poll asks again");
    Ok(())
}

async fn place(engine: &Engine, order: OrderId, snap: &Snapshot) -> Result<(), AppError> {
    let row = &snap.row;
    let request = PlaceOrder {
        client_order_id: row.client_order_id.clone(),
        symbol: row.symbol.clone(),
        side: Side::parse(&row.side).ok_or_else(|| AppError::Internal("bad side".into()))?,
        order_type: OrderType::parse(&row.order_type)
            .ok_or_else(|| AppError::Internal("bad type".into()))?,
        qty: row.qty,
        limit_price: row.protection_price.map(Cents),
    };
    let refusal = match engine.exchange.place(&request).await {
        Ok(ack) if ack.status == ExchangeStatus::Rejected => "rejected by the exchange".to_owned(),
        Ok(ack) => {
            let detail = json!({"exchange_order_id": ack.exchange_order_id, "source": "placement"});
            record(engine, order, ActionKind::Accepted, detail).await?;
            return Ok(());
        }
        Err(ExchangeError::Refused(reason)) => reason,
        Err(e) => return unresolved(order, "place", &e),
    };
    record(
        engine,
        order,
        ActionKind::Rejected,
        json!({"reason": refusal}),
    )
    .await?;
    Ok(())
}

/// Brings the order in line with the exchange's own copy: every fill it lacks, then its status.
/// `snap` is current: within a step the actor is its order's only writer.
async fn reconcile(
    engine: &Engine,
    order: OrderId,
    mut snap: Snapshot,
    exchange: ExchangeOrder,
) -> Result<(), AppError> {
    let missing: Vec<ExchangeFill> = exchange
        .fills
        .iter()
        .filter(|f| !snap.fill_ids.contains(&f.fill_id))
        .cloned()
        .collect();
    if !missing.is_empty() {
        for fill in missing {
            record_fill(engine, order, fill, "poll").await?;
        }
        snap = load(engine, order).await?;
    }
    let status = snap.state.status;
    if status.is_terminal() {
        return Ok(());
    }
    if status == OrderStatus::PendingNew
        && exchange.exchange_order_id.is_some()
        && exchange.status != ExchangeStatus::Rejected
    {
        let detail = json!({"exchange_order_id": exchange.exchange_order_id, "source": "poll"});
        record(engine, order, ActionKind::Accepted, detail).await?;
    }
    let end = match exchange.status {
        ExchangeStatus::New | ExchangeStatus::PartiallyFilled => return Ok(()),
        ExchangeStatus::Filled => ActionKind::Filled,
        ExchangeStatus::Canceled => ActionKind::Canceled,
        ExchangeStatus::Rejected => ActionKind::Rejected,
    };
    let detail =
        json!({"exchange_status": exchange.status, "exchange_filled_qty": exchange.filled_qty});
    record(engine, order, end, detail).await?;
    Ok(())
}

/// Stores an alarm about `snap`'s order.
async fn raise_alarm(
    engine: &Engine,
    kind: &'static str,
    snap: &Snapshot,
    detail: String,
) -> Result<(), AppError> {
    let id = snap.row.id.clone();
    db::run(&engine.pool, move |conn| {
        alarms::raise(conn, kind, Some(&id), &detail, now_micros())
    })
    .await
}

pub(crate) async fn alarm_if_late_fill(
    engine: &Engine,
    snap: &Snapshot,
    event: &PushEvent,
) -> Result<(), AppError> {
    let Some(fill) = &event.fill else {
        return Ok(());
    };
    if snap.fill_ids.contains(&fill.fill_id) {
        return Ok(());
    }
    let detail = format!(
        "fill {} of {} arrived after the order was {}",
        fill.fill_id, fill.qty, snap.row.status
    );
    raise_alarm(engine, "fill_after_terminal", snap, detail).await
}
