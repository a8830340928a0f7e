//! An order as its actor reads it, and the fill phase: a fill is recorded once with all its
//! effects in one transaction, after the transition table allowed it. A fill that must not happen
//! writes nothing but an alarm. Status steps have a module of their own (`orders::status`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::phase::{self, Batch, Booking, Books, Move, Planned, Refusal};
use super::view::FillView;
use super::OrderError;
use crate::db::alarms::AlarmKind;
use crate::db::leases::{self, Fence};
use crate::db::ledger::{self, LedgerEntry, CASH};
use crate::db::orders::{self, FillRow, OrderRow};
use crate::db::positions::{self, PositionRow};
use crate::db::{accounts, DbConnection};
use crate::domain::{
    fill_within_limit, AccountId, Action, Cents, FillSource, OrderEvent, OrderId, OrderState,
    Position, Side, VenueFill,
};

/// Positions by (account, symbol), as the fills planned so far leave them; a missing one is flat.
pub type Positions = HashMap<(AccountId, String), Position>;

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

    /// A fill as its row holds it.
    pub fn stored(row: &FillRow) -> Self {
        Self {
            qty: row.qty,
            price: row.price,
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

pub use super::phase::Applied;

/// The order with its fills, as a step starts from.
pub fn load(conn: &mut DbConnection, order: OrderId) -> Result<Snapshot, OrderError> {
    let row = orders::find(conn, order)?.ok_or(OrderError::NotFound)?;
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
            let recorded = RecordedFill::stored(&f);
            (f.fill_id, recorded)
        })
        .collect();
    Ok(Snapshot { row, state, fills })
}

/// Records exchange fills of one order, each once, in one phase: the fill rows (unique per order
/// and fill id), their ledger effects, the `fill` actions and their events. A fill seen before
/// changes nothing; one seen before with another quantity or price, one for an order that has
/// ended, one outside the order's limit, or one that would overfill the order is refused with an
/// alarm. The order must still be `fence`'s (fencing: a phase of an engine whose lease was taken
/// over writes nothing). Answers each fill in turn.
pub fn record_fills(
    conn: &mut DbConnection,
    order: OrderId,
    fence: &Fence,
    fills: &[VenueFill],
    source: FillSource,
    now: i64,
) -> Result<Vec<Applied>, OrderError> {
    let named: Vec<(OrderId, &str)> = fills.iter().map(|f| (order, f.fill_id.as_str())).collect();
    let mut phase = Fills::lock(conn, &named)?;
    let row = phase.row(order).ok_or(OrderError::NotFound)?;
    leases::ensure_owner(order, &row.owner, row.owner_epoch, fence)?;
    let mut applied = Vec::with_capacity(fills.len());
    for fill in fills {
        let taken = phase.record(conn, order, fill, source, now)?;
        applied.push(taken.map_or(Applied::Duplicate, |t| t.applied));
    }
    phase.write(conn)?;
    Ok(applied)
}

/// The fills of one phase as they are planned: the orders' rows and balances as the fills planned
/// so far leave them, those fills by order and fill id, and the batch that writes them. A lone
/// fill is a batch of one.
pub struct Fills {
    rows: HashMap<OrderId, OrderRow>,
    books: Books,
    positions: Positions,
    /// The fills asked for at the lock, as recorded before the phase (None: not recorded).
    recorded: HashMap<(OrderId, String), Option<RecordedFill>>,
    planned: HashMap<(OrderId, String), RecordedFill>,
    batch: Batch,
}

/// A fill the order took or refused, with the order as it was before it and its quantity filled
/// after it.
pub struct FillTaken {
    pub applied: Applied,
    pub before: OrderRow,
    pub filled_after: i64,
}

impl Fills {
    /// Locks what the `fills` (order and fill id) will write, each kind in the order every phase
    /// locks it: orders by id, then the balances there are, then accounts by id (two accounts
    /// taken a fill at a time could be locked crosswise against another phase); and reads which
    /// of them were recorded before, in one statement.
    pub fn lock(conn: &mut DbConnection, fills: &[(OrderId, &str)]) -> Result<Fills, OrderError> {
        let orders: BTreeSet<OrderId> = fills.iter().map(|(order, _)| *order).collect();
        let rows = phase::lock_orders(conn, orders)?;
        let pairs: BTreeSet<(AccountId, String)> = rows
            .values()
            .flat_map(|r| [CASH, r.symbol.as_str()].map(|a| (r.account_id, a.to_owned())))
            .collect();
        let books = ledger::lock_balances(conn, &pairs)?;
        // A position is read once its symbol's balance is locked: that lock keeps other phases
        // off it. The rest are read as their balances are made (`Fills::record`).
        let symbols_locked: BTreeSet<(AccountId, String)> = rows
            .values()
            .map(|r| (r.account_id, r.symbol.as_str().to_owned()))
            .filter(|pair| books.contains_key(pair))
            .collect();
        let positions = positions::read(conn, &symbols_locked)?;
        let accounts_of: BTreeSet<AccountId> = rows.values().map(|r| r.account_id).collect();
        if accounts_of.len() > 1 {
            accounts::lock_in_order(conn, &accounts_of)?;
        }
        // A fill named twice (a push delivered twice in one batch) is looked up, not taken, each
        // time: the second must see the fill recorded as the first does.
        let found = orders::find_fills(conn, fills)?;
        let recorded = fills
            .iter()
            .map(|(order, id)| {
                let key = (*order, (*id).to_owned());
                let before = found.get(&key).map(RecordedFill::stored);
                (key, before)
            })
            .collect();
        Ok(Fills {
            rows,
            books,
            positions,
            recorded,
            planned: HashMap::new(),
            batch: Batch::default(),
        })
    }

