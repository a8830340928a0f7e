//! The money audit: reads the store (and, when given, the exchange's own record) and checks that
//! every cent and share is where it should be. It shares no arithmetic with the phases that
//! move money: each figure is worked out again from first principles (openings, fills, orders).
//!
//! Checks, each over every row it names:
//! - `balances_equal_ledger`: each balance is the sum of its ledger entries, and none is below zero;
//! - `filled_qty_equals_fills`: each order's `filled_qty` is the sum of its fills, at most its qty
//!   (or a replace's in flight, if larger);
//! - `terminal_orders_hold_nothing`: an ended order's reservations all came back;
//! - `reserved_equals_open_orders`: each reserved balance is what the open orders still hold back
//!   (a buy: its price limit × the shares unfilled; a sell: the shares unfilled; while a replace is
//!   in flight, of the larger quantity at the more generous limit);
//! - `cash_and_shares_conserved`: each balance is its opening plus what the fills bought, minus
//!   what they sold;
//! - `positions_equal_fills`: each position is its fills folded again in the order they were
//!   recorded (numbered 1, 2, … with no gap), and every numbered fill is in a position;
//! - with the exchange's record, `fills_equal_exchange`: an ended order has exactly the exchange's
//!   fills, an open one no fill the exchange lacks; and `no_unknown_exchange_orders`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use serde::Serialize;

use crate::db::DbConnection;
use crate::db::DbError;
use crate::domain::VenueOrder;
use crate::domain::{ClientOrderId, OrderStatus, CASH};
use crate::engine::Engine;
use crate::shutdown::Shutdown;

/// One row a check found wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Violation {
    pub account_id: Option<String>,
    pub order_id: Option<String>,
    pub detail: String,
}

/// One invariant, checked over every row it covers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AuditCheck)]
pub struct Check {
    pub name: &'static str,
    /// How many rows the check looked at.
    pub rows: usize,
    pub violations: Vec<Violation>,
    /// Why the check did not run, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The money audit's answer: every check, and whether all of them held.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AuditReport)]
pub struct Report {
    pub ok: bool,
    pub duration_ms: u64,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn violations(&self) -> usize {
        self.checks.iter().map(|c| c.violations.len()).sum()
    }

    /// The names of the checks that failed.
    pub fn failing(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| !c.violations.is_empty())
            .map(|c| c.name)
            .collect()
    }
}

#[derive(QueryableByName)]
struct BalanceRow {
    #[diesel(sql_type = Text)]
    account_id: String,
    #[diesel(sql_type = Text)]
    asset: String,
    #[diesel(sql_type = BigInt)]
    available: i64,
    #[diesel(sql_type = BigInt)]
    reserved: i64,
    #[diesel(sql_type = BigInt)]
    ledger_available: i64,
    #[diesel(sql_type = BigInt)]
    ledger_reserved: i64,
}

#[derive(QueryableByName)]
struct OrderRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    account_id: String,
    #[diesel(sql_type = Text)]
    symbol: String,
    #[diesel(sql_type = Text)]
    side: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    qty: i64,
    #[diesel(sql_type = BigInt)]
    filled_qty: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    protection_price: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    replacing_qty: Option<i64>,
    #[diesel(sql_type = BigInt)]
    fills_qty: i64,
    #[diesel(sql_type = BigInt)]
    fills_notional: i64,
}

impl OrderRow {
    /// Its quantity, or a replace's in flight if larger: until the venue answers, either version
    /// may fill, and the order holds back enough for the larger (see `orders::replace`).
    fn most_fillable(&self) -> i64 {
        self.replacing_qty.map_or(self.qty, |new| new.max(self.qty))
    }
}

#[derive(QueryableByName)]
struct HeldRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    account_id: String,
    #[diesel(sql_type = Text)]
    asset: String,
    #[diesel(sql_type = BigInt)]
    held: i64,
}

#[derive(QueryableByName)]
struct OpeningRow {
    #[diesel(sql_type = Text)]
    account_id: String,
    #[diesel(sql_type = Text)]
    asset: String,
    #[diesel(sql_type = BigInt)]
    amount: i64,
}

#[derive(QueryableByName)]
struct FillRow {
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Text)]
    fill_id: String,
    #[diesel(sql_type = BigInt)]
    qty: i64,
    #[diesel(sql_type = BigInt)]
    price: i64,
}

