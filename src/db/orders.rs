//! Orders (the read projection), their action logs and their fills.

use diesel::prelude::*;

use super::schema::{fills, order_actions, orders};
use crate::domain::{AccountId, Action, ActionKind, OrderId, OrderState, OrderStatus};
use crate::error::AppError;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders, check_for_backend(diesel::sqlite::Sqlite))]
pub struct OrderRow {
    pub id: String,
    pub account_id: String,
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    pub order_type: String,
    pub qty: i64,
    pub limit_price: Option<i64>,
    pub protection_price: Option<i64>,
    pub status: String,
    pub filled_qty: i64,
    pub filled_notional: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = order_actions, check_for_backend(diesel::sqlite::Sqlite))]
pub struct ActionRow {
    pub seq: i64,
    pub kind: String,
    pub detail: String,
    pub at: i64,
}

impl ActionRow {
    /// The action as the transition table sees it.
    pub fn action(&self) -> Result<Action, AppError> {
        let kind = ActionKind::parse(&self.kind)
            .ok_or_else(|| AppError::Internal(format!("unknown action kind {:?}", self.kind)))?;
        if kind != ActionKind::Fill {
            return Ok(Action::new(kind));
        }
        let detail: serde_json::Value = serde_json::from_str(&self.detail)
            .map_err(|e| AppError::Internal(format!("unreadable fill action: {e}")))?;
        let qty = detail["qty"]
            .as_i64()
            .ok_or_else(|| AppError::Internal("a fill action without qty".into()))?;
        Ok(Action::fill(qty))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = fills, check_for_backend(diesel::sqlite::Sqlite))]
pub struct FillRow {
    pub order_id: String,
    pub fill_id: String,
    pub qty: i64,
    pub price: i64,
    pub source: String,
    pub received_at: i64,
}

/// Which orders a list asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Open,
    Closed,
    All,
}

impl StatusFilter {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            "all" => Some(Self::All),
            _ => None,
        }
    }

    fn statuses(self) -> Vec<&'static str> {
        OrderStatus::ALL
            .iter()
            .filter(|s| match self {
                Self::Open => s.is_open(),
                Self::Closed => s.is_terminal(),
                Self::All => true,
            })
            .map(|s| s.as_str())
            .collect()
    }
}

pub fn insert(conn: &mut SqliteConnection, row: &OrderRow) -> Result<(), AppError> {
    diesel::insert_into(orders::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut SqliteConnection, order: OrderId) -> Result<Option<OrderRow>, AppError> {
    Ok(orders::table
        .find(order.to_string())
        .select(OrderRow::as_select())
        .first(conn)
        .optional()?)
}

/// An order as its owner may see it: another account's order does not exist.
pub fn find_owned(
    conn: &mut SqliteConnection,
    account: AccountId,
    order: OrderId,
) -> Result<OrderRow, AppError> {
    match find(conn, order)? {
        Some(row) if row.account_id == account.to_string() => Ok(row),
        _ => Err(AppError::NotFound),
    }
}

/// An account's orders, newest first.
pub fn list(
    conn: &mut SqliteConnection,
    account: AccountId,
    filter: StatusFilter,
    limit: i64,
) -> Result<Vec<OrderRow>, AppError> {
    Ok(orders::table
        .filter(orders::account_id.eq(account.to_string()))
        .filter(orders::status.eq_any(filter.statuses()))
        .order((orders::created_at.desc(), orders::id.desc()))
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)?)
}

/// Every open order, oldest first: what a restart must carry on.
pub fn open_order_ids(conn: &mut SqliteConnection) -> Result<Vec<OrderId>, AppError> {
    let ids: Vec<String> = orders::table
        .filter(orders::status.eq_any(StatusFilter::Open.statuses()))
        .order(orders::created_at.asc())
        .select(orders::id)
        .load(conn)?;
    ids.iter().map(|id| parse_order_id(id)).collect()
}

pub fn actions(conn: &mut SqliteConnection, order: OrderId) -> Result<Vec<ActionRow>, AppError> {
    Ok(order_actions::table
        .filter(order_actions::order_id.eq(order.to_string()))
        .order(order_actions::seq.asc())
        .select(ActionRow::as_select())
        .load(conn)?)
}

/// The order's state, folded from its whole log.
pub fn state(conn: &mut SqliteConnection, order: &OrderRow) -> Result<OrderState, AppError> {
    let log = actions(conn, parse_order_id(&order.id)?)?
        .iter()
        .map(ActionRow::action)
        .collect::<Result<Vec<_>, _>>()?;
    OrderState::fold(order.qty, &log)
        .map_err(|e| AppError::Internal(format!("order {} has an invalid log: {e}", order.id)))
}

/// Appends an action at the next seq of the order's log.
pub fn append_action(
    conn: &mut SqliteConnection,
    order: OrderId,
    kind: ActionKind,
    detail: &str,
    at: i64,
) -> Result<i64, AppError> {
    let last: Option<i64> = order_actions::table
        .filter(order_actions::order_id.eq(order.to_string()))
        .select(diesel::dsl::max(order_actions::seq))
        .first(conn)?;
    let seq = last.unwrap_or(0) + 1;
    diesel::insert_into(order_actions::table)
        .values((
            order_actions::order_id.eq(order.to_string()),
            order_actions::seq.eq(seq),
            order_actions::kind.eq(kind.as_str()),
            order_actions::detail.eq(detail),
            order_actions::at.eq(at),
        ))
        .execute(conn)?;
    Ok(seq)
}

/// Writes the projection row from the order's state.
pub fn save_projection(conn: &mut SqliteConnection, row: &OrderRow) -> Result<(), AppError> {
    diesel::update(orders::table.find(&row.id))
        .set((
            orders::status.eq(&row.status),
            orders::filled_qty.eq(row.filled_qty),
            orders::filled_notional.eq(row.filled_notional),
            orders::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn fills(conn: &mut SqliteConnection, order: OrderId) -> Result<Vec<FillRow>, AppError> {
    Ok(fills::table
        .filter(fills::order_id.eq(order.to_string()))
        .order((fills::received_at.asc(), fills::fill_id.asc()))
        .select(FillRow::as_select())
        .load(conn)?)
}

/// Inserts a fill unless the order already has one with its id; returns whether it did.
pub fn insert_fill(conn: &mut SqliteConnection, fill: &FillRow) -> Result<bool, AppError> {
    let inserted = diesel::insert_into(fills::table)
        .values(fill)
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(inserted > 0)
}

pub fn parse_order_id(text: &str) -> Result<OrderId, AppError> {
    text.parse()
        .map_err(|_| AppError::Internal(format!("stored order id {text:?} is not a UUID")))
}
