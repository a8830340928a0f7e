//! The FIX 4.4 application messages the engine sends a venue, built from the domain's venue types,
//! and the ExecutionReports it reads back into them. A message here is its type and its body's
//! fields in order; the session layer adds the header (with the sequence number) and the trailer.
//!
//! Choices the standard leaves open:
//! - A market order goes out as a limit at its protection price (`OrdType` 2), as brokers' market
//!   protection does: the venue never fills it beyond what the engine reserved for.
//! - A cancel or a status request names the order by its current `ClOrdID`; a cancel's own
//!   `ClOrdID` is that id with `-c`, the same on every retry, so a venue sees one request.
//! - A price is exact in cents or refused: `1520.5000` reads as 1520.50, `1520.505` does not read.

use ironfix_core::message::MsgType;
use ironfix_engine::OutboundMessage;

use crate::domain::{Cents, OrderRef, OrderToPlace, Side, TimeInForce};
use crate::domain::{ReportKind, VenueFill, VenueOrder, VenueReport, VenueStatus};

/// The tags the engine writes or reads.
pub mod tag {
    pub const AVG_PX: u32 = 6;
    pub const CL_ORD_ID: u32 = 11;
    pub const CUM_QTY: u32 = 14;
    pub const EXEC_ID: u32 = 17;
    pub const HANDL_INST: u32 = 21;
    pub const LAST_PX: u32 = 31;
    pub const LAST_QTY: u32 = 32;
    pub const MSG_SEQ_NUM: u32 = 34;
    pub const MSG_TYPE: u32 = 35;
    pub const ORDER_ID: u32 = 37;
    pub const ORDER_QTY: u32 = 38;
    pub const ORD_STATUS: u32 = 39;
    pub const ORD_TYPE: u32 = 40;
    pub const ORIG_CL_ORD_ID: u32 = 41;
    pub const PRICE: u32 = 44;
    pub const REF_SEQ_NUM: u32 = 45;
    pub const SENDER_COMP_ID: u32 = 49;
    pub const SENDING_TIME: u32 = 52;
    pub const SIDE: u32 = 54;
    pub const SYMBOL: u32 = 55;
    pub const TARGET_COMP_ID: u32 = 56;
    pub const TEXT: u32 = 58;
    pub const TIME_IN_FORCE: u32 = 59;
    pub const TRANSACT_TIME: u32 = 60;
    pub const CXL_REJ_REASON: u32 = 102;
    pub const ORD_REJ_REASON: u32 = 103;
    pub const NO_RELATED_SYM: u32 = 146;
    pub const EXEC_TYPE: u32 = 150;
    pub const LEAVES_QTY: u32 = 151;
    pub const MD_REQ_ID: u32 = 262;
    pub const SUBSCRIPTION_REQUEST_TYPE: u32 = 263;
    pub const MARKET_DEPTH: u32 = 264;
    pub const MD_UPDATE_TYPE: u32 = 265;
    pub const NO_MD_ENTRY_TYPES: u32 = 267;
    pub const NO_MD_ENTRIES: u32 = 268;
    pub const MD_ENTRY_TYPE: u32 = 269;
    pub const MD_ENTRY_PX: u32 = 270;
    pub const MD_UPDATE_ACTION: u32 = 279;
    pub const SECURITY_REQ_ID: u32 = 320;
    pub const SECURITY_RESPONSE_ID: u32 = 322;
    pub const REF_MSG_TYPE: u32 = 372;
    pub const BUSINESS_REJECT_REF_ID: u32 = 379;
    pub const BUSINESS_REJECT_REASON: u32 = 380;
    pub const CXL_REJ_RESPONSE_TO: u32 = 434;
    pub const SECURITY_LIST_REQUEST_TYPE: u32 = 559;
    pub const SECURITY_REQUEST_RESULT: u32 = 560;
    pub const MASS_STATUS_REQ_ID: u32 = 584;
    pub const MASS_STATUS_REQ_TYPE: u32 = 585;
    pub const ORD_STATUS_REQ_ID: u32 = 790;
    pub const TOT_NUM_REPORTS: u32 = 911;
    pub const LAST_RPT_REQUESTED: u32 = 912;
}

