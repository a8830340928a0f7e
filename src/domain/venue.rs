//! What a venue says about orders, in the engine's own terms. Each venue translates its wire (the
//! simulator's REST and push JSON, FIX) into these at its boundary in `exchange/`, so nothing above
//! it knows which venue it talks to.

use serde::Serialize;

use super::{Cents, OrderType, Side, TimeInForce};

/// An order's status at the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VenueStatus {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
    /// What an `ioc` or `fok` order did not fill at once, ended by the venue.
    Expired,
}

impl VenueStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Filled | Self::Canceled | Self::Rejected | Self::Expired
        )
    }
}

/// A fill as the venue made it; its id is the fill's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueFill {
    pub fill_id: String,
    pub qty: i64,
    pub price: Cents,
}

/// The venue's own, authoritative copy of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueOrder {
    pub client_order_id: String,
    pub venue_order_id: Option<String>,
    pub status: VenueStatus,
    pub qty: i64,
    pub filled_qty: i64,
    pub fills: Vec<VenueFill>,
}

impl VenueOrder {
    /// Whether the copy lists the fills its total counts (the REST venue's does), or states only
    /// the total (a FIX status report): then the fills come each in a report of its own.
    pub fn lists_its_fills(&self) -> bool {
        self.fills.iter().map(|f| f.qty).sum::<i64>() >= self.filled_qty
    }
}

/// An order to place. For a market order, `limit_price` is its protection limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderToPlace {
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: i64,
    pub limit_price: Option<Cents>,
    pub time_in_force: TimeInForce,
}

/// New terms for a resting order, under a new client order id (the venue's next version of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaceTerms {
    pub new_client_order_id: String,
    pub qty: i64,
    pub limit_price: Option<Cents>,
}

/// The venue's answer to a placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedAck {
    pub client_order_id: String,
    pub venue_order_id: Option<String>,
    pub status: VenueStatus,
}

/// What a report the venue sends by itself says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Accepted,
    Fill,
    Canceled,
    Rejected,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Accepted => "accepted",
            ReportKind::Fill => "fill",
            ReportKind::Canceled => "canceled",
            ReportKind::Rejected => "rejected",
        }
    }
}

/// An order as the engine names it to a venue: its client order id, and the symbol and side that
/// some venues (FIX) need named again with every request about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRef<'a> {
    pub client_order_id: &'a str,
    pub symbol: &'a str,
    pub side: Side,
}

/// A report the venue sent by itself (a push, an execution report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueReport {
    /// What identifies this report: its id together with what it says, so that a venue that
    /// numbers its reports from the start again is not taken for repeating itself.
    pub key: String,
    pub report_id: String,
    pub kind: ReportKind,
    pub client_order_id: String,
    pub venue_order_id: Option<String>,
    pub fill: Option<VenueFill>,
}

impl VenueReport {
    /// An acknowledgement with no fill: it can only move an order still pending new.
    pub fn is_bare_ack(&self) -> bool {
        self.kind == ReportKind::Accepted && self.fill.is_none()
    }
}
