//! Order submission: one transaction stores the idempotency key with its answer, the order, its
//! first action, its reservation and its first event. Nothing is answered before it commits.

use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::view::OrderView;
use crate::db::idempotency::{self, NewKey, StoredResponse};
use crate::db::orders::{self, OrderRow};
use crate::db::outbox;
use crate::domain::{
    AccountId, ActionKind, Cents, ClientOrderId, OrderId, OrderStatus, OrderType, Side,
};
use crate::error::AppError;
use crate::ledger::{self, LedgerEntry, CASH};

/// Large enough for any real order, small enough that `qty × price` cannot overflow unnoticed.
pub const MAX_QTY: i64 = 1_000_000_000;

/// The body of `POST /v1/orders`, exactly: unknown fields are refused.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub qty: i64,
    #[serde(default)]
    pub limit_price: Option<Cents>,
}

impl OrderRequest {
    /// Checks what the body alone can tell; the symbol is checked against the exchange later.
    pub fn validate(&self) -> Result<(), AppError> {
        let invalid = |m: &str| Err(AppError::InvalidRequest(m.to_owned()));
        if self.symbol.is_empty()
            || self.symbol.len() > 32
            || !self
                .symbol
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'&')
        {
            return invalid("symbol must be 1 to 32 upper-case letters, digits, '-' or '&'");
        }
        if self.qty <= 0 || self.qty > MAX_QTY {
            return invalid("qty must be a whole number of shares from 1 to 1000000000");
        }
        match (self.order_type, self.limit_price) {
            (OrderType::Limit, None) => invalid("limit_price is required for a limit order"),
            (OrderType::Limit, Some(price)) if price.0 <= 0 => {
                invalid("limit_price must be positive")
            }
            (OrderType::Limit, Some(price)) if price.times(self.qty).is_none() => {
                invalid("qty × limit_price is too large")
            }
            (OrderType::Market, Some(_)) => {
                invalid("limit_price must be absent for a market order")
            }
            _ => Ok(()),
        }
    }
}

