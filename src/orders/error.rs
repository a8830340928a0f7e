//! What a phase that changes an order can come to besides its answer, and the refusals that are
//! answers. The HTTP edge maps them (`http::error`); here they keep what happened, and the
//! database's cause.

use crate::db::accounts::Gate;
use crate::db::idempotency::StoredResponse;
use crate::db::{DbError, PhaseError};
use crate::domain::fence::Fenced;
use crate::domain::risk::OrderToCheck;
use crate::domain::{Breach, OrderStatus};
use crate::error::ErrorBody;

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
    /// A cancel or a replace of the order is already under way (or it is not yet acknowledged):
    /// asked again later, the same request may go through.
    #[error("the order is {0}: wait until what is under way is answered")]
    Busy(OrderStatus),
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

/// A business refusal of a new order or a replace: an answer (422), kept under its key like a
/// success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not enough cash: {0}")]
    InsufficientFunds(String),
    #[error("not enough shares: {0}")]
    InsufficientPosition(String),
    #[error("the order cannot be modified: {0}")]
    NotModifiable(String),
    /// The account's risk limits refuse it; the message names the limit first.
    #[error("{0}")]
    RiskLimit(#[from] Breach),
    /// Trading is halted, for the account or for every account (423).
    #[error("trading is halted {0}")]
    TradingHalted(&'static str),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::InsufficientFunds(_) => "insufficient_funds",
            Refusal::InsufficientPosition(_) => "insufficient_position",
            Refusal::NotModifiable(_) => "order_not_modifiable",
            Refusal::RiskLimit(_) => "risk_limit",
            Refusal::TradingHalted(_) => "trading_halted",
        }
    }

    /// The HTTP status the refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::TradingHalted(_) => 423,
            _ => 422,
        }
    }

    /// Why the account's gate refuses an order, if it does: a halt of every account (`all_halted`)
    /// or of this one, else a risk limit. `open` is the account's open orders for a new order,
    /// None for a replace's new terms (which add no order).
    pub fn of_gate(
        gate: &Gate,
        all_halted: bool,
        order: OrderToCheck,
        open: Option<i64>,
    ) -> Option<Refusal> {
        if all_halted {
            return Some(Refusal::TradingHalted("for every account"));
        }
        if gate.halted {
            return Some(Refusal::TradingHalted("for this account"));
        }
        let checked = match open {
            Some(open) => gate.limits.check(order, open),
            None => gate.limits.check_terms(order),
        };
        checked.err().map(Refusal::from)
    }

    /// The answer's body, as the API sends it.
    pub fn body(&self) -> String {
        let body = ErrorBody::new(self.code(), &self.to_string());
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// The answer as it is kept under the request's key.
    pub fn stored(&self) -> StoredResponse {
        StoredResponse {
            status: self.status(),
            location: None,
            body: self.body(),
        }
    }
}

/// The account's stored keys once one more is stored, or the refusal past its cap (`max`, 0 for
/// none). A key that replaces an expired one of its name takes its place in the count.
pub fn one_more_key(held: i64, replaces_expired: bool, max: i64) -> Result<i64, OrderError> {
    let after = held + i64::from(!replaces_expired);
    if max > 0 && after > max {
        return Err(OrderError::TooManyStoredKeys(max));
    }
    Ok(after)
}
