//! The FIX session's store over the engine's database: `ironfix-store`'s `SyncMessageStore` on one
//! connection of its own.
//!
//! Every call writes before it returns, on the caller's thread, within one poll of its future
//! (through `SyncStoreAdapter`). So a change takes effect before any change asked for after it,
//! even when the session drops a call's future on a timeout, which is what `ironfix-store` asks of
//! a store. The session therefore runs on a thread of its own, where a wait on the database stops
//! nothing else. The counters are also kept in memory, for the session's reads; [`refresh`] reads
//! them again, as an engine taking the session over must.
//!
//! [`refresh`]: SyncMessageStore::refresh

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ironfix_core::error::StoreError;
use ironfix_core::message::MsgType;
use ironfix_store::{MessageStore, StoredMessage, SyncMessageStore, SyncStoreAdapter};

use crate::db::fix_sessions::{self, Claim, Counter, Holding, SessionRow};
use crate::db::{now_micros, Backend, DbConnection, DbError};

/// One FIX session's store, named by its session id (`FIX.4.4:SENDER->TARGET`).
pub struct SessionStore {
    session: String,
    conn: Mutex<DbConnection>,
    next_sender: AtomicU64,
    next_target: AtomicU64,
    reset_owed: AtomicBool,
    app_watermark: AtomicU64,
    created: SystemTime,
    /// What every write is fenced by.
    holding: Holding,
}

/// What opening a session an engine of a fleet may share found.
pub enum Opened {
    /// This engine holds the session now.
    Held(Box<SessionStore>),
    /// Another live engine holds it.
    HeldBy(String),
}

impl SessionStore {
    /// Opens the session's stored state on `conn`, making it the first time. The connection is
    /// the store's alone; on SQLite it must wait its turn for the write lock as the engine's own do
    /// (opened by `db::pool::Connector::open`, which sets the busy wait).
    pub fn open(mut conn: DbConnection, session: &str) -> Result<SessionStore, DbError> {
        let row = fix_sessions::load_or_create(&mut conn, session, now_micros())?;
        Self::open_as(conn, session, Holding::Unshared, row)
    }

    /// Opens the session for `engine`, claiming it, unless another live engine holds it. Its
    /// counters are those the claim read: the engine that held it before may have moved them.
    pub fn claim(mut conn: DbConnection, session: &str, engine: &str) -> Result<Opened, DbError> {
        match fix_sessions::claim(&mut conn, session, engine, now_micros())? {
            Claim::Held { epoch, row } => Ok(Opened::Held(Box::new(Self::open_as(
                conn,
                session,
                Holding::Claimed(epoch),
                row,
            )?))),
            Claim::HeldBy(holder) => Ok(Opened::HeldBy(holder)),
        }
    }

    /// What this store's writes are fenced by.
    pub fn holding(&self) -> Holding {
        self.holding
    }

    fn open_as(
        mut conn: DbConnection,
        session: &str,
        holding: Holding,
        row: SessionRow,
    ) -> Result<SessionStore, DbError> {
        // Its commits need not wait for the disk (three a message, in turn with the engine's own):
        // a killed engine loses none of them, a power loss (or a crash of the PostgreSQL server)
        // the last few, as QuickFIX's file store, which does not sync either; the session then
        // starts over by agreement.
        conn.batch_execute(match conn.backend() {
            Backend::Sqlite => "PRAGMA synchronous = NORMAL",
            Backend::Postgres => "SET synchronous_commit = off",
        })?;
        let store = SessionStore {
            session: session.to_owned(),
            conn: Mutex::new(conn),
            next_sender: AtomicU64::new(0),
            next_target: AtomicU64::new(0),
            reset_owed: AtomicBool::new(false),
            app_watermark: AtomicU64::new(0),
            created: UNIX_EPOCH + Duration::from_micros(row.created_at.max(0) as u64),
            holding,
        };
        store.keep(row);
        Ok(store)
    }

    /// The store as the session layer takes it.
    pub fn into_message_store(self) -> Arc<dyn MessageStore> {
        Arc::new(SyncStoreAdapter::new(self))
    }

    fn keep(&self, row: SessionRow) {
        self.next_sender
            .store(row.next_sender_seq.max(1) as u64, Ordering::Release);
        self.next_target
            .store(row.next_target_seq.max(1) as u64, Ordering::Release);
        self.reset_owed.store(row.reset_owed, Ordering::Release);
        self.app_watermark
            .store(row.app_watermark.max(0) as u64, Ordering::Release);
    }

    /// Runs `work` on the store's connection; a failure is told as `failed` makes it.
    fn with_conn<T>(
        &self,
        work: impl FnOnce(&mut DbConnection, &str, Holding) -> Result<T, DbError>,
        failed: impl FnOnce(String) -> StoreError,
    ) -> Result<T, StoreError> {
        let Ok(mut conn) = self.conn.lock() else {
            return Err(failed("the store's connection was poisoned".into()));
        };
        work(&mut conn, &self.session, self.holding).map_err(|e| failed(e.to_string()))
    }

