//! The exchange: the engine's client for it, its price cache, and the simulator that stands in for it.

pub mod client;
pub mod fix;
pub(crate) mod prices;
pub(crate) mod retry;
pub mod signature;
pub mod sim;
pub(crate) mod wire;

pub use client::{ExchangeClient, ExchangeError, HttpExchange};

thread_local! {
    // awc clients are per thread; one per thread keeps its connection pool warm.
    static CLIENT: awc::Client = awc::Client::builder().disable_redirects().finish();
}

/// This thread's HTTP client for calls between the engine and the exchange. Callers set a timeout
/// on each request.
pub fn http_client() -> awc::Client {
    CLIENT.with(Clone::clone)
}
pub use prices::PriceCache;

/// Locks `mutex`, going on after a panic elsewhere: what these locks guard is plain data that a
/// panic leaves whole.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
