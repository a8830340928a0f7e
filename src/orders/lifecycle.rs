//! The order actor's atomic phases: each records one action with all its effects in one
//! transaction, after the transition table allowed it. A move the table refuses writes nothing but
//! an alarm.

use std::collections::HashSet;

use diesel::prelude::*;
use serde_json::json;

use super::cancel::release_remaining;
use super::phase::{self, account_of};
use super::view::FillView;
use crate::db::alarms;
use crate::db::orders::{self, FillRow, OrderRow};
use crate::db::schema::fills;
use crate::domain::{Action, ActionKind, Cents, OrderId, OrderState, Side};
use crate::error::AppError;
use crate::exchange::wire::ExchangeFill;
use crate::ledger::{self, LedgerEntry, CASH};

/// An order as its actor needs it: the projection, the folded state, and the fills it holds.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub row: OrderRow,
    pub state: OrderState,
    pub fill_ids: HashSet<String>,
}

/// What became of a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Recorded,
    /// Already recorded before (a fill seen twice).
    Duplicate,
    /// The transition table refused it; an alarm was raised.
    Refused(String),
}

pub fn load(conn: &mut SqliteConnection, order: OrderId) -> Result<Snapshot, AppError> {
    let row = orders::find(conn, order)?.ok_or(AppError::NotFound)?;
    let state = orders::state(conn, &row)?;
    let fill_ids = orders::fills(conn, order)?
        .into_iter()
        .map(|f| f.fill_id)
        .collect();
    Ok(Snapshot {
        row,
        state,
        fill_ids,
    })
}

fn refuse(
    conn: &mut SqliteConnection,
    row: &OrderRow,
    what: String,
    now: i64,
) -> Result<Applied, AppError> {
    alarms::raise(conn, "refused_action", Some(&row.id), &what, now)?;
    Ok(Applied::Refused(what))
}

/// Records an action that moves no shares: `placement_sent`, `accepted`, or a terminal one
/// (`filled`, `canceled`, `rejected`), which also releases what is still reserved: the
/// compensating step.
pub fn record(
    conn: &mut SqliteConnection,
    order: OrderId,
    kind: ActionKind,
    detail: serde_json::Value,
    now: i64,
) -> Result<Applied, AppError> {
    conn.immediate_transaction(|conn| {
        let Snapshot { mut row, state, .. } = load(conn, order)?;
        let action = Action::new(kind);
        let next = match state.apply(action) {
            Ok(next) => next,
            Err(refused) => return refuse(conn, &row, refused.to_string(), now),
        };
        let detail = if next.status.is_terminal() {
            json!({"released": release_remaining(conn, &row, now)?, "detail": detail})
        } else {
            detail
        };
        phase::record(conn, &mut row, state, action, &detail, None, now)?
            .map_err(|refused| AppError::Internal(format!("checked move refused: {refused}")))?;
        Ok(Applied::Recorded)
    })
}

/// Records one exchange fill, once: the fill row (unique per order and fill id), its ledger
/// effects, the `fill` action and its event. A fill seen before changes nothing.
pub fn fill(
    conn: &mut SqliteConnection,
    order: OrderId,
    fill: &ExchangeFill,
    source: &str,
    now: i64,
) -> Result<Applied, AppError> {
    conn.immediate_transaction(|conn| {
        let Snapshot { mut row, state, fill_ids } = load(conn, order)?;
        if fill_ids.contains(&fill.fill_id) {
            return Ok(Applied::Duplicate);
        }
        let action = Action::fill(fill.qty);
        if let Err(refused) = state.apply(action) {
            let what = format!("fill {} of {} at {}: {refused}", fill.fill_id, fill.qty, fill.price);
            return refuse(conn, &row, what, now);
        }
        let fill_row = FillRow {
            order_id: row.id.clone(),
            fill_id: fill.fill_id.clone(),
            qty: fill.qty,
            price: fill.price.0,
            source: source.to_owned(),
            received_at: now,
        };
        let inserted = diesel::insert_into(fills::table).values(&fill_row).on_conflict_do_nothing().execute(conn)?;
        if inserted == 0 {
            return Ok(Applied::Duplicate);
        }
        settle(conn, &row, fill, now)?;
        let notional = fill
            .price
            .times(fill.qty)
            .ok_or_else(|| AppError::Internal("fill notional overflows".into()))?;
        row.filled_notional += notional.0;
        let detail = json!({"fill_id": fill.fill_id, "qty": fill.qty, "price": fill.price, "source": source});
        let view = FillView::from(&fill_row);
        match phase::record(conn, &mut row, state, action, &detail, Some(&view), now)? {
            Ok(_) => Ok(Applied::Recorded),
            Err(refused) => Err(AppError::Internal(format!("checked move refused: {refused}"))),
        }
    })
}

/// The ledger side of a fill. A buy spends the reservation for the filled shares at the protection
/// price and returns any price improvement to available cash; a sell gives up the reserved shares
/// and is credited the proceeds.
fn settle(
    conn: &mut SqliteConnection,
    row: &OrderRow,
    fill: &ExchangeFill,
    now: i64,
) -> Result<(), AppError> {
    let order = orders::parse_order_id(&row.id)?;
    let account = account_of(row)?;
    let key = format!("order:{order}:fill:{}", fill.fill_id);
    let cost = fill
        .price
        .times(fill.qty)
        .ok_or_else(|| AppError::Internal("fill cost overflows".into()))?;
    let entry = |asset: &'static str, suffix: &str, available_delta: i64, reserved_delta: i64| {
        LedgerEntry {
            key: format!("{key}{suffix}"),
            account,
            asset,
            order: Some(order),
            available_delta,
            reserved_delta,
        }
    };
    match Side::parse(&row.side) {
        Some(Side::Buy) => {
            let protection = Cents(row.protection_price.unwrap_or(fill.price.0));
            if fill.price > protection {
                let what = format!(
                    "fill {} at {} is above the protection {protection}",
                    fill.fill_id, fill.price
                );
                alarms::raise(conn, "fill_above_protection", Some(&row.id), &what, now)?;
            }
            let held = protection
                .times(fill.qty)
                .ok_or_else(|| AppError::Internal("overflow".into()))?;
            ledger::apply(conn, &entry(CASH, "", held.0 - cost.0, -held.0), now)?;
            ledger::apply(
                conn,
                &LedgerEntry {
                    asset: &row.symbol,
                    ..entry(CASH, ":shares", fill.qty, 0)
                },
                now,
            )?;
        }
        _ => {
            ledger::apply(conn, &entry(CASH, "", cost.0, 0), now)?;
            ledger::apply(
                conn,
                &LedgerEntry {
                    asset: &row.symbol,
                    ..entry(CASH, ":shares", 0, -fill.qty)
                },
                now,
            )?;
        }
    }
    Ok(())
}
