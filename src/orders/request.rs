//! The body of `POST /v1/orders`, parsed once into a checked [`NewOrder`] with its fingerprint.

use serde::Deserialize;

use crate::domain::money::PRICE_PATTERN;
use crate::domain::symbol::SYMBOL_PATTERN;
use crate::domain::{Cents, NewOrder, OrderType, Side, TimeInForce, CASH, MAX_QTY};
use crate::idempotency;

/// Why an order body is refused: a 400, or a well-formed order for no listed symbol (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadOrder {
    #[error("{0}")]
    Invalid(String),
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
}

/// The body of `POST /v1/orders`, exactly: unknown and duplicate fields are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    #[serde(deserialize_with = "crate::domain::whole_number::one")]
    pub qty: i64,
    #[serde(default)]
    pub limit_price: Option<String>,
    #[serde(default)]
    pub stop_price: Option<String>,
    /// `gtc` when left out.
    #[serde(default)]
    pub time_in_force: Option<TimeInForce>,
}

impl TryFrom<OrderRequest> for NewOrder {
    type Error = BadOrder;

    fn try_from(request: OrderRequest) -> Result<Self, BadOrder> {
        // Well-formed, but no listed symbol: the cash ledger's own name is never one.
        if request.symbol == CASH {
            return Err(BadOrder::UnknownSymbol(request.symbol));
        }
        let price = |text: Option<&str>| {
            text.map(Cents::parse_price)
                .transpose()
                .map_err(BadOrder::Invalid)
        };
        let limit_price = price(request.limit_price.as_deref())?;
        let stop_price = price(request.stop_price.as_deref())?;
        NewOrder::with_stop(
            &request.symbol,
            request.side,
            request.order_type,
            request.qty,
            limit_price,
            stop_price,
        )
        .map(|order| order.lasting(request.time_in_force.unwrap_or_default()))
        .map_err(BadOrder::Invalid)
    }
}

/// Described by hand: each order type is a shape of its own, and the description says exactly
/// what the parser takes, so a request valid by the description is never a 400.
impl utoipa::PartialSchema for OrderRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let price =
            serde_json::json!({"type": "string", "pattern": PRICE_PATTERN, "example": "1520.50"});
        let none = serde_json::json!({"type": "null"});
        let shape = |order_type: &str,
                     limit_price: &serde_json::Value,
                     stop_price: &serde_json::Value,
                     required: &[&str]| {
            serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "required": required,
                "properties": {
                    "symbol": {"type": "string", "pattern": SYMBOL_PATTERN, "example": "INFY"},
                    "side": {"$ref": "#/components/schemas/Side"},
                    "type": {"type": "string", "enum": [order_type]},
                    "qty": {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_QTY},
                    "limit_price": limit_price,
                    "stop_price": stop_price,
                    // Null, like leaving it out, is `gtc`.
                    "time_in_force": {
                        "type": ["string", "null"],
                        "enum": TimeInForce::ALL
                            .iter()
                            .map(|t| serde_json::json!(t.as_str()))
                            .chain([serde_json::Value::Null])
                            .collect::<Vec<_>>(),
                        "default": "gtc",
                    },
                }
            })
        };
        let base = ["symbol", "side", "type", "qty"];
        let with = |more: &[&'static str]| -> Vec<&'static str> {
            base.iter().chain(more).copied().collect()
        };
        let limit = shape("limit", &price, &none, &with(&["limit_price"]));
        let market = shape("market", &none, &none, &base);
        let stop = shape("stop", &none, &price, &with(&["stop_price"]));
        let stop_limit = shape(
            "stop_limit",
            &price,
            &price,
            &with(&["limit_price", "stop_price"]),
        );
        let described = serde_json::json!({
            "description": "A limit order (limit_price required), a market order (no prices), a stop order (stop_price required: held until the last price crosses it, then sent as a market order) or a stop-limit order (both, then sent as a limit order), living as time_in_force says (gtc when left out); unknown and repeated fields are refused.",
            "oneOf": [limit, market, stop, stop_limit],
        });
        serde_json::from_value(described)
            .unwrap_or_else(|_| utoipa::openapi::ObjectBuilder::new().into())
    }
}

impl utoipa::ToSchema for OrderRequest {}