/// SHA-256 over the method, the path and the body's canonical JSON (keys sorted, no white space).
pub fn fingerprint(method: &str, path: &str, body: &serde_json::Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    // serde_json keeps object keys in a BTreeMap, so this prints them sorted.
    hasher.update(body.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

/// A body of `POST /v1/orders`, parsed and checked, with its fingerprint.
#[derive(Debug, Clone)]
pub struct ParsedOrder {
    pub request: OrderRequest,
    pub fingerprint: String,
}

/// Parses a body of `POST /v1/orders`: every complaint is a 400, and nothing here panics (the
/// fuzz target `order_body` holds it to that).
pub fn parse_order_body(bytes: &[u8]) -> Result<ParsedOrder, AppError> {
    let invalid =
        |e: serde_json::Error| AppError::InvalidRequest(format!("invalid JSON body: {e}"));
    // Typed first: duplicate and unknown fields are refused here, where a JSON value would keep
    // the last of two duplicates silently.
    let request: OrderRequest = serde_json::from_slice(bytes).map_err(invalid)?;
    request.validate()?;
    let canonical: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    Ok(ParsedOrder {
        request,
        fingerprint: fingerprint("POST", "/v1/orders", &canonical),
    })
}

pub struct Submission {
    pub account: AccountId,
    pub key: String,
    pub fingerprint: String,
    pub request: OrderRequest,
    /// For a market buy: the last price × 1.05, rounded up. It is both the reservation price and
    /// the protection limit sent to the exchange.
    pub market_protection: Option<Cents>,
    pub now: i64,
    pub ttl_micros: i64,
}

pub struct Submitted {
    pub response: StoredResponse,
    pub replayed: bool,
    pub created: Option<OrderId>,
}

/// Runs the whole submission in one immediate (write-locked) transaction.
pub fn submit(
    conn: &mut diesel::SqliteConnection,
    sub: &Submission,
) -> Result<Submitted, AppError> {
    conn.immediate_transaction(|conn| {
        if let Some(stored) = idempotency::find(conn, sub.account, &sub.key)? {
            if stored.expires_at > sub.now {
                if stored.fingerprint != sub.fingerprint {
                    return Err(AppError::IdempotencyKeyReused);
                }
                return Ok(Submitted {
                    response: stored.response(),
                    replayed: true,
                    created: None,
                });
            }
            idempotency::delete(conn, sub.account, &sub.key)?;
        }
        let (response, created) = match place_order(conn, sub) {
            Ok((response, order)) => (response, Some(order)),
            Err(refusal @ (AppError::InsufficientFunds(_) | AppError::InsufficientPosition(_))) => {
                let response = StoredResponse {
                    status: 422,
                    location: None,
                    body: refusal.body(),
                };
                (response, None)
            }
            Err(other) => return Err(other),
        };
        idempotency::insert(
            conn,
            &NewKey {
                account: sub.account,
                key: &sub.key,
                fingerprint: &sub.fingerprint,
                response: &response,
                now: sub.now,
                expires_at: sub.now.saturating_add(sub.ttl_micros),
            },
        )?;
        Ok(Submitted {
            response,
            replayed: false,
            created,
        })
    })
}

fn place_order(
    conn: &mut diesel::SqliteConnection,
    sub: &Submission,
) -> Result<(StoredResponse, OrderId), AppError> {
    let req = &sub.request;
    let order_id = OrderId::new();
    let price = match req.order_type {
        OrderType::Limit => req.limit_price,
        OrderType::Market => sub.market_protection,
    };
    let (asset, amount) = match req.side {
        Side::Buy => {
            let price = price.ok_or_else(|| AppError::Internal("a buy without a price".into()))?;
            let cash = price
                .times(req.qty)
                .ok_or_else(|| AppError::InvalidRequest("the order's value is too large".into()))?;
            (CASH, cash.0)
        }
        Side::Sell => (req.symbol.as_str(), req.qty),
    };
    let balance = ledger::balance(conn, sub.account, asset)?;
    if balance.available < amount {
        return Err(match req.side {
            Side::Buy => AppError::InsufficientFunds(format!(
                "the order needs {} and {} is available",
                Cents(amount),
                Cents(balance.available)
            )),
            Side::Sell => AppError::InsufficientPosition(format!(
                "the order sells {amount} {asset} and {} are available",
                balance.available
            )),
        });
    }
    let row = OrderRow {
        id: order_id.to_string(),
        account_id: sub.account.to_string(),
        client_order_id: ClientOrderId::for_order(order_id).0,
        symbol: req.symbol.clone(),
        side: req.side.as_str().to_owned(),
        order_type: req.order_type.as_str().to_owned(),
        qty: req.qty,
        limit_price: req.limit_price.map(|p| p.0),
        protection_price: price.map(|p| p.0),
        status: OrderStatus::PendingNew.as_str().to_owned(),
        filled_qty: 0,
        filled_notional: 0,
        created_at: sub.now,
        updated_at: sub.now,
    };
    orders::insert(conn, &row)?;
    let detail = json!({
        "idempotency_key": sub.key,
        "reserved": {"asset": asset, "amount": amount},
        "protection_price": price,
    });
    orders::append_action(
        conn,
        order_id,
        ActionKind::Created,
        &detail.to_string(),
        sub.now,
    )?;
    ledger::apply(
        conn,
        &LedgerEntry {
            key: format!("order:{order_id}:reserve"),
            account: sub.account,
            asset,
            order: Some(order_id),
            available_delta: -amount,
            reserved_delta: amount,
        },
        sub.now,
    )?;
    let view = OrderView::from(&row);
    outbox::append::<_, ()>(conn, sub.account, "order.created", &view, None, sub.now)?;
    let body = serde_json::to_string(&view).map_err(|e| AppError::Internal(e.to_string()))?;
    let response = StoredResponse {
        status: 201,
        location: Some(format!("/v1/orders/{order_id}")),
        body,
    };
    Ok((response, order_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
            match parse_order_body(&bytes) {
                Ok(parsed) => prop_assert!(parsed.request.validate().is_ok()),
                Err(e) => prop_assert!(matches!(e, AppError::InvalidRequest(_))),
            }
        }

        #[test]
        fn any_json_object_parses_to_a_checked_order_or_a_400(body in json_value()) {
            let bytes = body.to_string().into_bytes();
            match parse_order_body(&bytes) {
                Ok(parsed) => {
                    let r = &parsed.request;
                    prop_assert!(r.qty >= 1 && r.qty <= MAX_QTY);
                    prop_assert_eq!(r.limit_price.is_some(), r.order_type == OrderType::Limit);
                    prop_assert!(r.limit_price.is_none_or(|p| p.0 > 0 && p.times(r.qty).is_some()));
                    prop_assert_eq!(parse_order_body(&bytes).map(|p| p.fingerprint).ok(), Some(parsed.fingerprint));
                }
                Err(e) => prop_assert!(matches!(e, AppError::InvalidRequest(_))),
            }
        }
    }

    fn parse(body: &str) -> Result<OrderRequest, serde_json::Error> {
        serde_json::from_str(body)
    }

    #[test]
    fn fingerprint_ignores_key_order_and_white_space() {
        let a: serde_json::Value = serde_json::from_str(r#"{"qty":1,"symbol":"INFY"}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str("{ \"symbol\" : \"INFY\",\n \"qty\": 1 }").unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"qty":2,"symbol":"INFY"}"#).unwrap();
        assert_eq!(
            fingerprint("POST", "/v1/orders", &a),
            fingerprint("POST", "/v1/orders", &b)
        );
        assert_ne!(
            fingerprint("POST", "/v1/orders", &a),
            fingerprint("POST", "/v1/orders", &c)
        );
        assert_ne!(
            fingerprint("POST", "/v1/orders", &a),
            fingerprint("POST", "/v1/other", &a)
        );
    }

    #[test]
    fn the_body_is_strict() {
        let ok =
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":"1520.50"}"#;
        assert!(parse(ok).unwrap().validate().is_ok());
        let market = r#"{"symbol":"INFY","side":"sell","type":"market","qty":10}"#;
        assert!(parse(market).unwrap().validate().is_ok());
        for bad in [
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":1520.5}"#,
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":"10","limit_price":"1"}"#,
            r#"{"symbol":"INFY","side":"hold","type":"limit","qty":10,"limit_price":"1"}"#,
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":"1","x":1}"#,
            r#"{"symbol":"INFY","symbol":"TCS","side":"buy","type":"limit","qty":10,"limit_price":"1"}"#,
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":1.5,"limit_price":"1"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for invalid in [
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":0,"limit_price":"1"}"#,
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10,"limit_price":"0"}"#,
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":10}"#,
            r#"{"symbol":"INFY","side":"buy","type":"market","qty":10,"limit_price":"1"}"#,
            r#"{"symbol":"infy","side":"buy","type":"market","qty":10}"#,
            r#"{"symbol":"INFY","side":"buy","type":"limit","qty":1000000000,"limit_price":"99999999999999"}"#,
        ] {
            assert!(parse(invalid).unwrap().validate().is_err(), "{invalid}");
        }
    }
}
