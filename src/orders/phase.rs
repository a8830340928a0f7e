//! A phase in two halves. Planning is pure: each item is checked against its order's row (and
//! the balances it moves) through the transition table, and comes out as a [`Planned`] write or a
//! [`Refusal`]. Writing takes every plan of a phase at once, new orders and stored answers among
//! them: alarms, new orders, fills, positions, ledger entries, then the actions, projections, feed
//! events and keys, a statement per table however many orders moved. A lone item is a batch of
//! one.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::db::DbConnection;

use super::view::{FillView, OrderView};
use super::OrderError;
use crate::db::accounts::{self, Taking};
use crate::db::alarms::{self, Alarm, AlarmKind};
use crate::db::idempotency::{self as stored_keys, NewKey, StoredResponse};
use crate::db::leases::{self, Fence};
use crate::db::ledger::{self, Balance, LedgerEntry};
use crate::db::orders::{self, FillRow, NewAction, OrderRow};
use crate::db::positions::{self, PositionRow};
use crate::db::{outbox, DbError};
use crate::domain::{AccountId, ActionKind, OrderEvent, OrderId, OrderState, OrderStatus};

/// What became of an item of a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Recorded,
    /// Already recorded before, exactly so (a fill seen twice).
    Duplicate,
    /// It must not happen (the transition table refused it, or a fill contradicts the order or
    /// what was recorded): nothing moved, and an alarm was raised.
    Refused(String),
}

/// Balances as a phase has read (and on PostgreSQL locked) them, moved by each plan in turn.
pub type Books = BTreeMap<(AccountId, String), Balance>;

/// An alarm a phase raises along with what it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarmed {
    pub kind: AlarmKind,
    pub order: OrderId,
    pub subject: String,
    pub detail: String,
}

/// Why an item must not happen: nothing of it is written but its alarm, if it raises one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub alarm: Option<Alarmed>,
}

impl Refusal {
    /// A refusal an operator must look into.
    pub fn alarmed(kind: AlarmKind, order: OrderId, subject: &str, reason: String) -> Self {
        let alarm = Alarmed {
            kind,
            order,
            subject: subject.to_owned(),
            detail: reason.clone(),
        };
        Refusal {
            reason,
            alarm: Some(alarm),
        }
    }

    /// A refusal that is an ordinary answer (a step decided on an older copy of its order).
    pub fn quiet(reason: &str) -> Self {
        Refusal {
            reason: reason.to_owned(),
            alarm: None,
        }
    }
}

/// A ledger entry a plan books, with where it leaves its balance.
#[derive(Debug, Clone)]
pub struct Booking {
    pub entry: LedgerEntry<'static>,
    pub after: Balance,
}

/// An answer stored under its idempotency key, in the phase that gave it.
#[derive(Debug, Clone)]
pub struct KeyAnswer {
    pub account: AccountId,
    pub key: String,
    pub fingerprint: String,
    pub response: StoredResponse,
    pub now: i64,
    pub expires_at: i64,
    /// The account's expired key of this name goes first, and this one takes its place in the
    /// account's count.
    pub replaces_expired: bool,
}

/// What a plan writes; nothing at all for an item recorded before.
#[derive(Default)]
pub struct Planned {
    pub moved: Option<Move>,
    pub fill: Option<FillRow>,
    /// The position a fill leaves its account with in its symbol.
    pub position: Option<PositionRow>,
    pub bookings: Vec<Booking>,
    pub alarms: Vec<Alarmed>,
    pub key: Option<KeyAnswer>,
}

impl Planned {
    pub fn moves(moved: Move) -> Self {
        Planned {
            moved: Some(moved),
            ..Planned::default()
        }
    }

    /// A plan that moves nothing is of an item recorded before.
    pub fn applied(&self) -> Applied {
        match self.moved {
            Some(_) => Applied::Recorded,
            None => Applied::Duplicate,
        }
    }
}

