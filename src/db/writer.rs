//! The writer: every atomic phase of every request and actor runs here, on connections of its own,
//! and commits with whatever other phases were waiting (group commit).
//!
//! On SQLite (one writer at a time by design) one thread takes the first phase waiting and every
//! other one already queued behind it, runs each in a savepoint of one transaction, commits once,
//! and only then answers each caller. A phase that fails (a business refusal, a CHECK violation)
//! rolls back to its savepoint: it leaves nothing behind and spoils no other phase. There is no
//! waiting window: a lone phase commits at once, and a batch grows only while the previous commit
//! was on its way to disk.
//!
//! On PostgreSQL, which groups the commits of concurrent transactions into one flush of its log
//! by itself, several threads each run one phase per transaction on a connection of their own;
//! rows are locked as they are written, so phases of one account wait for each other, not for the
//! whole engine.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::connection::Backend;
use super::error::PhaseError;
use super::pool::Connector;
use super::{DbConnection, DbError};

/// At most this many phases share a SQLite transaction, so that no caller waits on a huge batch.
const MAX_BATCH: usize = 512;

/// What running a phase told about the connection it ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Fine,
    /// It failed in a way a lost server would explain: the connection is checked.
    Suspect,
    /// It panicked inside the transaction: the connection is not to be trusted.
    Panicked,
}

/// A phase waiting to run, with the caller to answer.
trait Pending: Send {
    /// Runs the phase in a savepoint of the writer's transaction.
    fn run(&mut self, conn: &mut DbConnection) -> Ran;
    /// Answers the caller once the transaction's fate is known.
    fn answer(self: Box<Self>, committed: Result<(), String>);
    /// Answers the caller without running the phase.
    fn refuse(self: Box<Self>, why: String);
}

struct Waiting<T, E, F> {
    phase: Option<F>,
    outcome: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Pending for Waiting<T, E, F>
where
    T: Send,
    E: PhaseError,
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send,
{
    fn run(&mut self, conn: &mut DbConnection) -> Ran {
        let Some(phase) = self.phase.take() else {
            return Ran::Fine;
        };
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| conn.transaction::<T, E, _>(phase)));
        match ran {
            Ok(outcome) => {
                let suspect = outcome.as_ref().is_err_and(E::may_mean_a_lost_connection);
                self.outcome = Some(outcome);
                if suspect {
                    Ran::Suspect
                } else {
                    Ran::Fine
                }
            }
            Err(_) => {
                self.outcome = Some(Err(DbError::PhaseFailed("it panicked").into()));
                Ran::Panicked
            }
        }
    }

    fn refuse(self: Box<Self>, why: String) {
        let _ = self.reply.send(Err(DbError::Unavailable(why).into()));
    }

    fn answer(self: Box<Self>, committed: Result<(), String>) {
        let answer = match (self.outcome, committed) {
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(why)) => {
                Err(DbError::Unavailable(format!("not committed: {why}")).into())
            }
            (Some(Err(e)), _) => Err(e),
            (None, _) => Err(DbError::PhaseFailed("it never ran").into()),
        };
        // A caller that went away (its request was dropped) needs no answer.
        let _ = self.reply.send(answer);
    }
}

/// What the writer has done since it started, for `/metrics`.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub transactions: std::sync::atomic::AtomicU64,
    pub phases: std::sync::atomic::AtomicU64,
}

/// A handle on the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Box<dyn Pending>>,
    stats: std::sync::Arc<WriterStats>,
}

impl Writer {
    /// Starts the writer's threads on connections made by `connector` (made again after a panic):
    /// one on SQLite, `postgres_writers` on PostgreSQL.
    pub fn start(connector: Connector, postgres_writers: usize) -> Result<Writer, String> {
        let (queue, waiting) = mpsc::channel::<Box<dyn Pending>>();
        let waiting = std::sync::Arc::new(std::sync::Mutex::new(waiting));
        let stats = std::sync::Arc::new(WriterStats::default());
        let (threads, batch) = match connector.backend() {
            Backend::Sqlite => (1, MAX_BATCH),
            Backend::Postgres => (postgres_writers.max(1), 1),
        };
        // Raised each time a writer finds its server gone: the server usually took every
        // connection with it, so each other writer checks its own before it writes again.
        let losses = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        for n in 0..threads {
            let mut conn = connector.open().map_err(|e| e.to_string())?;
            let (connector, waiting, counted) = (connector.clone(), waiting.clone(), stats.clone());
            let losses = losses.clone();
            let mut losses_seen = 0;
            std::thread::Builder::new()
                .name(format!("db-writer-{n}"))
                .spawn(move || loop {
                    use std::sync::atomic::Ordering;
                    let Some(taken) = take(&waiting, batch) else {
                        return;
                    };
                    let lost_elsewhere = losses.load(Ordering::Acquire);
                    if lost_elsewhere != losses_seen {
                        losses_seen = lost_elsewhere;
                        if !conn.check_alive() {
                            for pending in taken {
                                pending.refuse("the database connection is lost".into());
                            }
                            conn = reconnect(&connector, &waiting);
                            continue;
                        }
                    }
                    let ran = commit_batch(&mut conn, taken, &counted);
                    let lost = match ran {
                        Ran::Fine => false,
                        Ran::Panicked => true,
                        Ran::Suspect => !conn.check_alive(),
                    };
                    if lost {
                        losses_seen = losses.fetch_add(1, Ordering::AcqRel) + 1;
                        conn = reconnect(&connector, &waiting);
                    }
                })
                .map_err(|e| e.to_string())?;
        }
        Ok(Writer { queue, stats })
    }

