//! What every request handler shares: the application's state, built once at start-up.

use actix::Addr;

use crate::auth::Authenticator;
use crate::db::{DbPool, Writer};
use crate::domain::session::SessionClose;
use crate::engine::Engine;
use crate::exchange::PriceCache;
use crate::feed::{Hub, Relay};
use crate::idempotency::{Answered, InFlight};
use crate::limits::{OrderRate, StreamSessions};

pub struct AppState {
    /// For reads.
    pub pool: DbPool,
    pub auth: Authenticator,
    /// For every atomic phase.
    pub writer: Writer,
    pub engine: Engine,
    pub hub: Addr<Hub>,
    pub relay: Relay,
    pub prices: std::sync::Arc<PriceCache>,
    pub in_flight: InFlight,
    /// The keys of the orders this engine answered last, for retries.
    pub answered: Answered,
    /// Whether `/demo.json` gives the demo account's token (a loopback listener, or asked for).
    pub serve_demo_token: bool,
    /// Checks that the database answers, for `/readyz`.
    pub db_probe: crate::db::Probe,
    /// SHA-256 (hex) of the operator's admin token.
    pub admin_token_hash: String,
    /// The embedded simulator's base URL (None with an external exchange).
    pub embedded_exchange: Option<String>,
    /// HMAC key of the exchange's push signatures.
    pub exchange_secret: String,
    pub idempotency_ttl_micros: i64,
    /// When `day` orders expire.
    pub session_close: SessionClose,
    /// The most keys an account may hold (0 = no cap).
    pub max_stored_keys: i64,
    pub order_rate: OrderRate,
    pub stream_sessions: StreamSessions,
    /// How old a pushed fill may be, in microseconds.
    pub push_replay_window_micros: i64,
    /// How long the outbox keeps an event, in microseconds.
    pub outbox_retention_micros: i64,
    /// The last money audit's verdict, for `/healthz` and the dashboard.
    pub last_audit: std::sync::Arc<crate::audit::LastVerdict>,
    /// When this process started (RFC 3339), so a dashboard can tell a restart.
    pub started_at: String,
    /// Whether the outbox is also published to a broker.
    pub broker: bool,
}
