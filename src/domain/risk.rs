//! Pre-trade risk limits: what an account's operator allows one order to be, checked before
//! anything is reserved or sent. A limit not set allows anything.

use super::Cents;

/// An account's limits, as the operator set them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RiskLimits {
    /// The most one order may be worth: its quantity at its limit (a market order, at the last
    /// price).
    pub max_order_notional: Option<Cents>,
    /// The most orders the account may have open at once, this one included.
    pub max_open_orders: Option<i64>,
    /// How far, in percent of the last price, a limit price may be from it.
    pub price_band_percent: Option<i64>,
}

/// An order as the limits judge it.
#[derive(Debug, Clone, Copy)]
pub struct OrderToCheck {
    pub qty: i64,
    pub limit_price: Option<Cents>,
    /// A stop order's trigger: a stop (with no limit) is valued at it.
    pub stop_price: Option<Cents>,
    /// The venue's last price of the symbol, if the engine knows it.
    pub last_price: Option<Cents>,
}

/// The limit an order would break, with what it is and what the limit allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Breach {
    #[error("max_order_notional: the order is worth {worth}, more than {max}")]
    OrderNotional { worth: Cents, max: Cents },
    #[error("max_order_notional: no last price to value a market order at")]
    Unvalued,
    #[error("max_open_orders: the account has {open} open orders, the most it may")]
    OpenOrders { open: i64 },
    #[error(
        "price_band: the limit {limit} is more than {percent}% away from the last price {last}"
    )]
    PriceBand {
        limit: Cents,
        last: Cents,
        percent: i64,
    },
    #[error("price_band: no last price to hold the limit {limit} to")]
    NoLastPrice { limit: Cents },
}

impl RiskLimits {
    /// Whether a new `order` may go ahead while the account has `open` orders open.
    pub fn check(&self, order: OrderToCheck, open: i64) -> Result<(), Breach> {
        if let Some(max) = self.max_open_orders {
            if open >= max {
                return Err(Breach::OpenOrders { open });
            }
        }
        self.check_terms(order)
    }

    /// Whether an order's terms (new, or a replace's) are within the limits on one order.
    pub fn check_terms(&self, order: OrderToCheck) -> Result<(), Breach> {
        if let Some(max) = self.max_order_notional {
            let price = order.limit_price.or(order.stop_price).or(order.last_price);
            let price = price.ok_or(Breach::Unvalued)?;
            // Too large to be an amount is more than any limit.
            let worth = price.times(order.qty).unwrap_or(Cents(i64::MAX));
            if worth > max {
                return Err(Breach::OrderNotional { worth, max });
            }
        }
        if let (Some(percent), Some(limit)) = (self.price_band_percent, order.limit_price) {
            let last = order.last_price.ok_or(Breach::NoLastPrice { limit })?;
            let away = i128::from(limit.0 - last.0).abs() * 100;
            if away > i128::from(percent) * i128::from(last.0) {
                return Err(Breach::PriceBand {
                    limit,
                    last,
                    percent,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(qty: i64, limit: Option<i64>, last: Option<i64>) -> OrderToCheck {
        OrderToCheck {
            qty,
            limit_price: limit.map(Cents),
            stop_price: None,
            last_price: last.map(Cents),
        }
    }

    #[test]
    fn no_limit_allows_anything() {
        let none = RiskLimits::default();
        assert_eq!(none.check(order(i64::MAX, None, None), i64::MAX), Ok(()));
    }

    #[test]
    fn each_limit_holds_at_its_edge_and_refuses_past_it() {
        let notional = RiskLimits {
            max_order_notional: Some(Cents(100_000)),
            ..RiskLimits::default()
        };
        assert_eq!(notional.check(order(10, Some(10_000), None), 0), Ok(()));
        assert_eq!(
            notional.check(order(10, Some(10_001), None), 0),
            Err(Breach::OrderNotional {
                worth: Cents(100_010),
                max: Cents(100_000)
            })
        );
        // A market order is valued at the last price, and refused when there is none.
        assert_eq!(notional.check(order(10, None, Some(10_000)), 0), Ok(()));
        assert!(notional.check(order(11, None, Some(10_000)), 0).is_err());
        assert_eq!(
            notional.check(order(1, None, None), 0),
            Err(Breach::Unvalued)
        );

        let open = RiskLimits {
            max_open_orders: Some(3),
            ..RiskLimits::default()
        };
        assert_eq!(open.check(order(1, Some(1), None), 2), Ok(()));
        assert_eq!(
            open.check(order(1, Some(1), None), 3),
            Err(Breach::OpenOrders { open: 3 })
        );

        let band = RiskLimits {
            price_band_percent: Some(10),
            ..RiskLimits::default()
        };
        for at_edge in [9_000, 11_000] {
            assert_eq!(band.check(order(1, Some(at_edge), Some(10_000)), 0), Ok(()));
        }
        for past in [8_999, 11_001] {
            assert!(matches!(
                band.check(order(1, Some(past), Some(10_000)), 0),
                Err(Breach::PriceBand { .. })
            ));
        }
        // A market order has no limit to hold; a limit with no last price is refused.
        assert_eq!(band.check(order(1, None, None), 0), Ok(()));
        assert_eq!(
            band.check(order(1, Some(5), None), 0),
            Err(Breach::NoLastPrice { limit: Cents(5) })
        );
    }

    #[test]
    fn a_stop_is_valued_at_its_stop_and_banded_only_by_a_limit() {
        let limits = RiskLimits {
            max_order_notional: Some(Cents(100_000)),
            price_band_percent: Some(10),
            ..RiskLimits::default()
        };
        let stop = |stop: i64, limit: Option<i64>| OrderToCheck {
            qty: 10,
            limit_price: limit.map(Cents),
            stop_price: Some(Cents(stop)),
            last_price: Some(Cents(5_000)),
        };
        // 10 × 100.00 is the edge; a stop far from the last price is not a fat finger.
        assert_eq!(limits.check_terms(stop(10_000, None)), Ok(()));
        assert!(matches!(
            limits.check_terms(stop(10_001, None)),
            Err(Breach::OrderNotional { .. })
        ));
        // A stop-limit is valued and banded at its limit.
        assert_eq!(limits.check_terms(stop(10_000, Some(5_400))), Ok(()));
        assert!(limits.check_terms(stop(4_000, Some(9_000))).is_err());
    }

    #[test]
    fn a_breach_names_the_limit_first() {
        let named = [
            Breach::Unvalued.to_string(),
            Breach::OpenOrders { open: 1 }.to_string(),
            Breach::NoLastPrice { limit: Cents(1) }.to_string(),
        ];
        assert!(named[0].starts_with("max_order_notional"));
        assert!(named[1].starts_with("max_open_orders"));
        assert!(named[2].starts_with("price_band"));
    }
}