#[derive(QueryableByName)]
struct PositionRow {
    #[diesel(sql_type = Text)]
    account_id: String,
    #[diesel(sql_type = Text)]
    symbol: String,
    #[diesel(sql_type = BigInt)]
    qty: i64,
    #[diesel(sql_type = BigInt)]
    avg_cost: i64,
    #[diesel(sql_type = BigInt)]
    realized_pnl: i64,
    #[diesel(sql_type = BigInt)]
    fills: i64,
}

/// A fill as a position counts it, with its place among the position's fills.
#[derive(QueryableByName)]
struct PositionFillRow {
    #[diesel(sql_type = Text)]
    account_id: String,
    #[diesel(sql_type = Text)]
    symbol: String,
    #[diesel(sql_type = Text)]
    side: String,
    #[diesel(sql_type = BigInt)]
    qty: i64,
    #[diesel(sql_type = BigInt)]
    price: i64,
    #[diesel(sql_type = BigInt)]
    position_seq: i64,
}

/// A row of an append-only table whose account or order does not exist. These tables carry no
/// foreign key on PostgreSQL (each insert would lock the parent's row), so the audit checks it.
#[derive(QueryableByName)]
struct OrphanRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    parent: String,
}

/// The rows of every append-only table that name a missing account or order, at most 100.
const ORPHANS: &str = "SELECT * FROM (\
     SELECT 'ledger_entries' AS table_name, account_id AS parent FROM ledger_entries t \
       WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = t.account_id) \
     UNION ALL SELECT 'idempotency_keys', account_id FROM idempotency_keys t \
       WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = t.account_id) \
     UNION ALL SELECT 'orders', account_id FROM orders t \
       WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = t.account_id) \
     UNION ALL SELECT 'outbox', account_id FROM outbox t \
       WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = t.account_id) \
     UNION ALL SELECT 'order_actions', order_id FROM order_actions t \
       WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = t.order_id) \
     UNION ALL SELECT 'fills', order_id FROM fills t \
       WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = t.order_id)\
     ) orphans LIMIT 100";

/// The ended statuses, as SQL: `('filled', 'canceled', 'rejected', 'expired')`.
fn terminal_statuses() -> String {
    let quoted: Vec<String> = OrderStatus::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", quoted.join(", "))
}

fn load<T: QueryableByName<diesel::sqlite::Sqlite> + QueryableByName<diesel::pg::Pg> + 'static>(
    conn: &mut DbConnection,
    query: &str,
) -> Result<Vec<T>, DbError> {
    crate::with_conn!(conn, |c| Ok(diesel::sql_query(query).load::<T>(c)?))
}

fn violation(account: &str, order: Option<&str>, detail: String) -> Violation {
    Violation {
        account_id: Some(account.to_owned()),
        order_id: order.map(str::to_owned),
        detail,
    }
}

