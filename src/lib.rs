//! orderkeeper: an equity order engine that never charges twice and never loses an order.
//!
//! # Layout
//! - [`domain`]: money, ids, symbols, a new order, and the order's life (one transition table). No I/O.
//! - [`db`]: the SQLite pool, the schema, how domain types are stored, and queries per table group.
//! - [`idempotency`]: the key, the in-flight claim, and the one replay check.
//! - [`orders`]: atomic phases that change an order (submit, cancel, the actor's phases), parsing
//!   and pricing a new order, and its JSON views.
//! - [`engine`]: one supervised actor per open order, its steps, and recovery after a restart.
//! - [`exchange`]: the client for the venue, its price cache, and the fault-injecting simulator.
//! - [`feed`]: the outbox relay, the event hub, and the WebSocket sessions of the live feed.
//! - [`http`]: the API handlers; [`error`] maps every failure to one JSON shape; [`app`] is what
//!   they share.
//! - [`audit`]: the money audit, from the store and the exchange's own record.
//! - [`limits`]: the per-account order rate and feed session cap.
//! - [`metrics`]: the Prometheus figures behind `GET /metrics`; [`fault_points`]: the crash
//!   matrix's named points.
//! - [`demo`]: `orderkeeper demo`, the crash-and-restart demonstration with its report.
//! - [`config`], [`telemetry`], [`startup`]: the command line, logging, and wiring it all up;
//!   [`shutdown`]: the one signal that stops it all.
//!
//! # Flows
//! | flow | path |
//! |---|---|
//! | submit | `http::orders` → `orders::request` (parsed once into a [`domain::NewOrder`]) → [`idempotency`] → `orders::pricing` → `Engine::submit` → `db::batcher` (submissions that arrive together) → `orders::submit::submit_many` (one transaction for the batch; anything but a plain new order alone through `orders::submit::submit`) → the order's actor |
//! | place | `engine::order_actor` → `engine::steps::on_state` → `Engine::record_status` (`placement_sent`, batched with other orders' by `db::batcher` into `orders::status_batch::record_many`) → `ExchangeClient::place` → `Engine::record_status(accepted)` / `lifecycle::record_end` |
//! | push | `http::exchange_events` → `Engine::take_push` → a fill: `orders::intake::take_in` → `lifecycle::record_fill_on` → `orders::phase::write_action`; no fill: batched, `intake::take_in_many` → `db::exchange_events::store_new` → the actor only for what may end the order (`steps::on_push`) |
//! | fill by poll | the actor's poll timer → `steps::check_with_exchange` → `steps::reconcile` → `record_fill`, `record_end` |
//! | cancel | `http::orders` → `Engine::cancel` → `orders::cancel::request` (202) → `steps::on_state` → `ExchangeClient::cancel` → `record_end` (release) |
//! | recover | `startup` → `Engine::recover`, `Engine::adopt_orphans` → each actor's first step |
//! | outbox | `phase::write_action` → `db::outbox::append` (same transaction) → `feed::relay` → `feed::hub` |
//! | feed | `http::stream` → `feed::session`: replay from `db::outbox::since`, then live |

#[macro_use]
mod macros;

pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod error;
pub mod exchange;
pub mod fault_points;
pub mod feed;
pub mod http;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod orders;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
