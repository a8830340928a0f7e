//! Statements kept prepared although diesel would not keep them. Diesel prepares once only a
//! statement of fixed text; a many-row insert or a hand-written query is parsed and planned on
//! every call. On PostgreSQL that parsing and planning was about a sixth of the machine under
//! load. [`Prepared`] keeps such a statement by its text instead: one per text, so it is for
//! statements whose text varies only with how many rows they carry, and only up to
//! [`MAX_PREPARED_ROWS`] of them; past that, a statement is run unprepared. Counted with
//! `pg_stat_statements` over one PostgreSQL bench run: 153,412 of 341,019 statements were planned
//! afresh before, 65,342 of 337,546 after (most of those left were `= ANY` reads, which PostgreSQL
//! then chose to plan for the ids at hand). A kept plan may be made while the tables are still
//! small; the connections plan by key only, so that it stays a lookup (`pool::Connector::open`).

use diesel::backend::Backend;
use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::Untyped;
use diesel::{QueryResult, QueryableByName, RunQueryDsl};

/// The most rows a kept statement carries: batches are at most this big, so the statements kept
/// per connection stay bounded.
pub const MAX_PREPARED_ROWS: usize = 128;

/// `query`, kept prepared by its text when `rows` is at most [`MAX_PREPARED_ROWS`].
pub fn prepared<Q>(query: Q, rows: usize) -> Prepared<Q> {
    Prepared {
        query,
        keep: rows <= MAX_PREPARED_ROWS,
    }
}

pub struct Prepared<Q> {
    query: Q,
    keep: bool,
}

// No static id: diesel then keys its statement cache by the statement's text.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, DB> QueryFragment<DB> for Prepared<Q>
where
    Q: QueryFragment<DB>,
    DB: Backend,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.query.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, backend: &DB) -> QueryResult<bool> {
        Ok(self.keep || self.query.is_safe_to_cache_prepared(backend)?)
    }
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for Prepared<Q> {}

/// Runs `query` for its effect, kept prepared as [`prepared`] keeps it. Diesel's `execute` hands
/// the connection a reference to the statement, and a reference's fragment forgets the wrapper's
/// say; a load takes the statement itself. A statement without `RETURNING` loads no row.
pub fn run_kept<Q>(conn: &mut PgConnection, query: Q, rows: usize) -> QueryResult<()>
where
    Q: QueryFragment<Pg>,
{
    ForEffect(prepared(query, rows))
        .load::<NoColumns>(conn)
        .map(|_| ())
}

/// Runs `query` (one with `RETURNING`), kept prepared as [`prepared`] keeps it, and counts the
/// rows it returns.
pub fn count_kept<Q>(conn: &mut PgConnection, query: Q, rows: usize) -> QueryResult<usize>
where
    Q: QueryFragment<Pg>,
{
    ForEffect(prepared(query, rows))
        .load::<NoColumns>(conn)
        .map(|returned| returned.len())
}

struct ForEffect<Q>(Prepared<Q>);

/// A returned row whose columns are not wanted: loading these counts the rows.
#[derive(QueryableByName)]
pub struct NoColumns {}

impl<Q> QueryId for ForEffect<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for ForEffect<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, backend: &Pg) -> QueryResult<bool> {
        self.0.is_safe_to_cache_prepared(backend)
    }
}

impl<Q> Query for ForEffect<Q> {
    type SqlType = Untyped;
}

impl<Q> RunQueryDsl<PgConnection> for ForEffect<Q> {}
