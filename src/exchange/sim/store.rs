//! The simulator's book on disk: a SQLite file of its own, written before the simulator answers
//! or pushes anything, so a restarted simulator knows every order, fill and tombstone it ever told
//! anyone about. A real venue outlives a broker's crash; with this, the embedded one does too.
//!
//! Each order is one row holding its request and its current state as JSON; the counters that
//! name new orders, fills and push events are one row, so no id is handed out twice across
//! restarts. `synchronous = FULL`, as for the engine's own SQLite file: what was answered survives
//! a power loss as well as `kill -9`.

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;

use crate::domain::Cents;
use crate::exchange::wire::{ExchangeOrder, PlaceOrder};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the exchange's book file: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("cannot open the exchange's book file {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("a stored order cannot be read: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// One order as stored: the id it was first placed under, where it stands in arrival order, what
/// was asked (its latest terms), and where it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOrder {
    pub key: String,
    pub arrival: i64,
    pub request: PlaceOrder,
    pub order: ExchangeOrder,
}

/// The counters behind new order, fill and push event ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub next_order: u64,
    pub next_fill: u64,
    pub next_event: u64,
}

/// What the book changed since it was last saved.
#[derive(Debug, Default)]
pub struct Changes {
    pub orders: Vec<StoredOrder>,
    pub tombstones: Vec<String>,
    /// (an id an order took by a replace, the id it is kept under)
    pub aliases: Vec<(String, String)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty() && self.tombstones.is_empty() && self.aliases.is_empty()
    }
}

/// Everything a restarted simulator starts from.
#[derive(Debug, Default)]
pub struct Saved {
    /// In arrival order.
    pub orders: Vec<StoredOrder>,
    pub tombstones: Vec<String>,
    pub aliases: Vec<(String, String)>,
    pub counters: Counters,
    pub prices: Vec<(String, Cents)>,
}

pub struct BookStore {
    conn: SqliteConnection,
}

#[derive(QueryableByName)]
struct OrderRow {
    #[diesel(sql_type = Text)]
    client_order_id: String,
    #[diesel(sql_type = BigInt)]
    arrival: i64,
    #[diesel(sql_type = Text)]
    request: String,
    #[diesel(sql_type = Text)]
    state: String,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    client_order_id: String,
}

#[derive(QueryableByName)]
struct AliasRow {
    #[diesel(sql_type = Text)]
    client_order_id: String,
    #[diesel(sql_type = Text)]
    order_key: String,
}

#[derive(QueryableByName)]
struct CountersRow {
    #[diesel(sql_type = BigInt)]
    next_order: i64,
    #[diesel(sql_type = BigInt)]
    next_fill: i64,
    #[diesel(sql_type = BigInt)]
    next_event: i64,
}