/// Runs every check on one connection (a read-only transaction, so the figures are of one moment),
/// and against `exchange` when the exchange's record is given.
pub fn run(
    conn: &mut DbConnection,
    exchange: Result<&[VenueOrder], String>,
) -> Result<Report, DbError> {
    let started = Instant::now();
    // Every query of one snapshot, and no lock that would hold up the engine's writers.
    let checks = conn.read_transaction::<_, DbError, _>(|conn| {
        if conn.backend() == crate::db::connection::Backend::Postgres {
            // The engine's connections plan by key only (see `pool::Connector::open`); the
            // audit reads whole tables.
            conn.batch_execute(
                "SET LOCAL enable_seqscan = on; SET LOCAL enable_hashjoin = on; \
                 SET LOCAL enable_mergejoin = on; SET LOCAL jit TO DEFAULT;",
            )?;
        }
        let balances: Vec<BalanceRow> = load(
            conn,
            "SELECT b.account_id, b.asset, b.available, b.reserved, \
             CAST(COALESCE((SELECT SUM(l.available_delta) FROM ledger_entries l \
               WHERE l.account_id = b.account_id AND l.asset = b.asset), 0) AS BIGINT) AS ledger_available, \
             CAST(COALESCE((SELECT SUM(l.reserved_delta) FROM ledger_entries l \
               WHERE l.account_id = b.account_id AND l.asset = b.asset), 0) AS BIGINT) AS ledger_reserved \
             FROM balances b",
        )?;
        let orders: Vec<OrderRow> = load(
            conn,
            "SELECT o.id, o.account_id, o.symbol, o.side, o.status, o.qty, \
             o.filled_qty, o.protection_price, o.replacing_qty, \
             CAST(COALESCE(SUM(f.qty), 0) AS BIGINT) AS fills_qty, \
             CAST(COALESCE(SUM(f.qty * f.price), 0) AS BIGINT) AS fills_notional \
             FROM orders o LEFT JOIN fills f ON f.order_id = o.id GROUP BY o.id",
        )?;
        let held: Vec<HeldRow> = load(
            conn,
            &format!(
                "SELECT o.id, o.account_id, l.asset, CAST(SUM(l.reserved_delta) AS BIGINT) AS held \
                 FROM orders o JOIN ledger_entries l ON l.order_id = o.id \
                 WHERE o.status IN {} GROUP BY o.id, o.account_id, l.asset \
                 HAVING SUM(l.reserved_delta) <> 0",
                terminal_statuses()
            ),
        )?;
        let openings: Vec<OpeningRow> = load(
            conn,
            "SELECT account_id, asset, available_delta AS amount FROM ledger_entries \
             WHERE entry_key LIKE 'account:%:open:%'",
        )?;
        let orphans: Vec<OrphanRow> = load(conn, ORPHANS)?;
        let positions: Vec<PositionRow> = load(
            conn,
            "SELECT account_id, symbol, qty, avg_cost, realized_pnl, fills FROM positions",
        )?;
        let position_fills: Vec<PositionFillRow> = load(
            conn,
            "SELECT o.account_id, o.symbol, o.side, f.qty, f.price, f.position_seq \
             FROM fills f JOIN orders o ON o.id = f.order_id WHERE f.position_seq IS NOT NULL \
             ORDER BY o.account_id, o.symbol, f.position_seq",
        )?;
        let terminal_count = orders
            .iter()
            .filter(|o| is_terminal(&o.status))
            .count();
        let mut checks = vec![
            balances_equal_ledger(&balances),
            filled_qty_equals_fills(&orders),
            terminal_orders_hold_nothing(&held, terminal_count),
            reserved_equals_open_orders(&balances, &orders),
            cash_and_shares_conserved(&balances, &orders, &openings),
            every_row_names_its_parent(&orphans),
            positions_equal_fills(&positions, &position_fills),
        ];
        match exchange {
            Ok(book) => {
                let fills: Vec<FillRow> =
                    load(conn, "SELECT order_id, fill_id, qty, price FROM fills")?;
                checks.extend(against_exchange(&orders, &fills, book));
            }
            Err(why) => {
                for name in ["fills_equal_exchange", "no_unknown_exchange_orders"] {
                    checks.push(Check {
                        name,
                        rows: 0,
                        violations: Vec::new(),
                        skipped: Some(why.clone()),
                    });
                }
            }
        }
        Ok(checks)
    })?;
    let ok = checks.iter().all(|c| c.violations.is_empty());
    Ok(Report {
        ok,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        checks,
    })
}

/// A position worked out from its fills, exactly (over i128): its quantity, average cost and
/// realized profit or loss. Buys and sells that add to the position average their cost, rounded
/// to the nearer cent (the even one on a tie); those against it realize at that cost, and what is
/// left of one opens the other way at its price.
fn fold_position(fills: &[(bool, i64, i64)]) -> (i128, i128, i128) {
    let (mut qty, mut avg, mut realized) = (0i128, 0i128, 0i128);
    for (buy, n, price) in fills {
        let (n, price) = (i128::from(*n), i128::from(*price));
        let delta = if *buy { n } else { -n };
        if qty == 0 || qty.signum() == delta.signum() {
            let total = qty.abs() + n;
            let cost = qty.abs() * avg + n * price;
            let (low, rest) = (cost / total, cost % total);
            avg = if rest * 2 > total || (rest * 2 == total && low % 2 == 1) {
                low + 1
            } else {
                low
            };
            qty += delta;
        } else {
            realized += (price - avg) * n.min(qty.abs()) * qty.signum();
            let after = qty + delta;
            if after == 0 {
                avg = 0;
            } else if after.signum() != qty.signum() {
                avg = price;
            }
            qty = after;
        }
    }
    (qty, avg, realized)
}

