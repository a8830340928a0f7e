//! API tests: the real server on a port, a fresh SQLite file per test, real HTTP.

mod actors;
mod admin;
mod audit;
mod auth;
mod cancel_and_read;
mod conservation;
#[path = "../common/database.rs"]
mod database;
mod database_faults;
mod exchange_push;
mod feed;
#[path = "../common/feed_client.rs"]
mod feed_client;
mod helpers;
mod hostile;
mod idempotency;
mod leases;
mod limits;
mod modify;
mod money_holes;
mod ops;
mod positions;
#[path = "../common/proxy.rs"]
mod proxy;
mod risk;
#[path = "../common/shared.rs"]
mod shared;
mod status_batches;
mod stops;
mod submit_batches;
mod time_in_force;
mod validation;
#[path = "../common/venue.rs"]
mod venue;
