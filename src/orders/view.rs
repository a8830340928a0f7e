//! The JSON shapes of orders, fills and actions, as the API and the feed show them.

use serde::Serialize;

use crate::db::orders::{ActionRow, FillRow, OrderRow};
use crate::db::rfc3339;
use crate::domain::{ActionKind, Cents, FillSource, OrderStatus, OrderType, Side, TimeInForce};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = Order)]
pub struct OrderView {
    pub id: String,
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub qty: i64,
    pub limit_price: Option<Cents>,
    /// A stop or stop-limit order's trigger; null for the others.
    pub stop_price: Option<Cents>,
    pub time_in_force: TimeInForce,
    /// 1, and one more for each replace the venue took.
    pub version: i64,
    pub status: OrderStatus,
    pub filled_qty: i64,
    pub filled_avg_price: Option<Cents>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&OrderRow> for OrderView {
    fn from(row: &OrderRow) -> Self {
        OrderView {
            id: row.id.to_string(),
            client_order_id: row.client_order_id.to_string(),
            symbol: row.symbol.to_string(),
            side: row.side,
            order_type: row.order_type,
            qty: row.qty,
            limit_price: row.limit_price,
            stop_price: row.stop_price,
            time_in_force: row.time_in_force,
            version: row.version,
            status: row.status,
            filled_qty: row.filled_qty,
            filled_avg_price: Cents::average(row.filled_notional, row.filled_qty),
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = Fill)]
pub struct FillView {
    pub fill_id: String,
    pub qty: i64,
    pub price: Cents,
    pub source: FillSource,
    pub received_at: String,
}

impl From<&FillRow> for FillView {
    fn from(row: &FillRow) -> Self {
        FillView {
            fill_id: row.fill_id.clone(),
            qty: row.qty,
            price: row.price,
            source: row.source,
            received_at: rfc3339(row.received_at),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Action)]
pub struct ActionView {
    pub seq: i64,
    pub kind: ActionKind,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub at: String,
}

impl From<&ActionRow> for ActionView {
    fn from(row: &ActionRow) -> Self {
        ActionView {
            seq: row.seq,
            kind: row.kind,
            detail: serde_json::from_str(&row.detail).unwrap_or(serde_json::Value::Null),
            at: rfc3339(row.at),
        }
    }
}
