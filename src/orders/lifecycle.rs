//! An order as its actor reads it, and the fill phase: a fill is recorded once with all its
//! effects in one transaction, after the transition table allowed it. A fill that must not happen
//! writes nothing but an alarm. Status steps have a module of their own (`orders::status`).

use std::collections::BTreeMap;

use super::phase;
use super::view::FillView;
use crate::db::alarms::{self, Alarm, AlarmKind};
use crate::db::leases::{self, Fence};
use crate::db::ledger::{self, Balance, LedgerEntry, CASH};
use crate::db::orders::{self, FillRow, OrderRow};
use crate::db::DbConnection;
use crate::domain::{
    fill_within_limit, Action, Cents, FillSource, OrderEvent, OrderId, OrderState, Side, VenueFill,
};
use crate::error::AppError;

/// A fill as the engine recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedFill {
    pub qty: i64,
    pub price: Cents,
}

impl RecordedFill {
    pub fn of(fill: &VenueFill) -> Self {
        Self {
            qty: fill.qty,
            price: fill.price,
        }
    }
}

/// An order as its actor needs it: the projection, the folded state, and the fills it holds.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub row: OrderRow,
    pub state: OrderState,
    pub fills: BTreeMap<String, RecordedFill>,
}

impl Snapshot {
    /// An order just created: as its row says, with no fill.
    pub fn of_new(row: OrderRow) -> Self {
        Snapshot {
            state: row.state(),
            row,
            fills: BTreeMap::new(),
        }
    }
}

/// What became of a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Recorded,
    /// Already recorded before, exactly so (a fill seen twice).
    Duplicate,
    /// It must not happen (the transition table refused it, or a fill contradicts the order or
    /// what was recorded): nothing moved, and an alarm was raised.
    Refused(String),
}

/// The order with its fills, as a step starts from.
pub fn load(conn: &mut DbConnection, order: OrderId) -> Result<Snapshot, AppError> {
    let row = orders::find(conn, order)?.ok_or(AppError::NotFound)?;
    let state = row.state();
    // A fill's row is written with the quantity it adds: none filled, none to read.
    let recorded = if state.filled_qty == 0 {
        Vec::new()
    } else {
        orders::fills(conn, order)?
    };
    let fills = recorded
        .into_iter()
        .map(|f| {
            let recorded = RecordedFill {
                qty: f.qty,
                price: f.price,
            };
            (f.fill_id, recorded)
        })
        .collect();
    Ok(Snapshot { row, state, fills })
}

/// The order, locked for the rest of the phase, if `fence` still owns it (fencing: a phase of an
/// engine whose lease was taken over writes nothing).
fn find(conn: &mut DbConnection, order: OrderId, fence: &Fence) -> Result<OrderRow, AppError> {
    let row = orders::find_for_update(conn, order)?.ok_or(AppError::NotFound)?;
    leases::ensure_owner(order, &row.owner, row.owner_epoch, fence)?;
    Ok(row)
}

fn refuse(
    conn: &mut DbConnection,
    order: OrderId,
    kind: AlarmKind,
    subject: &str,
    what: String,
    now: i64,
) -> Result<Applied, AppError> {
    let alarm = Alarm {
        kind,
        order: Some(order),
        subject,
        detail: &what,
    };
    alarms::raise(conn, &alarm, now)?;
    Ok(Applied::Refused(what))
}

/// Records one exchange fill, once: the fill row (unique per order and fill id), its ledger
/// effects, the `fill` action and its event. A fill seen before changes nothing; one seen before
/// with another quantity or price, one for an order that has ended, one outside the order's
/// limit, or one that would overfill the order is refused with an alarm.
pub fn record_fill(
    conn: &mut DbConnection,
    order: OrderId,
    fence: &Fence,
    fill: &VenueFill,
    source: FillSource,
    now: i64,
) -> Result<Applied, AppError> {
    let row = find(conn, order, fence)?;
    record_fill_on(conn, row, fill, source, now)
}

