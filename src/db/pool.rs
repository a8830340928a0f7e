//! The connection pool: SQLite in WAL mode with durable commits, migrations embedded in the binary.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{Connection, SqliteConnection};

use super::Writer;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub type DbPool = Pool<ConnectionManager<SqliteConnection>>;
pub type DbConn = PooledConnection<ConnectionManager<SqliteConnection>>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH")]
    UnsupportedUrl(String),
    #[error("cannot open the database: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("migrations failed: {0}")]
    Migrations(String),
    #[error("cannot start the database writer: {0}")]
    Writer(String),
}

/// Pragmas for every pooled connection.
///
/// `synchronous = FULL` with WAL fsyncs the log on every commit, so an answered request survives a
/// power loss as well as `kill -9`. `busy_timeout` makes a writer wait for the lock instead of failing.
#[derive(Debug, Clone, Copy)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 10000;
             PRAGMA foreign_keys = ON;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// `sqlite://orderkeeper.db` (relative to the working directory), `sqlite:///abs/path.db`, or a bare path.
pub fn sqlite_path(database_url: &str) -> Result<String, DbSetupError> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        return Err(DbSetupError::UnsupportedUrl(database_url.to_owned()));
    }
    let path = database_url
        .strip_prefix("sqlite://")
        .unwrap_or(database_url);
    if path.is_empty() {
        return Err(DbSetupError::UnsupportedUrl(database_url.to_owned()));
    }
    Ok(path.to_owned())
}

/// Opens the writer's own connection, with the same pragmas as the pool's.
pub fn open_writer(database_url: &str) -> Result<Writer, DbSetupError> {
    let path = sqlite_path(database_url)?;
    let connect = move || {
        let mut conn = SqliteConnection::establish(&path).map_err(|e| e.to_string())?;
        SqlitePragmas
            .on_acquire(&mut conn)
            .map_err(|e| e.to_string())?;
        Ok(conn)
    };
    Writer::start(connect).map_err(DbSetupError::Writer)
}

/// Opens the pool and brings the schema up to date.
pub fn connect(database_url: &str, max_size: u32) -> Result<DbPool, DbSetupError> {
    let manager = ConnectionManager::<SqliteConnection>::new(sqlite_path(database_url)?);
    let pool = Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(10))
        .connection_customizer(Box::new(SqlitePragmas))
        .build(manager)?;
    let mut conn = pool.get()?;
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| DbSetupError::Migrations(e.to_string()))?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sqlite_urls() {
        assert_eq!(
            sqlite_path("sqlite://orderkeeper.db").ok().as_deref(),
            Some("orderkeeper.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db").ok().as_deref(),
            Some("/tmp/x.db")
        );
        assert_eq!(sqlite_path("data/x.db").ok().as_deref(), Some("data/x.db"));
        assert!(sqlite_path("postgres://localhost/db").is_err());
        assert!(sqlite_path("sqlite://").is_err());
    }
}
