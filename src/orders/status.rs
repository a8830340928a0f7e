//! Status steps of any number of orders in one phase: the actions that move no shares
//! (`placement_sent`, `accepted`), the end the exchange reported, and the cancel of an order never
//! sent (both terminal: they also release what is still reserved), and the venue's answer to a
//! replace (which trims the hold to the terms that stand). Each item is planned against its
//! order's locked row through the transition table, then every move is written a statement per
//! table. A lone step is a batch of one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::phase::{self, Alarmed, Applied, Batch, Booking, Books, Move, Planned, Refusal};
use super::pricing::hold;
use super::OrderError;
use crate::db::alarms::AlarmKind;
use crate::db::leases::Fence;
use crate::db::ledger::{self, LedgerEntry};
use crate::db::orders::OrderRow;
use crate::db::DbConnection;
use crate::domain::{
    terminal_action, AckSource, Action, ClientOrderId, EndCause, OrderEvent, OrderId, OrderState,
    OrderStatus, Terms, TransitionError, VenueEnd,
};

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
    /// The venue took the replace in flight: the order goes on under its new terms (`qty`, as
    /// the venue holds it), and holds only what they need.
    Replaced { qty: i64 },
    /// The venue refused the replace in flight: the old terms stand, and the order holds only
    /// what they need.
    ReplaceRejected { reason: String },
}

impl StatusStep {
    /// Whether the step may release what its order holds (and so touch its balances).
    fn may_release(&self) -> bool {
        matches!(
            self,
            StatusStep::End { .. }
                | StatusStep::ReleaseUnsent
                | StatusStep::Replaced { .. }
                | StatusStep::ReplaceRejected { .. }
        )
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
) -> Result<Vec<Result<Applied, OrderError>>, OrderError> {
    let mut rows = phase::lock_orders(conn, items.iter().map(|i| i.order))?;
    let mut held = Held::read(conn, items, &rows)?;
    let mut batch = Batch::default();
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        let row = match phase::owned(&rows, item.order, &item.fence) {
            Ok(row) => row,
            Err(refused) => {
                answers.push(Err(refused));
                continue;
            }
        };
        // A second step of an order in this batch starts from the first one's row.
        let planned = plan(row, item, &mut held);
        if let Ok(Planned {
            moved: Some(moved), ..
        }) = &planned
        {
            rows.insert(moved.row.id, moved.row.clone());
        }
        answers.push(Ok(batch.add(conn, planned, item.now)?));
    }
    batch.write(conn)?;
    Ok(answers)
}

/// What the orders a batch may end still hold reserved, and the balances it is held in.
struct Held {
    reserved: HashMap<OrderId, i64>,
    books: Books,
}

impl Held {
    /// Read (and on PostgreSQL locked, before any release takes them) for every open order that
    /// an item may end.
    fn read(
        conn: &mut DbConnection,
        items: &[Arc<StatusItem>],
        rows: &HashMap<OrderId, OrderRow>,
    ) -> Result<Held, OrderError> {
        let ending: BTreeMap<OrderId, &OrderRow> = items
            .iter()
            .filter(|i| i.step.may_release())
            .filter_map(|i| rows.get(&i.order))
            .filter(|row| !row.status.is_terminal())
            .map(|row| (row.id, row))
            .collect();
        let pairs: BTreeSet<_> = ending
            .values()
            .map(|row| (row.account_id, row.reserved_asset().to_owned()))
            .collect();
        let books = ledger::balances_for_update(conn, &pairs)?;
        let assets: Vec<(OrderId, &str)> = ending
            .values()
            .map(|row| (row.id, row.reserved_asset()))
            .collect();
        let reserved = ledger::reserved_for_orders(conn, &assets)?;
        Ok(Held { reserved, books })
    }

    /// Releases whatever `row` still holds reserved: the compensating step of a terminal order.
    /// Returns the amount, with its booking.
    fn release(&mut self, row: &OrderRow) -> Result<(i64, Option<Booking>), Refusal> {
        self.trim(row, 0, format!("order:{}:release", row.id))
    }

