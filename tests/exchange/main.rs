//! The simulator's contract and the engine's client for it, over real HTTP.

mod client;
mod helpers;
#[path = "../common/shared.rs"]
mod shared;
mod simulator;
