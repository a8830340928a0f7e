//! Last prices from the exchange, cached briefly: a market buy reserves at the last price × 1.05, and
//! the set of listed symbols decides which orders are accepted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::{ExchangeClient, ExchangeError};
use crate::domain::Cents;

pub struct PriceCache {
    exchange: Arc<dyn ExchangeClient>,
    prices: DashMap<String, Cents>,
    fetched_at: Mutex<Option<Instant>>,
    max_age: Duration,
}

impl PriceCache {
    pub fn new(exchange: Arc<dyn ExchangeClient>, max_age: Duration) -> Self {
        Self {
            exchange,
            prices: DashMap::new(),
            fetched_at: Mutex::new(None),
            max_age,
        }
    }

    fn is_fresh(&self) -> bool {
        self.fetched_at
            .lock()
            .map(|at| at.is_some_and(|at| at.elapsed() < self.max_age))
            .unwrap_or(false)
    }

    async fn refresh(&self) -> Result<(), ExchangeError> {
        let prices = self.exchange.prices().await?;
        for (symbol, price) in prices {
            self.prices.insert(symbol, price);
        }
        if let Ok(mut at) = self.fetched_at.lock() {
            *at = Some(Instant::now());
        }
        Ok(())
    }

    /// A recent last price of `symbol`, or None when the exchange does not list it.
    pub async fn last_price(&self, symbol: &str) -> Result<Option<Cents>, ExchangeError> {
        if !self.is_fresh() {
            self.refresh().await?;
        }
        Ok(self.known(symbol))
    }

    /// The last price of `symbol` the engine has seen, however old, without asking the venue.
    pub fn known(&self, symbol: &str) -> Option<Cents> {
        self.prices.get(symbol).map(|p| *p)
    }

    /// Every last price the engine has seen, however old, without asking the venue.
    pub fn known_all(&self) -> std::collections::BTreeMap<String, Cents> {
        self.prices
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect()
    }

    /// Every listed symbol's recent last price.
    pub async fn all(&self) -> Result<std::collections::BTreeMap<String, Cents>, ExchangeError> {
        if !self.is_fresh() {
            self.refresh().await?;
        }
        Ok(self
            .prices
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect())
    }

    /// Whether the venue's listing has been seen, asking for it once more if not. Until it has,
    /// no order can be checked or priced (over FIX the prices come after the session's logon).
    pub async fn listing_known(&self) -> bool {
        if !self.prices.is_empty() {
            return true;
        }
        self.refresh().await.is_ok() && !self.prices.is_empty()
    }

    /// Whether the exchange lists `symbol`. A listing once seen is trusted even while the exchange
    /// is unreachable, so limit orders keep being accepted.
    pub async fn is_listed(&self, symbol: &str) -> Result<bool, ExchangeError> {
        if self.prices.contains_key(symbol) {
            return Ok(true);
        }
        if !self.is_fresh() {
            self.refresh().await?;
        }
        Ok(self.prices.contains_key(symbol))
    }
}