/// [`record_fill`] for an order whose row the caller has just read in this transaction.
pub fn record_fill_on(
    conn: &mut DbConnection,
    mut row: OrderRow,
    fill: &VenueFill,
    source: FillSource,
    now: i64,
) -> Result<Applied, AppError> {
    let (order, state) = (row.id, row.state());
    let id = fill.fill_id.as_str();
    if let Some(recorded) = orders::find_fill(conn, order, id)? {
        if recorded.qty == fill.qty && recorded.price == fill.price {
            return Ok(Applied::Duplicate);
        }
        let what = format!(
            "fill {id} was recorded as {} at {} and is now reported as {} at {}",
            recorded.qty, recorded.price, fill.qty, fill.price
        );
        return refuse(conn, order, AlarmKind::FillMismatch, id, what, now);
    }
    if state.status.is_terminal() {
        let what = format!(
            "fill {id} of {} arrived after the order was {}",
            fill.qty, state.status
        );
        return refuse(conn, order, AlarmKind::FillAfterTerminal, id, what, now);
    }
    let limit = row.protection_price;
    if !fill_within_limit(row.side, limit, fill.price) {
        let what = format!(
            "fill {id} of {} at {} is outside the order's limit {}",
            fill.qty,
            fill.price,
            limit.unwrap_or_default()
        );
        return refuse(conn, order, AlarmKind::FillOutsideLimit, id, what, now);
    }
    let action = Action::Fill { qty: fill.qty };
    let next = match state.apply(action) {
        Ok(next) => next,
        Err(refused) => {
            let what = format!("fill {id} of {} at {}: {refused}", fill.qty, fill.price);
            return refuse(conn, order, AlarmKind::RefusedAction, id, what, now);
        }
    };
    let fill_row = FillRow {
        order_id: row.id,
        fill_id: fill.fill_id.clone(),
        qty: fill.qty,
        price: fill.price,
        source,
        received_at: now,
    };
    // Every balance the fill moves is worked out before anything is written: a fill the ledger
    // cannot take (a balance would overflow or go below zero) is refused and alarmed, instead of
    // failing the whole phase on every retry.
    let Some(settlement) = settlement(conn, &row, fill)? else {
        let what = format!(
            "fill {id} of {} at {} would overflow or overdraw a balance",
            fill.qty, fill.price
        );
        return refuse(conn, order, AlarmKind::FillUnsettleable, id, what, now);
    };
    if !orders::insert_fill(conn, &fill_row)? {
        return Ok(Applied::Duplicate);
    }
    let notional = settlement.book(conn, now)?;
    let notional = row.filled_notional.0.checked_add(notional.0);
    row.filled_notional = Cents(
        notional
            .ok_or_else(|| AppError::internal(format!("order {order}'s notional overflows")))?,
    );
    let event = OrderEvent::Fill {
        fill: fill.clone(),
        source,
    };
    let view = FillView::from(&fill_row);
    phase::write_action(conn, &mut row, next, &event, Some(&view), now)?;
    Ok(Applied::Recorded)
}

/// The ledger side of a fill, worked out: its entries and where each leaves its balance.
struct Settlement<'a> {
    entries: [(LedgerEntry<'a>, Balance); 2],
    value: Cents,
}

impl Settlement<'_> {
    /// Books the entries; returns the fill's value.
    fn book(self, conn: &mut DbConnection, now: i64) -> Result<Cents, AppError> {
        for (entry, after) in &self.entries {
            ledger::book(conn, entry, *after, now)?;
        }
        Ok(self.value)
    }
}

/// A buy spends the reservation for the filled shares at the order's protection price and returns
/// any price improvement to available cash; a sell gives up the reserved shares and is credited the
/// proceeds. None when a balance would overflow or go below zero. The fill id comes last in each
/// key, after a fixed part that says which effect it is, so no fill id can collide with another
/// fill's key.
fn settlement<'a>(
    conn: &mut DbConnection,
    row: &'a OrderRow,
    fill: &VenueFill,
) -> Result<Option<Settlement<'a>>, AppError> {
    let (order, account) = (row.id, row.account_id);
    let Some(value) = fill.price.times(fill.qty) else {
        return Ok(None);
    };
    let entry = |effect: &str, asset, available_delta, reserved_delta| LedgerEntry {
        key: format!("order:{order}:{effect}:{}", fill.fill_id),
        account,
        asset,
        order: Some(order),
        available_delta,
        reserved_delta,
    };
    let (cash, shares) = match row.side {
        Side::Buy => {
            let protection = row.protection_price.unwrap_or(fill.price);
            let Some(held) = protection.times(fill.qty) else {
                return Ok(None);
            };
            let Some(refund) = held.0.checked_sub(value.0) else {
                return Ok(None);
            };
            (
                entry("fill-cash", CASH, refund, -held.0),
                entry("fill-shares", row.symbol.as_str(), fill.qty, 0),
            )
        }
        Side::Sell => (
            entry("fill-cash", CASH, value.0, 0),
            entry("fill-shares", row.symbol.as_str(), 0, -fill.qty),
        ),
    };
    let (Some(cash_at), Some(shares_at)) = (
        ledger::balance_after(conn, &cash)?,
        ledger::balance_after(conn, &shares)?,
    ) else {
        return Ok(None);
    };
    Ok(Some(Settlement {
        entries: [(cash, cash_at), (shares, shares_at)],
        value,
    }))
}
