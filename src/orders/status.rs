//! Status steps of any number of orders in one phase: the actions that move no shares
//! (`placement_sent`, `accepted`), the end the exchange reported, and the cancel of an order never
//! sent (both terminal: they also release what is still reserved). Each item is
//! planned against its order's locked row through the transition table, then every move is
//! written a statement per table. A lone step is a batch of one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::cancel::release_remaining;
use super::lifecycle::Applied;
use super::phase::{self, Move};
use crate::db::alarms::{self, Alarm, AlarmKind};
use crate::db::connection::Backend;
use crate::db::leases::{self, Fence};
use crate::db::orders::{self, OrderRow};
use crate::db::{ledger, DbConnection};
use crate::domain::{
    terminal_action, AckSource, Action, EndCause, OrderEvent, OrderId, TransitionError, VenueEnd,
};
use crate::error::AppError;

/// What an order's actor asks to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusStep {
    /// The placement is about to be sent, under the order's client order id.
    PlacementSent,
    /// The venue showed the order acknowledged.
    Accepted {
        venue_order_id: Option<String>,
        source: AckSource,
    },
    /// Ends the order as its exchange copy ended, with whatever the engine itself recorded:
    /// `filled` when every share was recorded here, else `canceled` or `rejected`. When the
    /// exchange counts another quantity filled, the order still ends, and the difference is
    /// alarmed for an operator.
    End {
        end: VenueEnd,
        venue_filled: i64,
        cause: EndCause,
    },
    /// Cancels and releases the order if its own row says it was never sent. A step that decided
    /// on an older copy (another step has placed the order since) changes nothing, and the
    /// order's next step asks the venue instead.
    ReleaseUnsent,
}

impl StatusStep {
    /// Whether the step may end its order (and so touch its balances).
    fn may_end(&self) -> bool {
        matches!(self, StatusStep::End { .. } | StatusStep::ReleaseUnsent)
    }
}

/// One order's status step, as its actor asks for it.
#[derive(Debug, Clone)]
pub struct StatusItem {
    pub order: OrderId,
    pub fence: Fence,
    pub step: StatusStep,
    pub now: i64,
}

/// Records each item, in order, as it would be recorded alone, and answers each: recorded, a
/// duplicate of a step recorded before, refused (with an alarm), or an error that wrote nothing
/// for it (its order is missing, or another engine's or epoch's).
pub fn record(
    conn: &mut DbConnection,
    items: &[Arc<StatusItem>],
) -> Result<Vec<Result<Applied, AppError>>, AppError> {
    let mut rows: HashMap<OrderId, OrderRow> =
        orders::find_many_for_update(conn, items.iter().map(|i| i.order))?
            .into_iter()
            .map(|row| (row.id, row))
            .collect();
    if conn.backend() == Backend::Postgres {
        // Balances in the order every phase locks them, before any release takes one.
        let ending: BTreeSet<_> = items
            .iter()
            .filter(|i| i.step.may_end())
            .filter_map(|i| rows.get(&i.order))
            .map(|row| (row.account_id, row.reserved_asset().to_owned()))
            .collect();
        ledger::lock_balances(conn, &ending)?;
    }
    let mut pending = Pending::default();
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        let Some(row) = rows.remove(&item.order) else {
            answers.push(Err(AppError::NotFound));
            continue;
        };
        if let Err(fenced) = leases::ensure_owner(row.id, &row.owner, row.owner_epoch, &item.fence)
        {
            rows.insert(row.id, row);
            answers.push(Err(fenced.into()));
            continue;
        }
        // A second step of an order in this batch starts from the first one's row, written.
        if pending.orders.contains(&row.id) {
            pending.write(conn)?;
        }
        let (answer, row) = plan(conn, row, item)?;
        if let Some(moved) = answer.moved {
            pending.orders.insert(moved.row.id);
            rows.insert(moved.row.id, moved.row.clone());
            pending.moves.push(moved);
        } else {
            rows.insert(row.id, row);
        }
        answers.push(Ok(answer.applied));
    }
    pending.write(conn)?;
    Ok(answers)
}

/// Moves planned and not yet written, and the orders they move.
#[derive(Default)]
struct Pending {
    moves: Vec<Move>,
    orders: HashSet<OrderId>,
}

impl Pending {
    fn write(&mut self, conn: &mut DbConnection) -> Result<(), AppError> {
        phase::write_moves(conn, &self.moves)?;
        self.moves.clear();
        self.orders.clear();
        Ok(())
    }
}

/// What an item comes to: its answer, and the move to write if it records one.
struct Planned {
    applied: Applied,
    moved: Option<Move>,
}

impl Planned {
    fn unmoved(applied: Applied) -> Self {
        Planned {
            applied,
            moved: None,
        }
    }
}

/// Plans one item against its order's row; writes only an alarm for a refusal, or the release of a
/// move that ends the order. Hands the row back when nothing moved.
fn plan(
    conn: &mut DbConnection,
    row: OrderRow,
    item: &StatusItem,
) -> Result<(Planned, OrderRow), AppError> {
    let state = row.state();
    // The event a non-terminal step records, or the cause of the end a terminal one records.
    let (action, planned) = match &item.step {
        StatusStep::PlacementSent => {
            let event = OrderEvent::PlacementSent {
                client_order_id: row.client_order_id.to_string(),
            };
            (event.action(), Ok(event))
        }
        StatusStep::Accepted {
            venue_order_id,
            source,
        } => {
            let event = OrderEvent::Accepted {
                venue_order_id: venue_order_id.clone(),
                source: *source,
            };
            (event.action(), Ok(event))
        }
        StatusStep::ReleaseUnsent if row.placement_sent => {
            let refused = "the placement was sent after all: the venue decides";
            return Ok((Planned::unmoved(Applied::Refused(refused.into())), row));
        }
        StatusStep::ReleaseUnsent => (Action::Canceled, Err(EndCause::NeverSent)),
        StatusStep::End { .. } if state.status.is_terminal() => {
            return Ok((Planned::unmoved(Applied::Duplicate), row));
        }
        StatusStep::End {
            end,
            venue_filled,
            cause,
        } => {
            let (action, mismatch) = terminal_action(state, *end, *venue_filled);
            if mismatch {
                let what = format!(
                    "the exchange ended the order {end:?} with {venue_filled} filled; the engine recorded {} of {}",
                    state.filled_qty, state.qty
                );
                let alarm = Alarm {
                    kind: AlarmKind::FillQuantityMismatch,
                    order: Some(row.id),
                    subject: "end",
                    detail: &what,
                };
                alarms::raise(conn, &alarm, item.now)?;
            }
            (action, Err(cause.clone()))
        }
    };
    let next = match state.apply(action) {
        Ok(next) => next,
        Err(TransitionError::AlreadyAcknowledged | TransitionError::AlreadySent) => {
            return Ok((Planned::unmoved(Applied::Duplicate), row));
        }
        Err(refused) => {
            let what = refused.to_string();
            let alarm = Alarm {
                kind: AlarmKind::RefusedAction,
                order: Some(row.id),
                subject: action.kind().as_str(),
                detail: &what,
            };
            alarms::raise(conn, &alarm, item.now)?;
            return Ok((Planned::unmoved(Applied::Refused(what)), row));
        }
    };
    let event = match planned {
        Ok(event) => event,
        Err(cause) => OrderEvent::Ended {
            action,
            released: release_remaining(conn, &row, item.now)?,
            cause,
        },
    };
    let moved = Move::of(row.clone(), next, &event, item.now);
    let planned = Planned {
        applied: Applied::Recorded,
        moved: Some(moved),
    };
    Ok((planned, row))
}
