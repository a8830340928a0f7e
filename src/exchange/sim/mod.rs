//! A simulated exchange with fault injection. It runs as `orderkeeper exchange-sim`, or inside
//! `serve` on its own listener; either way the engine speaks to it only over HTTP.

pub mod book;
pub mod faults;
pub mod market;
pub mod push;
pub mod server;

pub use server::{start, SimHandle};