fn positions_equal_fills(positions: &[PositionRow], fills: &[PositionFillRow]) -> Check {
    let mut folded: BTreeMap<(&str, &str), Vec<&PositionFillRow>> = BTreeMap::new();
    for fill in fills {
        let pair = (fill.account_id.as_str(), fill.symbol.as_str());
        folded.entry(pair).or_default().push(fill);
    }
    let mut wrong = Vec::new();
    for p in positions {
        let of = folded
            .remove(&(p.account_id.as_str(), p.symbol.as_str()))
            .unwrap_or_default();
        let numbered = of.iter().zip(1..).all(|(f, n)| f.position_seq == n);
        let seqs = i64::try_from(of.len()).unwrap_or(i64::MAX);
        if !numbered || seqs != p.fills {
            wrong.push(violation(
                &p.account_id,
                None,
                format!(
                    "{}: the position counts {} fills, but {} are numbered for it, or not 1 to {}",
                    p.symbol,
                    p.fills,
                    of.len(),
                    p.fills
                ),
            ));
            continue;
        }
        let trades: Vec<(bool, i64, i64)> = of
            .iter()
            .map(|f| (f.side == "buy", f.qty, f.price))
            .collect();
        let stored = (
            i128::from(p.qty),
            i128::from(p.avg_cost),
            i128::from(p.realized_pnl),
        );
        let expected = fold_position(&trades);
        if stored != expected {
            wrong.push(violation(
                &p.account_id,
                None,
                format!(
                    "{}: the position is (qty, avg cost, realized) {stored:?}, its fills fold to {expected:?}",
                    p.symbol
                ),
            ));
        }
    }
    for ((account, symbol), of) in folded {
        wrong.push(violation(
            account,
            None,
            format!(
                "{symbol}: {} fills are numbered for a position that does not exist",
                of.len()
            ),
        ));
    }
    check("positions_equal_fills", positions.len(), wrong)
}

fn is_terminal(status: &str) -> bool {
    OrderStatus::parse(status).is_some_and(OrderStatus::is_terminal)
}

fn check(name: &'static str, rows: usize, violations: Vec<Violation>) -> Check {
    Check {
        name,
        rows,
        violations,
        skipped: None,
    }
}

fn every_row_names_its_parent(orphans: &[OrphanRow]) -> Check {
    let violations = orphans
        .iter()
        .map(|o| Violation {
            account_id: None,
            order_id: None,
            detail: format!(
                "a row of {} names {}, which does not exist",
                o.table_name, o.parent
            ),
        })
        .collect();
    check("every_row_names_its_parent", orphans.len(), violations)
}

fn balances_equal_ledger(balances: &[BalanceRow]) -> Check {
    let mut wrong = Vec::new();
    for b in balances {
        if b.available != b.ledger_available || b.reserved != b.ledger_reserved {
            wrong.push(violation(
                &b.account_id,
                None,
                format!(
                    "{}: balance {} available, {} reserved; ledger sums to {} and {}",
                    b.asset, b.available, b.reserved, b.ledger_available, b.ledger_reserved
                ),
            ));
        }
        if b.available < 0 || b.reserved < 0 {
            wrong.push(violation(
                &b.account_id,
                None,
                format!(
                    "{}: below zero ({} available, {} reserved)",
                    b.asset, b.available, b.reserved
                ),
            ));
        }
    }
    check("balances_equal_ledger", balances.len(), wrong)
}

fn filled_qty_equals_fills(orders: &[OrderRow]) -> Check {
    let wrong = orders
        .iter()
        .filter(|o| o.filled_qty != o.fills_qty || o.filled_qty > o.most_fillable())
        .map(|o| {
            violation(
                &o.account_id,
                Some(&o.id),
                format!(
                    "filled_qty {} of {}, but its fills sum to {}",
                    o.filled_qty, o.qty, o.fills_qty
                ),
            )
        })
        .collect();
    check("filled_qty_equals_fills", orders.len(), wrong)
}

