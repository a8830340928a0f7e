//! Taking in a push from the exchange, in one atomic phase: the fill it brings is recorded once
//! with all its effects, and any other event is stored once (by what it says). The order's actor
//! is needed only for what may end the order.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::lifecycle::Fills;
use super::phase::{self, Applied};
use super::status::{self, StatusItem, StatusStep};
use super::OrderError;
use crate::db::exchange_events::{self, NewExchangeEvent};
use crate::db::leases::Fence;
use crate::db::ledger::{self, CASH};
use crate::db::{leases, orders, DbConnection};
use crate::domain::VenueReport;
use crate::domain::{ClientOrderId, FillSource, OrderId, OrderStatus};

/// What became of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// This very event was taken in before.
    Duplicate,
    /// No order of ours: kept and alarmed.
    Unmatched,
    /// Taken in for `order`; what became of its fill, and the order after it.
    New {
        order: OrderId,
        fill: Option<Applied>,
        status: OrderStatus,
        fully_filled: bool,
        /// The engine that carries the order on.
        owner: String,
    },
}

/// A push without a fill, with what arrived and the engine that took it.
pub struct PushItem {
    pub event: VenueReport,
    pub raw: String,
    pub now: i64,
    /// The engine taking the push: an order another engine carries on is noted for its owner.
    pub engine: String,
}

/// Another engine's open order: its owner looks at it next, told in this commit.
fn tell_owner(
    conn: &mut DbConnection,
    item: &PushItem,
    order: OrderId,
    owner: &str,
    status: OrderStatus,
) -> Result<(), OrderError> {
    if owner != item.engine && status.is_open() {
        leases::leave_note(conn, owner, order)?;
    }
    Ok(())
}

/// Takes in any number of pushes in one phase, one commit for them all (one push alone is a batch
/// of one), and answers each as it would be answered alone. Pushes without a fill for orders of
/// ours are stored in one statement. Fills are planned in arrival order against the orders' rows
/// and balances as the fills before them leave them, so a fill that comes twice is recorded once,
/// and written together ([`Fills`], which locks what they will write first).
pub fn take_in_pushes(
    conn: &mut DbConnection,
    items: &[Arc<PushItem>],
) -> Result<Vec<Result<Intake, OrderError>>, OrderError> {
    let named: Vec<(OrderId, &str)> = items
        .iter()
        .filter_map(|i| {
            let fill = i.event.fill.as_ref()?;
            let order = ClientOrderId(i.event.client_order_id.clone()).order_id()?;
            Some((order, fill.fill_id.as_str()))
        })
        .collect();
    record_replaces_taken(conn, items)?;
    let mut fills = Fills::lock(conn, &named)?;
    let mut answers = store_bare_pushes(conn, items)?;
    for (item, answer) in items.iter().zip(answers.iter_mut()) {
        if answer.is_none() {
            *answer = Some(take_in_fill(conn, &mut fills, item)?);
        }
    }
    fills.write(conn)?;
    Ok(answers
        .into_iter()
        .map(|answer| answer.ok_or_else(|| OrderError::broken("a push went unanswered")))
        .collect())
}

/// Records first the replace a push shows the venue took: a report under a later version's client
/// order id than the order's row holds, while a replace is in flight (as `engine::decide` reads a
/// venue copy). A fill of the new terms then fits them, whichever of the venue's reports about
/// the replace reaches the engine first.
///
/// Every order the pushes name, then every balance their fills may touch, is locked before the
/// replace takes any, so this phase still locks in the order every phase does.
fn record_replaces_taken(
    conn: &mut DbConnection,
    items: &[Arc<PushItem>],
) -> Result<(), OrderError> {
    let named: Vec<(OrderId, i64, i64)> = items
        .iter()
        .filter_map(|i| {
            let id = ClientOrderId(i.event.client_order_id.clone());
            Some((id.order_id()?, id.version()?, i.now))
        })
        .collect();
    if named.iter().all(|(_, version, _)| *version < 2) {
        return Ok(());
    }
    let rows = phase::lock_orders(conn, named.iter().map(|(order, ..)| *order))?;
    let mut taken = BTreeSet::new();
    let steps: Vec<Arc<StatusItem>> = named
        .iter()
        .filter_map(|(order, version, now)| {
            let row = rows.get(order)?;
            let qty = row.replacing_qty?;
            let in_flight = matches!(
                row.status,
                OrderStatus::PendingReplace | OrderStatus::PendingCancel
            );
            (in_flight && *version > row.version && taken.insert(row.id)).then(|| {
                Arc::new(StatusItem {
                    order: row.id,
                    fence: Fence {
                        engine: row.owner.clone(),
                        epoch: row.owner_epoch,
                    },
                    step: StatusStep::Replaced { qty },
                    now: *now,
                })
            })
        })
        .collect();
    if steps.is_empty() {
        return Ok(());
    }
    let pairs: BTreeSet<_> = rows
        .values()
        .flat_map(|r| [CASH, r.symbol.as_str()].map(|a| (r.account_id, a.to_owned())))
        .collect();
    ledger::lock_balances(conn, &pairs)?;
    // A replace the table refuses is alarmed there; the push is then taken in as it stands.
    status::record(conn, &steps)?;
    Ok(())
}