/// An application message's type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub msg_type: &'static str,
    pub fields: Vec<(u32, String)>,
}

impl Body {
    /// The value of the first field with `tag`.
    pub fn field(&self, tag: u32) -> Option<&str> {
        self.fields
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v.as_str())
    }

    /// The message as the session layer takes it, to number and send.
    pub fn outbound(&self) -> Option<OutboundMessage> {
        let msg_type = MsgType::new(self.msg_type).ok()?;
        let mut message = OutboundMessage::new(msg_type);
        for (tag, value) in &self.fields {
            message.push_str(*tag, value);
        }
        Some(message)
    }

    /// The whole FIX 4.4 frame, as a session would have sent it from `sender` to `target` under
    /// `seq` at `now_micros`: for filing in a session's store while no session is up.
    pub fn frame(&self, sender: &str, target: &str, seq: u64, now_micros: i64) -> Option<Vec<u8>> {
        let mut encoder = ironfix_tagvalue::Encoder::new("FIX.4.4");
        encoder.put_str(tag::MSG_TYPE, self.msg_type);
        encoder.put_str(tag::SENDER_COMP_ID, sender);
        encoder.put_str(tag::TARGET_COMP_ID, target);
        encoder.put_uint(tag::MSG_SEQ_NUM, seq);
        encoder.put_str(tag::SENDING_TIME, &transact_time(now_micros));
        for (tag, value) in &self.fields {
            encoder.put_str(*tag, value);
        }
        encoder.finish().ok().map(<[u8]>::to_vec)
    }
}

const SIDES: [(Side, &str); 2] = [(Side::Buy, "1"), (Side::Sell, "2")];
const TIMES_IN_FORCE: [(TimeInForce, &str); 4] = [
    (TimeInForce::Day, "0"),
    (TimeInForce::Gtc, "1"),
    (TimeInForce::Ioc, "3"),
    (TimeInForce::Fok, "4"),
];

/// `Side` (54) as FIX writes it.
pub fn side(side: Side) -> String {
    SIDES
        .iter()
        .find(|(s, _)| *s == side)
        .map_or("1", |(_, code)| code)
        .to_owned()
}

/// The side a `Side` (54) code names, for a venue reading an order.
pub fn side_of(code: &str) -> Option<Side> {
    SIDES.iter().find(|(_, c)| *c == code).map(|(s, _)| *s)
}

fn time_in_force(tif: TimeInForce) -> String {
    TIMES_IN_FORCE
        .iter()
        .find(|(t, _)| *t == tif)
        .map_or("1", |(_, code)| code)
        .to_owned()
}

/// The time in force a `TimeInForce` (59) code names; absent, FIX's default is a day order.
pub fn time_in_force_of(code: Option<&str>) -> Option<TimeInForce> {
    let code = code.unwrap_or("0");
    TIMES_IN_FORCE
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(t, _)| *t)
}

/// `TransactTime` (60) as FIX writes a UTC timestamp, to the millisecond.
pub fn transact_time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .format("%Y%m%d-%H:%M:%S%.3f")
        .to_string()
}

/// A NewOrderSingle (D): `ClOrdID` is the order's client order id.
pub fn new_order_single(order: &OrderToPlace, now_micros: i64) -> Body {
    let mut fields = vec![
        (tag::CL_ORD_ID, order.client_order_id.clone()),
        (tag::HANDL_INST, "1".to_owned()),
        (tag::SYMBOL, order.symbol.clone()),
        (tag::SIDE, side(order.side)),
        (tag::TRANSACT_TIME, transact_time(now_micros)),
        (tag::ORDER_QTY, order.qty.to_string()),
    ];
    // Only a market order comes without a price.
    match order.limit_price {
        Some(price) => {
            fields.push((tag::ORD_TYPE, "2".to_owned()));
            fields.push((tag::PRICE, price.to_string()));
        }
        None => fields.push((tag::ORD_TYPE, "1".to_owned())),
    }
    fields.push((tag::TIME_IN_FORCE, time_in_force(order.time_in_force)));
    Body {
        msg_type: "D",
        fields,
    }
}

