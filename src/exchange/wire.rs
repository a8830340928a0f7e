//! The exchange's wire format (contract section 3), shared by the simulator and the engine's client.

use serde::{Deserialize, Serialize};

use crate::domain::{Cents, OrderType, Side};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeStatus {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
}

impl ExchangeStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Filled | Self::Canceled | Self::Rejected)
    }
}

/// `POST /orders`. For a market order, `limit_price` is its protection limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub qty: i64,
    #[serde(default)]
    pub limit_price: Option<Cents>,
}

/// The answer to `POST /orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceAck {
    pub client_order_id: String,
    pub exchange_order_id: Option<String>,
    pub status: ExchangeStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExchangeFill {
    pub fill_id: String,
    pub qty: i64,
    pub price: Cents,
    pub ts: String,
}

/// The exchange's own, authoritative copy of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeOrder {
    pub client_order_id: String,
    pub exchange_order_id: Option<String>,
    pub status: ExchangeStatus,
    pub qty: i64,
    pub filled_qty: i64,
    pub fills: Vec<ExchangeFill>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushType {
    Accepted,
    Fill,
    Canceled,
    Rejected,
}

/// A push event, POSTed to the engine and signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushEvent {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: PushType,
    pub client_order_id: String,
    pub exchange_order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<ExchangeFill>,
}
