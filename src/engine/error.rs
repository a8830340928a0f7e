//! What the engine's work can come to besides its answer: an order phase's error (its database
//! cause, a fence, a refusal), or the engine itself unable to go on (stopping, a fault point).
//! The HTTP edge maps it (`http::error`); an order actor tells a fence from a failure by it.

use crate::db::{DbError, PhaseError};
use crate::domain::fence::Fenced;
use crate::orders::OrderError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Order(#[from] OrderError),
    /// The engine cannot do the work now (it is stopping, or a fault point is armed); the work
    /// may be tried again.
    #[error("the engine cannot do this now: {0}")]
    Unavailable(String),
}

impl From<DbError> for EngineError {
    fn from(error: DbError) -> Self {
        EngineError::Order(error.into())
    }
}

impl From<diesel::result::Error> for EngineError {
    fn from(error: diesel::result::Error) -> Self {
        EngineError::Order(error.into())
    }
}

impl From<Fenced> for EngineError {
    fn from(why: Fenced) -> Self {
        EngineError::Order(why.into())
    }
}

impl PhaseError for EngineError {
    fn may_mean_a_lost_connection(&self) -> bool {
        match self {
            EngineError::Order(e) => e.may_mean_a_lost_connection(),
            EngineError::Unavailable(_) => false,
        }
    }
}
