//! An order as a customer asks for it, checked: what `POST /v1/orders` is parsed into, once.

use super::{Cents, OrderType, Side, Symbol, TimeInForce};

/// Large enough for any real order, small enough that `qty × price` cannot overflow unnoticed.
pub const MAX_QTY: i64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub symbol: Symbol,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: i64,
    /// Present exactly for a limit order.
    pub limit_price: Option<Cents>,
    pub time_in_force: TimeInForce,
}

impl NewOrder {
    /// Checks what the order alone can tell (whether the exchange lists its symbol is asked later).
    pub fn new(
        symbol: &str,
        side: Side,
        order_type: OrderType,
        qty: i64,
        limit_price: Option<Cents>,
    ) -> Result<Self, String> {
        let symbol = Symbol::parse(symbol)?;
        if !(1..=MAX_QTY).contains(&qty) {
            return Err(format!(
                "qty must be a whole number of shares from 1 to {MAX_QTY}"
            ));
        }
        match (order_type, limit_price) {
            (OrderType::Limit, None) => Err("limit_price is required for a limit order".into()),
            (OrderType::Limit, Some(price)) if price.0 <= 0 => {
                Err("limit_price must be positive".into())
            }
            (OrderType::Limit, Some(price)) if price.times(qty).is_none() => {
                Err("qty × limit_price is too large".into())
            }
            (OrderType::Market, Some(_)) => {
                Err("limit_price must be absent for a market order".into())
            }
            _ => Ok(Self {
                symbol,
                side,
                order_type,
                qty,
                limit_price,
                time_in_force: TimeInForce::Gtc,
            }),
        }
    }

    /// The same order, living as long as `time_in_force` says.
    pub fn lasting(self, time_in_force: TimeInForce) -> Self {
        Self {
            time_in_force,
            ..self
        }
    }

    /// Its canonical JSON: the same order always prints the same, whatever the spelling of the
    /// request (key order, white space, "1520.5" or "1520.50"). `gtc`, the default, is left out:
    /// saying it or not is the same request.
    pub fn canonical(&self) -> serde_json::Value {
        let mut canonical = serde_json::json!({
            "symbol": self.symbol.as_str(),
            "side": self.side,
            "type": self.order_type,
            "qty": self.qty,
            "limit_price": self.limit_price,
        });
        if self.time_in_force != TimeInForce::Gtc {
            canonical["time_in_force"] = serde_json::json!(self.time_in_force);
        }
        canonical
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_order_is_made() {
        let limit = |qty, price| NewOrder::new("INFY", Side::Buy, OrderType::Limit, qty, price);
        assert!(limit(10, Some(Cents(152_050))).is_ok());
        assert!(NewOrder::new("INFY", Side::Sell, OrderType::Market, 10, None).is_ok());
        assert!(limit(0, Some(Cents(1))).is_err());
        assert!(limit(MAX_QTY + 1, Some(Cents(1))).is_err());
        assert!(limit(10, Some(Cents(0))).is_err());
        assert!(limit(10, None).is_err());
        assert!(limit(MAX_QTY, Some(Cents(i64::MAX / 2))).is_err());
        assert!(NewOrder::new("INFY", Side::Buy, OrderType::Market, 10, Some(Cents(1))).is_err());
        assert!(NewOrder::new("infy", Side::Buy, OrderType::Market, 10, None).is_err());
    }
}
