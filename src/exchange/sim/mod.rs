//! A simulated exchange with fault injection. It runs as `orderkeeper exchange-sim`, or inside
//! `serve` on its own listener; either way the engine speaks to it only over the network: HTTP,
//! or FIX 4.4 with `--fix-listen` (`fix_front`). With a book
//! file (`--book-file`, and always when embedded) its orders outlive a restart.

pub mod book;
pub mod faults;
mod fix_front;
mod fix_reports;
mod fix_wire;
pub mod market;
pub mod push;
pub mod server;
pub mod store;

pub use crate::config::ENGINE_COMP_ID;
pub use fix_front::VENUE_COMP_ID;
pub use server::{start, SimHandle};

/// The `--exchange` URL of a simulator's FIX acceptor on this host's `port`, under the CompIDs it
/// expects by default.
pub fn fix_url(port: u16) -> String {
    format!("fix://127.0.0.1:{port}?sender={ENGINE_COMP_ID}&target={VENUE_COMP_ID}")
}