fn terminal_orders_hold_nothing(held: &[HeldRow], terminal: usize) -> Check {
    let wrong = held
        .iter()
        .map(|h| {
            violation(
                &h.account_id,
                Some(&h.id),
                format!("ended, yet still holds {} {} in reserve", h.held, h.asset),
            )
        })
        .collect();
    check("terminal_orders_hold_nothing", terminal, wrong)
}

fn reserved_equals_open_orders(balances: &[BalanceRow], orders: &[OrderRow]) -> Check {
    let mut expected: BTreeMap<(&str, &str), i128> = BTreeMap::new();
    for o in orders.iter().filter(|o| !is_terminal(&o.status)) {
        let unfilled = i128::from(o.most_fillable() - o.filled_qty);
        let (asset, amount) = if o.side == "buy" {
            (CASH, unfilled * i128::from(o.protection_price.unwrap_or(0)))
        } else {
            (o.symbol.as_str(), unfilled)
        };
        *expected.entry((o.account_id.as_str(), asset)).or_default() += amount;
    }
    let wrong = against_balances(
        balances,
        expected,
        |b| i128::from(b.reserved),
        |asset, reserved, should| match reserved {
            Some(reserved) => {
                format!("{asset}: {reserved} reserved, but the open orders hold back {should}")
            }
            None => format!("{asset}: the open orders hold back {should}, but there is no balance"),
        },
    );
    check("reserved_equals_open_orders", balances.len(), wrong)
}

fn cash_and_shares_conserved(
    balances: &[BalanceRow],
    orders: &[OrderRow],
    openings: &[OpeningRow],
) -> Check {
    let mut expected: BTreeMap<(&str, &str), i128> = BTreeMap::new();
    for opening in openings {
        *expected
            .entry((opening.account_id.as_str(), opening.asset.as_str()))
            .or_default() += i128::from(opening.amount);
    }
    for o in orders {
        let sign = if o.side == "buy" { 1 } else { -1 };
        let account = o.account_id.as_str();
        *expected.entry((account, o.symbol.as_str())).or_default() +=
            sign * i128::from(o.fills_qty);
        *expected.entry((account, CASH)).or_default() -= sign * i128::from(o.fills_notional);
    }
    let wrong = against_balances(
        balances,
        expected,
        |b| i128::from(b.available) + i128::from(b.reserved),
        |asset, holds, should| match holds {
            Some(holds) => {
                format!("{asset}: holds {holds}, but opening and fills come to {should}")
            }
            None => format!("{asset}: opening and fills come to {should}, but there is no balance"),
        },
    );
    check("cash_and_shares_conserved", balances.len(), wrong)
}

/// Each balance's `figure` against what it `should` be (keyed by account and asset), then what
/// `should` names that no balance holds. `says(asset, figure, should)` words each difference;
/// the figure is None when there is no balance.
fn against_balances<'a>(
    balances: &'a [BalanceRow],
    mut should: BTreeMap<(&'a str, &'a str), i128>,
    figure: fn(&BalanceRow) -> i128,
    says: fn(&str, Option<i128>, i128) -> String,
) -> Vec<Violation> {
    let mut wrong = Vec::new();
    for b in balances {
        let (is, expected) = (
            figure(b),
            should
                .remove(&(b.account_id.as_str(), b.asset.as_str()))
                .unwrap_or(0),
        );
        if is != expected {
            wrong.push(violation(
                &b.account_id,
                None,
                says(&b.asset, Some(is), expected),
            ));
        }
    }
    for ((account, asset), expected) in should.into_iter().filter(|(_, n)| *n != 0) {
        wrong.push(violation(account, None, says(asset, None, expected)));
    }
    wrong
}

/// The order a venue's client order id names (any version of its terms), if one of ours.
fn order_named(client_order_id: &str) -> Option<String> {
    ClientOrderId(client_order_id.to_owned())
        .order_id()
        .map(|order| order.to_string())
}

