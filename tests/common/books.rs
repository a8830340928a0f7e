//! The books checker: every invariant of the engine's promise, read straight from its database
//! and the exchange's own record, on a connection of its own and written independently of the
//! engine's code. A Jepsen-style bank check: it returns what is wrong rather than stopping at the
//! first problem.
//!
//! Two moments. [`check`] is for a quiet system: every order has ended and the venue has nothing
//! more to say, so the engine must agree with the venue exactly. [`check_live`] runs while orders
//! are open and the engine may still be catching up with the venue: it reads the venue, then one
//! snapshot of the engine, then the venue again, and asks only what must hold at any instant.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;

use diesel::connection::SimpleConnection;
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::sqlite::{Sqlite, SqliteConnection};
use serde_json::Value;

use crate::shared::cents;

/// What an account opened with: cash in cents and shares per symbol.
#[derive(Debug, Clone)]
pub struct Opening {
    pub cash: i64,
    pub shares: BTreeMap<String, i64>,
}

#[derive(QueryableByName)]
struct Account {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    name: String,
}

/// Every account of the database: (id, name).
pub fn accounts(database_url: &str) -> Vec<(String, String)> {
    Reader::open(database_url)
        .rows::<Account>("SELECT id, name FROM accounts")
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect()
}

/// Checks the books of a quiet system: every order has ended, and the engine's fills and statuses
/// equal the exchange's record (`exchange_orders`, as its `GET /orders` lists them).
pub fn check(
    database_url: &str,
    exchange_orders: &[Value],
    openings: &HashMap<String, Opening>,
) -> Vec<String> {
    let venue = Venue::read(exchange_orders);
    let mut wrong = venue.wrong.clone();
    wrong.extend(Snapshot::take(database_url).check(&venue, &venue, openings, Moment::Ended));
    wrong
}

/// Checks the books while orders are open: reserved equals what the open orders hold back, each
/// engine fill is one the venue made, every order the venue held before the snapshot is known to
/// the engine, and no order the engine has ended is still open on the venue.
pub async fn check_live<F, Fut>(
    database_url: &str,
    read_exchange: F,
    openings: &HashMap<String, Opening>,
) -> Vec<String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<Value>>,
{
    let before = Venue::read(&read_exchange().await);
    let snapshot = Snapshot::take(database_url);
    let after = Venue::read(&read_exchange().await);
    let mut wrong = before.wrong.clone();
    wrong.extend(snapshot.check(&before, &after, openings, Moment::Live));
    wrong
}

#[derive(Clone, Copy, PartialEq)]
enum Moment {
    Live,
    Ended,
}

/// (fill id, qty, price in cents), sorted.
type Fills = Vec<(String, i64, i64)>;

struct VenueOrder {
    /// The id of the version of its terms the venue holds.
    client_order_id: String,
    status: String,
    fills: Fills,
}

/// The venue's record by the order each of its orders names (any version of its terms), or by
/// its client order id when it names none of ours; and what is wrong with the record itself.
struct Venue {
    orders: HashMap<String, VenueOrder>,
    wrong: Vec<String>,
}

impl Venue {
    fn read(orders: &[Value]) -> Venue {
        let mut venue = Venue {
            orders: HashMap::new(),
            wrong: Vec::new(),
        };
        for order in orders {
            let Some(cid) = order["client_order_id"].as_str().filter(|c| !c.is_empty()) else {
                venue.wrong.push(format!(
                    "the exchange holds an order with no client order id: {order}"
                ));
                continue;
            };
            let mut fills: Fills = order["fills"]
                .as_array()
                .map(|fills| {
                    fills
                        .iter()
                        .map(|f| {
                            let id = f["fill_id"].as_str().unwrap_or_default().to_owned();
                            (id, f["qty"].as_i64().unwrap_or(0), cents(&f["price"]))
                        })
                        .collect()
                })
                .unwrap_or_default();
            fills.sort();
            let status = order["status"].as_str().unwrap_or_default().to_owned();
            let named = orderkeeper::domain::ClientOrderId(cid.to_owned()).order_id();
            let key = named.map_or_else(|| cid.to_owned(), |order| order.to_string());
            let client_order_id = cid.to_owned();
            let copy = VenueOrder {
                client_order_id,
                status,
                fills,
            };
            if venue.orders.insert(key, copy).is_some() {
                venue
                    .wrong
                    .push(format!("the exchange holds two orders for {cid}'s order"));
            }
        }
        venue
    }
}

