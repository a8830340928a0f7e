//! Persistence: the pool, the schema, and one module of queries per group of tables.

#[macro_use]
pub mod connection;
pub mod accounts;
pub mod admin_token;
pub mod alarms;
pub mod batcher;
pub mod exchange_events;
pub mod idempotency;
pub mod leases;
pub mod ledger;
pub mod orders;
pub mod outbox;
pub mod pool;
pub mod prepared;
pub mod schema;
mod sql_types;
pub mod writer;

pub use connection::{Backend, DbConnection};
pub use pool::{connect, open_writer, DbConn, DbPool};
pub use writer::Writer;

use crate::error::AppError;

/// Microseconds since the Unix epoch: how every time is stored.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// RFC 3339 UTC text for a stored time.
pub fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Runs blocking reads on the blocking pool, with a pooled connection. Writes go through the
/// [`Writer`].
pub async fn run<T, F>(pool: &DbPool, work: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, AppError> + Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .await?
}