    /// The order as the fills planned so far leave it, if it was locked.
    pub fn row(&self, order: OrderId) -> Option<&OrderRow> {
        self.rows.get(&order)
    }

    /// Plans `fill` of `order` (both named to [`Fills::lock`]) through the transition table,
    /// against the fills planned before it. None for a fill recorded before exactly so.
    pub fn record(
        &mut self,
        conn: &mut DbConnection,
        order: OrderId,
        fill: &VenueFill,
        source: FillSource,
        now: i64,
    ) -> Result<Option<FillTaken>, OrderError> {
        let row = self.rows.get(&order).cloned().ok_or(OrderError::NotFound)?;
        let key = (row.id, fill.fill_id.clone());
        let recorded = match (self.planned.get(&key), self.recorded.get(&key)) {
            (Some(planned), _) => Some(*planned),
            (None, Some(before)) => *before,
            (None, None) => {
                let what = format!(
                    "fill {} was not read when its order was locked",
                    fill.fill_id
                );
                return Err(OrderError::broken(what));
            }
        };
        let planned = match check_fill(&row, fill, recorded) {
            Ok(Some(next)) => {
                // Only a fill the order takes makes (on PostgreSQL) the balances it is the first
                // to touch.
                let missing: BTreeSet<(AccountId, String)> = [CASH, row.symbol.as_str()]
                    .map(|asset| (row.account_id, asset.to_owned()))
                    .into_iter()
                    .filter(|pair| !self.books.contains_key(pair))
                    .collect();
                if !missing.is_empty() {
                    self.books
                        .extend(ledger::balances_for_update(conn, &missing)?);
                    self.positions.extend(positions::read(conn, &missing)?);
                }
                let books = (&mut self.books, &mut self.positions);
                settle_fill(&row, fill, source, next, books, now)
            }
            Ok(None) => return Ok(None),
            Err(refusal) => Err(refusal),
        };
        let mut filled_after = row.filled_qty;
        if let Ok(Planned {
            moved: Some(moved), ..
        }) = &planned
        {
            filled_after = moved.row.filled_qty;
            self.rows.insert(row.id, moved.row.clone());
            self.planned.insert(key, RecordedFill::of(fill));
        }
        let applied = self.batch.add(conn, planned, now)?;
        Ok(Some(FillTaken {
            applied,
            before: row,
            filled_after,
        }))
    }

    /// Writes every fill planned.
    pub fn write(mut self, conn: &mut DbConnection) -> Result<(), OrderError> {
        self.batch.write(conn)
    }
}

/// Plans a fill [`check_fill`] let through, leading the order to `next`. Every balance the fill
/// moves is worked out here: a fill the ledger cannot take (a balance would overflow or go below
/// zero) is refused and alarmed, instead of failing the whole phase on every retry.
pub fn settle_fill(
    row: &OrderRow,
    fill: &VenueFill,
    source: FillSource,
    next: OrderState,
    (books, positions): (&mut Books, &mut Positions),
    now: i64,
) -> Result<Planned, Refusal> {
    let id = fill.fill_id.as_str();
    let unsettleable = || {
        let what = format!(
            "fill {id} of {} at {} would overflow or overdraw a balance",
            fill.qty, fill.price
        );
        Refusal::alarmed(AlarmKind::FillUnsettleable, row.id, id, what)
    };
    let pair = (row.account_id, row.symbol.as_str().to_owned());
    let held = positions.get(&pair).copied().unwrap_or_default();
    let position = held.apply(row.side, fill.qty, fill.price);
    let position = position.ok_or_else(unsettleable)?;
    let (bookings, value) = settlement(row, fill, books).ok_or_else(unsettleable)?;
    let notional = row.filled_notional.0.checked_add(value.0);
    let notional = notional.ok_or_else(unsettleable)?;
    positions.insert(pair, position);
    let fill_row = FillRow {
        order_id: row.id,
        fill_id: fill.fill_id.clone(),
        qty: fill.qty,
        price: fill.price,
        source,
        received_at: now,
        position_seq: Some(position.fills),
    };
    let event = OrderEvent::Fill {
        fill: fill.clone(),
        source,
    };
    let mut moved = Move::of(row.clone(), next, &event, now);
    moved.row.filled_notional = Cents(notional);
    moved.fill = Some(FillView::from(&fill_row));
    Ok(Planned {
        moved: Some(moved),
        fill: Some(fill_row),
        position: Some(PositionRow::of(
            row.account_id,
            row.symbol.as_str(),
            position,
            now,
        )),
        bookings,
        ..Planned::default()
    })
}