/// Takes in a push [`store_bare_pushes`] left: a fill, or a push for no order of ours. A fill's
/// own row is its record, and its key its dedup; the push itself is kept only when the fill was
/// refused, for whoever looks into the alarm.
fn take_in_fill(
    conn: &mut DbConnection,
    fills: &mut Fills,
    item: &PushItem,
) -> Result<Intake, OrderError> {
    let order = ClientOrderId(item.event.client_order_id.clone()).order_id();
    let (Some(fill), Some(order)) = (
        &item.event.fill,
        order.filter(|id| fills.row(*id).is_some()),
    ) else {
        exchange_events::store(conn, &item.event, &item.raw, None, item.now)?;
        return Ok(Intake::Unmatched);
    };
    let Some(taken) = fills.record(conn, order, fill, FillSource::Push, item.now)? else {
        return Ok(Intake::Duplicate);
    };
    let row = taken.before;
    if let Applied::Refused(_) = taken.applied {
        exchange_events::store(conn, &item.event, &item.raw, Some(row.id), item.now)?;
    }
    tell_owner(conn, item, row.id, &row.owner, row.status)?;
    Ok(Intake::New {
        order: row.id,
        fill: Some(taken.applied),
        status: row.status,
        fully_filled: taken.filled_after == row.qty,
        owner: row.owner,
    })
}

/// Stores the pushes without a fill that name orders of ours, in one statement, and answers each
/// (a push whose event comes twice here is a duplicate the second time). The rest are left
/// unanswered (None) for [`take_in_pushes`] to take in one by one.
fn store_bare_pushes(
    conn: &mut DbConnection,
    items: &[Arc<PushItem>],
) -> Result<Vec<Option<Intake>>, OrderError> {
    let named: Vec<Option<OrderId>> = items
        .iter()
        .map(|i| match i.event.fill {
            None => ClientOrderId(i.event.client_order_id.clone()).order_id(),
            Some(_) => None,
        })
        .collect();
    let ids: Vec<OrderId> = named.iter().flatten().copied().collect();
    if ids.is_empty() {
        return Ok(items.iter().map(|_| None).collect());
    }
    let rows: HashMap<OrderId, orders::OrderRow> = orders::find_many(conn, &ids)?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    // Each item taken here: its order, and its event's place in `events` (None: a repeat).
    let (mut events, mut keys) = (Vec::new(), HashSet::new());
    let mut taken: Vec<Option<(&orders::OrderRow, Option<usize>)>> =
        Vec::with_capacity(items.len());
    for (item, order) in items.iter().zip(&named) {
        let row = order.and_then(|id| rows.get(&id));
        taken.push(row.map(|row| {
            let event = NewExchangeEvent::of(&item.event, &item.raw, Some(row.id), item.now);
            if keys.insert(event.event_key.clone()) {
                events.push(event);
                (row, Some(events.len() - 1))
            } else {
                (row, None)
            }
        }));
    }
    let stored = exchange_events::store_new(conn, &events)?;
    let mut answers = Vec::with_capacity(items.len());
    for (item, slot) in items.iter().zip(&taken) {
        answers.push(match slot {
            None => None,
            Some((_, None)) => Some(Intake::Duplicate),
            Some((_, Some(i))) if !stored.contains(&events[*i].event_key) => {
                Some(Intake::Duplicate)
            }
            Some((row, Some(_))) => {
                tell_owner(conn, item, row.id, &row.owner, row.status)?;
                Some(Intake::New {
                    order: row.id,
                    fill: None,
                    status: row.status,
                    fully_filled: row.filled_qty == row.qty,
                    owner: row.owner.clone(),
                })
            }
        });
    }
    Ok(answers)
}
