//! Every message an order actor takes, in one place.

use actix::Message;

use crate::db::orders::OrderRow;
use crate::domain::AccountId;
use crate::error::AppError;
use crate::exchange::wire::PushEvent;
use crate::orders::cancel::CancelAnswer;

/// Why the actor is asked to make progress.
#[derive(Debug, Clone)]
pub enum Reason {
    /// Started or restarted: carry on from the last recorded step.
    Recover,
    /// The poll timer: compare with the exchange's copy.
    Poll,
    /// A push from the exchange.
    Push(PushEvent),
    /// The customer's cancel was just recorded.
    Cancel,
    /// Test-only: panic inside a step, to show that a crash restarts the actor from its log.
    Crash,
}

/// Make progress on the order.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drive(pub Reason);

/// The customer asks to cancel; answered once the request is recorded.
#[derive(Debug, Message)]
#[rtype(result = "Result<(CancelAnswer, OrderRow), AppError>")]
pub struct RequestCancel {
    pub account: AccountId,
}
