//! The simulator's contract and the engine's client for it, over real HTTP; the FIX session's
//! store against QuickFIX.

mod client;
#[path = "../common/database.rs"]
mod database;
mod fix;
mod helpers;
#[path = "../common/quickfix.rs"]
mod quickfix;
#[path = "../common/shared.rs"]
mod shared;
mod simulator;
