//! One live process per engine id. On PostgreSQL each engine holds a session-level advisory lock
//! keyed by its id, on a connection of its own, for as long as it runs. A second process under
//! the same id finds the lock taken and refuses to start; a restart after a crash gets it at once,
//! since the server drops a dead session's locks. Each process names itself with an incarnation
//! id (the lock connection's `application_name`), so a lock left on a session of this very process
//! that the server has not yet dropped is told apart from a twin's.
//!
//! SQLite has one engine per database file, and nothing to share.

use std::sync::Mutex;

use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Text};

use crate::db::connection::Inner;
use crate::db::pool::Connector;
use crate::db::{Backend, DbConnection};

/// The advisory lock space of engine ids (the other key is a hash of the id).
const ENGINE_IDS: i32 = 7_357_002;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("engine id {engine:?} is held by another live process ({holder}): give this one another --engine-id, or stop that one")]
    Held { engine: String, holder: String },
    #[error("cannot check who holds engine id {engine:?}: {reason}")]
    Unknown { engine: String, reason: String },
}

/// This process's hold on its engine id.
pub struct IdLock {
    engine: String,
    incarnation: String,
    connector: Connector,
    /// The session holding the lock (None on SQLite).
    session: Mutex<Option<DbConnection>>,
}

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = Bool)]
    taken: bool,
}

#[derive(QueryableByName)]
struct Holder {
    #[diesel(sql_type = Integer)]
    pid: i32,
    #[diesel(sql_type = Text)]
    name: String,
}

impl IdLock {
    /// Takes the engine id for this process, or says who holds it.
    pub fn take(connector: &Connector, engine: &str) -> Result<Self, IdentityError> {
        let lock = IdLock {
            engine: engine.to_owned(),
            incarnation: uuid::Uuid::new_v4().simple().to_string(),
            connector: connector.clone(),
            session: Mutex::new(None),
        };
        if connector.backend() == Backend::Postgres {
            let session = lock.lock_session()?;
            *lock.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(session);
        }
        tracing::info!(engine, incarnation = %lock.incarnation, "engine id taken");
        Ok(lock)
    }

    /// Whether the id is still this process's. A lost lock session is replaced and the lock taken
    /// again; `Err(Held)` only when another process holds it now. While the database cannot be
    /// reached nothing can be told: that is `Err(Unknown)`, and the lease says the rest.
    pub fn hold(&self) -> Result<(), IdentityError> {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let Some(conn) = session.as_mut() else {
            return Ok(());
        };
        if conn.check_alive() {
            return Ok(());
        }
        *session = Some(self.lock_session()?);
        tracing::warn!(engine = %self.engine, "engine id taken again on a new session");
        Ok(())
    }

    fn unknown(&self, reason: impl std::fmt::Display) -> IdentityError {
        IdentityError::Unknown {
            engine: self.engine.clone(),
            reason: reason.to_string(),
        }
    }

    /// A new session holding the lock. A holder that is a session of this same process (one the
    /// server has not noticed is gone) is ended and the lock taken again.
    fn lock_session(&self) -> Result<DbConnection, IdentityError> {
        let mut conn = self.connector.open().map_err(|e| self.unknown(e))?;
        let name = format!("orderkeeper {} {}", self.engine, self.incarnation);
        let name_sql = crate::db::connection::text_literal(&name);
        conn.batch_execute(&format!("SET application_name = {name_sql}"))
            .map_err(|e| self.unknown(e))?;
        for _ in 0..2 {
            if self.try_lock(&mut conn)? {
                return Ok(conn);
            }
            let holders = self.holders(&mut conn)?;
            match holders.iter().find(|h| !h.name.contains(&self.incarnation)) {
                Some(twin) => {
                    return Err(IdentityError::Held {
                        engine: self.engine.clone(),
                        holder: format!("{} (server process {})", twin.name, twin.pid),
                    })
                }
                None => {
                    for stale in &holders {
                        let sql = format!("SELECT pg_terminate_backend({})", stale.pid);
                        conn.batch_execute(&sql).map_err(|e| self.unknown(e))?;
                    }
                }
            }
        }
        Err(self.unknown("the lock stayed taken by a session of this process"))
    }

    fn try_lock(&self, conn: &mut DbConnection) -> Result<bool, IdentityError> {
        let Inner::Postgres(c) = &mut conn.inner else {
            return Ok(true);
        };
        diesel::sql_query("SELECT pg_try_advisory_lock($1, hashtext($2)) AS taken")
            .bind::<Integer, _>(ENGINE_IDS)
            .bind::<Text, _>(&self.engine)
            .get_result::<Taken>(c)
            .map(|t| t.taken)
            .map_err(|e| self.unknown(e))
    }

    fn holders(&self, conn: &mut DbConnection) -> Result<Vec<Holder>, IdentityError> {
        let Inner::Postgres(c) = &mut conn.inner else {
            return Ok(Vec::new());
        };
        diesel::sql_query(
            "SELECT l.pid, coalesce(a.application_name, '') AS name \
             FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid \
               AND l.objid = hashtext($2)::oid AND l.objsubid = 2 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind::<Integer, _>(ENGINE_IDS)
        .bind::<Text, _>(&self.engine)
        .load::<Holder>(c)
        .map_err(|e| self.unknown(e))
    }
}