/// The orders a phase moves, by id, locked on PostgreSQL until it commits.
pub fn lock_orders(
    conn: &mut DbConnection,
    ids: impl IntoIterator<Item = OrderId>,
) -> Result<HashMap<OrderId, OrderRow>, OrderError> {
    Ok(orders::find_many_for_update(conn, ids)?
        .into_iter()
        .map(|row| (row.id, row))
        .collect())
}

/// An item's order among those [`lock_orders`] locked, if it is still `fence`'s to move: an
/// error that writes nothing for the item otherwise (missing, or another engine's or epoch's).
pub fn owned<'r>(
    rows: &'r HashMap<OrderId, OrderRow>,
    order: OrderId,
    fence: &Fence,
) -> Result<&'r OrderRow, OrderError> {
    let row = rows.get(&order).ok_or(OrderError::NotFound)?;
    leases::ensure_owner(row.id, &row.owner, row.owner_epoch, fence)?;
    Ok(row)
}

/// Books `entry` against the phase's copy of its balance: None when it would overflow or go
/// below zero.
pub fn book(books: &mut Books, entry: LedgerEntry<'_>) -> Option<Booking> {
    let pair = (entry.account, entry.asset.to_string());
    let after = books
        .get(&pair)
        .copied()
        .unwrap_or_default()
        .after(&entry)?;
    books.insert(pair, after);
    Some(Booking {
        entry: entry.into_owned(),
        after,
    })
}

/// Moves each order of `ids` that this engine (`fence`) still carries on by the event `event_of`
/// gives it, where the transition table allows it, in one phase; returns those orders as they now
/// stand. An order that moved on meanwhile (cancelled, ended, taken over) is left out, so an
/// engine-driven move (an expiry, a trigger) is recorded once.
pub fn move_owned(
    conn: &mut DbConnection,
    ids: impl IntoIterator<Item = OrderId>,
    fence: &Fence,
    now: i64,
    event_of: impl Fn(&OrderRow) -> Option<OrderEvent>,
) -> Result<Vec<OrderRow>, OrderError> {
    let mut moved_rows = Vec::new();
    let mut plans = Vec::new();
    for row in orders::find_many_for_update(conn, ids)? {
        if leases::ensure_owner(row.id, &row.owner, row.owner_epoch, fence).is_err() {
            continue;
        }
        let Some(event) = event_of(&row) else {
            continue;
        };
        let Ok(next) = row.state().apply(event.action()) else {
            continue;
        };
        let moved = Move::of(row, next, &event, now);
        moved_rows.push(moved.row.clone());
        plans.push(Planned::moves(moved));
    }
    write(conn, &plans, &[], now)?;
    Ok(moved_rows)
}