/// Whether the order can take the fill, by the transition table; `recorded` is the fill of the
/// same id recorded before, if any. The order's state after the fill, or None for a fill recorded
/// before exactly so.
pub fn check_fill(
    row: &OrderRow,
    fill: &VenueFill,
    recorded: Option<RecordedFill>,
) -> Result<Option<OrderState>, Refusal> {
    let (order, state) = (row.id, row.state());
    let id = fill.fill_id.as_str();
    let refuse = |kind, what| Refusal::alarmed(kind, order, id, what);
    if let Some(recorded) = recorded {
        if recorded == RecordedFill::of(fill) {
            return Ok(None);
        }
        let what = format!(
            "fill {id} was recorded as {} at {} and is now reported as {} at {}",
            recorded.qty, recorded.price, fill.qty, fill.price
        );
        return Err(refuse(AlarmKind::FillMismatch, what));
    }
    if state.status.is_terminal() {
        let what = format!(
            "fill {id} of {} arrived after the order was {}",
            fill.qty, state.status
        );
        return Err(refuse(AlarmKind::FillAfterTerminal, what));
    }
    let limit = row.protection_price;
    if !fill_within_limit(row.side, limit, fill.price) {
        let what = format!(
            "fill {id} of {} at {} is outside the order's limit {}",
            fill.qty,
            fill.price,
            limit.unwrap_or_default()
        );
        return Err(refuse(AlarmKind::FillOutsideLimit, what));
    }
    let next = state
        .apply(Action::Fill { qty: fill.qty })
        .map_err(|refused| {
            let what = format!("fill {id} of {} at {}: {refused}", fill.qty, fill.price);
            refuse(AlarmKind::RefusedAction, what)
        })?;
    Ok(Some(next))
}

