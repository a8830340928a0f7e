//! Pure domain types: no I/O here.

pub mod fence;
pub mod ids;
pub mod money;
pub mod new_order;
pub mod order;
pub mod order_event;
pub mod position;
#[cfg(test)]
mod properties;
pub mod risk;
pub mod session;
pub mod stop;
#[cfg(test)]
pub(crate) use properties::{bytes_near, parsed_of_256_near};
pub mod symbol;
pub mod venue;
pub mod whole_number;

pub use ids::{AccountId, ClientOrderId, OrderId};
pub use money::Cents;
pub use new_order::{NewOrder, MAX_QTY};
pub use order_event::{AckSource, EndCause, OrderEvent, Terms};
pub use position::Position;
pub use risk::{Breach, RiskLimits};
pub use stop::StopBook;
pub use symbol::Symbol;
pub use venue::{
    OrderRef, OrderToPlace, PlacedAck, ReplaceTerms, ReportKind, VenueFill, VenueOrder,
    VenueReport, VenueStatus,
};

/// The asset name of cash (in cents) in every account. Every other asset is a symbol (in shares).
pub const CASH: &str = "CASH";
pub use order::{
    fill_within_limit, terminal_action, Action, ActionKind, EventKind, FillSource, OrderState,
    OrderStatus, OrderType, Side, TimeInForce, TransitionError, VenueEnd,
};