/// Writes every plan of a phase and the alarms of its refusals, a statement per table where the
/// tables allow it. Balances come before the accounts the events take their seqs from: the order
/// every phase locks them in. An entry booked before, or a fill recorded meanwhile, is an error:
/// the plans assumed otherwise, and the phase rolls back whole.
pub fn write(
    conn: &mut DbConnection,
    plans: &[Planned],
    refused: &[Alarmed],
    now: i64,
) -> Result<(), OrderError> {
    if plans.is_empty() && refused.is_empty() {
        return Ok(());
    }
    let replaced: Vec<(AccountId, &str)> = plans
        .iter()
        .filter_map(|p| p.key.as_ref())
        .filter(|k| k.replaces_expired)
        .map(|k| (k.account, k.key.as_str()))
        .collect();
    stored_keys::delete_uncounted(conn, &replaced)?;
    for alarm in plans.iter().flat_map(|p| &p.alarms).chain(refused) {
        let raised = Alarm {
            kind: alarm.kind,
            order: Some(alarm.order),
            subject: &alarm.subject,
            detail: &alarm.detail,
        };
        alarms::raise(conn, &raised, now)?;
    }
    let created: Vec<OrderRow> = plans
        .iter()
        .filter_map(|p| p.moved.as_ref())
        .filter(|m| m.kind.is_creation())
        .map(|m| m.row.clone())
        .collect();
    orders::insert(conn, &created)?;
    let fills: Vec<&FillRow> = plans.iter().filter_map(|p| p.fill.as_ref()).collect();
    let inserted = orders::insert_fills(conn, &fills)?;
    if inserted != fills.len() {
        let what = format!(
            "{} of the phase's {} fills were recorded meanwhile",
            fills.len() - inserted,
            fills.len()
        );
        return Err(DbError::Inconsistent(what).into());
    }
    // Each position ends where the phase's last fill of it leaves it.
    let positions: BTreeMap<(AccountId, &str), &PositionRow> = plans
        .iter()
        .filter_map(|p| p.position.as_ref())
        .map(|row| ((row.account_id, row.symbol.as_str()), row))
        .collect();
    let positions: Vec<PositionRow> = positions.into_values().cloned().collect();
    positions::upsert(conn, &positions)?;
    let bookings: Vec<&Booking> = plans.iter().flat_map(|p| &p.bookings).collect();
    if !bookings.is_empty() {
        // Each balance ends where the phase's last booking of it leaves it.
        let after: Books = bookings
            .iter()
            .map(|b| ((b.entry.account, b.entry.asset.to_string()), b.after))
            .collect();
        let entries: Vec<&LedgerEntry<'_>> = bookings.iter().map(|b| &b.entry).collect();
        ledger::book_new(conn, &entries, &after, now)?;
    }
    write_moves(conn, plans)?;
    let keys: Vec<NewKey<'_>> = plans
        .iter()
        .filter_map(|p| p.key.as_ref())
        .map(|k| NewKey {
            account: k.account,
            key: &k.key,
            fingerprint: &k.fingerprint,
            response: &k.response,
            now: k.now,
            expires_at: k.expires_at,
        })
        .collect();
    Ok(stored_keys::insert_many(conn, &keys)?)
}

/// An order's action as the table allowed it, with the order's row as the action leaves it.
pub struct Move {
    pub row: OrderRow,
    pub kind: ActionKind,
    pub detail: String,
    /// The fill a `fill` action's event carries.
    pub fill: Option<FillView>,
    /// Whether the move changed the order's terms or lifetime (see `orders::save_terms`).
    pub reshaped: bool,
}

impl Move {
    /// A new order's first action: its row is inserted, not updated.
    pub fn created(row: OrderRow, event: &OrderEvent) -> Move {
        debug_assert_eq!(row.last_action_seq, 1, "a new order's first action");
        debug_assert!(
            event.action().kind().is_creation(),
            "a new order's first action"
        );
        Move {
            row,
            kind: event.action().kind(),
            detail: event.detail().to_string(),
            fill: None,
            reshaped: false,
        }
    }

    /// `event`, leading to `next`: `row` is brought to match, with its next action seq.
    pub fn of(mut row: OrderRow, next: OrderState, event: &OrderEvent, now: i64) -> Move {
        // Of the terms, only these follow the state; the others change by `Move::retermed` alone.
        let lifetime = |r: &OrderRow| (r.qty, r.replacing_qty, r.expires_at, r.expiring);
        let before = lifetime(&row);
        advance(&mut row, next, now);
        Move {
            reshaped: lifetime(&row) != before,
            row,
            kind: event.action().kind(),
            detail: event.detail().to_string(),
            fill: None,
        }
    }

    /// [`Move::of`] for a row whose terms (limits, version, client order id) the caller changed.
    pub fn retermed(row: OrderRow, next: OrderState, event: &OrderEvent, now: i64) -> Move {
        Move {
            reshaped: true,
            ..Move::of(row, next, event, now)
        }
    }
}

/// The plans of a batch not yet written, and its refusals' alarms. A statement updates each
/// order's row once, so a plan that moves an order already moved here has what came before it
/// written first.
#[derive(Default)]
pub struct Batch {
    plans: Vec<Planned>,
    refused: Vec<Alarmed>,
    orders: HashSet<OrderId>,
    now: i64,
}

