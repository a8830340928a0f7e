//! Group commit across requests for one kind of phase: items that arrive while earlier batches
//! are in the database are gathered into one phase that writes them all, a statement per table
//! instead of a statement per item. On PostgreSQL, where every statement is a round trip, this is
//! what lets one engine accept thousands of orders a second.
//!
//! A phase answers every item of its batch, in order, with a typed result of its own. If the
//! phase fails as a whole, its transaction rolls back and each item runs again as a batch of one,
//! so one bad item costs its neighbours a retry, never their answer.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{DbConnection, DbError, PhaseError, Writer};
use crate::shutdown::Shutdown;

/// A kind of batch: its name (for the log at shut-down), how big a batch may grow, and how many
/// may be in the database at once.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub name: &'static str,
    pub max_items: usize,
    pub in_flight: usize,
}

type Answer<O, E> = Result<O, E>;
type Reply<O, E> = oneshot::Sender<Answer<O, E>>;

/// A phase over a batch: the outer error rolls the whole batch back, an inner one answers its item
/// alone and must have written nothing for it.
pub type Phase<I, O, E> =
    dyn Fn(&mut DbConnection, &[Arc<I>]) -> Result<Vec<Answer<O, E>>, E> + Send + Sync;

/// A handle on the gatherer; it stops once every handle is gone.
pub struct Batcher<I, O, E> {
    queue: mpsc::UnboundedSender<(Arc<I>, Reply<O, E>)>,
}