    /// Releases what `row` holds beyond `kept` (its terms' need), under the entry `key`.
    fn trim(
        &mut self,
        row: &OrderRow,
        kept: i64,
        key: String,
    ) -> Result<(i64, Option<Booking>), Refusal> {
        let held = self.reserved.get(&row.id).copied().unwrap_or_default();
        let remaining = held - kept;
        if remaining <= 0 {
            return Ok((0, None));
        }
        self.reserved.insert(row.id, kept);
        let asset = row.reserved_asset();
        let entry = LedgerEntry {
            key,
            account: row.account_id,
            asset: asset.into(),
            order: Some(row.id),
            available_delta: remaining,
            reserved_delta: -remaining,
        };
        let booked = phase::book(&mut self.books, entry).ok_or_else(|| {
            let what =
                format!("releasing {remaining} of {asset} would overflow or overdraw its balance");
            Refusal::alarmed(AlarmKind::InvariantViolation, row.id, "release", what)
        })?;
        Ok((remaining, Some(booked)))
    }
}

/// Plans one item against its order's row, through the transition table.
fn plan(row: &OrderRow, item: &StatusItem, held: &mut Held) -> Result<Planned, Refusal> {
    let state = row.state();
    let mut alarms = Vec::new();
    // The event a step records that moves no money, or what one that does must work out.
    let (action, planned) = match &item.step {
        StatusStep::PlacementSent => {
            let event = OrderEvent::PlacementSent {
                client_order_id: row.client_order_id.to_string(),
            };
            (event.action(), Outcome::Event(event))
        }
        StatusStep::Accepted {
            venue_order_id,
            source,
        } => {
            let event = OrderEvent::Accepted {
                venue_order_id: venue_order_id.clone(),
                source: *source,
            };
            (event.action(), Outcome::Event(event))
        }
        StatusStep::ReleaseUnsent if row.placement_sent => {
            return Err(Refusal::quiet(
                "the placement was sent after all: the venue decides",
            ));
        }
        StatusStep::ReleaseUnsent if state.expiring => {
            (Action::Expired, Outcome::End(EndCause::NeverSent))
        }
        StatusStep::ReleaseUnsent => (Action::Canceled, Outcome::End(EndCause::NeverSent)),
        StatusStep::End { .. } if state.status.is_terminal() => {
            return Ok(phase::Planned::default())
        }
        StatusStep::End {
            end,
            venue_filled,
            cause,
        } => {
            let immediate = row.time_in_force.is_immediate();
            let (action, mismatch) = terminal_action(state, *end, *venue_filled, immediate);
            if mismatch {
                alarms.push(Alarmed {
                    kind: AlarmKind::FillQuantityMismatch,
                    order: row.id,
                    subject: "end".into(),
                    detail: format!(
                        "the exchange ended the order {end:?} with {venue_filled} filled; the engine recorded {} of {}",
                        state.filled_qty, state.qty
                    ),
                });
            }
            (action, Outcome::End(cause.clone()))
        }
        // Answered before (a repeated step), or a refusal after a cancel came in: the cancel's
        // end decides. A replace the venue took before that cancel is its terms until the end.
        StatusStep::Replaced { .. }
            if state.replacing.is_none()
                || !matches!(
                    state.status,
                    OrderStatus::PendingReplace | OrderStatus::PendingCancel
                ) =>
        {
            return Ok(phase::Planned::default())
        }
        StatusStep::ReplaceRejected { .. } if state.status != OrderStatus::PendingReplace => {
            return Ok(phase::Planned::default())
        }
        StatusStep::Replaced { qty } => (Action::Replaced { qty: *qty }, Outcome::Replaced),
        StatusStep::ReplaceRejected { reason } => {
            (Action::ReplaceRejected, Outcome::Kept(reason.clone()))
        }
    };
    let next = match state.apply(action) {
        Ok(next) => next,
        Err(TransitionError::AlreadyAcknowledged | TransitionError::AlreadySent) => {
            return Ok(phase::Planned::default());
        }
        Err(refused) => {
            let (subject, what) = (action.kind().as_str(), refused.to_string());
            return Err(Refusal::alarmed(
                AlarmKind::RefusedAction,
                row.id,
                subject,
                what,
            ));
        }
    };
    let mut bookings = Vec::new();
    let mut moved_row = row.clone();
    let retermed = matches!(planned, Outcome::Replaced | Outcome::Kept(_));
    let event = match planned {
        Outcome::Event(event) => event,
        Outcome::End(cause) => {
            let (released, booking) = held.release(row)?;
            bookings.extend(booking);
            OrderEvent::Ended {
                action,
                released,
                cause,
            }
        }
        Outcome::Replaced => {
            let version = row.version + 1;
            let limit_price = row.replacing_limit_price.or(row.limit_price);
            let terms = Terms {
                client_order_id: ClientOrderId::for_version(row.id, version).to_string(),
                version,
                qty: next.qty,
                limit_price,
            };
            moved_row.version = version;
            moved_row.client_order_id = ClientOrderId(terms.client_order_id.clone());
            moved_row.limit_price = limit_price;
            moved_row.protection_price = limit_price;
            moved_row.replacing_limit_price = None;
            let key = format!("order:{}:v{version}:trim", row.id);
            let released = trim_to(held, &moved_row, next, key, &mut bookings)?;
            OrderEvent::Replaced { terms, released }
        }
        Outcome::Kept(reason) => {
            moved_row.protection_price = row.limit_price;
            moved_row.replacing_limit_price = None;
            let key = format!("order:{}:v{}:kept", row.id, row.version + 1);
            let released = trim_to(held, &moved_row, next, key, &mut bookings)?;
            OrderEvent::ReplaceRejected { reason, released }
        }
    };
    Ok(phase::Planned {
        moved: Some(if retermed {
            Move::retermed(moved_row, next, &event, item.now)
        } else {
            Move::of(moved_row, next, &event, item.now)
        }),
        bookings,
        alarms,
        ..phase::Planned::default()
    })
}

