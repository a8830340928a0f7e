//! One connection type over both backends: SQLite (the embedded default) and PostgreSQL (for
//! production, and for several engines on one database). Queries are written once, against
//! diesel's DSL, and [`with_conn!`](crate::with_conn) compiles each for both backends.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;

use super::DbError;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(database_url: &str) -> Backend {
        if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// A backend's own connection.
pub enum Inner {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// A connection to either backend, with its own transactions and savepoints.
pub struct DbConnection {
    pub inner: Inner,
    /// Open transactions: 0 outside any, 1 in a transaction, more in savepoints.
    depth: u32,
    /// The server is gone (found by [`DbConnection::check_alive`]): the pool drops this connection
    /// and the writer makes a new one.
    broken: bool,
    /// Effects outside the database (a counter, a log line) of work in the open transaction, run
    /// once it commits and dropped with whatever part of it rolls back.
    on_commit: Vec<Box<dyn FnOnce() + Send>>,
}

/// Runs `$body` with `$c` bound to the backend's own connection. The body is compiled once per
/// backend, so a query that one of them cannot run does not compile.
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match &mut ($conn).inner {
            $crate::__BackendConnection::Sqlite($c) => $body,
            $crate::__BackendConnection::Postgres($c) => $body,
        }
    };
}

/// Inserts `$rows` (a slice of insertable rows) into `$table`: one statement on PostgreSQL, where
/// every statement is a round trip; a row at a time on SQLite, in process, where diesel would wrap
/// a many-row insert in a transaction of its own inside ours.
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {
        match &mut ($conn).inner {
            $crate::db::connection::Inner::Postgres(c) => $crate::db::prepared::run_kept(
                c,
                diesel::insert_into($table).values($rows),
                $rows.len(),
            ),
            $crate::db::connection::Inner::Sqlite(c) => $rows.iter().try_for_each(|row| {
                diesel::insert_into($table)
                    .values(row)
                    .execute(c)
                    .map(|_| ())
            }),
        }
    };
}

impl DbConnection {
    pub fn new(inner: Inner) -> Self {
        Self {
            inner,
            depth: 0,
            broken: false,
            on_commit: Vec::new(),
        }
    }

