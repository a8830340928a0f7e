//! Orders (the read projection), their action logs and their fills.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use super::connection::{text_literal, value_rows, Inner};
use super::prepared::{prepared, NoColumns};
use super::DbConnection;

use super::schema::{fills, order_actions, orders};
use super::DbError;
use crate::domain::{
    AccountId, Action, ActionKind, Cents, ClientOrderId, FillSource, OrderId, OrderState,
    OrderStatus, OrderType, Side, Symbol, TimeInForce, CASH,
};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct OrderRow {
    pub id: OrderId,
    pub account_id: AccountId,
    pub client_order_id: ClientOrderId,
    pub symbol: Symbol,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: i64,
    pub limit_price: Option<Cents>,
    /// The price sent to the exchange: the limit, or a market buy's protection price.
    pub protection_price: Option<Cents>,
    pub status: OrderStatus,
    pub filled_qty: i64,
    pub filled_notional: Cents,
    pub created_at: i64,
    pub updated_at: i64,
    /// Whether a placement was ever sent (kept with the status, in the same transaction).
    pub placement_sent: bool,
    /// The seq of the order's latest action.
    pub last_action_seq: i64,
    /// The engine whose actor carries the order on, and the epoch it took the order under.
    pub owner: String,
    pub owner_epoch: i64,
    pub time_in_force: TimeInForce,
    /// When a `day` order is to expire (the first session close after its creation); cleared
    /// once it is expiring, cancelling or ended, so that only live day orders are indexed.
    pub expires_at: Option<i64>,
    /// See [`OrderState::expiring`].
    pub expiring: bool,
    /// The venue's version of the order: 1, and one more for each replace it took.
    pub version: i64,
    /// The terms a replace in flight asks for (see [`OrderState::replacing`]).
    pub replacing_qty: Option<i64>,
    pub replacing_limit_price: Option<Cents>,
    /// A stop or stop-limit order's trigger: it is held here until the last price crosses it.
    pub stop_price: Option<Cents>,
}

impl OrderRow {
    /// The order's state, as its log folds to: the projection keeps it, phase by phase.
    pub fn state(&self) -> OrderState {
        OrderState {
            status: self.status,
            qty: self.qty,
            filled_qty: self.filled_qty,
            placement_sent: self.placement_sent,
            expiring: self.expiring,
            replacing: self.replacing_qty,
            version: self.version,
        }
    }

