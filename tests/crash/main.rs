//! The engine as a real process, killed and restarted: the SIGKILL crash test, the crash matrix of
//! named fault points, the seeded simulation, and restarts seen from the live feed.

#[path = "../common/books.rs"]
mod books;
#[path = "../common/database.rs"]
mod database;
#[path = "../common/feed_client.rs"]
mod feed_client;
mod matrix;
mod processes;
mod restarts;
#[path = "../common/shared.rs"]
mod shared;
mod sigkill;
mod simulation;
