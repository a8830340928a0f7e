//! What an order is priced at before it is recorded: the listing check, and a market buy's
//! protection price, from the exchange's last prices.

use super::OrderError;
use crate::domain::new_order::protection_of;
use crate::domain::{Cents, NewOrder, OrderType, Side, CASH};
use crate::exchange::{ExchangeError, PriceCache};

/// Why an order cannot be priced.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
    /// The order's price × quantity does not fit an amount.
    #[error("the order's value is too large")]
    ValueTooLarge,
    /// The exchange's prices could not be read.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

/// The price the order reserves at and is sent to the exchange with: its limit (a stop-limit's
/// too), for a market buy the last price × 1.05 and for a stop buy its stop price × 1.05, rounded
/// up to the cent; none for a market or stop sell. Refuses a symbol the exchange does not list.
pub async fn protection_price(
    prices: &PriceCache,
    order: &NewOrder,
) -> Result<Option<Cents>, PricingError> {
    let symbol = order.symbol.as_str();
    let unknown = || PricingError::UnknownSymbol(symbol.to_owned());
    if !prices.is_listed(symbol).await? {
        return Err(unknown());
    }
    match (order.order_type, order.side) {
        (OrderType::Limit | OrderType::StopLimit, _) => Ok(order.limit_price),
        (OrderType::Market | OrderType::Stop, Side::Sell) => Ok(None),
        (OrderType::Market | OrderType::Stop, Side::Buy) => {
            let valued_at = match order.stop_price {
                Some(stop) => stop,
                None => prices.last_price(symbol).await?.ok_or_else(unknown)?,
            };
            let protection = protection_of(valued_at, order.qty);
            Ok(Some(protection.ok_or(PricingError::ValueTooLarge)?))
        }
    }
}

/// What the order holds back while it is open: (asset, amount). A buy holds its price × qty of
/// cash; a sell holds its shares.
pub fn reservation(order: &NewOrder, price: Option<Cents>) -> Result<(&str, i64), OrderError> {
    match order.side {
        Side::Buy => {
            let price = price.ok_or_else(|| OrderError::broken("a buy without a price"))?;
            let cash = price.times(order.qty).ok_or(OrderError::ValueTooLarge)?;
            Ok((CASH, cash.0))
        }
        Side::Sell => Ok((order.symbol.as_str(), order.qty)),
    }
}

/// What an order holds for `left` shares still to fill at `price`: cash for a buy (None when it
/// does not fit an amount, or when a buy has no price), its shares for a sell.
pub fn hold(side: Side, price: Option<Cents>, left: i64) -> Option<i64> {
    match side {
        Side::Buy => price?.times(left).map(|cash| cash.0),
        Side::Sell => Some(left),
    }
}

/// The limit fills are checked and settled against while a replace is in flight: either version
/// may trade, so the more generous of the two (the higher for a buy, the lower for a sell).
pub fn limit_while_replacing(side: Side, old: Option<Cents>, new: Option<Cents>) -> Option<Cents> {
    match (side, old, new) {
        (Side::Buy, Some(old), Some(new)) => Some(old.max(new)),
        (Side::Sell, Some(old), Some(new)) => Some(old.min(new)),
        (_, old, new) => old.or(new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held while replacing, then trimmed to either version's need: never below what the version
    /// that trades needs, whichever it is and however much fills meanwhile.
    #[test]
    fn a_replace_holds_enough_for_either_version_and_each_end_trims_to_its_own() {
        let (old, new) = (Some(Cents(100)), Some(Cents(90)));
        for (side, old_qty, new_qty) in
            [(Side::Buy, 10, 20), (Side::Buy, 10, 6), (Side::Sell, 10, 4)]
        {
            let limit = limit_while_replacing(side, old, new);
            for filled in 0..6 {
                let held = hold(side, limit, old_qty.max(new_qty) - filled).unwrap();
                let kept = hold(side, old, old_qty - filled).unwrap();
                let taken = hold(side, new, (new_qty - filled).max(0)).unwrap();
                assert!(
                    held >= kept && held >= taken,
                    "{side:?} {old_qty}->{new_qty} at {filled}"
                );
            }
        }
        assert_eq!(limit_while_replacing(Side::Buy, old, new), Some(Cents(100)));
        assert_eq!(limit_while_replacing(Side::Sell, old, new), Some(Cents(90)));
        assert_eq!(hold(Side::Buy, None, 3), None);
        assert_eq!(hold(Side::Buy, Some(Cents(i64::MAX)), 2), None);
    }
}
