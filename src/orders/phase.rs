//! Writing actions: each action itself, its order's projection row and its feed event, inside the
//! caller's transaction, a statement per table however many orders moved. The transition table has
//! already checked each move, once, in the caller; a lone action is a batch of one.

use std::collections::BTreeMap;

use crate::db::DbConnection;

use super::view::{FillView, OrderView};
use crate::db::orders::{self, NewAction, OrderRow};
use crate::db::{accounts, outbox};
use crate::domain::{AccountId, ActionKind, OrderEvent, OrderState};
use crate::error::AppError;

/// An order's action as the table allowed it, with the order's row as the action leaves it.
pub struct Move {
    pub row: OrderRow,
    pub kind: ActionKind,
    pub detail: String,
    /// The fill a `fill` action's event carries.
    pub fill: Option<FillView>,
}

impl Move {
    /// `event`, leading to `next`: `row` is brought to match, with its next action seq.
    pub fn of(mut row: OrderRow, next: OrderState, event: &OrderEvent, now: i64) -> Move {
        advance(&mut row, next, now);
        Move {
            row,
            kind: event.action().kind(),
            detail: event.detail().to_string(),
            fill: None,
        }
    }
}

/// Writes `event`, whose action the table allowed and which leads to `next`, and brings `order` to
/// match. The caller has already written the action's own effects (ledger entries, fill rows) in
/// the same transaction.
pub fn write_action(
    conn: &mut DbConnection,
    order: &mut OrderRow,
    next: OrderState,
    event: &OrderEvent,
    fill: Option<&FillView>,
    now: i64,
) -> Result<(), AppError> {
    let mut moved = Move::of(order.clone(), next, event, now);
    moved.fill = fill.cloned();
    write_moves(conn, std::slice::from_ref(&moved))?;
    *order = moved.row;
    Ok(())
}

/// Writes every move: the actions, the projection rows and the events (their seqs taken per
/// account in one statement), a statement per table.
pub fn write_moves(conn: &mut DbConnection, moves: &[Move]) -> Result<(), AppError> {
    let mut counts = BTreeMap::<AccountId, i64>::new();
    for m in moves {
        if m.kind.event_kind().is_some() {
            *counts.entry(m.row.account_id).or_default() += 1;
        }
    }
    let mut next_seq = accounts::take_event_seqs(conn, &counts)?;
    // The events' order views, made before the events that borrow them.
    let views: Vec<OrderView> = moves.iter().map(|m| OrderView::from(&m.row)).collect();
    let (mut actions, mut saved, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for (m, view) in moves.iter().zip(&views) {
        actions.push(NewAction {
            order_id: m.row.id,
            seq: m.row.last_action_seq,
            kind: m.kind,
            detail: &m.detail,
            at: m.row.updated_at,
        });
        saved.push(m.row.clone());
        if let Some(kind) = m.kind.event_kind() {
            events.push(outbox::next_event(
                &mut next_seq,
                m.row.account_id,
                kind,
                view,
                m.fill.as_ref(),
                m.row.updated_at,
            )?);
        }
    }
    orders::append_actions(conn, &actions)?;
    orders::save_projections(conn, &saved)?;
    outbox::append_events(conn, &events)?;
    Ok(())
}

/// Brings the projection row to `next`, with its next action seq; returns that seq.
pub fn advance(order: &mut OrderRow, next: OrderState, now: i64) -> i64 {
    order.last_action_seq += 1;
    order.status = next.status;
    order.filled_qty = next.filled_qty;
    order.placement_sent = next.placement_sent;
    order.updated_at = now;
    order.last_action_seq
}
