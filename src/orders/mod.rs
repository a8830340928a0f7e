//! Order bookkeeping: each function here is one atomic phase (one database transaction).

pub mod cancel;
mod error;
pub mod intake;
pub mod lifecycle;
pub mod phase;
pub mod pricing;
pub mod recovered;
pub mod replace;
pub mod request;
pub mod status;
pub mod submit;
pub mod trigger;
pub mod view;

pub use error::{one_more_key, OrderError, Refusal};
pub use view::{ActionView, FillView, OrderView};
