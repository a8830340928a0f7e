//! The body of `POST /v1/orders`, parsed once into a checked [`NewOrder`] with its fingerprint.

use serde::Deserialize;

use crate::domain::{Cents, NewOrder, OrderType, Side};
use crate::error::AppError;
use crate::idempotency;

/// The body of `POST /v1/orders`, exactly: unknown and duplicate fields are refused.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    #[schema(example = "INFY")]
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub qty: i64,
    #[serde(default)]
    pub limit_price: Option<Cents>,
}

impl TryFrom<OrderRequest> for NewOrder {
    type Error = AppError;

    fn try_from(request: OrderRequest) -> Result<Self, AppError> {
        NewOrder::new(
            &request.symbol,
            request.side,
            request.order_type,
            request.qty,
            request.limit_price,
        )
        .map_err(AppError::InvalidRequest)
    }
}

/// An order parsed from a request body, with the fingerprint its idempotency key is checked by.
#[derive(Debug, Clone)]
pub struct ParsedOrder {
    pub order: NewOrder,
    pub fingerprint: String,
}

/// Parses a body of `POST /v1/orders`: every complaint is a 400, and nothing here panics (the
/// fuzz target `order_body` holds it to that). The fingerprint is taken over the checked order,
/// so key order, white space and the spelling of a price do not make another request.
pub fn parse_order_body(bytes: &[u8]) -> Result<ParsedOrder, AppError> {
    let request: OrderRequest = serde_json::from_slice(bytes)
        .map_err(|e| AppError::InvalidRequest(format!("invalid JSON body: {e}")))?;
    let order = NewOrder::try_from(request)?;
    let fingerprint = idempotency::fingerprint("POST", "/v1/orders", &order.canonical());
    Ok(ParsedOrder { order, fingerprint })
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
                matches!(
                    parse_order_body(bad.as_bytes()),
                    Err(AppError::InvalidRequest(_))
                ),
                "{bad}"
            );
        }
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
                proptest::sample::select(vec!["symbol", "side", "type", "qty", "limit_price", "x"])
                    .prop_map(str::to_owned),
                inner,
                0..7,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
        })
    }

    proptest! {
        // The proptest twin of the fuzz target `order_body`: any bytes, no panic, and only
        // checked orders get through.
        #[test]
        fn any_bytes_parse_to_a_checked_order_or_a_400(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            if let Err(e) = parse_order_body(&bytes) {
                prop_assert!(matches!(e, AppError::InvalidRequest(_)));
            }
        }

        #[test]
        fn any_json_object_parses_to_a_checked_order_or_a_400(body in json_value()) {
            let bytes = body.to_string().into_bytes();
            match parse_order_body(&bytes) {
                Ok(parsed) => {
                    let o = &parsed.order;
                    prop_assert!(o.qty >= 1 && o.qty <= MAX_QTY);
                    prop_assert_eq!(o.limit_price.is_some(), o.order_type == OrderType::Limit);
                    prop_assert!(o.limit_price.is_none_or(|p| p.0 > 0 && p.times(o.qty).is_some()));
                }
                Err(e) => prop_assert!(matches!(e, AppError::InvalidRequest(_))),
            }
        }
    }
}