/// The `ClOrdID` of a cancel of `order`: the same on every retry of it.
pub fn cancel_id(client_order_id: &str) -> String {
    format!("{client_order_id}-c")
}

/// An OrderCancelRequest (F) for what is left of the order.
pub fn cancel_request(order: &OrderRef<'_>, now_micros: i64) -> Body {
    Body {
        msg_type: "F",
        fields: vec![
            (tag::ORIG_CL_ORD_ID, order.client_order_id.to_owned()),
            (tag::CL_ORD_ID, cancel_id(order.client_order_id)),
            (tag::SYMBOL, order.symbol.to_owned()),
            (tag::SIDE, side(order.side)),
            (tag::TRANSACT_TIME, transact_time(now_micros)),
        ],
    }
}

/// An OrderCancelReplaceRequest (G): the new version under its own `ClOrdID`.
pub fn replace_request(
    order: &OrderRef<'_>,
    new_client_order_id: &str,
    qty: i64,
    limit_price: Cents,
    now_micros: i64,
) -> Body {
    Body {
        msg_type: "G",
        fields: vec![
            (tag::ORIG_CL_ORD_ID, order.client_order_id.to_owned()),
            (tag::CL_ORD_ID, new_client_order_id.to_owned()),
            (tag::HANDL_INST, "1".to_owned()),
            (tag::SYMBOL, order.symbol.to_owned()),
            (tag::SIDE, side(order.side)),
            (tag::TRANSACT_TIME, transact_time(now_micros)),
            (tag::ORDER_QTY, qty.to_string()),
            (tag::ORD_TYPE, "2".to_owned()),
            (tag::PRICE, limit_price.to_string()),
        ],
    }
}

/// An OrderStatusRequest (H): the venue answers with an ExecutionReport of `ExecType` I. Its
/// `OrdStatusReqID` is the asked `ClOrdID`, so that an answer naming the order by a later
/// version's id (after a replace) still finds the request, at a venue that echoes it.
pub fn status_request(order: &OrderRef<'_>) -> Body {
    Body {
        msg_type: "H",
        fields: vec![
            (tag::CL_ORD_ID, order.client_order_id.to_owned()),
            (tag::ORD_STATUS_REQ_ID, order.client_order_id.to_owned()),
            (tag::SYMBOL, order.symbol.to_owned()),
            (tag::SIDE, side(order.side)),
        ],
    }
}

/// An OrderMassStatusRequest (AF) for every order of the session (`MassStatusReqType` 7).
pub fn mass_status_request(request_id: &str) -> Body {
    Body {
        msg_type: "AF",
        fields: vec![
            (tag::MASS_STATUS_REQ_ID, request_id.to_owned()),
            (tag::MASS_STATUS_REQ_TYPE, "7".to_owned()),
        ],
    }
}

/// Why an ExecutionReport could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReport {
    #[error("the ExecutionReport lacks {0}")]
    Missing(&'static str),
    #[error("the ExecutionReport's {field} is {value:?}, which the engine does not read")]
    Unreadable { field: &'static str, value: String },
}

/// What an ExecutionReport (8) says, in the engine's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionReport {
    pub exec_id: String,
    pub exec_type: ExecType,
    pub client_order_id: String,
    /// The order's previous `ClOrdID` (41): the order a cancel's report is about, when
    /// `client_order_id` is the cancel's own.
    pub orig_client_order_id: Option<String>,
    /// The `OrdStatusReqID` (790) a status answer echoes.
    pub status_request_id: Option<String>,
    pub venue_order_id: Option<String>,
    pub status: VenueStatus,
    pub qty: i64,
    pub filled_qty: i64,
    /// The execution's own fill, for a trade.
    pub fill: Option<VenueFill>,
    /// A rejection because the venue does not know the order (`OrdRejReason` 5): the answer to a
    /// status request for an order it never held.
    pub unknown_order: bool,
}

/// What an ExecutionReport reports (`ExecType`, 150).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecType {
    New,
    Trade,
    Canceled,
    Replaced,
    Rejected,
    Expired,
    /// The answer to a status request (I).
    Status,
    /// Pending new, cancel or replace, and the rest: nothing to act on.
    Other,
}