    fn set(&self, counter: Counter) -> Result<(), StoreError> {
        self.with_conn(
            |conn, session, holding| fix_sessions::set(conn, session, holding, counter),
            StoreError::Io,
        )?;
        match counter {
            Counter::NextSender(n) => self.next_sender.store(n as u64, Ordering::Release),
            Counter::NextTarget(n) => self.next_target.store(n as u64, Ordering::Release),
            Counter::ResetOwed(owed) => self.reset_owed.store(owed, Ordering::Release),
            Counter::AppWatermark(n) => self.app_watermark.store(n as u64, Ordering::Release),
        }
        Ok(())
    }
}

/// A sequence number as the database keeps it (BIGINT).
fn stored(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::StoreFailed {
        seq_num: n,
        reason: "a sequence number beyond what the database keeps".into(),
    })
}

impl SyncMessageStore for SessionStore {
    fn store(&self, seq_num: u64, msg_type: &MsgType, message: &[u8]) -> Result<(), StoreError> {
        let seq = stored(seq_num)?;
        self.with_conn(
            |conn, session, holding| {
                let message = (seq, msg_type.as_str(), message);
                fix_sessions::save_held_message(conn, session, holding, message)
            },
            |reason| StoreError::StoreFailed { seq_num, reason },
        )
    }

    fn get_range(&self, begin: u64, end: u64) -> Result<Vec<StoredMessage>, StoreError> {
        // EndSeqNo 0 is FIX's "to the last one sent".
        let end = if end == 0 { u64::MAX } else { end };
        if begin == 0 || begin > end {
            return Err(StoreError::InvalidRange { begin, end });
        }
        let from = i64::try_from(begin).map_err(|_| StoreError::InvalidRange { begin, end })?;
        let to = i64::try_from(end).unwrap_or(i64::MAX);
        let rows = self.with_conn(
            |conn, session, _| fix_sessions::messages(conn, session, from, to),
            |reason| StoreError::RetrieveFailed {
                seq_num: begin,
                reason,
            },
        )?;
        if rows.is_empty() {
            return Err(StoreError::RangeNotAvailable { begin, end });
        }
        rows.into_iter()
            .map(|row| {
                let seq_num = row.seq_num as u64;
                let msg_type = row.msg_type.parse::<MsgType>().map_err(|e| {
                    let reason = format!("message {seq_num}'s stored type {:?}: {e}", row.msg_type);
                    StoreError::Corrupted { reason }
                })?;
                Ok(StoredMessage::new(
                    seq_num,
                    msg_type,
                    Bytes::from(row.payload),
                ))
            })
            .collect()
    }

    /// The message and the next number in one transaction: a crash keeps both or neither.
    fn file_outbound(
        &self,
        seq_num: u64,
        msg_type: &MsgType,
        message: &[u8],
        next_sender: u64,
    ) -> Result<(), StoreError> {
        let (seq, next) = (stored(seq_num)?, stored(next_sender)?);
        self.with_conn(
            |conn, session, holding| {
                conn.transaction(|conn| {
                    // The fenced update first: on PostgreSQL it locks the row against a claim.
                    fix_sessions::set(conn, session, holding, Counter::NextSender(next))?;
                    fix_sessions::save_message(conn, session, seq, msg_type.as_str(), message)
                })
            },
            |reason| StoreError::StoreFailed { seq_num, reason },
        )?;
        self.next_sender.store(next_sender, Ordering::Release);
        Ok(())
    }

    fn next_sender_seq(&self) -> u64 {
        self.next_sender.load(Ordering::Acquire)
    }

    fn next_target_seq(&self) -> u64 {
        self.next_target.load(Ordering::Acquire)
    }

    fn set_next_sender_seq(&self, seq: u64) -> Result<(), StoreError> {
        self.set(Counter::NextSender(stored(seq)?))
    }

    fn set_next_target_seq(&self, seq: u64) -> Result<(), StoreError> {
        self.set(Counter::NextTarget(stored(seq)?))
    }

    fn reset(&self) -> Result<(), StoreError> {
        self.reset_to(1, 1)
    }

    /// The messages forgotten, both counters set and the watermark cleared in one transaction;
    /// whether a reset is owed is kept.
    fn reset_to(&self, next_sender: u64, next_target: u64) -> Result<(), StoreError> {
        let (sender, target) = (stored(next_sender)?, stored(next_target)?);
        self.with_conn(
            |conn, session, holding| fix_sessions::reset(conn, session, holding, sender, target),
            StoreError::Io,
        )?;
        self.next_sender.store(next_sender, Ordering::Release);
        self.next_target.store(next_target, Ordering::Release);
        self.app_watermark.store(0, Ordering::Release);
        Ok(())
    }

    fn reset_owed(&self) -> bool {
        self.reset_owed.load(Ordering::Acquire)
    }

    fn set_reset_owed(&self, owed: bool) -> Result<(), StoreError> {
        self.set(Counter::ResetOwed(owed))
    }

    fn app_watermark(&self) -> u64 {
        self.app_watermark.load(Ordering::Acquire)
    }

    fn set_app_watermark(&self, watermark: u64) -> Result<(), StoreError> {
        self.set(Counter::AppWatermark(stored(watermark)?))
    }

    fn creation_time(&self) -> SystemTime {
        self.created
    }

    /// Reads the counters again: another engine may have carried the session on meanwhile.
    fn refresh(&self) -> Result<(), StoreError> {
        let row = self.with_conn(
            |conn, session, _| fix_sessions::load_or_create(conn, session, now_micros()),
            StoreError::Io,
        )?;
        self.keep(row);
        Ok(())
    }
}
