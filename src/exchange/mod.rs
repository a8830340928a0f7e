//! The exchange: the engine's client for it, its price cache, and the simulator that stands in for it.

pub mod client;
pub mod prices;
pub mod retry;
pub mod signature;
pub mod sim;
pub mod wire;

pub use client::{ExchangeClient, ExchangeError, HttpExchange};
pub use prices::PriceCache;
