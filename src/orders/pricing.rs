//! What an order is priced at before it is recorded: the listing check, and a market buy's
//! protection price, from the exchange's last prices.

use super::OrderError;
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

/// A market buy reserves, and is protected at, the last price plus 5%.
pub const MARKET_PROTECTION_PERCENT: i64 = 105;

/// The price the order reserves at and is sent to the exchange with: its limit, or for a market
/// buy the last price × 1.05 rounded up to the cent; none for a market sell. Refuses a symbol the
/// exchange does not list.
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
        (OrderType::Limit, _) => Ok(order.limit_price),
        (OrderType::Market, Side::Sell) => Ok(None),
        (OrderType::Market, Side::Buy) => {
            let last = prices.last_price(symbol).await?.ok_or_else(unknown)?;
            let protection = last
                .scaled_up_percent(MARKET_PROTECTION_PERCENT)
                .filter(|p| p.times(order.qty).is_some())
                .ok_or(PricingError::ValueTooLarge)?;
            Ok(Some(protection))
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
