//! A fresh database for every test: a SQLite file in the test's own directory, or, when
//! `ORDERKEEPER_TEST_POSTGRES` names a PostgreSQL server (`postgres://postgres@127.0.0.1`), a
//! database of its own on that server, dropped when the test is done.

#![allow(dead_code)]

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// The PostgreSQL server the suite runs against, if it was asked to.
pub fn postgres_server() -> Option<String> {
    std::env::var("ORDERKEEPER_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
}

/// For a test that only means something on PostgreSQL (it is `#[ignore]`d, and run with
/// `-- --include-ignored`): fails loudly when no server was named, rather than passing unrun.
pub fn require_postgres() -> String {
    postgres_server().expect("this test needs ORDERKEEPER_TEST_POSTGRES (a PostgreSQL server)")
}

/// The database URL of the test that owns `dir`: made on first use, the same ever after.
pub fn url_for(dir: &Path) -> String {
    let remembered = dir.join("database_url");
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return url;
    }
    let url = match postgres_server() {
        Some(server) => {
            let name = format!("ok_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = PgConnection::establish(&format!("{server}/postgres"))
                .expect("the PostgreSQL server of ORDERKEEPER_TEST_POSTGRES answers");
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("a fresh database");
            // Loopback needs no TLS; without it libpq loads no TLS library that a test process
            // exiting with connections still open could trip over.
            format!("{server}/{name}?sslmode=disable")
        }
        None => format!("sqlite://{}", dir.join("orderkeeper.db").display()),
    };
    std::fs::write(&remembered, &url).expect("the database URL is kept");
    url
}

/// Drops the PostgreSQL database of the test that owns `dir` (nothing to do for SQLite: the file
/// goes with the directory).
pub fn drop_for(dir: &Path) {
    let (Some(server), Ok(url)) = (
        postgres_server(),
        std::fs::read_to_string(dir.join("database_url")),
    ) else {
        return;
    };
    let Some(name) = url.rsplit('/').next().and_then(|s| s.split('?').next()) else {
        return;
    };
    if let Ok(mut admin) = PgConnection::establish(&format!("{server}/postgres")) {
        let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// Ends every other session on the database `url` names, as a server restart or a failover does.
pub fn terminate_every_session(url: &str) {
    let mut admin = PgConnection::establish(url).expect("connects");
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .expect("sessions terminated");
}