impl Batch {
    /// Takes an item's plan, or its refusal's alarm, and answers for it.
    pub fn add(
        &mut self,
        conn: &mut DbConnection,
        planned: Result<Planned, Refusal>,
        now: i64,
    ) -> Result<Applied, OrderError> {
        self.now = self.now.max(now);
        let planned = match planned {
            Ok(planned) => planned,
            Err(refusal) => {
                self.refused.extend(refusal.alarm);
                return Ok(Applied::Refused(refusal.reason));
            }
        };
        if let Some(moved) = &planned.moved {
            if self.orders.contains(&moved.row.id) {
                self.write(conn)?;
            }
            self.orders.insert(moved.row.id);
        }
        let applied = planned.applied();
        self.plans.push(planned);
        Ok(applied)
    }

    /// Writes what the batch holds.
    pub fn write(&mut self, conn: &mut DbConnection) -> Result<(), OrderError> {
        write(conn, &self.plans, &self.refused, self.now)?;
        self.plans.clear();
        self.refused.clear();
        self.orders.clear();
        Ok(())
    }
}

/// Writes every plan's move: the actions, the projection rows of orders that were there before,
/// and the events; the accounts' event seqs and stored-key counts are taken in one statement.
fn write_moves(conn: &mut DbConnection, plans: &[Planned]) -> Result<(), OrderError> {
    let mut taking = BTreeMap::<AccountId, Taking>::new();
    for key in plans.iter().filter_map(|p| p.key.as_ref()) {
        if !key.replaces_expired {
            taking.entry(key.account).or_default().keys += 1;
        }
    }
    let moves: Vec<&Move> = plans.iter().filter_map(|p| p.moved.as_ref()).collect();
    for m in &moves {
        if m.kind.event_kind().is_some() {
            taking.entry(m.row.account_id).or_default().events += 1;
        }
    }
    let (mut actions, mut saved) = (Vec::new(), Vec::new());
    for m in &moves {
        actions.push(NewAction {
            order_id: m.row.id,
            seq: m.row.last_action_seq,
            kind: m.kind,
            detail: &m.detail,
            at: m.row.updated_at,
        });
        if !m.kind.is_creation() {
            saved.push(m.row.clone());
        }
    }
    orders::append_actions(conn, &actions)?;
    orders::save_projections(conn, &saved)?;
    let reshaped: Vec<&OrderRow> = moves
        .iter()
        .filter(|m| m.reshaped)
        .map(|m| &m.row)
        .collect();
    orders::save_terms(conn, &reshaped)?;
    // The accounts' rows last: on PostgreSQL every phase that writes an event locks its account
    // here until it commits, so the fewer statements left after this, the less the phases of one
    // account wait for each other.
    let mut next_seq = accounts::take(conn, &taking)?;
    // The events' order views, made before the events that borrow them.
    let views: Vec<OrderView> = moves.iter().map(|m| OrderView::from(&m.row)).collect();
    let mut events = Vec::new();
    for (m, view) in moves.iter().zip(&views) {
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
    outbox::append_events(conn, &events)?;
    Ok(())
}

/// Brings the projection row to `next`, with its next action seq; returns that seq.
pub fn advance(order: &mut OrderRow, next: OrderState, now: i64) -> i64 {
    order.last_action_seq += 1;
    order.status = next.status;
    order.filled_qty = next.filled_qty;
    order.placement_sent = next.placement_sent;
    order.expiring = next.expiring;
    order.qty = next.qty;
    order.replacing_qty = next.replacing;
    // Only a live day order waits for its expiry: one that is cancelling or ended leaves the index.
    if matches!(next.status, OrderStatus::PendingCancel) || next.status.is_terminal() {
        order.expires_at = None;
    }
    order.updated_at = now;
    order.last_action_seq
}
