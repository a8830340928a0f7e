//! The books checker: every invariant of the engine's promise, read straight from its database
//! and the exchange's own record, written independently of the engine's code. A Jepsen-style bank
//! check: it returns what is wrong rather than stopping at the first problem.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use orderkeeper::db::connection::{self, Backend};
use orderkeeper::db::DbConnection;
use serde_json::Value;

use crate::shared::cents;

/// What an account opened with: cash in cents and shares per symbol.
#[derive(Debug, Clone)]
pub struct Opening {
    pub cash: i64,
    pub shares: BTreeMap<String, i64>,
}

#[derive(QueryableByName)]
struct OrderRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    account_id: String,
    #[diesel(sql_type = Text)]
    client_order_id: String,
    #[diesel(sql_type = Text)]
    symbol: String,
    #[diesel(sql_type = Text)]
    side: String,
    #[diesel(sql_type = BigInt)]
    qty: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    protection_price: Option<i64>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    filled_qty: i64,
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
struct Amounts {
    #[diesel(sql_type = Text)]
    account_id: String,
    #[diesel(sql_type = Text)]
    asset: String,
    #[diesel(sql_type = BigInt)]
    available: i64,
    #[diesel(sql_type = BigInt)]
    reserved: i64,
}

#[derive(QueryableByName)]
struct Seq {
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

/// (fill id, qty, price in cents), sorted.
type Fills = Vec<(String, i64, i64)>;

fn exchange_fills(order: &Value) -> Fills {
    let mut fills: Fills = order["fills"]
        .as_array()
        .map(|fills| {
            fills
                .iter()
                .map(|f| {
                    (
                        f["fill_id"].as_str().unwrap_or_default().to_owned(),
                        f["qty"].as_i64().unwrap_or(0),
                        cents(&f["price"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    fills.sort();
    fills
}

/// Checks the books of `database_url` against the exchange's record (`exchange_orders`, as its
/// `GET /orders` lists them) and each account's opening. With `all_ended`, every order must be
/// terminal too. Returns every violation found.
pub fn check(
    database_url: &str,
    exchange_orders: &[Value],
    openings: &HashMap<String, Opening>,
    all_ended: bool,
) -> Vec<String> {
    let mut conn = connection::establish(database_url).expect("the database opens");
    // One read-only snapshot, consistent even while an engine still writes.
    let begin = match conn.backend() {
        Backend::Sqlite => "BEGIN",
        Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    };
    conn.batch_execute(begin).expect("a read transaction");
    let wrong = check_snapshot(&mut conn, exchange_orders, openings, all_ended);
    let _ = conn.batch_execute("COMMIT");
    wrong
}

/// Runs a query of plain SQL on either backend.
fn rows<T: QueryableByName<diesel::sqlite::Sqlite> + QueryableByName<diesel::pg::Pg> + 'static>(
    conn: &mut DbConnection,
    sql: &str,
) -> Vec<T> {
    orderkeeper::with_conn!(conn, |c| diesel::sql_query(sql).load::<T>(c))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn check_snapshot(
    conn: &mut DbConnection,
    exchange_orders: &[Value],
    openings: &HashMap<String, Opening>,
    all_ended: bool,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let orders: Vec<OrderRow> = rows(conn, "SELECT id, account_id, client_order_id, symbol, side, qty, protection_price, status, filled_qty FROM orders");
    let fills: Vec<FillRow> = rows(conn, "SELECT order_id, fill_id, qty, price FROM fills");
    let balances: Vec<Amounts> = rows(
        conn,
        "SELECT account_id, asset, available, reserved FROM balances",
    );
    let ledger: Vec<Amounts> = rows(conn, "SELECT account_id, asset, CAST(SUM(available_delta) AS BIGINT) AS available, CAST(SUM(reserved_delta) AS BIGINT) AS reserved
         FROM ledger_entries GROUP BY account_id, asset");
    let seqs: Vec<Seq> = rows(
        conn,
        "SELECT order_id, seq FROM order_actions ORDER BY order_id, seq",
    );

    let mut fills_of: HashMap<&str, Fills> = HashMap::new();
    for f in &fills {
        fills_of
            .entry(f.order_id.as_str())
            .or_default()
            .push((f.fill_id.clone(), f.qty, f.price));
    }
    let exchange_by_cid: HashMap<&str, &Value> = exchange_orders
        .iter()
        .filter_map(|o| Some((o["client_order_id"].as_str()?, o)))
        .collect();

    // Per account and asset: what the fills say the account holds, and what open orders hold back.
    let mut expected: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut reserved: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (account, opening) in openings {
        expected.insert((account.clone(), "CASH".into()), opening.cash);
        for (symbol, qty) in &opening.shares {
            expected.insert((account.clone(), symbol.clone()), *qty);
        }
    }
    let mut known_cids = HashSet::new();
    for order in &orders {
        known_cids.insert(order.client_order_id.as_str());
        let id = &order.id;
        let mut ours = fills_of.remove(id.as_str()).unwrap_or_default();
        ours.sort();
        let theirs = exchange_by_cid
            .get(order.client_order_id.as_str())
            .map(|o| exchange_fills(o))
            .unwrap_or_default();
        if ours != theirs {
            wrong.push(format!(
                "order {id}: engine fills {ours:?}, exchange fills {theirs:?}"
            ));
        }
        let filled: i64 = ours.iter().map(|f| f.1).sum();
        if filled != order.filled_qty || filled > order.qty {
            wrong.push(format!(
                "order {id}: filled_qty {} of {}, fills sum to {filled}",
                order.filled_qty, order.qty
            ));
        }
        let terminal = ["filled", "canceled", "rejected"].contains(&order.status.as_str());
        if all_ended && !terminal {
            wrong.push(format!("order {id} is still {}", order.status));
        }
        let value: i64 = ours.iter().map(|f| f.1 * f.2).sum();
        let account = &order.account_id;
        let cash = expected
            .entry((account.clone(), "CASH".into()))
            .or_default();
        let buy = order.side == "buy";
        *cash += if buy { -value } else { value };
        *expected
            .entry((account.clone(), order.symbol.clone()))
            .or_default() += if buy { filled } else { -filled };
        if !terminal {
            let remaining = order.qty - order.filled_qty;
            let (asset, amount) = if buy {
                (
                    "CASH".to_owned(),
                    remaining * order.protection_price.unwrap_or(0),
                )
            } else {
                (order.symbol.clone(), remaining)
            };
            *reserved.entry((account.clone(), asset)).or_default() += amount;
        }
    }
    for (order, _) in fills_of {
        wrong.push(format!("fills of an order that does not exist: {order}"));
    }
    let ghosts: Vec<&&str> = exchange_by_cid
        .keys()
        .filter(|cid| !known_cids.contains(**cid))
        .collect();
    if !ghosts.is_empty() {
        wrong.push(format!(
            "the exchange holds orders the engine does not know: {ghosts:?}"
        ));
    }

    let ledger: HashMap<(String, String), (i64, i64)> = ledger
        .into_iter()
        .map(|l| ((l.account_id, l.asset), (l.available, l.reserved)))
        .collect();
    let mut seen = HashSet::new();
    for b in &balances {
        let key = (b.account_id.clone(), b.asset.clone());
        seen.insert(key.clone());
        if b.available < 0 || b.reserved < 0 {
            wrong.push(format!(
                "{key:?} is negative: {} / {}",
                b.available, b.reserved
            ));
        }
        if ledger.get(&key) != Some(&(b.available, b.reserved)) {
            wrong.push(format!(
                "{key:?}: balance {} / {} but the ledger sums to {:?}",
                b.available,
                b.reserved,
                ledger.get(&key)
            ));
        }
        if openings.contains_key(&b.account_id) {
            let held = b.available + b.reserved;
            let want = expected.get(&key).copied().unwrap_or(0);
            if held != want {
                wrong.push(format!(
                    "{key:?}: holds {held}, opening and fills say {want}"
                ));
            }
            let want_reserved = reserved.get(&key).copied().unwrap_or(0);
            if b.reserved != want_reserved {
                wrong.push(format!(
                    "{key:?}: {} reserved, open orders hold back {want_reserved}",
                    b.reserved
                ));
            }
        }
    }
    for (key, amount) in &expected {
        if *amount != 0 && !seen.contains(key) {
            wrong.push(format!("{key:?}: no balance, fills say {amount}"));
        }
    }

    let mut last: HashMap<&str, i64> = HashMap::new();
    for s in &seqs {
        let before = last.insert(s.order_id.as_str(), s.seq).unwrap_or(0);
        if s.seq != before + 1 {
            wrong.push(format!(
                "order {}: action seq {} after {before}",
                s.order_id, s.seq
            ));
        }
    }
    wrong
}
