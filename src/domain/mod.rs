//! Pure domain types: no I/O here.

pub mod ids;
pub mod money;
pub mod order;

pub use ids::{AccountId, ClientOrderId, OrderId};
pub use money::Cents;
pub use order::{Action, ActionKind, OrderState, OrderStatus, OrderType, Side, TransitionError};
