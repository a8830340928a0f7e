//! The engine as a real process, killed and restarted: the SIGKILL crash test, the crash matrix of
//! named fault points, the seeded simulation, restarts seen from the live feed, several engines
//! on one database, and `orderkeeper demo`.

#[path = "../common/books.rs"]
mod books;
mod broker;
mod clocks;
#[path = "../common/database.rs"]
mod database;
mod default_install;
mod demo;
mod engines;
mod expiry;
#[path = "../common/feed_client.rs"]
mod feed_client;
mod fencing;
mod fix;
mod matrix;
mod nemesis;
mod processes;
#[path = "../common/proxy.rs"]
mod proxy;
#[path = "../common/quickfix.rs"]
mod quickfix;
mod replace;
mod restarts;
#[path = "../common/shared.rs"]
mod shared;
mod sigkill;
mod simulation;
mod stops;
mod twins;
#[path = "../common/venue.rs"]
mod venue;