fn against_exchange(orders: &[OrderRow], fills: &[FillRow], book: &[VenueOrder]) -> Vec<Check> {
    let mut ours: HashMap<&str, BTreeMap<&str, (i64, i64)>> = HashMap::new();
    for f in fills {
        ours.entry(f.order_id.as_str())
            .or_default()
            .insert(f.fill_id.as_str(), (f.qty, f.price));
    }
    // By the order each names: while a replace is in flight the venue may hold the order under
    // the new version's id, which the order takes only when the answer is recorded.
    let theirs: HashMap<String, &VenueOrder> = book
        .iter()
        .filter_map(|o| Some((order_named(&o.client_order_id)?, o)))
        .collect();
    let mut wrong = Vec::new();
    for o in orders {
        let mine = ours.remove(o.id.as_str()).unwrap_or_default();
        let copy = theirs.get(&o.id);
        // A venue that reports an order's total filled but not its fills (FIX) is held to the
        // total: an ended order has exactly it, an open one no more.
        if let Some(total) = copy.filter(|e| !e.lists_its_fills()).map(|e| e.filled_qty) {
            let here: i64 = mine.values().map(|(qty, _)| qty).sum();
            if here > total || (is_terminal(&o.status) && here != total) {
                let detail = format!("{here} filled here, {total} on the exchange");
                wrong.push(violation(&o.account_id, Some(&o.id), detail));
            }
            continue;
        }
        let exchange: BTreeMap<&str, (i64, i64)> = copy
            .map(|e| {
                e.fills
                    .iter()
                    .map(|f| (f.fill_id.as_str(), (f.qty, f.price.0)))
                    .collect()
            })
            .unwrap_or_default();
        let extra: Vec<&&str> = mine
            .iter()
            .filter(|(id, fill)| exchange.get(**id) != Some(fill))
            .map(|(id, _)| id)
            .collect();
        // An open order may be a fill or two behind the exchange; an ended one never is.
        let behind = is_terminal(&o.status) && mine.len() != exchange.len();
        if !extra.is_empty() || behind {
            wrong.push(violation(
                &o.account_id,
                Some(&o.id),
                format!(
                    "{} fills here, {} on the exchange; not on the exchange as here: {extra:?}",
                    mine.len(),
                    exchange.len()
                ),
            ));
        }
    }
    let known: HashSet<&str> = orders.iter().map(|o| o.id.as_str()).collect();
    let unknown: Vec<Violation> = book
        .iter()
        .filter(|e| {
            order_named(&e.client_order_id).is_none_or(|order| !known.contains(order.as_str()))
        })
        .map(|e| Violation {
            account_id: None,
            order_id: None,
            detail: format!(
                "the exchange holds {} ({:?}), unknown here",
                e.client_order_id, e.status
            ),
        })
        .collect();
    vec![
        check("fills_equal_exchange", orders.len(), wrong),
        check("no_unknown_exchange_orders", book.len(), unknown),
    ]
}

/// What the dashboard and `/healthz` show of the last audit (no account's figures).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditVerdict {
    pub ok: bool,
    pub at: String,
    pub failing: Vec<&'static str>,
    pub violations: usize,
}

/// The last verdict of the running engine's audit, for `/healthz` and the dashboard.
#[derive(Debug, Default)]
pub struct LastVerdict(std::sync::Mutex<Option<AuditVerdict>>);

impl LastVerdict {
    pub fn get(&self) -> Option<AuditVerdict> {
        self.0.lock().ok().and_then(|last| last.clone())
    }

    fn set(&self, verdict: AuditVerdict) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some(verdict);
        }
    }
}

/// The audit of a running engine: the exchange's record is asked for first (its absence only
/// skips the checks that need it); the verdict is kept, counted in the metrics, and every
/// failing check raises an alarm.
pub async fn live(engine: &Engine, last: &LastVerdict) -> Result<Report, DbError> {
    let book = engine
        .exchange()
        .all_orders()
        .await
        .map_err(|e| format!("the exchange did not answer: {e}"));
    let report = crate::db::run(engine.pool(), move |conn| {
        run(conn, book.as_deref().map_err(Clone::clone))
    })
    .await?;
    // The alarms go in before the verdict is shown, so whoever sees a failing verdict also
    // finds its alarms.
    let raised = raise_alarms(engine, &report).await;
    engine.metrics().audited(report.violations());
    last.set(AuditVerdict {
        ok: report.ok,
        at: crate::db::rfc3339(crate::db::now_micros()),
        failing: report.failing(),
        violations: report.violations(),
    });
    raised?;
    Ok(report)
}

