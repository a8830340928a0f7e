//! Status actions of many orders in one phase: `placement_sent` and `accepted`, which move no
//! money, are what every order's actor records on its way to the exchange. Written together, they
//! cost a statement per table instead of a transaction per order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::lifecycle::Applied;
use super::phase;
use super::view::OrderView;
use crate::db::accounts;
use crate::db::leases::{self, Fence};
use crate::db::orders::{self, NewAction, OrderRow};
use crate::db::outbox;
use crate::db::DbConnection;
use crate::domain::{AccountId, Action, ActionKind, OrderId};
use crate::error::AppError;

/// One order's status action, as its actor asks for it.
pub struct StatusItem {
    pub order: OrderId,
    pub fence: Fence,
    pub action: Action,
    pub detail: serde_json::Value,
    pub now: i64,
}

impl StatusItem {
    /// Whether a batch may take the action: one that moves no money and ends nothing.
    pub fn batchable(action: Action) -> bool {
        matches!(action, Action::PlacementSent | Action::Accepted)
    }
}

/// An order moved by its item, not yet written.
struct Moved {
    row: OrderRow,
    kind: ActionKind,
    detail: String,
}

/// Records every item the transition table allows, with its action, projection and event, a
/// statement per table. An item is left out (None), for its caller to run alone through
/// `lifecycle::record_status`, which answers it, when its order is missing, owned by another
/// engine or epoch, already in this batch, or the move is refused or not batchable.
pub fn record_many(
    conn: &mut DbConnection,
    items: &[Arc<StatusItem>],
) -> Result<Vec<Option<Applied>>, AppError> {
    let mut ids: Vec<OrderId> = items.iter().map(|i| i.order).collect();
    ids.sort();
    ids.dedup();
    let mut rows: HashMap<OrderId, OrderRow> = orders::find_many_for_update(conn, &ids)?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    // An order named twice keeps only its first item here: `remove` finds it once.
    let moved: Vec<Option<Moved>> = items
        .iter()
        .map(|item| rows.remove(&item.order).and_then(|row| advance(row, item)))
        .collect();
    let mut counts = BTreeMap::<AccountId, i64>::new();
    for m in moved.iter().flatten() {
        if m.kind.event_kind().is_some() {
            *counts.entry(m.row.account_id).or_default() += 1;
        }
    }
    let mut next_seq = accounts::take_event_seqs(conn, &counts)?;
    // The events' order views, made before the events that borrow them.
    let views: Vec<OrderView> = moved
        .iter()
        .flatten()
        .map(|m| OrderView::from(&m.row))
        .collect();
    let (mut actions, mut saved, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for (m, view) in moved.iter().flatten().zip(&views) {
        actions.push(NewAction {
            order_id: m.row.id,
            seq: m.row.last_action_seq,
            kind: m.kind,
            detail: &m.detail,
            at: m.row.updated_at,
        });
        saved.push(m.row.clone());
        if let Some(kind) = m.kind.event_kind() {
            let account = m.row.account_id;
            events.push(outbox::next_event(
                &mut next_seq,
                account,
                kind,
                view,
                m.row.updated_at,
            )?);
        }
    }
    orders::append_actions(conn, &actions)?;
    orders::save_projections(conn, &saved)?;
    outbox::append_events(conn, &events)?;
    Ok(moved
        .iter()
        .map(|m| m.as_ref().map(|_| Applied::Recorded))
        .collect())
}

/// The order as the item's action leaves it, if the batch may write that: the fence holds, and the
/// transition table allows a move that ends nothing.
fn advance(mut row: OrderRow, item: &StatusItem) -> Option<Moved> {
    leases::ensure_owner(row.id, &row.owner, row.owner_epoch, &item.fence).ok()?;
    if !StatusItem::batchable(item.action) {
        return None;
    }
    let next = row.state().apply(item.action).ok()?;
    if next.status.is_terminal() {
        return None;
    }
    phase::advance(&mut row, next, item.now);
    Some(Moved {
        row,
        kind: item.action.kind(),
        detail: item.detail.to_string(),
    })
}
