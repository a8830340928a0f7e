//! Group commit across requests for one kind of phase: items that arrive while earlier batches
//! are in the database are gathered into one phase that writes them all, a statement per table
//! instead of a statement per item. On PostgreSQL, where every statement is a round trip, this is
//! what lets one engine accept thousands of orders a second.
//!
//! The phase may leave an item out (None): its caller then runs it alone, the ordinary way. If the
//! phase fails, its transaction rolls back whole and every item in it runs alone.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{DbConnection, Writer};
use crate::error::AppError;

/// How big a batch may grow, and how many may be in the database at once.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_items: usize,
    pub in_flight: usize,
}

type Reply<O> = oneshot::Sender<Option<O>>;

/// A handle on the gatherer; it stops once every handle is gone.
pub struct Batcher<I, O> {
    queue: mpsc::UnboundedSender<(Arc<I>, Reply<O>)>,
}

impl<I, O> Batcher<I, O>
where
    I: Send + Sync + 'static,
    O: Send + 'static,
{
    /// Starts the gatherer on the current runtime. `phase` answers each item of a batch, in order.
    pub fn start<F>(writer: Writer, limits: BatchLimits, phase: F) -> Self
    where
        F: Fn(&mut DbConnection, &[Arc<I>]) -> Result<Vec<Option<O>>, AppError>
            + Send
            + Sync
            + 'static,
    {
        let (queue, mut waiting) = mpsc::unbounded_channel::<(Arc<I>, Reply<O>)>();
        let phase = Arc::new(phase);
        let slots = Arc::new(Semaphore::new(limits.in_flight.max(1)));
        actix_web::rt::spawn(async move {
            while let Some(first) = waiting.recv().await {
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
                    let items: Vec<Arc<I>> = batch.iter().map(|(item, _)| item.clone()).collect();
                    let answers = match writer.run(move |conn| phase(conn, &items)).await {
                        Ok(answers) if answers.len() == batch.len() => answers,
                        Ok(_) => {
                            tracing::error!("a batch phase answered the wrong number of items");
                            Vec::new()
                        }
                        Err(error) => {
                            tracing::debug!(%error, items = batch.len(), "a batch rolled back: its items run alone");
                            Vec::new()
                        }
                    };
                    drop(slot);
                    let mut answers = answers.into_iter();
                    for (_, reply) in batch {
                        // A caller that went away needs no answer.
                        let _ = reply.send(answers.next().flatten());
                    }
                });
            }
        });
        Batcher { queue }
    }

    /// The item's answer from a batch, or None if it is to be run alone.
    pub async fn run(&self, item: Arc<I>) -> Option<O> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((item, reply)).ok()?;
        answer.await.ok().flatten()
    }
}
