//! The test-support seam: what the integration tests, the benchmarks and the fuzz targets reach
//! below the HTTP API and the binary. Every other module of the crate is private to it, so this
//! list is the whole of what a check can touch from outside.
//!
//! - [`db`]: open a database, run a query on either backend ([`with_conn!`](crate::with_conn)),
//!   and read or arrange what the engine stores (orders, balances, alarms, the outbox, leases and
//!   notes, stored keys).
//! - [`orders`]: the atomic phases the engine runs, to drive one directly against a database: a
//!   batch that rolls back half-way, a fence that lost its lease, two engines racing on one row.
//! - The engine's handle, the error every phase maps to, and the few wire details a check must
//!   speak (a venue push, the feed's close code for a slow reader).

/// The store: connections, the schema, and the queries per table group.
pub mod db {
    pub use crate::db::connection::{establish, Backend, Inner};
    pub use crate::db::pool::Connector;
    pub use crate::db::{
        accounts, alarms, idempotency, leases, ledger, orders, outbox, schema, trading,
    };
    pub use crate::db::{connect, now_micros, DbConn, DbConnection, DbError, DbPool};
}

/// The phases that change an order, each one transaction.
pub mod orders {
    pub use crate::orders::{cancel, intake, lifecycle, replace, request, status, submit};
}

pub use crate::engine::Engine;
pub use crate::exchange::wire::parse_push;
pub use crate::feed::session::CLOSE_TOO_SLOW;
pub use crate::idempotency::IdempotencyKey;
pub use crate::orders::OrderError;
pub use crate::shutdown::Shutdown;