fn required<'a>(
    field: &impl Fn(u32) -> Option<&'a str>,
    tag: u32,
    name: &'static str,
) -> Result<&'a str, BadReport> {
    field(tag)
        .filter(|v| !v.is_empty())
        .ok_or(BadReport::Missing(name))
}

fn present<'a>(field: &impl Fn(u32) -> Option<&'a str>, tag: u32) -> Option<String> {
    field(tag).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn quantity(text: &str, field: &'static str) -> Result<i64, BadReport> {
    let unreadable = || BadReport::Unreadable {
        field,
        value: text.to_owned(),
    };
    // A quantity may be written with decimals; only whole shares are read.
    let whole = match text.split_once('.') {
        Some((whole, frac)) if frac.bytes().all(|b| b == b'0') => whole,
        Some(_) => return Err(unreadable()),
        None => text,
    };
    whole
        .parse::<i64>()
        .ok()
        .filter(|q| *q >= 0)
        .ok_or_else(unreadable)
}

/// A price exact in cents: trailing zeros past the cents are dropped, anything else there is not.
pub fn price(text: &str) -> Option<Cents> {
    let trimmed = match text.split_once('.') {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole}.{frac}")
            }
        }
        None => text.to_owned(),
    };
    Cents::parse(&trimmed).ok()
}