fn is_terminal(status: &str) -> bool {
    ["filled", "canceled", "rejected", "expired"].contains(&status)
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
    /// The quantity a replace in flight asks for: until the venue answers, either version fills.
    #[diesel(sql_type = Nullable<BigInt>)]
    replacing_qty: Option<i64>,
}

impl OrderRow {
    fn most_fillable(&self) -> i64 {
        self.replacing_qty.map_or(self.qty, |new| new.max(self.qty))
    }
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

#[derive(QueryableByName)]
struct StoredKey {
    #[diesel(sql_type = Text)]
    account_id: String,
    #[diesel(sql_type = Text)]
    idem_key: String,
    #[diesel(sql_type = Integer)]
    status_code: i32,
    #[diesel(sql_type = Nullable<Text>)]
    location: Option<String>,
    #[diesel(sql_type = Text)]
    response_body: String,
}

/// A connection of the checker's own, made with diesel directly rather than the engine's code.
enum Reader {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Reader {
    fn open(database_url: &str) -> Reader {
        if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            let mut conn = PgConnection::establish(database_url)
                .unwrap_or_else(|e| panic!("the books checker connects to {database_url}: {e}"));
            // One read-only snapshot, consistent even while an engine still writes.
            conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .expect("a read transaction");
            Reader::Postgres(conn)
        } else {
            let path = database_url
                .strip_prefix("sqlite://")
                .unwrap_or(database_url);
            let mut conn = SqliteConnection::establish(path)
                .unwrap_or_else(|e| panic!("the books checker opens {path}: {e}"));
            // In WAL mode a read transaction sees one snapshot from its first read.
            conn.batch_execute("PRAGMA busy_timeout = 10000; BEGIN")
                .expect("a read transaction");
            Reader::Sqlite(conn)
        }
    }