/// Runs the money audit every `every` until the shutdown signal; what it finds is counted, kept
/// in `last` and alarmed.
pub fn spawn_auditor(engine: Engine, last: Arc<LastVerdict>, every: Duration, shutdown: &Shutdown) {
    shutdown.spawn("money auditor", |stop| async move {
        let mut ticker = tokio::time::interval(every);
        while stop.or(ticker.tick()).await.is_some() {
            match live(&engine, &last).await {
                Ok(report) if report.ok => {
                    tracing::debug!(ms = report.duration_ms, "money audit passed")
                }
                Ok(report) => tracing::error!(
                    failing = ?report.failing(),
                    violations = report.violations(),
                    "money audit failed"
                ),
                Err(e) => tracing::warn!(error = %e, "money audit could not run"),
            }
        }
    });
}

/// One alarm per failing check, naming its first violation.
async fn raise_alarms(engine: &Engine, report: &Report) -> Result<(), DbError> {
    for failing in report.checks.iter().filter(|c| !c.violations.is_empty()) {
        let (name, first) = (failing.name, failing.violations[0].clone());
        let count = failing.violations.len();
        engine
            .writer()
            .run(move |conn| {
                let detail = format!("{count} violation(s); the first: {}", first.detail);
                let alarm = crate::db::alarms::Alarm {
                    kind: crate::db::alarms::AlarmKind::InvariantViolation,
                    order: first.order_id.as_deref().and_then(|id| id.parse().ok()),
                    subject: name,
                    detail: &detail,
                };
                crate::db::alarms::raise(conn, &alarm, crate::db::now_micros())
            })
            .await?;
    }
    Ok(())
}

