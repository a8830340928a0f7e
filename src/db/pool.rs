//! Connections for reads (a pool) and for the writer, to SQLite or PostgreSQL as the database URL
//! says, with each backend's migrations embedded in the binary and run at start-up.
//!
//! SQLite runs in WAL mode with `synchronous = FULL`: the log is fsynced on every commit, so an
//! answered request survives a power loss as well as `kill -9`. `busy_timeout` makes a writer wait
//! for the lock instead of failing.

use std::time::Duration;

use diesel::r2d2::{ManageConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::connection::{self, Backend, DbConnection, Inner};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

pub type DbPool = Pool<Connector>;
pub type DbConn = PooledConnection<Connector>;

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot open the database: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("migrations failed: {0}")]
    Migrations(String),
    #[error("cannot start the database writer: {0}")]
    Writer(String),
}

/// How long PostgreSQL lets the engine's statements, lock waits and idle transactions run, and
/// how soon a silent server is given up. A paused or cut-off engine then cannot hold rows that
/// other engines need for longer than these, and a dead server shows itself as an error instead
/// of a wait without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbLimits {
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub idle_in_transaction_timeout: Duration,
    /// Idle time before TCP keepalive probes start (then 3 probes, 2 s apart), and the base of
    /// `tcp_user_timeout` for data the server never acknowledges.
    pub keepalive_idle: Duration,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
}

