//! The exchange's wire format (contract section 3), shared by the simulator and the engine's client,
//! and its translation into the engine's venue types.

use serde::{Deserialize, Serialize};

use crate::domain::{
    Cents, OrderToPlace, OrderType, PlacedAck, ReplaceTerms, ReportKind, Side, TimeInForce,
    VenueFill, VenueOrder, VenueReport, VenueStatus,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeStatus {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
    /// The rest of an `ioc` or `fok` order, ended by the exchange.
    Expired,
}

impl ExchangeStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Filled | Self::Canceled | Self::Rejected | Self::Expired
        )
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
    /// Left out for `gtc`, so that an exchange of an earlier contract still takes the request.
    #[serde(default, skip_serializing_if = "TimeInForce::is_gtc")]
    pub time_in_force: TimeInForce,
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
    #[serde(deserialize_with = "crate::domain::whole_number::one")]
    pub qty: i64,
    pub price: Cents,
    pub ts: String,
}

/// `POST /orders/{client_order_id}/replace`: new terms under a new client order id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceOrder {
    pub new_client_order_id: String,
    pub qty: i64,
    #[serde(default)]
    pub limit_price: Option<Cents>,
}

/// The exchange's own, authoritative copy of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeOrder {
    pub client_order_id: String,
    /// The id the order had before its latest replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig_client_order_id: Option<String>,
    pub exchange_order_id: Option<String>,
    pub status: ExchangeStatus,
    pub qty: i64,
    pub filled_qty: i64,
    pub fills: Vec<ExchangeFill>,
    /// When the exchange last changed it (RFC 3339), for `GET /orders?updated_since=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushType {
    Accepted,
    Fill,
    Canceled,
    Rejected,
}

impl From<ExchangeStatus> for VenueStatus {
    fn from(status: ExchangeStatus) -> Self {
        match status {
            ExchangeStatus::New => VenueStatus::New,
            ExchangeStatus::PartiallyFilled => VenueStatus::PartiallyFilled,
            ExchangeStatus::Filled => VenueStatus::Filled,
            ExchangeStatus::Canceled => VenueStatus::Canceled,
            ExchangeStatus::Rejected => VenueStatus::Rejected,
            ExchangeStatus::Expired => VenueStatus::Expired,
        }
    }
}

impl From<ExchangeFill> for VenueFill {
    fn from(fill: ExchangeFill) -> Self {
        VenueFill {
            fill_id: fill.fill_id,
            qty: fill.qty,
            price: fill.price,
        }
    }
}

impl From<ExchangeOrder> for VenueOrder {
    fn from(order: ExchangeOrder) -> Self {
        VenueOrder {
            client_order_id: order.client_order_id,
            venue_order_id: order.exchange_order_id,
            status: order.status.into(),
            qty: order.qty,
            filled_qty: order.filled_qty,
            fills: order.fills.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<PlaceAck> for PlacedAck {
    fn from(ack: PlaceAck) -> Self {
        PlacedAck {
            client_order_id: ack.client_order_id,
            venue_order_id: ack.exchange_order_id,
            status: ack.status.into(),
        }
    }
}

impl From<&OrderToPlace> for PlaceOrder {
    fn from(order: &OrderToPlace) -> Self {
        PlaceOrder {
            client_order_id: order.client_order_id.clone(),
            symbol: order.symbol.clone(),
            side: order.side,
            order_type: order.order_type,
            qty: order.qty,
            limit_price: order.limit_price,
            time_in_force: order.time_in_force,
        }
    }
}

impl From<&ReplaceTerms> for ReplaceOrder {
    fn from(terms: &ReplaceTerms) -> Self {
        ReplaceOrder {
            new_client_order_id: terms.new_client_order_id.clone(),
            qty: terms.qty,
            limit_price: terms.limit_price,
        }
    }
}

impl From<PushType> for ReportKind {
    fn from(kind: PushType) -> Self {
        match kind {
            PushType::Accepted => ReportKind::Accepted,
            PushType::Fill => ReportKind::Fill,
            PushType::Canceled => ReportKind::Canceled,
            PushType::Rejected => ReportKind::Rejected,
        }
    }
}

/// Parses a push body: an error for anything that is not one well-formed event, never a panic (the
/// fuzz target `push_event` holds it to that).
pub fn parse_push(bytes: &[u8]) -> Result<PushEvent, serde_json::Error> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A well-formed push, the seed of the bytes the twin tries.
    const VALID: &[u8] = br#"{"event_id":"E1","type":"fill","client_order_id":"ok-1","exchange_order_id":"X1","fill":{"fill_id":"F1","qty":3,"price":"1520.50","ts":"2026-12-06T00:00:00Z"}}"#;

    #[test]
    fn a_fill_quantity_is_a_whole_number_however_it_is_written() {
        let with = |qty: &str| {
            let text =
                String::from_utf8_lossy(VALID).replace(r#""qty":3"#, &format!(r#""qty":{qty}"#));
            parse_push(text.as_bytes()).map(|e| e.fill.map(|f| f.qty))
        };
        assert_eq!(with("3").unwrap(), Some(3));
        assert_eq!(with("3.0").unwrap(), Some(3));
        assert!(with("3.5").is_err());
    }

    /// The twin's bytes are near enough to a valid one that many parse, so its checks run.
    #[test]
    fn the_bytes_twin_reaches_the_checks_of_what_parses() {
        let parsed = crate::domain::parsed_of_256_near(VALID, |b| parse_push(b).is_ok());
        assert!(parsed >= 25, "{parsed} of 256 parsed");
    }

    proptest! {
        // The proptest twin of the fuzz target `push_event`.
        #[test]
        fn any_bytes_parse_to_an_event_or_an_error(
            bytes in crate::domain::bytes_near(VALID)
        ) {
            if let Ok(event) = parse_push(&bytes) {
                let again = serde_json::to_vec(&event).unwrap();
                prop_assert_eq!(parse_push(&again).unwrap(), event);
            }
        }

        #[test]
        fn a_well_formed_event_survives_a_round_trip(
            id in "[A-Z0-9]{1,12}", cid in "ok-[a-f0-9]{1,32}", qty in any::<i64>(), cents in 0_i64..=i64::MAX,
        ) {
            let event = PushEvent {
                event_id: id,
                event_type: PushType::Fill,
                client_order_id: cid,
                orig_client_order_id: None,
                exchange_order_id: None,
                fill: Some(ExchangeFill { fill_id: "F".into(), qty, price: Cents(cents), ts: "t".into() }),
            };
            let bytes = serde_json::to_vec(&event).unwrap();
            prop_assert_eq!(parse_push(&bytes).unwrap(), event);
        }
    }
}

/// A push event, POSTed to the engine and signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushEvent {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: PushType,
    pub client_order_id: String,
    /// The id the order had before its latest replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig_client_order_id: Option<String>,
    pub exchange_order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<ExchangeFill>,
}

impl PushEvent {
    /// What identifies the event: a digest of its canonical JSON, its id together with what it
    /// says.
    pub fn key(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        crate::db::accounts::sha256_hex(&canonical)
    }

    /// The event as the engine takes it in.
    pub fn into_report(self) -> VenueReport {
        VenueReport {
            key: self.key(),
            report_id: self.event_id,
            kind: self.event_type.into(),
            client_order_id: self.client_order_id,
            venue_order_id: self.exchange_order_id,
            fill: self.fill.map(Into::into),
        }
    }
}