/// `orderkeeper audit`: the audit of a database on its own, with the exchange's record when
/// `exchange` names it.
pub async fn offline(database_url: &str, exchange: Option<&str>) -> Result<Report, String> {
    use crate::exchange::{ExchangeClient, HttpExchange};
    let book = match exchange {
        Some(url) => HttpExchange::new(url, std::time::Duration::from_secs(10))
            .all_orders()
            .await
            .map_err(|e| format!("the exchange did not answer: {e}")),
        None => Err("no --exchange given".to_owned()),
    };
    let connector = crate::db::pool::Connector::new(database_url).map_err(|e| e.to_string())?;
    let mut conn = connector.open().map_err(|e| e.to_string())?;
    run(&mut conn, book.as_deref().map_err(Clone::clone)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::position::tests::{a_fill, fold};
    use crate::domain::{Cents, OrderId, Side, VenueFill, VenueStatus};
    use proptest::prelude::*;

    proptest! {
        /// The position the fill phases keep (`domain::position`) is the one the audit works out
        /// again on its own, over any fills.
        #[test]
        fn the_engine_s_positions_fold_as_the_audit_s(
            fills in proptest::collection::vec(a_fill(), 0..60),
            last in 1i64..=100_000,
        ) {
            let p = fold(&fills);
            let trades: Vec<(bool, i64, i64)> =
                fills.iter().map(|(side, n, price)| (*side == Side::Buy, *n, *price)).collect();
            let (qty, avg, realized) = fold_position(&trades);
            prop_assert_eq!(
                (i128::from(p.qty), i128::from(p.avg_cost.0), i128::from(p.realized.0)),
                (qty, avg, realized)
            );
            prop_assert_eq!(p.fills, fills.len() as i64);
            let unrealized = p.unrealized(Cents(last)).map(|c| i128::from(c.0));
            prop_assert_eq!(unrealized, Some((i128::from(last) - avg) * qty));
        }
    }

    #[test]
    fn a_position_that_is_not_its_fills_or_misses_one_is_a_violation() {
        let fill = |seq, side: &str, qty, price| PositionFillRow {
            account_id: "a".into(),
            symbol: "INFY".into(),
            side: side.into(),
            qty,
            price,
            position_seq: seq,
        };
        let position = |qty, avg_cost, realized_pnl, fills| PositionRow {
            account_id: "a".into(),
            symbol: "INFY".into(),
            qty,
            avg_cost,
            realized_pnl,
            fills,
        };
        let fills = [fill(1, "buy", 10, 1_000), fill(2, "sell", 4, 1_250)];
        let right = position(6, 1_000, 1_000, 2);
        assert!(positions_equal_fills(&[right], &fills)
            .violations
            .is_empty());
        for wrong in [
            position(6, 1_000, 999, 2),
            position(7, 1_000, 1_000, 2),
            position(6, 1_000, 1_000, 3),
        ] {
            let check = positions_equal_fills(&[wrong], &fills);
            assert_eq!(check.violations.len(), 1);
        }
        // A gap in the numbering, and fills numbered for no position.
        let gapped = [fill(1, "buy", 10, 1_000), fill(3, "sell", 4, 1_250)];
        let check = positions_equal_fills(&[position(6, 1_000, 1_000, 2)], &gapped);
        assert_eq!(check.violations.len(), 1);
        assert_eq!(positions_equal_fills(&[], &fills).violations.len(), 1);
    }

    fn order(id: OrderId, status: &str) -> OrderRow {
        OrderRow {
            id: id.to_string(),
            account_id: "a".into(),
            symbol: "INFY".into(),
            side: "buy".into(),
            status: status.into(),
            qty: 5,
            filled_qty: 1,
            protection_price: Some(100),
            replacing_qty: Some(8),
            fills_qty: 1,
            fills_notional: 100,
        }
    }

    fn copy(client_order_id: String) -> VenueOrder {
        VenueOrder {
            client_order_id,
            venue_order_id: Some("X1".into()),
            status: VenueStatus::PartiallyFilled,
            qty: 8,
            filled_qty: 1,
            fills: vec![VenueFill {
                fill_id: "F1".into(),
                qty: 1,
                price: Cents(100),
            }],
        }
    }

    /// While a replace is in flight the venue may list the order under the new version's id:
    /// that is the same order, with the same fills, and no order unknown here.
    #[test]
    fn the_venue_names_an_order_by_any_version_of_its_terms() {
        let id = OrderId::new();
        let orders = [order(id, "pending_replace")];
        let fills = [FillRow {
            order_id: id.to_string(),
            fill_id: "F1".into(),
            qty: 1,
            price: 100,
        }];
        let book = [copy(ClientOrderId::for_version(id, 2).to_string())];
        let checks = against_exchange(&orders, &fills, &book);
        for check in &checks {
            assert!(check.violations.is_empty(), "{check:?}");
        }
        // An order of nobody here is still unknown, and so is a version of an order not ours.
        let strangers = [
            copy("someone-else".into()),
            copy(ClientOrderId::for_version(OrderId::new(), 2).to_string()),
        ];
        let checks = against_exchange(&orders, &fills, &strangers);
        let unknown: Vec<&Check> = checks
            .iter()
            .filter(|c| c.name == "no_unknown_exchange_orders")
            .collect();
        assert_eq!(unknown[0].violations.len(), 2, "{unknown:?}");
    }

    /// A FIX venue states an order's total filled, not its fills: the order is held to the total.
    #[test]
    fn a_venue_that_states_only_the_total_is_held_to_the_total() {
        let id = OrderId::new();
        let fill = |fill_id: &str| FillRow {
            order_id: id.to_string(),
            fill_id: fill_id.into(),
            qty: 1,
            price: 100,
        };
        let total_of = |filled_qty, status| VenueOrder {
            fills: vec![],
            filled_qty,
            status,
            ..copy(ClientOrderId::for_version(id, 1).to_string())
        };
        let wrong = |status: &str, fills: &[FillRow], copy: VenueOrder| {
            against_exchange(&[order(id, status)], fills, &[copy])[0]
                .violations
                .len()
        };
        let open = VenueStatus::PartiallyFilled;
        assert_eq!(
            wrong("partially_filled", &[fill("F1")], total_of(1, open)),
            0
        );
        assert_eq!(
            wrong("partially_filled", &[fill("F1")], total_of(2, open)),
            0,
            "a fill behind"
        );
        assert_eq!(
            wrong(
                "partially_filled",
                &[fill("F1"), fill("F2")],
                total_of(1, open)
            ),
            1
        );
        let filled = VenueStatus::Filled;
        assert_eq!(
            wrong("filled", &[fill("F1"), fill("F2")], total_of(2, filled)),
            0
        );
        assert_eq!(
            wrong("filled", &[fill("F1")], total_of(2, filled)),
            1,
            "ended short"
        );
    }
}