impl Default for DbLimits {
    fn default() -> Self {
        Self {
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(3),
            idle_in_transaction_timeout: Duration::from_secs(3),
            keepalive_idle: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl DbLimits {
    /// libpq's connection parameters for these limits, for those the URL does not set itself.
    fn connection_parameters(&self, url: &str) -> String {
        let idle = self.keepalive_idle.as_secs().max(1);
        let wanted = [
            ("keepalives", "1".to_owned()),
            ("keepalives_idle", idle.to_string()),
            ("keepalives_interval", "2".to_owned()),
            ("keepalives_count", "3".to_owned()),
            ("tcp_user_timeout", ((idle + 6) * 1000).to_string()),
            (
                "connect_timeout",
                self.connect_timeout.as_secs().max(1).to_string(),
            ),
        ];
        let mut with = url.to_owned();
        for (name, value) in wanted {
            if !url.contains(&format!("{name}=")) {
                with.push(if with.contains('?') { '&' } else { '?' });
                with.push_str(&format!("{name}={value}"));
            }
        }
        with
    }

    fn session_settings(&self) -> String {
        format!(
            "SET statement_timeout = {}; SET lock_timeout = {}; SET idle_in_transaction_session_timeout = {};",
            self.statement_timeout.as_millis(),
            self.lock_timeout.as_millis(),
            self.idle_in_transaction_timeout.as_millis()
        )
    }
}

/// Makes connections to one database, each set up for this engine.
#[derive(Debug, Clone)]
pub struct Connector {
    url: String,
    limits: DbLimits,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

impl Connector {
    pub fn new(database_url: &str) -> Result<Self, DbSetupError> {
        if Backend::of(database_url) == Backend::Sqlite {
            let path = database_url
                .strip_prefix("sqlite://")
                .unwrap_or(database_url);
            if path.is_empty() {
                return Err(DbSetupError::UnsupportedUrl(database_url.to_owned()));
            }
        }
        Ok(Self {
            url: database_url.to_owned(),
            limits: DbLimits::default(),
        })
    }

    pub fn with_limits(mut self, limits: DbLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn backend(&self) -> Backend {
        Backend::of(&self.url)
    }

    /// A connection with this engine's settings.
    pub fn open(&self) -> Result<DbConnection, ConnectError> {
        let url = match self.backend() {
            Backend::Postgres => self.limits.connection_parameters(&self.url),
            Backend::Sqlite => self.url.clone(),
        };
        let mut conn = connection::establish(&url).map_err(|e| ConnectError(e.to_string()))?;
        let settings = match conn.backend() {
            // The wait comes first: a pool opens its connections on threads of its own, and two
            // connections turning a new file to WAL at once would otherwise see "database is locked".
            // Each phase of a group commit runs in a savepoint, whose journal SQLite otherwise
            // spills to a temporary file (created, written and deleted per batch) once it passes
            // 64 KiB: in memory it stays.
            Backend::Sqlite => {
                "PRAGMA busy_timeout = 10000;
                 PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA temp_store = MEMORY;"
            }
            // Commits wait for the WAL to reach disk (the default, said aloud): a 201 is durable.
            // The engine reaches rows by key, and a kept statement keeps the plan PostgreSQL made
            // for it early on, often while its tables were still small, when a scan of the whole
            // table looked cheapest; that plan stays until the table is analyzed again, and
            // autovacuum may be late or off. A scan kept so read every order for each batch of
            // orders (found with auto_explain on a bench run). So the engine's connections plan
            // by key only: no sequential scans, hash joins or merge joins while another path
            // exists. The audit, which reads whole tables, turns them back on for itself.
            // Turning a path off only makes it look costly, so a statement left with no other
            // path (the lease's read of a one-row table) is costed above the JIT threshold and
            // compiled with LLVM at every run: about 150 ms of CPU for a 1-row read. Key reads
            // gain nothing from JIT, so it is off too.
            Backend::Postgres => {
                "SET synchronous_commit = on;
                 SET enable_seqscan = off;
                 SET enable_hashjoin = off;
                 SET enable_mergejoin = off;
                 SET jit = off;"
            }
        };
        conn.batch_execute(settings)
            .map_err(|e| ConnectError(e.to_string()))?;
        if conn.backend() == Backend::Postgres {
            conn.batch_execute(&self.limits.session_settings())
                .map_err(|e| ConnectError(e.to_string()))?;
        }
        Ok(conn)
    }
}

impl ManageConnection for Connector {
    type Connection = DbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConnection, ConnectError> {
        self.open()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        conn.batch_execute("SELECT 1")
            .map_err(|e| ConnectError(e.to_string()))
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// Brings the schema up to date. Several engines may start at once on one PostgreSQL database:
/// an advisory lock lets one migrate while the others wait.
pub fn migrate(connector: &Connector) -> Result<(), DbSetupError> {
    let mut conn = connector
        .open()
        .map_err(|e| DbSetupError::Connect(e.to_string()))?;
    let failed = |e: &dyn std::fmt::Display| DbSetupError::Migrations(e.to_string());
    match &mut conn.inner {
        Inner::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|_| ())
            .map_err(|e| failed(&e)),
        Inner::Postgres(c) => {
            use diesel::connection::SimpleConnection;
            c.batch_execute("SELECT pg_advisory_lock(7357001)")
                .map_err(|e| failed(&e))?;
            let migrated = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|_| ())
                .map_err(|e| failed(&e));
            let _ = c.batch_execute("SELECT pg_advisory_unlock(7357001)");
            migrated
        }
    }
}

/// Opens the pool of reading connections and brings the schema up to date.
pub fn connect(database_url: &str, max_size: u32) -> Result<DbPool, DbSetupError> {
    pool_of(Connector::new(database_url)?, max_size)
}

/// [`connect`] with `connector`'s settings.
pub fn pool_of(connector: Connector, max_size: u32) -> Result<DbPool, DbSetupError> {
    migrate(&connector)?;
    Ok(Pool::builder()
        .max_size(max_size)
        // A read waits this long for a connection; past it, 503. A database that cannot be
        // reached is said so soon, not after a long wait.
        .connection_timeout(Duration::from_secs(3))
        // A `SELECT 1` before every read costs a round trip; a broken connection shows itself on
        // its first query and is dropped on return (`has_broken`).
        .test_on_check_out(false)
        .build(connector)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_database_urls() {
        assert_eq!(Backend::of("sqlite://orderkeeper.db"), Backend::Sqlite);
        assert_eq!(Backend::of("/tmp/x.db"), Backend::Sqlite);
        assert_eq!(Backend::of("postgres://localhost/db"), Backend::Postgres);
        assert_eq!(Backend::of("postgresql://localhost/db"), Backend::Postgres);
        assert!(Connector::new("sqlite://").is_err());
    }

    #[test]
    fn postgres_urls_get_keepalives_and_timeouts_unless_they_set_their_own() {
        let limits = DbLimits::default();
        let url = limits.connection_parameters("postgres://u@h/db");
        assert_eq!(
            url,
            "postgres://u@h/db?keepalives=1&keepalives_idle=10&keepalives_interval=2&keepalives_count=3&tcp_user_timeout=16000&connect_timeout=5"
        );
        let own =
            limits.connection_parameters("postgres://u@h/db?sslmode=disable&keepalives_idle=30");
        assert!(
            own.starts_with("postgres://u@h/db?sslmode=disable&keepalives_idle=30&keepalives=1&")
        );
        assert!(!own.contains("keepalives_idle=10"), "{own}");
    }
}
