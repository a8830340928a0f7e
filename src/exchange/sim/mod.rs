//! A simulated exchange with fault injection. It runs as `orderkeeper exchange-sim`, or inside
//! `serve` on its own listener; either way the engine speaks to it only over HTTP.

pub mod market;
pub mod server;

pub use server::{start, SimHandle};
