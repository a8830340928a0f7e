//! An order as a customer asks for it, checked: what `POST /v1/orders` is parsed into, once.

use super::{Cents, OrderType, Side, Symbol, TimeInForce};

/// A market buy, and a stop buy, reserve and are protected at a price plus this percent.
pub const MARKET_PROTECTION_PERCENT: i64 = 105;

/// The protection price of a buy of `qty` valued at `price` (the last price, or a stop's):
/// `price` × 1.05 rounded up to the cent; None when that, or `qty` times it, is not an amount.
pub fn protection_of(price: Cents, qty: i64) -> Option<Cents> {
    price
        .scaled_up_percent(MARKET_PROTECTION_PERCENT)
        .filter(|p| p.times(qty).is_some())
}

/// Large enough for any real order, small enough that `qty × price` cannot overflow unnoticed.
pub const MAX_QTY: i64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub symbol: Symbol,
    pub side: Side,
    pub order_type: OrderType,
    pub qty: i64,
    /// Present exactly for a limit or a stop-limit order.
    pub limit_price: Option<Cents>,
    /// Present exactly for a stop or a stop-limit order: the last price that triggers it.
    pub stop_price: Option<Cents>,
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
        Self::with_stop(symbol, side, order_type, qty, limit_price, None)
    }

    /// [`NewOrder::new`] for any type, a stop or stop-limit with its `stop_price`.
    pub fn with_stop(
        symbol: &str,
        side: Side,
        order_type: OrderType,
        qty: i64,
        limit_price: Option<Cents>,
        stop_price: Option<Cents>,
    ) -> Result<Self, String> {
        let symbol = Symbol::parse(symbol)?;
        if !(1..=MAX_QTY).contains(&qty) {
            return Err(format!(
                "qty must be a whole number of shares from 1 to {MAX_QTY}"
            ));
        }
        let kind = order_type.as_str();
        let named = |name: &str, price: Option<Cents>, wanted: bool| match price {
            None if wanted => Err(format!("{name} is required for a {kind} order")),
            Some(_) if !wanted => Err(format!("{name} must be absent for a {kind} order")),
            Some(price) if price.0 <= 0 => Err(format!("{name} must be positive")),
            Some(price) if price.times(qty).is_none() => Err(format!("qty × {name} is too large")),
            _ => Ok(()),
        };
        named("limit_price", limit_price, order_type.has_limit())?;
        named("stop_price", stop_price, order_type.is_stop())?;
        // A stop buy reserves at its stop price plus 5%: that too must fit an amount.
        if stop_price.is_some_and(|stop| protection_of(stop, qty).is_none()) {
            return Err("qty × stop_price is too large".into());
        }
        Ok(Self {
            symbol,
            side,
            order_type,
            qty,
            limit_price,
            stop_price,
            time_in_force: TimeInForce::Gtc,
        })
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
        if let Some(stop) = self.stop_price {
            canonical["stop_price"] = serde_json::json!(stop);
        }
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

    #[test]
    fn a_stop_names_its_stop_price_and_a_stop_limit_both_prices() {
        let order = |order_type, limit: Option<i64>, stop: Option<i64>| {
            NewOrder::with_stop(
                "INFY",
                Side::Sell,
                order_type,
                10,
                limit.map(Cents),
                stop.map(Cents),
            )
        };
        assert!(order(OrderType::Stop, None, Some(150_000)).is_ok());
        assert!(order(OrderType::StopLimit, Some(149_000), Some(150_000)).is_ok());
        assert!(order(OrderType::Stop, None, None).is_err(), "no stop price");
        assert!(
            order(OrderType::Stop, Some(149_000), Some(150_000)).is_err(),
            "a limit on a stop"
        );
        assert!(
            order(OrderType::StopLimit, None, Some(150_000)).is_err(),
            "no limit"
        );
        assert!(order(OrderType::StopLimit, Some(149_000), Some(0)).is_err());
        assert!(
            order(OrderType::Limit, Some(149_000), Some(150_000)).is_err(),
            "a stop on a limit"
        );
        assert!(order(OrderType::Market, None, Some(150_000)).is_err());
    }
}
