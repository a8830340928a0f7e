//! Taking in a push from the exchange, in one atomic phase: the fill it brings is recorded once
//! with all its effects, and any other event is stored once (by what it says). The order's actor
//! is needed only for what may end the order.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::lifecycle::{self, RecordedFill};
use super::phase::{Applied, Batch, Books, Planned};
use super::OrderError;
use crate::db::exchange_events::{self, NewExchangeEvent};
use crate::db::ledger::{self, CASH};
use crate::db::orders::OrderRow;
use crate::db::{accounts, leases, orders, DbConnection};
use crate::domain::VenueReport;
use crate::domain::{AccountId, ClientOrderId, FillSource, OrderId, OrderStatus};

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
/// and written together (`phase::Batch`). The rows the fills will write are locked first, each
/// kind in the order every phase locks it (orders by id, then balances, then accounts by id).
pub fn take_in_pushes(
    conn: &mut DbConnection,
    items: &[std::sync::Arc<PushItem>],
) -> Result<Vec<Result<Intake, OrderError>>, OrderError> {
    let named = items
        .iter()
        .filter(|i| i.event.fill.is_some())
        .filter_map(|i| ClientOrderId(i.event.client_order_id.clone()).order_id());
    let rows: HashMap<OrderId, OrderRow> = orders::find_many_for_update(conn, named)?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let pairs: BTreeSet<(AccountId, String)> = rows
        .values()
        .flat_map(|r| [CASH, r.symbol.as_str()].map(|asset| (r.account_id, asset.to_owned())))
        .collect();
    let books = ledger::lock_balances(conn, &pairs)?;
    let accounts_of: BTreeSet<AccountId> = rows.values().map(|r| r.account_id).collect();
    accounts::lock_in_order(conn, &accounts_of)?;
    let mut answers = store_bare_pushes(conn, items)?;
    let mut fills = Fills {
        rows,
        books,
        planned: HashMap::new(),
        batch: Batch::default(),
    };
    for (item, answer) in items.iter().zip(answers.iter_mut()) {
        if answer.is_none() {
            *answer = Some(fills.take_in(conn, item)?);
        }
    }
    fills.batch.write(conn)?;
    Ok(answers
        .into_iter()
        .map(|answer| answer.ok_or_else(|| OrderError::broken("a push went unanswered")))
        .collect())
}

/// The fills of a batch of pushes as they are planned: the orders' rows and balances as the fills
/// planned so far leave them, and those fills, by order and fill id.
struct Fills {
    rows: HashMap<OrderId, OrderRow>,
    books: Books,
    planned: HashMap<(OrderId, String), RecordedFill>,
    batch: Batch,
}

impl Fills {
    /// Takes in a push [`store_bare_pushes`] left: a fill, or a push for no order of ours. A
    /// fill's own row is its record, and its key its dedup; the push itself is kept only when the
    /// fill was refused, for whoever looks into the alarm.
    fn take_in(&mut self, conn: &mut DbConnection, item: &PushItem) -> Result<Intake, OrderError> {
        let order = ClientOrderId(item.event.client_order_id.clone()).order_id();
        let (Some(fill), Some(row)) = (&item.event.fill, order.and_then(|id| self.rows.get(&id)))
        else {
            exchange_events::store(conn, &item.event, &item.raw, None, item.now)?;
            return Ok(Intake::Unmatched);
        };
        let row = row.clone();
        let key = (row.id, fill.fill_id.clone());
        let recorded = match self.planned.get(&key) {
            Some(planned) => Some(*planned),
            None => orders::find_fill(conn, row.id, &fill.fill_id)?.map(|f| RecordedFill {
                qty: f.qty,
                price: f.price,
            }),
        };
        let planned = match lifecycle::check_fill(&row, fill, recorded) {
            Ok(Some(next)) => lifecycle::settle_fill(
                &row,
                fill,
                FillSource::Push,
                next,
                &mut self.books,
                item.now,
            ),
            Ok(None) => return Ok(Intake::Duplicate),
            Err(refusal) => Err(refusal),
        };
        let mut after = row.filled_qty;
        if let Ok(Planned {
            moved: Some(moved), ..
        }) = &planned
        {
            after = moved.row.filled_qty;
            self.rows.insert(row.id, moved.row.clone());
            self.planned.insert(key, RecordedFill::of(fill));
        }
        let applied = self.batch.add(conn, planned, item.now)?;
        if let Applied::Refused(_) = applied {
            exchange_events::store(conn, &item.event, &item.raw, Some(row.id), item.now)?;
        }
        tell_owner(conn, item, row.id, &row.owner, row.status)?;
        Ok(Intake::New {
            order: row.id,
            fill: Some(applied),
            status: row.status,
            fully_filled: after == row.qty,
            owner: row.owner,
        })
    }
}

/// Stores the pushes without a fill that name orders of ours, in one statement, and answers each
/// (a push whose event comes twice here is a duplicate the second time). The rest are left
/// unanswered (None) for [`take_in_pushes`] to take in one by one.
fn store_bare_pushes(
    conn: &mut DbConnection,
    items: &[std::sync::Arc<PushItem>],
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
