//! What a phase that changes an order can come to besides its answer. The HTTP edge maps it to an
//! answer (`AppError: From<OrderError>`); here it keeps what happened, and the database's cause.

use crate::db::{DbError, PhaseError};
use crate::domain::fence::Fenced;
use crate::domain::OrderStatus;
use crate::error::AppError;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// Another engine, or a later epoch of this one, holds the order's lease: this phase must not
    /// act on it.
    #[error(transparent)]
    Fenced(#[from] Fenced),
    /// No such order (of this account).
    #[error("no such order")]
    NotFound,
    #[error("the order is {0} and can no longer be canceled")]
    NotCancelable(OrderStatus),
    /// A live Idempotency-Key sent with another request.
    #[error("this Idempotency-Key was used with a different request")]
    KeyReused,
    /// The account holds the most stored keys it may.
    #[error("the account holds {0} stored Idempotency-Keys, the most it may")]
    TooManyStoredKeys(i64),
    /// The order's price × quantity does not fit an amount.
    #[error("the order's value is too large")]
    ValueTooLarge,
    /// A phase found its own rule broken (a bug, never the customer's doing).
    #[error("a phase broke its own rule: {0}")]
    Broken(String),
}

impl OrderError {
    pub fn broken(what: impl Into<String>) -> Self {
        OrderError::Broken(what.into())
    }
}

impl From<diesel::result::Error> for OrderError {
    fn from(error: diesel::result::Error) -> Self {
        OrderError::Db(error.into())
    }
}

impl From<serde_json::Error> for OrderError {
    fn from(error: serde_json::Error) -> Self {
        OrderError::Db(error.into())
    }
}

impl PhaseError for OrderError {
    fn may_mean_a_lost_connection(&self) -> bool {
        match self {
            OrderError::Db(e) => e.may_mean_a_lost_connection(),
            OrderError::Broken(_) => true,
            _ => false,
        }
    }
}

impl From<OrderError> for AppError {
    fn from(error: OrderError) -> Self {
        match error {
            OrderError::Db(e) => e.into(),
            OrderError::Fenced(why) => AppError::Fenced(why),
            OrderError::NotFound => AppError::NotFound,
            OrderError::NotCancelable(status) => AppError::OrderNotCancelable(status.to_string()),
            OrderError::KeyReused => AppError::IdempotencyKeyReused,
            OrderError::TooManyStoredKeys(most) => AppError::TooManyStoredKeys(most),
            OrderError::ValueTooLarge => {
                AppError::InvalidRequest(OrderError::ValueTooLarge.to_string())
            }
            OrderError::Broken(what) => AppError::internal(what),
        }
    }
}