/// An order parsed from a request body, with the fingerprint its idempotency key is checked by.
#[derive(Debug, Clone)]
pub struct ParsedOrder {
    pub order: NewOrder,
    pub fingerprint: String,
}

/// Parses a body of `POST /v1/orders`: every complaint is a 400, and nothing here panics (the
/// fuzz target `order_body` holds it to that). The fingerprint is taken over the checked order,
/// so key order, white space and the spelling of a price do not make another request.
pub fn parse_order_body(bytes: &[u8]) -> Result<ParsedOrder, BadOrder> {
    let request: OrderRequest = serde_json::from_slice(bytes)
        .map_err(|e| BadOrder::Invalid(format!("invalid JSON body: {e}")))?;
    let order = NewOrder::try_from(request)?;
    let fingerprint = idempotency::fingerprint("POST", "/v1/orders", &order.canonical());
    Ok(ParsedOrder { order, fingerprint })
}

/// The body of `PATCH /v1/orders/{id}`: a new quantity, a new limit, or both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceBody {
    #[serde(default, deserialize_with = "crate::domain::whole_number::maybe_one")]
    pub qty: Option<i64>,
    #[serde(default)]
    pub limit_price: Option<String>,
}

/// Described by hand, as the parser takes it: at least one of the two, neither null.
impl utoipa::PartialSchema for ReplaceBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let described = serde_json::json!({
            "type": "object",
            "description": "A new qty, a new limit_price, or both; unknown and repeated fields are refused.",
            "additionalProperties": false,
            "minProperties": 1,
            "properties": {
                "qty": {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_QTY},
                "limit_price": {"type": "string", "pattern": PRICE_PATTERN, "example": "1510.00"},
            },
        });
        serde_json::from_value(described)
            .unwrap_or_else(|_| utoipa::openapi::ObjectBuilder::new().into())
    }
}

impl utoipa::ToSchema for ReplaceBody {}

/// A replace's new terms, checked, with its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReplace {
    pub qty: Option<i64>,
    pub limit_price: Option<Cents>,
    pub fingerprint: String,
}

