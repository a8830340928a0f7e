//! The engine's writers: every phase an order goes through (a new order, a status step, a push
//! taken in) is gathered with others of its kind into one batch, one commit. Each kind has one
//! entry point; a phase alone is a batch of one.

use std::sync::Arc;

use super::EngineError;
use crate::db::batcher::{BatchLimits, Batcher};
use crate::db::Writer;
use crate::metrics::Metrics;
use crate::orders::intake::{self, Intake, PushItem};
use crate::orders::lifecycle::Applied;
use crate::orders::recovered::{self, RecoveredItem};
use crate::orders::status::{self, StatusItem};
use crate::orders::submit::{self, SubmitItem, Submitted};
use crate::orders::OrderError;
use crate::shutdown::Shutdown;

/// New orders gathered per phase. Batches of new orders lock their accounts' balances and event
/// seqs, so batches in the database at once mostly wait for each other: two let one be gathered
/// and read while the other holds its locks; more only make each batch smaller.
const SUBMIT_BATCHES: BatchLimits = BatchLimits {
    name: "submit batches",
    max_items: 128,
    in_flight: 2,
};

/// Actors' status steps, and pushes with a fill or without, gathered per phase: one batch of each
/// kind in the database at a time, and whatever arrives meanwhile goes in the next. More at a
/// time make batches of a few items that queue on the same account rows as the new orders'
/// batches, and cost more CPU per order.
const STATUS_BATCHES: BatchLimits = BatchLimits {
    name: "status batches",
    max_items: 128,
    in_flight: 1,
};

const BARE_PUSH_BATCHES: BatchLimits = BatchLimits {
    name: "push batches",
    ..STATUS_BATCHES
};

const FILL_PUSH_BATCHES: BatchLimits = BatchLimits {
    name: "fill batches",
    ..STATUS_BATCHES
};

/// The `order.recovered` events of a start: a backlog's thousands of orders, each told alone,
/// would queue on their accounts' rows one transaction at a time.
const RECOVERED_BATCHES: BatchLimits = BatchLimits {
    name: "recovered batches",
    ..STATUS_BATCHES
};

pub struct Writers {
    writer: Writer,
    /// What stops the gatherers, and waits for them and for work run to completion.
    stop: Shutdown,
    submits: Batcher<SubmitItem, Submitted, OrderError>,
    statuses: Batcher<StatusItem, Applied, OrderError>,
    /// Pushes without a fill: they lock nothing, so they never wait behind a fill's phase.
    bare_pushes: Batcher<PushItem, Intake, OrderError>,
    /// Pushes that bring a fill.
    fill_pushes: Batcher<PushItem, Intake, OrderError>,
    recovered: Batcher<RecoveredItem, (), OrderError>,
}

impl Writers {
    /// Starts the gatherers as tasks of `shutdown`'s.
    pub fn start(writer: Writer, metrics: Arc<Metrics>, shutdown: &Shutdown) -> Self {
        let observed = Arc::clone(&metrics);
        let submits = Batcher::start(
            shutdown,
            &writer,
            SUBMIT_BATCHES,
            move |conn, items: &[Arc<SubmitItem>]| {
                observed.submit_batch(items.len());
                let refs: Vec<_> = items.iter().map(|i| (&i.submission, &i.owner)).collect();
                submit::submit(conn, &refs)
            },
        );
        let observed = Arc::clone(&metrics);
        let statuses = Batcher::start(shutdown, &writer, STATUS_BATCHES, move |conn, items| {
            observed.status_batch(items.len());
            status::record(conn, items)
        });
        let bare_pushes =
            Batcher::start(shutdown, &writer, BARE_PUSH_BATCHES, intake::take_in_pushes);
        let fill_pushes =
            Batcher::start(shutdown, &writer, FILL_PUSH_BATCHES, move |conn, items| {
                metrics.fill_batch(items.len());
                intake::take_in_pushes(conn, items)
            });
        let recovered = Batcher::start(shutdown, &writer, RECOVERED_BATCHES, recovered::record);
        Writers {
            writer,
            stop: shutdown.clone(),
            submits,
            statuses,
            bare_pushes,
            fill_pushes,
            recovered,
        }
    }

    /// Runs `work` on a task of its own and waits for it. The work goes on to its end even if the
    /// waiting request is dropped (a client that resets the connection, a proxy that times out),
    /// so whatever must follow a commit never depends on the request that asked for it; the stop
    /// waits for it before the writers stop.
    pub async fn run_to_completion<T: 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, EngineError>> + 'static,
    ) -> Result<T, EngineError> {
        // The task carries the caller's span, so its logs still name the order and the account.
        let work = tracing::Instrument::instrument(work, tracing::Span::current());
        self.stop
            .run_to_completion("work that follows a request", work)
            .await
            .ok_or_else(|| EngineError::Unavailable("the task running the work failed".into()))?
    }

    /// For a phase of its own (a cancel request, a fill found by polling, an admin change).
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    pub async fn submit(&self, item: SubmitItem) -> Result<Submitted, OrderError> {
        self.submits.run(item).await
    }

    pub async fn record_status(&self, item: StatusItem) -> Result<Applied, OrderError> {
        self.statuses.run(item).await
    }

    pub async fn record_recovered(&self, item: RecoveredItem) -> Result<(), OrderError> {
        self.recovered.run(item).await
    }

    pub async fn take_in_push(&self, item: PushItem) -> Result<Intake, OrderError> {
        match item.event.fill {
            None => self.bare_pushes.run(item).await,
            Some(_) => self.fill_pushes.run(item).await,
        }
    }
}
