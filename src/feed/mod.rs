//! The live feed: the outbox relay, the hub that fans events out, one WebSocket session per
//! browser, and the publisher of the outbox to a broker.

pub mod broker;
pub mod hub;
pub mod messages;
pub mod relay;
pub mod session;

pub use hub::Hub;
pub use relay::Relay;
pub use session::FeedSession;