    /// Runs `effect` once the open transaction commits, and never if the part of it that asked
    /// rolls back; outside a transaction, at once (the work is already committed).
    pub fn on_commit(&mut self, effect: impl FnOnce() + Send + 'static) {
        if self.depth == 0 {
            effect();
        } else {
            self.on_commit.push(Box::new(effect));
        }
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    pub fn batch_execute(&mut self, sql: &str) -> Result<(), diesel::result::Error> {
        with_conn!(self, |c| c.batch_execute(sql))
    }

    /// Runs `work` in a transaction, or in a savepoint of the one already open: all of it is
    /// kept, or none. An outermost SQLite transaction takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so two writers never deadlock on an upgrade.
    pub fn transaction<T, E, F>(&mut self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        let depth = self.depth;
        let begin = match (depth, self.backend()) {
            (0, Backend::Sqlite) => "BEGIN IMMEDIATE".to_owned(),
            (0, Backend::Postgres) => "BEGIN".to_owned(),
            (n, _) => format!("SAVEPOINT phase_{n}"),
        };
        self.batch_execute(&begin)?;
        self.depth += 1;
        let effects_before = self.on_commit.len();
        let outcome = work(self);
        self.depth = depth;
        let end = match (&outcome, depth) {
            (Ok(_), 0) => "COMMIT".to_owned(),
            (Err(_), 0) => "ROLLBACK".to_owned(),
            (Ok(_), n) => format!("RELEASE SAVEPOINT phase_{n}"),
            (Err(_), n) => format!("ROLLBACK TO SAVEPOINT phase_{n}; RELEASE SAVEPOINT phase_{n}"),
        };
        let ended = self.batch_execute(&end);
        if outcome.is_err() || ended.is_err() {
            self.on_commit.truncate(effects_before);
        } else if depth == 0 {
            for effect in std::mem::take(&mut self.on_commit) {
                effect();
            }
        }
        match ended {
            Ok(()) => outcome,
            Err(e) => {
                if depth == 0 {
                    // A failed COMMIT leaves the transaction to be rolled back.
                    let _ = self.batch_execute("ROLLBACK");
                }
                Err(e.into())
            }
        }
    }

    /// Runs `work` in a read-only transaction that sees one moment of the database: deferred on
    /// SQLite (a WAL reader takes no lock and waits for no writer), repeatable read on
    /// PostgreSQL. Only for an outermost transaction.
    pub fn read_transaction<T, E, F>(&mut self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        let begin = match self.backend() {
            Backend::Sqlite => "BEGIN DEFERRED",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        self.batch_execute(begin)?;
        let outcome = work(self);
        // Nothing was written: ending it either way keeps nothing.
        let ended = self.batch_execute("ROLLBACK");
        match (outcome, ended) {
            (Ok(value), Ok(())) => Ok(value),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e.into()),
        }
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Whether the server still answers; a connection that does not is marked broken for good.
    pub fn check_alive(&mut self) -> bool {
        if !self.broken && self.batch_execute("SELECT 1").is_err() {
            self.broken = true;
        }
        !self.broken
    }

    /// Bounds how long the rest of this transaction waits for another's row locks (PostgreSQL;
    /// SQLite has one writer and `busy_timeout`).
    pub fn limit_lock_wait(&mut self, wait: std::time::Duration) -> Result<(), DbError> {
        if self.backend() == Backend::Postgres {
            let ms = wait.as_millis().max(1);
            self.batch_execute(&format!("SET LOCAL lock_timeout = '{ms}ms'"))?;
        }
        Ok(())
    }

    /// Gives up whatever transaction is open (after a panic inside one).
    pub fn abandon_transaction(&mut self) {
        if self.depth > 0 {
            let _ = self.batch_execute("ROLLBACK");
            self.depth = 0;
        }
        self.on_commit.clear();
    }
}

/// A `DELETE` of at most a chunk of `table`'s rows that meet `condition`, the rows picked by their
/// physical id (`ctid`, `rowid`) so that one statement takes a bounded chunk on both backends.
/// `condition` holds `{}` where its one bound value goes; the chunk size is bound second.
pub fn bounded_delete(backend: Backend, table: &str, condition: &str) -> String {
    let (row_id, first, second) = match backend {
        Backend::Postgres => ("ctid", "$1", "$2"),
        Backend::Sqlite => ("rowid", "?", "?"),
    };
    let condition = condition.replace("{}", first);
    format!(
        "DELETE FROM {table} WHERE {row_id} IN \
         (SELECT {row_id} FROM {table} WHERE {condition} LIMIT {second})"
    )
}

/// A text constant written into SQL as a literal: quoted, with any quote doubled.
pub fn text_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The placeholders of `rows` rows of `columns` values each, for a `VALUES` list whose values are
/// bound: `($1, $2), ($3, $4)` on PostgreSQL, `(?, ?), (?, ?)` on SQLite. The text depends only on
/// the counts, so the statement can be kept prepared ([`super::prepared`]).
pub fn value_rows(backend: Backend, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let values = (0..columns)
                .map(|column| match backend {
                    Backend::Postgres => format!("${}", row * columns + column + 1),
                    Backend::Sqlite => "?".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("({values})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens a connection of the backend `database_url` names: `postgres://…`, or SQLite as
/// `sqlite://PATH` or a bare path.
pub fn establish(database_url: &str) -> Result<DbConnection, DbError> {
    let inner = match Backend::of(database_url) {
        Backend::Postgres => Inner::Postgres(
            PgConnection::establish(&without_gss_probe(database_url))
                .map_err(|e| DbError::Unavailable(format!("cannot connect: {e}")))?,
        ),
        Backend::Sqlite => {
            let path = database_url
                .strip_prefix("sqlite://")
                .unwrap_or(database_url);
            Inner::Sqlite(
                SqliteConnection::establish(path)
                    .map_err(|e| DbError::Unavailable(format!("cannot open: {e}")))?,
            )
        }
    };
    Ok(DbConnection::new(inner))
}

/// libpq asks for GSS encryption first unless told not to, which loads Kerberos; Kerberos's
/// exit-time destructors then abort a process whose other threads still hold connections
/// (`k5_mutex_lock: Received error 22`). A deployment that wants GSS encryption says so with
/// `gssencmode` in its URL.
fn without_gss_probe(url: &str) -> String {
    if url.contains("gssencmode=") {
        return url.to_owned();
    }
    let joint = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joint}gssencmode=disable")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    fn counting(conn: &mut DbConnection, ran: &Arc<AtomicUsize>) {
        let ran = ran.clone();
        conn.on_commit(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        });
    }

    #[test]
    fn postgres_urls_skip_the_gss_probe_unless_they_name_it() {
        assert_eq!(
            without_gss_probe("postgres://u@h/db"),
            "postgres://u@h/db?gssencmode=disable"
        );
        assert_eq!(
            without_gss_probe("postgres://u@h/db?sslmode=require"),
            "postgres://u@h/db?sslmode=require&gssencmode=disable"
        );
        let asked = "postgres://u@h/db?gssencmode=require";
        assert_eq!(without_gss_probe(asked), asked);
    }

    #[test]
    fn effects_run_once_their_work_commits_and_never_when_it_rolls_back() {
        let mut conn = establish(":memory:").expect("an in-memory database");
        let ran = Arc::new(AtomicUsize::new(0));
        let seen = || ran.load(Ordering::SeqCst);

        // Outside a transaction the work is already committed.
        counting(&mut conn, &ran);
        assert_eq!(seen(), 1);

        // Held until the commit, then run.
        conn.transaction::<_, DbError, _>(|conn| {
            counting(conn, &ran);
            assert_eq!(seen(), 1, "run before the commit");
            Ok(())
        })
        .unwrap();
        assert_eq!(seen(), 2);

        // Rolled back: dropped.
        let _ = conn.transaction::<(), DbError, _>(|conn| {
            counting(conn, &ran);
            Err(DbError::Inconsistent("roll back".into()))
        });
        assert_eq!(seen(), 2);

        // A savepoint that rolls back drops its own effects; the rest commit.
        conn.transaction::<_, DbError, _>(|conn| {
            counting(conn, &ran);
            let _ = conn.transaction::<(), DbError, _>(|conn| {
                counting(conn, &ran);
                Err(DbError::Inconsistent("roll back the savepoint".into()))
            });
            conn.transaction::<_, DbError, _>(|conn| {
                counting(conn, &ran);
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(seen(), 4);
    }
}
