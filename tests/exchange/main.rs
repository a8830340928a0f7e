//! The simulator's contract and the engine's client for it, over real HTTP.

mod client;
mod helpers;
mod simulator;