impl<I, O, E> Batcher<I, O, E>
where
    I: Send + Sync + 'static,
    O: Send + 'static,
    E: PhaseError,
{
    /// Starts the gatherer as a task of `shutdown`'s, which waits for every batch in the database.
    pub fn start<F>(shutdown: &Shutdown, writer: &Writer, limits: BatchLimits, phase: F) -> Self
    where
        F: Fn(&mut DbConnection, &[Arc<I>]) -> Result<Vec<Answer<O, E>>, E> + Send + Sync + 'static,
    {
        let (queue, waiting) = mpsc::unbounded_channel::<(Arc<I>, Reply<O, E>)>();
        let phase: Arc<Phase<I, O, E>> = Arc::new(phase);
        let writer = writer.clone();
        shutdown.spawn(limits.name, move |shutdown| {
            gather(shutdown, waiting, writer, limits, phase)
        });
        Batcher { queue }
    }

    /// The item's answer, from its batch or, if that rolled back, from a batch of its own.
    pub async fn run(&self, item: I) -> Answer<O, E> {
        let (reply, answer) = oneshot::channel();
        let stopped = || E::from(DbError::Unavailable("the engine is shutting down".into()));
        self.queue
            .send((Arc::new(item), reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Gathers batches until the signal (or until every handle is gone), answers what was already
/// queued, then waits for the batches still in the database. An item sent after the signal is
/// refused as unavailable: its order's next step, here or after a restart, carries it on.
async fn gather<I, O, E>(
    shutdown: Shutdown,
    mut waiting: mpsc::UnboundedReceiver<(Arc<I>, Reply<O, E>)>,
    writer: Writer,
    limits: BatchLimits,
    phase: Arc<Phase<I, O, E>>,
) where
    I: Send + Sync + 'static,
    O: Send + 'static,
    E: PhaseError,
{
    let in_flight = limits.in_flight.max(1);
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut closing = false;
    loop {
        let next = if closing {
            waiting.recv().await
        } else {
            match shutdown.or(waiting.recv()).await {
                Some(next) => next,
                None => {
                    waiting.close();
                    closing = true;
                    continue;
                }
            }
        };
        let Some(first) = next else { break };
        // A slot first: whatever arrives while every slot is taken joins this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < limits.max_items.max(1) {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (writer, phase) = (writer.clone(), phase.clone());
        actix_web::rt::spawn(async move {
            answer_batch(&writer, &phase, batch).await;
            drop(slot);
        });
    }
    // Every slot back means every batch has answered.
    let _ = slots.acquire_many(in_flight as u32).await;
}

async fn answer_batch<I, O, E>(
    writer: &Writer,
    phase: &Arc<Phase<I, O, E>>,
    batch: Vec<(Arc<I>, Reply<O, E>)>,
) where
    I: Send + Sync + 'static,
    O: Send + 'static,
    E: PhaseError,
{
    let items: Vec<Arc<I>> = batch.iter().map(|(item, _)| item.clone()).collect();
    let whole = phase.clone();
    let answers = match writer.run(move |conn| whole(conn, &items)).await {
        Ok(answers) if answers.len() == batch.len() => Some(answers),
        Ok(_) => {
            tracing::error!("a batch phase answered the wrong number of items");
            None
        }
        Err(error) => {
            tracing::debug!(%error, items = batch.len(), "a batch rolled back: its items run alone");
            None
        }
    };
    match answers {
        Some(answers) => {
            for ((_, reply), answer) in batch.into_iter().zip(answers) {
                // A caller that went away needs no answer.
                let _ = reply.send(answer);
            }
        }
        None => {
            for (item, reply) in batch {
                let alone = phase.clone();
                let answer = writer
                    .run(move |conn| alone(conn, std::slice::from_ref(&item)))
                    .await
                    .and_then(|mut answers| match answers.pop() {
                        Some(answer) if answers.is_empty() => answer,
                        _ => Err(DbError::PhaseFailed("a batch of one went unanswered").into()),
                    });
                let _ = reply.send(answer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LIMITS: BatchLimits = BatchLimits {
        name: "test batches",
        max_items: 64,
        in_flight: 1,
    };

    /// A writer on a fresh SQLite file, with the file's directory.
    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("batch.db").display());
        crate::db::connect(&url, 1).unwrap();
        let connector = crate::db::pool::Connector::new(&url).unwrap();
        let writer = Writer::start(connector, 1).unwrap();
        (dir, writer)
    }

    /// Answers each number with its double, and fails the whole batch if it holds a 13 beside
    /// anything else; a 13 alone is refused as its own answer.
    fn doubling(
        _: &mut DbConnection,
        items: &[Arc<i64>],
    ) -> Result<Vec<Answer<i64, DbError>>, DbError> {
        if items.len() > 1 && items.iter().any(|i| **i == 13) {
            return Err(DbError::Unavailable("a batch with 13 in it".into()));
        }
        Ok(items
            .iter()
            .map(|i| match **i {
                13 => Err(DbError::NotFound),
                n => Ok(n * 2),
            })
            .collect())
    }

    #[actix_web::test]
    async fn a_batch_that_rolls_back_answers_each_item_alone() {
        let (_dir, writer) = writer();
        let shutdown = Shutdown::default();
        let batcher = Batcher::start(&shutdown, &writer, LIMITS, doubling);
        let answers = futures_util::future::join_all((10..=16).map(|n| batcher.run(n))).await;
        let shown: Vec<Result<i64, String>> = answers
            .into_iter()
            .map(|a| a.map_err(|e| e.to_string()))
            .collect();
        let mut expected: Vec<Result<i64, String>> = (10..=16).map(|n| Ok(n * 2)).collect();
        expected[3] = Err(DbError::NotFound.to_string());
        assert_eq!(shown, expected);
    }

    #[actix_web::test]
    async fn at_the_signal_queued_items_are_answered_and_later_ones_refused() {
        let (_dir, writer) = writer();
        let shutdown = Shutdown::default();
        let batcher = Batcher::start(&shutdown, &writer, LIMITS, doubling);
        assert_eq!(batcher.run(1).await.unwrap(), 2);
        let queued = batcher.run(2);
        shutdown.trigger();
        assert_eq!(
            queued.await.unwrap(),
            4,
            "sent before the gatherer saw the signal"
        );
        let running = shutdown.tasks_finished(Duration::from_secs(5)).await;
        assert!(running.is_empty(), "still running: {running:?}");
        let refused = batcher.run(3).await.unwrap_err();
        assert!(matches!(refused, DbError::Unavailable(_)), "{refused}");
    }
}
