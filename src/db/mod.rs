//! Persistence: the pool, the schema, and one module of queries per group of tables.

#[macro_use]
pub mod connection;
pub mod accounts;
pub mod admin_token;
pub mod alarms;
pub mod batcher;
mod error;
pub mod exchange_events;
pub mod fix_sessions;
pub mod idempotency;
pub mod leases;
pub mod ledger;
pub mod orders;
pub mod outbox;
pub mod pool;
pub mod positions;
pub mod prepared;
pub mod schema;
mod sql_types;
pub mod trading;
pub mod writer;

pub use connection::{Backend, DbConnection};
pub use error::{DbError, PhaseError};
pub use pool::{connect, DbConn, DbPool};
pub use writer::Writer;

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
pub async fn run<T, E, F>(pool: &DbPool, work: F) -> Result<T, E>
where
    T: Send + 'static,
    E: PhaseError,
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        let outcome = work(&mut conn);
        if outcome.as_ref().is_err_and(E::may_mean_a_lost_connection) {
            // A dead connection is marked broken, so the pool drops it instead of handing it out.
            conn.check_alive();
        }
        outcome
    })
    .await
    .map_err(|_| DbError::Unavailable("the worker pool is shut down".into()))?
}

/// Whether the database answers a trivial read within a second, for `/readyz`. One check runs at a
/// time, so a server that hangs ties up one blocking thread, not one per request.
#[derive(Debug, Default)]
pub struct Probe {
    in_flight: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Probe {
    pub async fn answers(&self, pool: &DbPool) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        if self.in_flight.swap(true, Ordering::AcqRel) {
            return Err("the database has not answered an earlier check yet".into());
        }
        let (pool, in_flight) = (pool.clone(), self.in_flight.clone());
        let check = actix_web::rt::spawn(async move {
            let answered = run(&pool, |conn| {
                conn.batch_execute("SELECT 1").map_err(DbError::from)
            })
            .await;
            in_flight.store(false, Ordering::Release);
            answered
        });
        match tokio::time::timeout(std::time::Duration::from_secs(1), check).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Err(e)) => Err(format!("the check did not run: {e}")),
            Err(_) => Err("the database did not answer within 1 s".into()),
        }
    }
}