/// Parses a body of `PATCH /v1/orders/{id}`: every complaint is a 400. The fingerprint covers the
/// order's path, so one key cannot replay a replace of another order.
pub fn parse_replace_body(path: &str, bytes: &[u8]) -> Result<ParsedReplace, BadOrder> {
    let body: ReplaceBody = serde_json::from_slice(bytes)
        .map_err(|e| BadOrder::Invalid(format!("invalid JSON body: {e}")))?;
    if body.qty.is_none() && body.limit_price.is_none() {
        return Err(BadOrder::Invalid(
            "give a new qty, a new limit_price, or both".into(),
        ));
    }
    if let Some(qty) = body.qty.filter(|q| !(1..=MAX_QTY).contains(q)) {
        return Err(BadOrder::Invalid(format!(
            "qty must be a whole number of shares from 1 to {MAX_QTY}, not {qty}"
        )));
    }
    let limit_price = body
        .limit_price
        .as_deref()
        .map(Cents::parse_price)
        .transpose()
        .map_err(BadOrder::Invalid)?;
    let canonical = serde_json::json!({"qty": body.qty, "limit_price": limit_price});
    Ok(ParsedReplace {
        qty: body.qty,
        limit_price,
        fingerprint: idempotency::fingerprint("PATCH", path, &canonical),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MAX_QTY;
    use proptest::prelude::*;

    #[test]
    fn the_body_is_strict() {
        let ok =
            br#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":"1520.50"}"#;
        assert!(parse_order_body(ok).is_ok());
        for bad in [
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":1520.5}"#,
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":"10","limit_price":"1"}"#,
            r#"{"symbol":"INFY","side":"hold","type":"limit","qty":10,"limit_price":"1"}"#,
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":"1","x":1}"#,
            r#"{"symbol":"INFY","symbol":"TCS","side":"buy","type":"limit","qty":10,"limit_price":"1"}"#,
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":1.5,"limit_price":"1"}"#,
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":0,"limit_price":"1"}"#,
            r#"{"symbol":"infy","side":"buy","type":"market","qty":10}"#,
        ] {
            assert!(
                matches!(parse_order_body(bad.as_bytes()), Err(BadOrder::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_description_is_a_schema_with_a_shape_per_order_type() {
        use utoipa::PartialSchema;
        let described = serde_json::to_value(OrderRequest::schema()).unwrap();
        assert_eq!(
            described["oneOf"].as_array().map(Vec::len),
            Some(OrderType::ALL.len()),
            "{described}"
        );
        assert_eq!(
            described["oneOf"][0]["properties"]["limit_price"]["pattern"],
            PRICE_PATTERN
        );
    }

    #[test]
    fn a_whole_quantity_may_be_written_with_a_point() {
        let body = br#"{"symbol":"INFY","side":"buy","type":"market","qty":97.0}"#;
        assert_eq!(parse_order_body(body).map(|p| p.order.qty).ok(), Some(97));
        let half = br#"{"symbol":"INFY","side":"buy","type":"market","qty":97.5}"#;
        assert!(matches!(parse_order_body(half), Err(BadOrder::Invalid(_))));
    }

    #[test]
    fn cash_is_no_symbol_one_can_order() {
        let body = br#"{"symbol":"CASH","side":"sell","type":"market","qty":1}"#;
        assert!(matches!(
            parse_order_body(body),
            Err(BadOrder::UnknownSymbol(_))
        ));
    }

    #[test]
    fn the_same_order_spelled_differently_has_one_fingerprint() {
        let print = |body: &str| parse_order_body(body.as_bytes()).unwrap().fingerprint;
        let a = print(
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":"1520.50"}"#,
        );
        let b = print("{ \"limit_price\": \"1520.5\",\n \"qty\": 10, \"type\": \"limit\", \"side\": \"buy\", \"symbol\": \"INFY\" }");
        let c = print(
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":11,"limit_price":"1520.50"}"#,
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            "[A-Za-z0-9.\\-]{0,12}".prop_map(serde_json::Value::from),
            proptest::sample::select(vec![
                "INFY", "buy", "sell", "limit", "market", "1520.50", "0.01"
            ])
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop::collection::btree_map(
                proptest::sample::select(vec![
                    "symbol",
                    "side",
                    "type",
                    "qty",
                    "limit_price",
                    "stop_price",
                    "x",
                ])
                .prop_map(str::to_owned),
                inner,
                0..7,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
        })
    }

    /// A well-formed order body, the seed of the bytes the twin tries.
    const VALID: &[u8] =
        br#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":"1520.50"}"#;

    /// The twin's bytes are near enough to a valid one that many parse, so its checks run.
    #[test]
    fn the_bytes_twin_reaches_the_checks_of_what_parses() {
        let parsed = crate::domain::parsed_of_256_near(VALID, |b| parse_order_body(b).is_ok());
        assert!(parsed >= 25, "{parsed} of 256 parsed");
    }

    /// What the fuzz target `order_body` holds every parse to: a checked order, or a 400.
    fn checked(bytes: &[u8]) -> Result<(), TestCaseError> {
        match parse_order_body(bytes) {
            Ok(parsed) => {
                let o = &parsed.order;
                prop_assert!(o.qty >= 1 && o.qty <= MAX_QTY);
                prop_assert_eq!(o.limit_price.is_some(), o.order_type.has_limit());
                prop_assert_eq!(o.stop_price.is_some(), o.order_type.is_stop());
                prop_assert!(o
                    .stop_price
                    .is_none_or(|p| p.0 > 0 && p.times(o.qty).is_some()));
                prop_assert!(o
                    .limit_price
                    .is_none_or(|p| p.0 > 0 && p.times(o.qty).is_some()));
            }
            Err(e) => prop_assert!(matches!(
                e,
                BadOrder::Invalid(_) | BadOrder::UnknownSymbol(_)
            )),
        }
        Ok(())
    }

    proptest! {
        // The proptest twin of the fuzz target `order_body`: any bytes, no panic, and only
        // checked orders get through.
        #[test]
        fn any_bytes_parse_to_a_checked_order_or_a_400(
            bytes in crate::domain::bytes_near(VALID)
        ) {
            checked(&bytes)?;
        }

        #[test]
        fn any_json_object_parses_to_a_checked_order_or_a_400(body in json_value()) {
            let bytes = body.to_string().into_bytes();
            checked(&bytes)?;
        }
    }
}
