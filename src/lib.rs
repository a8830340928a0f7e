//! orderkeeper: an equity order engine that never charges twice and never loses an order.
//!
//! # Layout
//! - [`domain`]: money, ids, and the order state machine (one transition table). No I/O.
//! - [`db`]: the SQLite pool, the schema, and queries per table group.
//! - [`ledger`]: balances as the sum of uniquely keyed entries.
//! - [`orders`]: atomic phases that change an order (submit, cancel), and its JSON views.
//! - [`engine`]: one supervised actor per open order, its steps, and recovery after a restart.
//! - [`exchange`]: the client for the venue, its price cache, and the fault-injecting simulator.
//! - [`feed`]: the outbox relay, the event hub, and the WebSocket sessions of the live feed.
//! - [`http`]: the API handlers; [`error`] maps every failure to one JSON shape.
//! - [`metrics`]: the Prometheus figures behind `GET /metrics`.
//! - [`config`], [`telemetry`], [`startup`]: the command line, logging, and wiring it all up.

#[macro_use]
mod macros;

pub mod app;
pub mod config;
pub mod db;
pub mod domain;
pub mod engine;
pub mod error;
pub mod exchange;
pub mod fault_points;
pub mod feed;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod orders;
pub mod startup;
pub mod telemetry;
