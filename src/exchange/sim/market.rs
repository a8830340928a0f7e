//! The simulated market: listed symbols and their prices, walking randomly in ticks of 0.05.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::RngExt;

use crate::domain::Cents;

/// NSE's tick size: prices move in steps of 5 paise.
pub const TICK: i64 = 5;

/// The listed symbols and where their prices start.
pub const LISTINGS: &[(&str, i64)] = &[
    ("HDFCBANK", 165_020),
    ("ICICIBANK", 110_045),
    ("INFY", 152_050),
    ("RELIANCE", 245_075),
    ("SBIN", 78_010),
    ("TCS", 345_000),
];

#[derive(Debug, Clone)]
pub struct Market {
    prices: BTreeMap<String, Cents>,
}

impl Default for Market {
    fn default() -> Self {
        Self {
            prices: LISTINGS
                .iter()
                .map(|(s, p)| ((*s).to_owned(), Cents(*p)))
                .collect(),
        }
    }
}

impl Market {
    pub fn prices(&self) -> &BTreeMap<String, Cents> {
        &self.prices
    }

    pub fn price(&self, symbol: &str) -> Option<Cents> {
        self.prices.get(symbol).copied()
    }

    /// Takes up saved prices of listed symbols where they were.
    pub fn restore(&mut self, saved: &[(String, Cents)]) {
        for (symbol, cents) in saved {
            if let Some(price) = self.prices.get_mut(symbol) {
                *price = *cents;
            }
        }
    }

    /// One step of the random walk: each price moves by up to about 0.1%, never below one tick.
    pub fn step(&mut self, rng: &mut StdRng) {
        for price in self.prices.values_mut() {
            let reach = (price.0 / TICK / 1000).max(1);
            let ticks = rng.random_range(-reach..=reach);
            price.0 = (price.0 + ticks * TICK).max(TICK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn prices_walk_in_ticks_and_the_same_seed_walks_the_same_way() {
        let walk = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut market = Market::default();
            for _ in 0..100 {
                market.step(&mut rng);
            }
            market.prices().clone()
        };
        let a = walk(7);
        assert_eq!(a, walk(7));
        assert_ne!(a, walk(8));
        assert!(a.values().all(|p| p.0 % TICK == 0 && p.0 > 0));
        assert_eq!(a.len(), LISTINGS.len());
    }
}