#[derive(QueryableByName)]
struct PriceRow {
    #[diesel(sql_type = Text)]
    symbol: String,
    #[diesel(sql_type = BigInt)]
    cents: i64,
}

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = FULL;
    CREATE TABLE IF NOT EXISTS sim_orders (
        client_order_id TEXT PRIMARY KEY NOT NULL,
        arrival BIGINT NOT NULL,
        request TEXT NOT NULL,
        state TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS sim_tombstones (client_order_id TEXT PRIMARY KEY NOT NULL);
    CREATE TABLE IF NOT EXISTS sim_aliases (
        client_order_id TEXT PRIMARY KEY NOT NULL,
        order_key TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS sim_counters (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        next_order BIGINT NOT NULL,
        next_fill BIGINT NOT NULL,
        next_event BIGINT NOT NULL
    );
    INSERT OR IGNORE INTO sim_counters VALUES (1, 0, 0, 0);
    CREATE TABLE IF NOT EXISTS sim_prices (symbol TEXT PRIMARY KEY NOT NULL, cents BIGINT NOT NULL);
";

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl BookStore {
    /// Opens (or creates) the book file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: path.display().to_string(),
            reason,
        };
        let url = path
            .to_str()
            .ok_or_else(|| open_error("not UTF-8".into()))?;
        let mut conn = SqliteConnection::establish(url).map_err(|e| open_error(e.to_string()))?;
        conn.batch_execute(SCHEMA)
            .map_err(|e| open_error(e.to_string()))?;
        Ok(Self { conn })
    }

    pub fn load(&mut self) -> Result<Saved, StoreError> {
        let conn = &mut self.conn;
        let orders = diesel::sql_query(
            "SELECT client_order_id, arrival, request, state FROM sim_orders ORDER BY arrival",
        )
        .load::<OrderRow>(conn)?
        .into_iter()
        .map(|row| {
            Ok(StoredOrder {
                key: row.client_order_id,
                arrival: row.arrival,
                request: serde_json::from_str(&row.request)?,
                order: serde_json::from_str(&row.state)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
        let tombstones = diesel::sql_query("SELECT client_order_id FROM sim_tombstones")
            .load::<IdRow>(conn)?
            .into_iter()
            .map(|row| row.client_order_id)
            .collect();
        let aliases = diesel::sql_query("SELECT client_order_id, order_key FROM sim_aliases")
            .load::<AliasRow>(conn)?
            .into_iter()
            .map(|row| (row.client_order_id, row.order_key))
            .collect();
        let counters = diesel::sql_query(
            "SELECT next_order, next_fill, next_event FROM sim_counters WHERE id = 1",
        )
        .get_result::<CountersRow>(conn)?;
        let prices = diesel::sql_query("SELECT symbol, cents FROM sim_prices")
            .load::<PriceRow>(conn)?
            .into_iter()
            .map(|row| (row.symbol, Cents(row.cents)))
            .collect();
        Ok(Saved {
            orders,
            tombstones,
            aliases,
            counters: Counters {
                next_order: unsigned(counters.next_order),
                next_fill: unsigned(counters.next_fill),
                next_event: unsigned(counters.next_event),
            },
            prices,
        })
    }

    /// Writes `changes` and the counters in one transaction.
    pub fn save(&mut self, changes: &Changes, counters: Counters) -> Result<(), StoreError> {
        self.conn.immediate_transaction(|conn| {
            for stored in &changes.orders {
                diesel::sql_query(
                    "INSERT INTO sim_orders (client_order_id, arrival, request, state) \
                     VALUES (?, ?, ?, ?) \
                     ON CONFLICT (client_order_id) DO UPDATE \
                     SET request = excluded.request, state = excluded.state",
                )
                .bind::<Text, _>(&stored.key)
                .bind::<BigInt, _>(stored.arrival)
                .bind::<Text, _>(serde_json::to_string(&stored.request)?)
                .bind::<Text, _>(serde_json::to_string(&stored.order)?)
                .execute(conn)?;
            }
            for id in &changes.tombstones {
                diesel::sql_query("INSERT OR IGNORE INTO sim_tombstones VALUES (?)")
                    .bind::<Text, _>(id)
                    .execute(conn)?;
            }
            for (id, key) in &changes.aliases {
                diesel::sql_query("INSERT OR IGNORE INTO sim_aliases VALUES (?, ?)")
                    .bind::<Text, _>(id)
                    .bind::<Text, _>(key)
                    .execute(conn)?;
            }
            diesel::sql_query(
                "UPDATE sim_counters SET next_order = ?, next_fill = ?, next_event = ? WHERE id = 1",
            )
            .bind::<BigInt, _>(signed(counters.next_order))
            .bind::<BigInt, _>(signed(counters.next_fill))
            .bind::<BigInt, _>(signed(counters.next_event))
            .execute(conn)?;
            Ok(())
        })
    }

    pub fn save_prices<'a>(
        &mut self,
        prices: impl IntoIterator<Item = (&'a String, &'a Cents)>,
    ) -> Result<(), StoreError> {
        self.conn.immediate_transaction(|conn| {
            for (symbol, cents) in prices {
                diesel::sql_query(
                    "INSERT INTO sim_prices VALUES (?, ?) \
                     ON CONFLICT (symbol) DO UPDATE SET cents = excluded.cents",
                )
                .bind::<Text, _>(symbol)
                .bind::<BigInt, _>(cents.0)
                .execute(conn)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderType, Side};
    use crate::exchange::wire::{ExchangeFill, ExchangeStatus};

    fn stored(id: &str, arrival: i64, filled: i64) -> StoredOrder {
        StoredOrder {
            key: id.into(),
            arrival,
            request: PlaceOrder {
                client_order_id: id.into(),
                symbol: "INFY".into(),
                side: Side::Buy,
                order_type: OrderType::Limit,
                qty: 10,
                limit_price: Some(Cents(100)),
                time_in_force: Default::default(),
            },
            order: ExchangeOrder {
                client_order_id: id.into(),
                orig_client_order_id: None,
                exchange_order_id: Some(format!("X{arrival}")),
                status: ExchangeStatus::PartiallyFilled,
                qty: 10,
                filled_qty: filled,
                fills: vec![ExchangeFill {
                    fill_id: format!("F{arrival}"),
                    qty: filled,
                    price: Cents(100),
                    ts: "2026-01-01T00:00:00Z".into(),
                }],
                updated_at: Some("2026-01-01T00:00:00Z".into()),
            },
        }
    }

    #[test]
    fn what_was_saved_is_loaded_again_by_a_new_store_on_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("book.db");
        let counters = Counters {
            next_order: 7,
            next_fill: 9,
            next_event: 11,
        };
        let mut replaced = stored("b", 2, 4);
        replaced.request.client_order_id = "b2".into();
        replaced.request.qty = 12;
        replaced.order.client_order_id = "b2".into();
        replaced.order.orig_client_order_id = Some("b".into());
        replaced.order.qty = 12;
        {
            let mut store = BookStore::open(&path).unwrap();
            let first = Changes {
                orders: vec![stored("b", 2, 1), stored("a", 1, 1)],
                tombstones: vec!["t".into()],
                aliases: Vec::new(),
            };
            store.save(&first, Counters::default()).unwrap();
            // A later state of one order replaces the earlier one; a replace gives it new terms
            // under a new id, kept under its first.
            let later = Changes {
                orders: vec![replaced.clone()],
                tombstones: vec!["t".into()],
                aliases: vec![("b2".into(), "b".into())],
            };
            store.save(&later, counters).unwrap();
            let prices = [("INFY".to_owned(), Cents(152_050))];
            store
                .save_prices(prices.iter().map(|(s, c)| (s, c)))
                .unwrap();
        }
        let saved = BookStore::open(&path).unwrap().load().unwrap();
        assert_eq!(saved.orders, vec![stored("a", 1, 1), replaced]);
        assert_eq!(saved.tombstones, vec!["t".to_owned()]);
        assert_eq!(saved.aliases, vec![("b2".to_owned(), "b".to_owned())]);
        assert_eq!(saved.counters, counters);
        assert_eq!(saved.prices, vec![("INFY".to_owned(), Cents(152_050))]);
    }
}