impl ExecutionReport {
    /// Reads a report through `field`, which gives a tag's value in the message.
    pub fn read<'a>(field: impl Fn(u32) -> Option<&'a str>) -> Result<Self, BadReport> {
        let exec_type = match required(&field, tag::EXEC_TYPE, "ExecType (150)")? {
            "0" => ExecType::New,
            "F" => ExecType::Trade,
            "4" => ExecType::Canceled,
            "5" => ExecType::Replaced,
            "8" => ExecType::Rejected,
            "C" => ExecType::Expired,
            "I" => ExecType::Status,
            _ => ExecType::Other,
        };
        let filled_qty = quantity(required(&field, tag::CUM_QTY, "CumQty (14)")?, "CumQty")?;
        let status = match required(&field, tag::ORD_STATUS, "OrdStatus (39)")? {
            "2" => VenueStatus::Filled,
            "4" => VenueStatus::Canceled,
            "8" => VenueStatus::Rejected,
            "C" => VenueStatus::Expired,
            _ if filled_qty > 0 => VenueStatus::PartiallyFilled,
            _ => VenueStatus::New,
        };
        let qty = match field(tag::ORDER_QTY) {
            Some(q) => quantity(q, "OrderQty")?,
            None => {
                let leaves = required(&field, tag::LEAVES_QTY, "OrderQty (38) or LeavesQty (151)")?;
                filled_qty + quantity(leaves, "LeavesQty")?
            }
        };
        let exec_id = required(&field, tag::EXEC_ID, "ExecID (17)")?.to_owned();
        let fill = match exec_type {
            ExecType::Trade => {
                let last = required(&field, tag::LAST_QTY, "LastQty (32)")?;
                let px = required(&field, tag::LAST_PX, "LastPx (31)")?;
                Some(VenueFill {
                    fill_id: exec_id.clone(),
                    qty: quantity(last, "LastQty")?,
                    price: price(px).ok_or_else(|| BadReport::Unreadable {
                        field: "LastPx",
                        value: px.to_owned(),
                    })?,
                })
            }
            _ => None,
        };
        Ok(ExecutionReport {
            exec_id,
            exec_type,
            client_order_id: required(&field, tag::CL_ORD_ID, "ClOrdID (11)")?.to_owned(),
            orig_client_order_id: present(&field, tag::ORIG_CL_ORD_ID),
            status_request_id: present(&field, tag::ORD_STATUS_REQ_ID),
            venue_order_id: field(tag::ORDER_ID)
                .filter(|id| !id.is_empty() && *id != "NONE")
                .map(str::to_owned),
            status,
            qty,
            filled_qty,
            fill,
            unknown_order: field(tag::ORD_REJ_REASON) == Some("5"),
        })
    }

    /// The report as a push, when it says what a push says (an acknowledgement, a fill, an end).
    pub fn as_push(&self, session: &str) -> Option<VenueReport> {
        let kind = match self.exec_type {
            ExecType::New => ReportKind::Accepted,
            ExecType::Trade => ReportKind::Fill,
            ExecType::Canceled | ExecType::Expired => ReportKind::Canceled,
            ExecType::Rejected => ReportKind::Rejected,
            ExecType::Replaced | ExecType::Status | ExecType::Other => return None,
        };
        // A cancel's report names the cancel in 11 and the order in 41.
        let order = match (kind, &self.orig_client_order_id) {
            (ReportKind::Canceled, Some(orig)) => orig,
            _ => &self.client_order_id,
        };
        Some(VenueReport {
            key: format!("fix:{session}:{}", self.exec_id),
            report_id: self.exec_id.clone(),
            kind,
            client_order_id: order.clone(),
            venue_order_id: self.venue_order_id.clone(),
            fill: self.fill.clone(),
        })
    }

    /// The venue's copy of the order as the report leaves it. Its fills are only this report's
    /// own: over FIX the fills come one report each, and a gap in them is the session's to fill.
    pub fn as_copy(&self) -> VenueOrder {
        VenueOrder {
            client_order_id: self.client_order_id.clone(),
            venue_order_id: self.venue_order_id.clone(),
            status: self.status,
            qty: self.qty,
            filled_qty: self.filled_qty,
            fills: self.fill.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::domain::OrderType;

    fn order(order_type: OrderType, limit: Option<i64>, tif: TimeInForce) -> OrderToPlace {
        OrderToPlace {
            client_order_id: "ok-1".into(),
            symbol: "INFY".into(),
            side: Side::Sell,
            order_type,
            qty: 10,
            limit_price: limit.map(Cents),
            time_in_force: tif,
        }
    }

    #[test]
    fn a_new_order_names_itself_by_its_client_order_id_and_a_market_order_keeps_its_protection() {
        let limit = new_order_single(&order(OrderType::Limit, Some(152_050), TimeInForce::Ioc), 0);
        assert_eq!(limit.msg_type, "D");
        let expected = [
            (tag::CL_ORD_ID, "ok-1"),
            (tag::SYMBOL, "INFY"),
            (tag::SIDE, "2"),
            (tag::TRANSACT_TIME, "19700101-00:00:00.000"),
            (tag::ORDER_QTY, "10"),
            (tag::ORD_TYPE, "2"),
            (tag::PRICE, "1520.50"),
            (tag::TIME_IN_FORCE, "3"),
        ];
        for (tag, want) in expected {
            assert_eq!(limit.field(tag), Some(want), "tag {tag}");
        }
        let market = new_order_single(
            &order(OrderType::Market, Some(160_000), TimeInForce::Gtc),
            0,
        );
        assert_eq!(
            (market.field(tag::ORD_TYPE), market.field(tag::PRICE)),
            (Some("2"), Some("1600.00")),
            "a market order goes out as a limit at its protection price"
        );
        assert_eq!(market.field(tag::TIME_IN_FORCE), Some("1"));
        let unprotected = new_order_single(&order(OrderType::Market, None, TimeInForce::Day), 0);
        assert_eq!(
            (
                unprotected.field(tag::ORD_TYPE),
                unprotected.field(tag::PRICE)
            ),
            (Some("1"), None)
        );
        assert_eq!(unprotected.field(tag::TIME_IN_FORCE), Some("0"));
    }

    #[test]
    fn a_cancel_and_a_replace_name_the_version_they_change() {
        let named = OrderRef {
            client_order_id: "ok-1-v2",
            symbol: "INFY",
            side: Side::Buy,
        };
        let cancel = cancel_request(&named, 0);
        assert_eq!(cancel.field(tag::ORIG_CL_ORD_ID), Some("ok-1-v2"));
        assert_eq!(cancel.field(tag::CL_ORD_ID), Some("ok-1-v2-c"));
        assert_eq!(
            cancel,
            cancel_request(&named, 0),
            "a retry is the same request"
        );
        let replace = replace_request(&named, "ok-1-v3", 12, Cents(99_00), 0);
        assert_eq!(
            (
                replace.field(tag::ORIG_CL_ORD_ID),
                replace.field(tag::CL_ORD_ID),
                replace.field(tag::ORDER_QTY),
                replace.field(tag::PRICE),
            ),
            (Some("ok-1-v2"), Some("ok-1-v3"), Some("12"), Some("99.00"))
        );
        assert_eq!(status_request(&named).msg_type, "H");
        assert_eq!(
            mass_status_request("m1").field(tag::MASS_STATUS_REQ_TYPE),
            Some("7")
        );
    }

    fn report(pairs: &[(u32, &str)]) -> Result<ExecutionReport, BadReport> {
        let fields: HashMap<u32, &str> = pairs.iter().copied().collect();
        ExecutionReport::read(|tag| fields.get(&tag).copied())
    }

    #[test]
    fn an_execution_report_reads_as_a_push_and_as_the_venues_copy() {
        let trade = report(&[
            (tag::EXEC_ID, "E2"),
            (tag::EXEC_TYPE, "F"),
            (tag::ORD_STATUS, "1"),
            (tag::CL_ORD_ID, "ok-1"),
            (tag::ORDER_ID, "X9"),
            (tag::CUM_QTY, "4"),
            (tag::LEAVES_QTY, "6"),
            (tag::LAST_QTY, "4"),
            (tag::LAST_PX, "1520.5000"),
        ])
        .unwrap();
        let fill = VenueFill {
            fill_id: "E2".into(),
            qty: 4,
            price: Cents(152_050),
        };
        assert_eq!(trade.fill.as_ref(), Some(&fill));
        let push = trade.as_push("s").unwrap();
        assert_eq!(
            (push.kind, push.report_id.as_str(), push.fill),
            (ReportKind::Fill, "E2", Some(fill.clone()))
        );
        let copy = trade.as_copy();
        assert_eq!(
            (
                copy.status,
                copy.qty,
                copy.filled_qty,
                copy.venue_order_id.as_deref()
            ),
            (VenueStatus::PartiallyFilled, 10, 4, Some("X9"))
        );

        let status = report(&[
            (tag::EXEC_ID, "S1"),
            (tag::EXEC_TYPE, "I"),
            (tag::ORD_STATUS, "4"),
            (tag::CL_ORD_ID, "ok-1"),
            (tag::CUM_QTY, "4"),
            (tag::ORDER_QTY, "10"),
        ])
        .unwrap();
        assert_eq!(status.as_push("s"), None, "a status answer is no push");
        assert_eq!(status.as_copy().status, VenueStatus::Canceled);
    }

    #[test]
    fn a_report_the_engine_cannot_read_exactly_is_refused() {
        let base = [
            (tag::EXEC_ID, "E1"),
            (tag::EXEC_TYPE, "F"),
            (tag::ORD_STATUS, "2"),
            (tag::CL_ORD_ID, "ok-1"),
            (tag::CUM_QTY, "10"),
            (tag::LEAVES_QTY, "0"),
            (tag::LAST_QTY, "10"),
        ];
        let with = |extra: (u32, &'static str)| {
            let mut pairs = base.to_vec();
            pairs.push(extra);
            report(&pairs)
        };
        assert!(with((tag::LAST_PX, "1520.50")).is_ok());
        assert!(matches!(
            with((tag::LAST_PX, "1520.505")),
            Err(BadReport::Unreadable {
                field: "LastPx",
                ..
            })
        ));
        assert_eq!(report(&base), Err(BadReport::Missing("LastPx (31)")));
        let mut fractional = base.to_vec();
        fractional[5] = (tag::LEAVES_QTY, "0.5");
        fractional.push((tag::LAST_PX, "1.00"));
        assert!(report(&fractional).is_err(), "no fraction of a share");
        assert_eq!(price("100"), Some(Cents(10_000)));
        assert_eq!(price("100.1"), Some(Cents(10_010)));
        assert_eq!(price("-1"), None);
    }
}
