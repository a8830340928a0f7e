//! Taking in a push from the exchange, in one atomic phase: the fill it brings is recorded once
//! with all its effects, and any other event is stored once (by what it says). The order's actor
//! is needed only for what may end the order.

use crate::db::DbConnection;

use super::lifecycle::{self, Applied};
use std::collections::{BTreeSet, HashMap, HashSet};

use crate::db::connection::Backend;
use crate::db::exchange_events::{self, NewExchangeEvent, Received};
use crate::db::ledger::{self, CASH};
use crate::db::{accounts, leases, orders};
use crate::domain::VenueReport;
use crate::domain::{AccountId, ClientOrderId, FillSource, OrderId, OrderStatus};
use crate::error::AppError;

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

pub fn take_in(
    conn: &mut DbConnection,
    event: &VenueReport,
    raw: &str,
    now: i64,
) -> Result<Intake, AppError> {
    // Only a fill changes the order here, so only a fill locks it: any other push is stored and
    // handed on, and must not wait for a phase of the order's actor to commit.
    let row = match ClientOrderId(event.client_order_id.clone()).order_id() {
        Some(id) if event.fill.is_some() => orders::find_for_update(conn, id)?,
        Some(id) => orders::find(conn, id)?,
        None => None,
    };
    let Some(row) = row else {
        exchange_events::store(conn, event, raw, None, now)?;
        return Ok(Intake::Unmatched);
    };
    let (order, status, qty, owner) = (row.id, row.status, row.qty, row.owner.clone());
    let mut filled = row.filled_qty;
    let fill = match &event.fill {
        // A fill's own row is its record, and its key its dedup; the push itself is kept only
        // when the fill was refused, for whoever looks into the alarm.
        Some(fill) => {
            let applied = lifecycle::record_fill_on(conn, &row, fill, FillSource::Push, now)?;
            match applied {
                Applied::Recorded => filled += fill.qty,
                Applied::Duplicate => return Ok(Intake::Duplicate),
                Applied::Refused(_) => {
                    exchange_events::store(conn, event, raw, Some(order), now)?;
                }
            }
            Some(applied)
        }
        None => {
            if exchange_events::store(conn, event, raw, Some(order), now)? == Received::Duplicate {
                return Ok(Intake::Duplicate);
            }
            None
        }
    };
    Ok(Intake::New {
        order,
        fill,
        status,
        fully_filled: filled == qty,
        owner,
    })
}

/// A push without a fill, with what arrived and the engine that took it.
pub struct PushItem {
    pub event: VenueReport,
    pub raw: String,
    pub now: i64,
    /// The engine taking the push: an order another engine carries on is noted for its owner.
    pub engine: String,
}

/// Takes in one push as [`take_in`] does, telling the owner of another engine's order.
fn take_in_item(conn: &mut DbConnection, item: &PushItem) -> Result<Intake, AppError> {
    let intake = take_in(conn, &item.event, &item.raw, item.now)?;
    if let Intake::New {
        order,
        owner,
        status,
        ..
    } = &intake
    {
        tell_owner(conn, item, *order, owner, *status)?;
    }
    Ok(intake)
}

/// Another engine's open order: its owner looks at it next, told in this commit.
fn tell_owner(
    conn: &mut DbConnection,
    item: &PushItem,
    order: OrderId,
    owner: &str,
    status: OrderStatus,
) -> Result<(), AppError> {
    if owner != item.engine && status.is_open() {
        leases::leave_note(conn, owner, order)?;
    }
    Ok(())
}

/// Takes in any number of pushes in one phase, one commit for them all (one push alone is a batch
/// of one), and answers each as it would be answered alone. Pushes without a fill for orders of
/// ours are stored in one statement; the rest are taken in one by one, in arrival order, so a fill
/// that comes twice in one batch is recorded once. On PostgreSQL the rows the fills will write are
/// locked first, each kind in the order every phase locks it (orders by id, then balances, then
/// accounts by id): taken one fill at a time instead, two fills of different accounts could lock
/// them crosswise against another batch.
pub fn take_in_pushes(
    conn: &mut DbConnection,
    items: &[std::sync::Arc<PushItem>],
) -> Result<Vec<Result<Intake, AppError>>, AppError> {
    if conn.backend() == Backend::Postgres {
        let named = items
            .iter()
            .filter(|i| i.event.fill.is_some())
            .filter_map(|i| ClientOrderId(i.event.client_order_id.clone()).order_id());
        let rows = orders::find_many_for_update(conn, named)?;
        let balances: BTreeSet<(AccountId, String)> = rows
            .iter()
            .flat_map(|r| [CASH, r.symbol.as_str()].map(|asset| (r.account_id, asset.to_owned())))
            .collect();
        ledger::lock_balances(conn, &balances)?;
        let accounts_of: BTreeSet<AccountId> = rows.iter().map(|r| r.account_id).collect();
        accounts::lock_in_order(conn, &accounts_of)?;
    }
    let mut answers = store_bare_pushes(conn, items)?;
    for (item, answer) in items.iter().zip(answers.iter_mut()) {
        if answer.is_none() {
            *answer = Some(take_in_item(conn, item)?);
        }
    }
    Ok(answers
        .into_iter()
        .map(|answer| answer.ok_or_else(|| AppError::internal("a push went unanswered")))
        .collect())
}

/// Stores the pushes without a fill that name orders of ours, in one statement, and answers each
/// (a push whose event comes twice here is a duplicate the second time). The rest are left
/// unanswered (None) for [`take_in_pushes`] to take in one by one.
fn store_bare_pushes(
    conn: &mut DbConnection,
    items: &[std::sync::Arc<PushItem>],
) -> Result<Vec<Option<Intake>>, AppError> {
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