/// What a step works out besides its move: its event, an end (with what it releases), or the
/// answer to a replace (with the hold beyond what the terms that stand need).
enum Outcome {
    Event(OrderEvent),
    End(EndCause),
    Replaced,
    Kept(String),
}

/// Trims what the order holds to what its terms (`row`'s limit, `next`'s quantity) still need.
fn trim_to(
    held: &mut Held,
    row: &OrderRow,
    next: OrderState,
    key: String,
    bookings: &mut Vec<Booking>,
) -> Result<i64, Refusal> {
    let need =
        hold(row.side, row.protection_price, next.qty - next.filled_qty).ok_or_else(|| {
            Refusal::alarmed(
                AlarmKind::InvariantViolation,
                row.id,
                "replace",
                "the terms' need does not fit an amount".into(),
            )
        })?;
    let (released, booking) = held.trim(row, need, key)?;
    bookings.extend(booking);
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderStatus, VenueStatus};
    use crate::orders::lifecycle::tests::resting_buy;

    fn item(order: OrderId, step: StatusStep) -> StatusItem {
        let fence = Fence {
            engine: "e".into(),
            epoch: 1,
        };
        StatusItem {
            order,
            fence,
            step,
            now: 9,
        }
    }

    fn canceled_by_venue() -> StatusStep {
        StatusStep::End {
            end: VenueEnd::Canceled,
            venue_filled: 4,
            cause: EndCause::VenueEnded {
                status: VenueStatus::Canceled,
                filled_qty: 4,
            },
        }
    }

    #[test]
    fn an_end_releases_what_the_order_still_holds_once() {
        let (row, books) = resting_buy();
        let reserved = HashMap::from([(row.id, 600)]);
        let mut held = Held { reserved, books };
        let planned = plan(&row, &item(row.id, canceled_by_venue()), &mut held).expect("planned");
        let moved = planned.moved.expect("the order ends");
        assert_eq!(moved.row.status, OrderStatus::Canceled);
        assert!(
            moved.detail.contains("\"released\":600"),
            "{}",
            moved.detail
        );
        let release = planned.bookings.first().map(|b| b.entry.available_delta);
        assert_eq!(release, Some(600));
        let cash = held.books[&(row.account_id, ledger::CASH.to_owned())];
        assert_eq!((cash.available, cash.reserved), (2_000, 0));
        // Nothing is left to release a second time.
        assert_eq!(held.release(&row).map(|(amount, _)| amount), Ok(0));
    }

    #[test]
    fn a_step_on_an_older_copy_or_a_repeat_plans_nothing() {
        let (row, books) = resting_buy();
        let mut held = Held {
            reserved: HashMap::new(),
            books,
        };
        let sent = plan(&row, &item(row.id, StatusStep::ReleaseUnsent), &mut held);
        assert_eq!(sent.err().map(|r| r.alarm.is_none()), Some(true));
        let late_ack = StatusStep::Accepted {
            venue_order_id: None,
            source: AckSource::Push,
        };
        let again = plan(&row, &item(row.id, late_ack), &mut held);
        assert_eq!(again.map(|p| p.applied()).ok(), Some(Applied::Duplicate));
        let ended = OrderRow {
            status: OrderStatus::Filled,
            ..row
        };
        let late = plan(&ended, &item(ended.id, canceled_by_venue()), &mut held);
        assert_eq!(late.map(|p| p.applied()).ok(), Some(Applied::Duplicate));
    }
}
