//! Pure domain types: no I/O here.

pub mod ids;
pub mod money;
pub mod order;
#[cfg(test)]
mod properties;

pub use ids::{AccountId, ClientOrderId, OrderId};
pub use money::Cents;
pub use order::{
    fill_within_limit, terminal_action, Action, ActionKind, FillSource, OrderState, OrderStatus,
    OrderType, Side, TransitionError, VenueEnd,
};