    /// Runs `phase` in the next transaction and answers once that transaction has committed.
    pub async fn run<T, E, F>(&self, phase: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: PhaseError,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting {
            phase: Some(phase),
            outcome: None,
            reply,
        };
        let stopped = || {
            E::from(DbError::Unavailable(
                "the database writer has stopped".into(),
            ))
        };
        self.queue.send(Box::new(waiting)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

/// A new connection, tried again with a growing pause until the server answers. Meanwhile every
/// phase that comes is answered at once (503) rather than left waiting on a server that is gone.
fn reconnect(
    connector: &Connector,
    waiting: &std::sync::Mutex<mpsc::Receiver<Box<dyn Pending>>>,
) -> DbConnection {
    let mut pause = Duration::from_millis(50);
    loop {
        match connector.open() {
            Ok(fresh) => {
                tracing::info!("a database writer is connected again");
                return fresh;
            }
            Err(e) => {
                tracing::warn!(error = %e, ?pause, "a database writer cannot reconnect; trying again");
                let why = format!("the database cannot be reached: {e}");
                // Another writer may hold the queue while it waits for work: it will take the
                // next phase itself, so this one does not wait for the queue.
                let refused = waiting
                    .try_lock()
                    .map(|queue| queue.try_iter().collect::<Vec<_>>())
                    .unwrap_or_default();
                for pending in refused {
                    pending.refuse(why.clone());
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The first phase waiting, and up to `batch` in all of those queued behind it; None once every
/// handle on the writer is gone.
fn take(
    waiting: &std::sync::Mutex<mpsc::Receiver<Box<dyn Pending>>>,
    batch: usize,
) -> Option<Vec<Box<dyn Pending>>> {
    let waiting = waiting
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let first = waiting.recv().ok()?;
    let mut taken = vec![first];
    while taken.len() < batch {
        match waiting.try_recv() {
            Ok(next) => taken.push(next),
            Err(_) => break,
        }
    }
    Some(taken)
}

/// Runs the batch in one transaction and answers every caller; says what the phases told about
/// the connection.
fn commit_batch(
    conn: &mut DbConnection,
    mut batch: Vec<Box<dyn Pending>>,
    stats: &WriterStats,
) -> Ran {
    use std::sync::atomic::Ordering;
    let started = Instant::now();
    let mut sound = Ran::Fine;
    if let [lone] = batch.as_mut_slice() {
        // One phase is its own transaction: no savepoint around it, two statements fewer.
        sound = lone.run(conn);
        if sound == Ran::Panicked {
            conn.abandon_transaction();
        }
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        stats.phases.fetch_add(1, Ordering::Relaxed);
        for pending in batch {
            pending.answer(Ok(()));
        }
        return sound;
    }
    let committed = conn
        .transaction::<_, diesel::result::Error, _>(|conn| {
            for pending in batch.iter_mut() {
                match pending.run(conn) {
                    Ran::Fine => {}
                    Ran::Suspect => sound = Ran::Suspect,
                    Ran::Panicked => {
                        sound = Ran::Panicked;
                        return Err(diesel::result::Error::RollbackTransaction);
                    }
                }
            }
            Ok(())
        })
        .map_err(|e| e.to_string());
    if committed.is_err() && sound == Ran::Fine {
        sound = Ran::Suspect;
    }
    if sound == Ran::Panicked {
        // The connection's transaction state is not to be trusted after a panic inside it.
        conn.abandon_transaction();
    }
    stats.transactions.fetch_add(1, Ordering::Relaxed);
    stats
        .phases
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    tracing::trace!(phases = batch.len(), elapsed = ?started.elapsed(), "group commit");
    for pending in batch {
        pending.answer(committed.clone());
    }
    sound
}