    fn rows<T: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static>(
        &mut self,
        sql: &str,
    ) -> Vec<T> {
        let rows = match self {
            Reader::Sqlite(c) => diesel::sql_query(sql).load::<T>(c),
            Reader::Postgres(c) => diesel::sql_query(sql).load::<T>(c),
        };
        rows.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// Everything the checker reads from the engine's database, from one read transaction.
struct Snapshot {
    orders: Vec<OrderRow>,
    fills: Vec<FillRow>,
    balances: Vec<Amounts>,
    ledger: Vec<Amounts>,
    seqs: Vec<Seq>,
    keys: Vec<StoredKey>,
}

impl Snapshot {
    fn take(database_url: &str) -> Snapshot {
        let mut conn = Reader::open(database_url);
        Snapshot {
            orders: conn.rows("SELECT id, account_id, client_order_id, symbol, side, qty, protection_price, status, filled_qty, replacing_qty FROM orders"),
            fills: conn.rows("SELECT order_id, fill_id, qty, price FROM fills"),
            balances: conn.rows("SELECT account_id, asset, available, reserved FROM balances"),
            ledger: conn.rows(
                "SELECT account_id, asset, CAST(SUM(available_delta) AS BIGINT) AS available,
                        CAST(SUM(reserved_delta) AS BIGINT) AS reserved
                 FROM ledger_entries GROUP BY account_id, asset",
            ),
            seqs: conn.rows("SELECT order_id, seq FROM order_actions ORDER BY order_id, seq"),
            keys: conn.rows(
                "SELECT account_id, idem_key, status_code, location, response_body FROM idempotency_keys",
            ),
        }
    }

    fn check(
        &self,
        before: &Venue,
        after: &Venue,
        openings: &HashMap<String, Opening>,
        moment: Moment,
    ) -> Vec<String> {
        let mut wrong = Vec::new();
        self.check_orders(before, after, moment, &mut wrong);
        self.check_keys(&mut wrong);
        self.check_money(openings, &mut wrong);
        self.check_seqs(&mut wrong);
        wrong
    }

    /// Fills, statuses and client order ids against the venue's record.
    fn check_orders(&self, before: &Venue, after: &Venue, moment: Moment, wrong: &mut Vec<String>) {
        let mut fills_of: HashMap<&str, Fills> = HashMap::new();
        for f in &self.fills {
            fills_of.entry(f.order_id.as_str()).or_default().push((
                f.fill_id.clone(),
                f.qty,
                f.price,
            ));
        }
        let mut known_cids = HashSet::new();
        for order in &self.orders {
            let id = &order.id;
            if !known_cids.insert(order.client_order_id.as_str()) {
                wrong.push(format!(
                    "two orders share client order id {}",
                    order.client_order_id
                ));
            }
            let mut ours = fills_of.remove(id.as_str()).unwrap_or_default();
            ours.sort();
            let venue = after.orders.get(id);
            // While a replace is in flight the venue may hold the new version; once the order
            // has ended, the engine holds the venue's terms.
            if let Some(v) = venue.filter(|_| is_terminal(&order.status)) {
                if v.client_order_id != order.client_order_id {
                    wrong.push(format!(
                        "order {id} ended as {}, the exchange holds it as {}",
                        order.client_order_id, v.client_order_id
                    ));
                }
            }
            let theirs = venue.map(|v| v.fills.clone()).unwrap_or_default();
            let agree = match moment {
                Moment::Ended => ours == theirs,
                Moment::Live => ours.iter().all(|f| theirs.contains(f)),
            };
            if !agree {
                wrong.push(format!(
                    "order {id}: engine fills {ours:?}, exchange fills {theirs:?}"
                ));
            }
            let filled: i64 = ours.iter().map(|f| f.1).sum();
            if filled != order.filled_qty || filled > order.most_fillable() {
                wrong.push(format!(
                    "order {id}: filled_qty {} of {}, fills sum to {filled}",
                    order.filled_qty, order.qty
                ));
            }
            let status = order.status.as_str();
            if status == "filled" && order.filled_qty != order.qty {
                wrong.push(format!(
                    "order {id} is filled with {} of {}",
                    order.filled_qty, order.qty
                ));
            }
            if moment == Moment::Ended && !is_terminal(status) {
                wrong.push(format!("order {id} is still {status}"));
            }
            if is_terminal(status) {
                // An order the engine has ended is ended on the venue the same way; one never
                // sent may be absent there.
                let agrees = match venue {
                    None => status != "filled",
                    Some(v) => v.status == status,
                };
                if !agrees {
                    let there = venue.map_or("absent", |v| v.status.as_str());
                    wrong.push(format!(
                        "order {id} is {status} in the engine, {there} on the exchange"
                    ));
                }
            }
        }
        for order in fills_of.keys() {
            wrong.push(format!("fills of an order that does not exist: {order}"));
        }
        let known_ids: HashSet<&str> = self.orders.iter().map(|o| o.id.as_str()).collect();
        let mut ghosts: Vec<&String> = before
            .orders
            .iter()
            .filter(|(key, _)| !known_ids.contains(key.as_str()))
            .map(|(_, copy)| &copy.client_order_id)
            .collect();
        ghosts.sort();
        if !ghosts.is_empty() {
            wrong.push(format!(
                "the exchange holds orders the engine does not know: {ghosts:?}"
            ));
        }
    }

    /// One order per key: each stored 201 names one order of its own account, and each order is
    /// named by exactly one key. (No test here lets a key expire, so every order still has its key.)
    fn check_keys(&self, wrong: &mut Vec<String>) {
        let account_of: HashMap<&str, &str> = self
            .orders
            .iter()
            .map(|o| (o.id.as_str(), o.account_id.as_str()))
            .collect();
        let mut named: HashMap<&str, usize> = HashMap::new();
        for key in &self.keys {
            let who = format!("key {} of {}", key.idem_key, key.account_id);
            if key.status_code != 201 {
                if key.location.is_some() {
                    wrong.push(format!(
                        "{who}: answered {} yet names {:?}",
                        key.status_code, key.location
                    ));
                }
                continue;
            }
            let id = key
                .location
                .as_deref()
                .and_then(|l| l.strip_prefix("/v1/orders/"));
            let Some(id) = id else {
                wrong.push(format!("{who}: 201 with location {:?}", key.location));
                continue;
            };
            let body_id = serde_json::from_str::<Value>(&key.response_body)
                .ok()
                .and_then(|b| b["id"].as_str().map(str::to_owned));
            if body_id.as_deref() != Some(id) {
                wrong.push(format!(
                    "{who}: location names {id}, the stored body {body_id:?}"
                ));
            }
            match account_of.get(id) {
                None => wrong.push(format!("{who} names {id}, which does not exist")),
                Some(account) if *account != key.account_id => {
                    wrong.push(format!("{who} names {id} of account {account}"))
                }
                Some(_) => *named.entry(id).or_default() += 1,
            }
        }
        for order in &self.orders {
            match named.get(order.id.as_str()).copied().unwrap_or(0) {
                1 => {}
                n => wrong.push(format!("order {} is named by {n} keys", order.id)),
            }
        }
    }

    /// Cash and shares conserved from the openings and the fills; balances equal the ledger, none
    /// negative; reserved equals what the open orders hold back.
    fn check_money(&self, openings: &HashMap<String, Opening>, wrong: &mut Vec<String>) {
        let mut expected: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut reserved: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (account, opening) in openings {
            expected.insert((account.clone(), "CASH".into()), opening.cash);
            for (symbol, qty) in &opening.shares {
                expected.insert((account.clone(), symbol.clone()), *qty);
            }
        }
        let mut value_of: HashMap<&str, (i64, i64)> = HashMap::new();
        for f in &self.fills {
            let v = value_of.entry(f.order_id.as_str()).or_default();
            v.0 += f.qty;
            v.1 += f.qty * f.price;
        }
        for order in &self.orders {
            let (filled, value) = value_of.get(order.id.as_str()).copied().unwrap_or_default();
            let account = &order.account_id;
            let buy = order.side == "buy";
            *expected
                .entry((account.clone(), "CASH".into()))
                .or_default() += if buy { -value } else { value };
            *expected
                .entry((account.clone(), order.symbol.clone()))
                .or_default() += if buy { filled } else { -filled };
            if !is_terminal(&order.status) {
                let remaining = order.most_fillable() - order.filled_qty;
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
        let ledger: HashMap<(String, String), (i64, i64)> = self
            .ledger
            .iter()
            .map(|l| {
                (
                    (l.account_id.clone(), l.asset.clone()),
                    (l.available, l.reserved),
                )
            })
            .collect();
        let mut seen = HashSet::new();
        for b in &self.balances {
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
        for (key, amount) in &reserved {
            if *amount != 0 && !seen.contains(key) {
                wrong.push(format!(
                    "{key:?}: no balance, open orders hold back {amount}"
                ));
            }
        }
    }

    /// Each order's action seqs run 1, 2, 3… without a gap.
    fn check_seqs(&self, wrong: &mut Vec<String>) {
        let mut last: HashMap<&str, i64> = HashMap::new();
        for s in &self.seqs {
            let before = last.insert(s.order_id.as_str(), s.seq).unwrap_or(0);
            if s.seq != before + 1 {
                wrong.push(format!(
                    "order {}: action seq {} after {before}",
                    s.order_id, s.seq
                ));
            }
        }
    }
}
