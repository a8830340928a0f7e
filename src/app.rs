//! What every request handler shares: the application's state, built once at start-up.

use actix::Addr;

use crate::auth::Authenticator;
use crate::db::{DbPool, Writer};
use crate::engine::Engine;
use crate::exchange::PriceCache;
use crate::feed::{Hub, Relay};
use crate::idempotency::InFlight;

pub struct AppState {
    /// For reads.
    pub pool: DbPool,
    pub auth: Authenticator,
    /// For every atomic phase.
    pub writer: Writer,
    pub engine: Engine,
    pub hub: Addr<Hub>,
    pub relay: Relay,
    pub prices: PriceCache,
    pub in_flight: InFlight,
    pub admin_token: String,
    /// The embedded simulator's base URL (None with an external exchange).
    pub embedded_exchange: Option<String>,
    /// HMAC key of the exchange's push signatures.
    pub exchange_secret: String,
    pub idempotency_ttl_micros: i64,
    /// Whether the outbox is also published to a broker.
    pub broker: bool,
}
