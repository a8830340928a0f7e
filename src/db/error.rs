//! What a query can come to besides its answer. The HTTP edge maps it to an answer (`http::error`);
//! below the edge it keeps the database's own error as its cause.

use diesel::result::{DatabaseErrorKind, Error as Diesel};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Busy, unreachable, or it gave up on a statement or a lock wait: worth trying again.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The row asked for is not there.
    #[error("no such row")]
    NotFound,
    /// An Idempotency-Key that another request is writing right now.
    #[error("the key is being written by another request")]
    KeyInUse,
    /// The stored rows contradict what every phase keeps true (a balance that would overflow, a
    /// count gone wrong): nothing is written, and an operator must look.
    #[error("the stored books contradict themselves: {0}")]
    Inconsistent(String),
    /// A row that does not serialize or parse as its column says.
    #[error("a stored value is malformed")]
    Malformed(#[source] serde_json::Error),
    /// Anything else the database reported.
    #[error(transparent)]
    Query(Diesel),
    /// The writer could not carry the phase out (it panicked, or was never run).
    #[error("the writer failed a phase: {0}")]
    PhaseFailed(&'static str),
}

/// An error a phase may end in: the phase rolls back, and the error may say that the connection
/// it ran on is lost (then it is checked before it is used again).
pub trait PhaseError: std::error::Error + From<DbError> + From<Diesel> + Send + 'static {
    fn may_mean_a_lost_connection(&self) -> bool;
}

impl PhaseError for DbError {
    fn may_mean_a_lost_connection(&self) -> bool {
        matches!(self, DbError::Unavailable(_) | DbError::Query(_))
    }
}

impl From<Diesel> for DbError {
    fn from(error: Diesel) -> Self {
        match error {
            Diesel::NotFound => DbError::NotFound,
            Diesel::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().contains("locked") || info.message().contains("busy") =>
            {
                DbError::Unavailable("the database is busy".into())
            }
            Diesel::DatabaseError(DatabaseErrorKind::ClosedConnection, ref info) => {
                DbError::Unavailable(format!("the connection is lost: {}", info.message()))
            }
            // A statement, a lock wait or an idle transaction ran past its limit (PostgreSQL's
            // statement_timeout, lock_timeout, idle_in_transaction_session_timeout).
            Diesel::DatabaseError(_, ref info)
                if [
                    "due to statement timeout",
                    "due to lock timeout",
                    "lock timeout",
                    "idle-in-transaction timeout",
                    "terminating connection",
                ]
                .iter()
                .any(|m| info.message().contains(m)) =>
            {
                DbError::Unavailable(format!("it gave up: {}", info.message()))
            }
            other => DbError::Query(other),
        }
    }
}

impl From<serde_json::Error> for DbError {
    fn from(error: serde_json::Error) -> Self {
        DbError::Malformed(error)
    }
}

impl From<diesel::r2d2::PoolError> for DbError {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        DbError::Unavailable(format!("no connection: {error}"))
    }
}