    /// The asset the order holds back: cash for a buy, its shares for a sell.
    pub fn reserved_asset(&self) -> &str {
        match self.side {
            Side::Buy => CASH,
            Side::Sell => self.symbol.as_str(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = order_actions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct ActionRow {
    pub seq: i64,
    pub kind: ActionKind,
    pub detail: String,
    pub at: i64,
}

impl ActionRow {
    /// The action as the transition table sees it (a fill's or a replace's quantity is in its
    /// detail).
    pub fn action(&self) -> Result<Action, DbError> {
        let qty = match self.kind {
            ActionKind::Fill | ActionKind::ReplaceRequested | ActionKind::Replaced => {
                serde_json::from_str::<serde_json::Value>(&self.detail)
                    .ok()
                    .and_then(|d| d["qty"].as_i64())
            }
            _ => None,
        };
        Action::from_kind(self.kind, qty).ok_or_else(|| {
            DbError::Inconsistent(format!("{} without its qty: {}", self.kind, self.detail))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = fills, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct FillRow {
    pub order_id: OrderId,
    pub fill_id: String,
    pub qty: i64,
    pub price: Cents,
    pub source: FillSource,
    pub received_at: i64,
    /// Its place among the fills of its account's position in its symbol (`db::positions`).
    pub position_seq: Option<i64>,
}

/// Which orders a list asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Open,
    Closed,
    All,
}

impl StatusFilter {
    fn statuses(self) -> Vec<OrderStatus> {
        OrderStatus::ALL
            .iter()
            .copied()
            .filter(|s| match self {
                Self::Open => s.is_open(),
                Self::Closed => s.is_terminal(),
                Self::All => true,
            })
            .collect()
    }
}

/// Whether an order is open, written into the statement rather than bound to it, so that every
/// plan of the statement (one PostgreSQL keeps for all values, any of SQLite's) may read the
/// partial indexes of open orders, which hold only the orders it is true of.
pub fn is_open() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql("orders.is_open")
}

/// Inserts new orders, in one statement. A new order is open (held or pending): `is_open` takes
/// its default.
pub fn insert(conn: &mut DbConnection, rows: &[OrderRow]) -> Result<(), DbError> {
    debug_assert!(
        rows.iter().all(|r| r.status.is_open()),
        "a new order is open"
    );
    Ok(insert_rows!(conn, orders::table, rows)?)
}

pub fn find(conn: &mut DbConnection, order: OrderId) -> Result<Option<OrderRow>, DbError> {
    with_conn!(conn, |conn| {
        Ok(orders::table
            .find(order)
            .select(OrderRow::as_select())
            .first(conn)
            .optional()?)
    })
}

/// An order about to be changed, locked for the rest of the transaction on PostgreSQL (where
/// phases run side by side; on SQLite the one writer already runs them in turn). The lock is
/// `FOR NO KEY UPDATE`: it keeps out every other writer of the order, but not the key-share lock
/// an insert of a row that refers to the order takes (an action, a fill), which
/// `FOR UPDATE` would make wait for the whole phase.
pub fn find_for_update(
    conn: &mut DbConnection,
    order: OrderId,
) -> Result<Option<OrderRow>, DbError> {
    Ok(match &mut conn.inner {
        Inner::Sqlite(c) => orders::table
            .find(order)
            .select(OrderRow::as_select())
            .first(c)
            .optional()?,
        Inner::Postgres(c) => orders::table
            .find(order)
            .select(OrderRow::as_select())
            .for_no_key_update()
            .first(c)
            .optional()?,
    })
}

/// Several orders, as they stand (no lock).
pub fn find_many(conn: &mut DbConnection, ids: &[OrderId]) -> Result<Vec<OrderRow>, DbError> {
    with_conn!(conn, |c| {
        Ok(prepared(
            orders::table
                .filter(orders::id.eq_any(ids))
                .select(OrderRow::as_select()),
            ids.len(),
        )
        .load(c)?)
    })
}

/// Several orders about to be changed (named in any order, any number of times), locked in id
/// order (the order every batch locks them in) for the rest of the transaction on PostgreSQL.
pub fn find_many_for_update(
    conn: &mut DbConnection,
    ids: impl IntoIterator<Item = OrderId>,
) -> Result<Vec<OrderRow>, DbError> {
    let ids: Vec<OrderId> = ids
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(match &mut conn.inner {
        Inner::Sqlite(c) => orders::table
            .filter(orders::id.eq_any(ids))
            .order(orders::id.asc())
            .select(OrderRow::as_select())
            .load(c)?,
        // `= ANY($1)`: one text whatever the count.
        Inner::Postgres(c) => prepared(
            orders::table
                .filter(orders::id.eq_any(ids))
                .order(orders::id.asc())
                .select(OrderRow::as_select())
                .for_no_key_update(),
            0,
        )
        .load(c)?,
    })
}

/// An order as its owner may see it: another account's order does not exist.
pub fn find_owned(
    conn: &mut DbConnection,
    account: AccountId,
    order: OrderId,
) -> Result<OrderRow, DbError> {
    match find(conn, order)? {
        Some(row) if row.account_id == account => Ok(row),
        _ => Err(DbError::NotFound),
    }
}

/// An account's orders, newest first.
pub fn list(
    conn: &mut DbConnection,
    account: AccountId,
    filter: StatusFilter,
    limit: i64,
) -> Result<Vec<OrderRow>, DbError> {
    with_conn!(conn, |conn| {
        Ok(orders::table
            .filter(orders::account_id.eq(account))
            .filter(orders::status.eq_any(filter.statuses()))
            .order((orders::created_at.desc(), orders::id.desc()))
            .limit(limit)
            .select(OrderRow::as_select())
            .load(conn)?)
    })
}

/// What recovery needs to know of an open order.
#[derive(Debug, Clone, Queryable)]
pub struct OpenOrder {
    pub id: OrderId,
    pub client_order_id: ClientOrderId,
    pub status: OrderStatus,
    pub filled_qty: i64,
    pub placement_sent: bool,
    /// When it last changed (microseconds, by the database's clock).
    pub updated_at: i64,
}

/// An account's open orders (of one symbol, if named), as they stand (no lock).
pub fn open_ids_of(
    conn: &mut DbConnection,
    account: AccountId,
    symbol: Option<&Symbol>,
) -> Result<Vec<OrderId>, DbError> {
    with_conn!(conn, |conn| {
        let mut query = orders::table
            .filter(orders::account_id.eq(account))
            .filter(is_open())
            .select(orders::id)
            .into_boxed();
        if let Some(symbol) = symbol {
            query = query.filter(orders::symbol.eq(symbol));
        }
        Ok(query.load(conn)?)
    })
}

/// Day orders of `owner` whose session has closed by `now`, soonest first, at most `limit`.
pub fn due_to_expire(
    conn: &mut DbConnection,
    owner: &str,
    now: i64,
    limit: i64,
) -> Result<Vec<OrderId>, DbError> {
    with_conn!(conn, |conn| {
        Ok(orders::table
            .filter(orders::expires_at.le(now))
            .filter(orders::owner.eq(owner))
            .order(orders::expires_at.asc())
            .limit(limit)
            .select(orders::id)
            .load(conn)?)
    })
}

/// Every open order `owner` carries on, oldest first, in brief.
pub fn open_orders_brief(conn: &mut DbConnection, owner: &str) -> Result<Vec<OpenOrder>, DbError> {
    with_conn!(conn, |conn| {
        Ok(orders::table
            .filter(orders::owner.eq(owner))
            .filter(is_open())
            .order(orders::created_at.asc())
            .select((
                orders::id,
                orders::client_order_id,
                orders::status,
                orders::filled_qty,
                orders::placement_sent,
                orders::updated_at,
            ))
            .load(conn)?)
    })
}

/// Every open order `owner` carries on, oldest first: what a restart must carry on.
pub fn open_order_ids(conn: &mut DbConnection, owner: &str) -> Result<Vec<OrderId>, DbError> {
    with_conn!(conn, |conn| {
        Ok(orders::table
            .filter(orders::owner.eq(owner))
            .filter(is_open())
            .order(orders::created_at.asc())
            .select(orders::id)
            .load(conn)?)
    })
}

pub fn actions(conn: &mut DbConnection, order: OrderId) -> Result<Vec<ActionRow>, DbError> {
    with_conn!(conn, |conn| {
        Ok(order_actions::table
            .filter(order_actions::order_id.eq(order))
            .order(order_actions::seq.asc())
            .select(ActionRow::as_select())
            .load(conn)?)
    })
}

/// The order's state, folded from its whole log: what the projection must always equal.
pub fn fold_log(conn: &mut DbConnection, order: &OrderRow) -> Result<OrderState, DbError> {
    let log = actions(conn, order.id)?
        .iter()
        .map(ActionRow::action)
        .collect::<Result<Vec<_>, _>>()?;
    OrderState::fold(order.qty, &log)
        .map_err(|e| DbError::Inconsistent(format!("order {} has an invalid log: {e}", order.id)))
}

/// Appends an action to the order's log at `seq` (the row's `last_action_seq` plus one).
pub fn append_action(
    conn: &mut DbConnection,
    order: OrderId,
    seq: i64,
    kind: ActionKind,
    detail: &str,
    at: i64,
) -> Result<(), DbError> {
    append_actions(
        conn,
        &[NewAction {
            order_id: order,
            seq,
            kind,
            detail,
            at,
        }],
    )
}

/// One entry of an order's action log, to be appended.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = order_actions)]
pub struct NewAction<'a> {
    pub order_id: OrderId,
    pub seq: i64,
    pub kind: ActionKind,
    pub detail: &'a str,
    pub at: i64,
}

pub fn append_actions(conn: &mut DbConnection, actions: &[NewAction<'_>]) -> Result<(), DbError> {
    Ok(insert_rows!(conn, order_actions::table, actions)?)
}

/// Saves each moved order's projection: its status and fills, in one statement. Whether the
/// order is open follows its status; the indexes of open orders are keyed on that alone, so a move
/// that keeps the order open changes no indexed column.
pub fn save_projections(conn: &mut DbConnection, rows: &[OrderRow]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let query = format!(
        "WITH saved (id, status, is_open, filled_qty, filled_notional, updated_at, \
         placement_sent, last_action_seq) AS (VALUES {values}) \
         UPDATE orders SET status = saved.status, is_open = saved.is_open, \
         filled_qty = saved.filled_qty, filled_notional = saved.filled_notional, \
         updated_at = saved.updated_at, placement_sent = saved.placement_sent, \
         last_action_seq = saved.last_action_seq \
         FROM saved WHERE orders.id = saved.id RETURNING orders.id",
        values = value_rows(conn.backend(), rows.len(), 8),
    );
    // Loaded, not executed, so the statement is kept prepared (see `prepared::run_kept`); the
    // ids returned are counted.
    let saved: Vec<NoColumns> = with_conn!(conn, |c| {
        use diesel::sql_types::{BigInt, Bool, Text};
        let mut bound = diesel::sql_query(&query).into_boxed();
        for r in rows {
            bound = bound
                .bind::<Text, _>(r.id.to_string())
                .bind::<Text, _>(r.status.as_str())
                .bind::<Bool, _>(r.status.is_open())
                .bind::<BigInt, _>(r.filled_qty)
                .bind::<BigInt, _>(r.filled_notional.0)
                .bind::<BigInt, _>(r.updated_at)
                .bind::<Bool, _>(r.placement_sent)
                .bind::<BigInt, _>(r.last_action_seq);
        }
        prepared(bound, rows.len()).load(c)
    })?;
    counted(saved.len(), rows.len())
}

/// Saves the terms and the lifetime of orders whose move changed them (a replace, an expiry,
/// an end): their quantity and limits, their version at the venue, when they expire. Apart from
/// [`save_projections`], so that the many moves that change neither do not rewrite the indexes
/// these columns are in.
pub fn save_terms(conn: &mut DbConnection, rows: &[&OrderRow]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let query = format!(
        "WITH saved (id, qty, replacing_qty, version, client_order_id, limit_price, \
         protection_price, replacing_limit_price, expires_at, expiring) AS (VALUES {values}) \
         UPDATE orders SET qty = saved.qty, replacing_qty = saved.replacing_qty, \
         version = saved.version, client_order_id = saved.client_order_id, \
         limit_price = saved.limit_price, protection_price = saved.protection_price, \
         replacing_limit_price = saved.replacing_limit_price, expires_at = saved.expires_at, \
         expiring = saved.expiring \
         FROM saved WHERE orders.id = saved.id RETURNING orders.id",
        values = value_rows(conn.backend(), rows.len(), 10),
    );
    let saved: Vec<NoColumns> = with_conn!(conn, |c| {
        use diesel::sql_types::{BigInt, Bool, Nullable, Text};
        let mut bound = diesel::sql_query(&query).into_boxed();
        for r in rows {
            bound = bound
                .bind::<Text, _>(r.id.to_string())
                .bind::<BigInt, _>(r.qty)
                .bind::<Nullable<BigInt>, _>(r.replacing_qty)
                .bind::<BigInt, _>(r.version)
                .bind::<Text, _>(r.client_order_id.as_str())
                .bind::<Nullable<BigInt>, _>(r.limit_price.map(|p| p.0))
                .bind::<Nullable<BigInt>, _>(r.protection_price.map(|p| p.0))
                .bind::<Nullable<BigInt>, _>(r.replacing_limit_price.map(|p| p.0))
                .bind::<Nullable<BigInt>, _>(r.expires_at)
                .bind::<Bool, _>(r.expiring);
        }
        prepared(bound, rows.len()).load(c)
    })?;
    counted(saved.len(), rows.len())
}

fn counted(saved: usize, rows: usize) -> Result<(), DbError> {
    if saved != rows {
        return Err(DbError::Inconsistent(format!(
            "{saved} of {rows} order rows saved"
        )));
    }
    Ok(())
}

/// The fills recorded among `wanted` (order and fill id), in one statement.
pub fn find_fills(
    conn: &mut DbConnection,
    wanted: &[(OrderId, &str)],
) -> Result<HashMap<(OrderId, String), FillRow>, DbError> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let found: Vec<FillRow> = match &mut conn.inner {
        // A round trip each on PostgreSQL: one statement for them all. Each order's fills of any
        // of the ids are a few more than wanted, and kept only when wanted.
        Inner::Postgres(c) => {
            let orders: Vec<OrderId> = wanted.iter().map(|(order, _)| *order).collect();
            let ids: Vec<&str> = wanted.iter().map(|(_, id)| *id).collect();
            fills::table
                .filter(fills::order_id.eq_any(&orders))
                .filter(fills::fill_id.eq_any(&ids))
                .select(FillRow::as_select())
                .load(c)?
        }
        // In process on SQLite, a lookup by key each runs one statement prepared once, where a
        // list of any length is a new statement every time.
        Inner::Sqlite(c) => {
            let mut found = Vec::new();
            for (order, id) in wanted {
                found.extend(
                    fills::table
                        .find((*order, *id))
                        .select(FillRow::as_select())
                        .first(c)
                        .optional()?,
                );
            }
            found
        }
    };
    let wanted: HashSet<(OrderId, &str)> = wanted.iter().copied().collect();
    Ok(found
        .into_iter()
        .filter(|f| wanted.contains(&(f.order_id, f.fill_id.as_str())))
        .map(|f| ((f.order_id, f.fill_id.clone()), f))
        .collect())
}

pub fn fills(conn: &mut DbConnection, order: OrderId) -> Result<Vec<FillRow>, DbError> {
    with_conn!(conn, |conn| {
        Ok(fills::table
            .filter(fills::order_id.eq(order))
            .order((fills::received_at.asc(), fills::fill_id.asc()))
            .select(FillRow::as_select())
            .load(conn)?)
    })
}

/// Inserts fills, skipping any the order already has by its id; returns how many it inserted.
pub fn insert_fills(conn: &mut DbConnection, rows: &[&FillRow]) -> Result<usize, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    Ok(match &mut conn.inner {
        Inner::Postgres(c) => {
            let values: Vec<&FillRow> = rows.to_vec();
            let query = diesel::insert_into(fills::table)
                .values(values)
                .on_conflict_do_nothing()
                .returning(fills::order_id);
            crate::db::prepared::count_kept(c, query, rows.len())?
        }
        Inner::Sqlite(c) => rows.iter().try_fold(0, |inserted, row| {
            diesel::insert_into(fills::table)
                .values(*row)
                .on_conflict_do_nothing()
                .execute(c)
                .map(|n| inserted + n)
        })?,
    })
}

/// Every account with an order open, for a halt of every account that cancels them.
pub fn accounts_with_open_orders(conn: &mut DbConnection) -> Result<Vec<AccountId>, DbError> {
    Ok(crate::with_conn!(conn, |c| orders::table
        .filter(is_open())
        .select(orders::account_id)
        .distinct()
        .load(c))?)
}

/// How many orders each of `accounts` has open (an account with none is left out), by the
/// partial index of open orders.
pub fn count_open(
    conn: &mut DbConnection,
    accounts: &std::collections::BTreeSet<AccountId>,
) -> Result<HashMap<AccountId, i64>, DbError> {
    #[derive(QueryableByName)]
    struct Open {
        #[diesel(sql_type = diesel::sql_types::Text)]
        account_id: AccountId,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        open: i64,
    }
    if accounts.is_empty() {
        return Ok(HashMap::new());
    }
    let quoted = |texts: Vec<String>| -> String {
        let literals: Vec<String> = texts.iter().map(|t| text_literal(t)).collect();
        literals.join(", ")
    };
    let query = format!(
        "SELECT account_id, CAST(COUNT(*) AS BIGINT) AS open FROM orders \
         WHERE account_id IN ({}) AND is_open GROUP BY account_id",
        quoted(accounts.iter().map(ToString::to_string).collect()),
    );
    let rows: Vec<Open> = crate::with_conn!(conn, |c| diesel::sql_query(&query).load(c))?;
    Ok(rows.into_iter().map(|r| (r.account_id, r.open)).collect())
}
