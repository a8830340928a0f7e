//! The simulator's contract and the engine's client for it, over real HTTP; the FIX session's
//! store and messages against QuickFIX; the engine's FIX venue against the simulator's faults.

mod client;
#[path = "../common/database.rs"]
mod database;
mod fix;
mod fix_simulator;
mod helpers;
#[path = "../common/quickfix.rs"]
mod quickfix;
#[path = "../common/shared.rs"]
mod shared;
mod simulator;