/// The ledger side of a fill, booked against `books` (left as they were when it cannot be),
/// with the fill's value. A buy spends the reservation for the filled shares at the order's
/// protection price and returns any price improvement to available cash; a sell gives up the
/// reserved shares and is credited the proceeds. None when a balance would overflow or go below
/// zero. The fill id comes last in each key, after a fixed part that says which effect it is, so
/// no fill id can collide with another fill's key.
fn settlement(
    row: &OrderRow,
    fill: &VenueFill,
    books: &mut Books,
) -> Option<(Vec<Booking>, Cents)> {
    let (order, account) = (row.id, row.account_id);
    let value = fill.price.times(fill.qty)?;
    let entry = |effect: &str, asset: &str, available_delta, reserved_delta| LedgerEntry {
        key: format!("order:{order}:{effect}:{}", fill.fill_id),
        account,
        asset: asset.to_owned().into(),
        order: Some(order),
        available_delta,
        reserved_delta,
    };
    let (cash, shares) = match row.side {
        Side::Buy => {
            let protection = row.protection_price.unwrap_or(fill.price);
            let held = protection.times(fill.qty)?;
            let refund = held.0.checked_sub(value.0)?;
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
    let mut trial = books.clone();
    let bookings = vec![
        phase::book(&mut trial, cash)?,
        phase::book(&mut trial, shares)?,
    ];
    *books = trial;
    Some((bookings, value))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{AccountId, ClientOrderId, OrderStatus, OrderType, Symbol};

    /// A buy of 10 at a limit of 100 cents, 4 filled; the account holds 2,000 cents, 600 of it
    /// reserved for the 6 shares left.
    pub(crate) fn resting_buy() -> (OrderRow, Books) {
        let id = OrderId::new();
        let account = AccountId::new();
        let row = OrderRow {
            id,
            account_id: account,
            client_order_id: ClientOrderId::for_order(id),
            symbol: Symbol::parse("ACME").expect("a symbol"),
            side: Side::Buy,
            order_type: OrderType::Limit,
            qty: 10,
            limit_price: Some(Cents(100)),
            protection_price: Some(Cents(100)),
            status: OrderStatus::PartiallyFilled,
            filled_qty: 4,
            filled_notional: Cents(400),
            created_at: 1,
            updated_at: 1,
            placement_sent: true,
            last_action_seq: 4,
            owner: "e".into(),
            owner_epoch: 1,
            time_in_force: Default::default(),
            expires_at: None,
            expiring: false,
            version: 1,
            replacing_qty: None,
            replacing_limit_price: None,
            stop_price: None,
        };
        let cash = ledger::Balance {
            available: 1_400,
            reserved: 600,
        };
        let books = Books::from([((account, CASH.to_owned()), cash)]);
        (row, books)
    }

    /// A fill planned as `record_fill` plans it, against `books` instead of the database.
    fn plan_fill(
        row: &OrderRow,
        fill: &VenueFill,
        source: FillSource,
        recorded: Option<RecordedFill>,
        books: &mut Books,
        now: i64,
    ) -> Result<Planned, Refusal> {
        match check_fill(row, fill, recorded)? {
            Some(next) => settle_fill(row, fill, source, next, (books, &mut Positions::new()), now),
            None => Ok(Planned::default()),
        }
    }

    fn fill(id: &str, qty: i64, price: i64) -> VenueFill {
        VenueFill {
            fill_id: id.into(),
            qty,
            price: Cents(price),
        }
    }

    #[test]
    fn a_fill_books_its_cash_and_shares_and_moves_the_order() {
        let (row, mut books) = resting_buy();
        let planned = plan_fill(
            &row,
            &fill("F5", 5, 98),
            FillSource::Push,
            None,
            &mut books,
            9,
        )
        .expect("the fill is taken");
        let moved = planned.moved.expect("the order moves");
        assert_eq!(
            (moved.row.filled_qty, moved.row.filled_notional),
            (9, Cents(890))
        );
        assert_eq!(moved.row.last_action_seq, 5);
        let deltas: Vec<(&str, i64, i64)> = planned
            .bookings
            .iter()
            .map(|b| {
                let e = &b.entry;
                (e.asset.as_ref(), e.available_delta, e.reserved_delta)
            })
            .collect();
        // 500 reserved at the limit is spent; 10 of price improvement comes back.
        assert_eq!(deltas, [(CASH, 10, -500), ("ACME", 5, 0)]);
        let cash = books[&(row.account_id, CASH.to_owned())];
        assert_eq!((cash.available, cash.reserved), (1_410, 100));
        assert_eq!(planned.fill.map(|f| f.qty), Some(5));
    }

    #[test]
    fn a_fill_seen_before_plans_nothing_and_one_that_says_otherwise_is_refused() {
        let (row, mut books) = resting_buy();
        let same = Some(RecordedFill {
            qty: 2,
            price: Cents(100),
        });
        let again = plan_fill(
            &row,
            &fill("F1", 2, 100),
            FillSource::Poll,
            same,
            &mut books,
            9,
        );
        assert_eq!(again.map(|p| p.applied()).ok(), Some(Applied::Duplicate));
        let other = plan_fill(
            &row,
            &fill("F1", 3, 100),
            FillSource::Poll,
            same,
            &mut books,
            9,
        );
        let refused = other.err().and_then(|r| r.alarm).map(|a| a.kind);
        assert_eq!(refused, Some(AlarmKind::FillMismatch));
    }

    #[test]
    fn a_fill_that_must_not_happen_is_refused_and_moves_no_balance() {
        let (row, books) = resting_buy();
        let ended = OrderRow {
            status: OrderStatus::Canceled,
            ..row.clone()
        };
        for (order, fill, kind) in [
            (&row, fill("F5", 7, 100), AlarmKind::RefusedAction),
            (&row, fill("F5", 1, 101), AlarmKind::FillOutsideLimit),
            (&ended, fill("F5", 1, 100), AlarmKind::FillAfterTerminal),
        ] {
            let mut after = books.clone();
            let planned = plan_fill(order, &fill, FillSource::Push, None, &mut after, 9);
            let refused = planned.err().and_then(|r| r.alarm).map(|a| a.kind);
            assert_eq!(refused, Some(kind), "{fill:?}");
            assert_eq!(after, books, "{fill:?}");
        }
        // Cash reserved for the order that is not in the books: the ledger cannot take it.
        let mut short = Books::new();
        let planned = plan_fill(
            &row,
            &fill("F5", 1, 100),
            FillSource::Push,
            None,
            &mut short,
            9,
        );
        let refused = planned.err().and_then(|r| r.alarm).map(|a| a.kind);
        assert_eq!(refused, Some(AlarmKind::FillUnsettleable));
        assert!(short.is_empty());
    }
}
