//! The live feed: the outbox relay, the hub that fans events out, and one WebSocket session per
//! browser.

pub mod hub;
pub mod messages;
pub mod relay;
pub mod session;

pub use hub::Hub;
pub use relay::Relay;
pub use session::FeedSession;
