//! FIX 4.4 to a venue, on the `ironfix-engine` session layer. The session's sequence numbers and
//! the messages it sent live in the engine's database ([`store`]), so that a restart, or an
//! engine taking the session over, resumes it.

pub mod market;
pub mod messages;
pub mod session;
pub mod store;
pub mod venue;

pub use session::{FixEndpoint, PushDelivery};
pub use venue::FixVenue;
