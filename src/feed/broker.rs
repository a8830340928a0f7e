//! The outbox publisher to NATS JetStream (`--broker nats://…`): every committed event goes to
//! the subject `<prefix>.events.<account_id>` of the stream `<PREFIX>`, with `Nats-Msg-Id` set
//! to `<account_id>:<seq>`, the event's unique id. The payload is the event frame exactly as the
//! feed sends it.
//!
//! Publishing is at least once: events are marked published only after JetStream acknowledged
//! them, so a crash between the two publishes them again, and JetStream's duplicate window drops
//! the copies (the effect is exactly once). On PostgreSQL each engine's publisher claims rows with
//! `FOR UPDATE SKIP LOCKED`, so several engines publish side by side without waiting on each
//! other or publishing the same row twice at once.
//!
//! The publisher runs on a thread of its own with its own database connection and its own small
//! runtime for the NATS client, so a slow broker never holds up the engine.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use diesel::prelude::*;

use crate::db::connection::Inner;
use crate::db::outbox::{self, OutboxRow};
use crate::db::pool::Connector;
use crate::db::schema::outbox as outbox_table;
use crate::db::{now_micros, DbConnection};
use crate::domain::AccountId;
use crate::fault_points::crash_point;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

const BATCH: i64 = 256;
const IDLE: Duration = Duration::from_millis(100);
/// How long JetStream remembers a message id: a republish after a restart within this is dropped.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub url: String,
    /// Subjects are `<prefix>.events.<account_id>`; the stream is the prefix in capitals.
    pub prefix: String,
}

impl BrokerSettings {
    pub fn stream(&self) -> String {
        self.prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    }

    pub fn subject(&self, account: AccountId) -> String {
        format!("{}.events.{account}", self.prefix)
    }
}

#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("broker: {0}")]
    Broker(String),
    #[error(transparent)]
    Store(#[from] crate::db::DbError),
}

impl From<diesel::result::Error> for PublishError {
    fn from(error: diesel::result::Error) -> Self {
        PublishError::Store(error.into())
    }
}

/// Starts the publisher thread; it runs for the life of the process.
pub fn start(
    settings: BrokerSettings,
    connector: Connector,
    metrics: std::sync::Arc<Metrics>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    shutdown.spawn_thread("broker publisher", move |shutdown| {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => return tracing::error!(error = %e, "the broker publisher cannot start"),
        };
        const FIRST_WAIT: Duration = Duration::from_millis(200);
        let mut wait = FIRST_WAIT;
        while !shutdown.is_triggered() {
            let mut published = false;
            match run(
                &runtime,
                &settings,
                &connector,
                &metrics,
                &shutdown,
                &mut published,
            ) {
                Ok(()) => return,
                Err(e) => {
                    // A publisher that got work done before it failed starts its back-off over.
                    if published {
                        wait = FIRST_WAIT;
                    }
                    tracing::warn!(error = %e, ?wait, "broker publisher failed; starting again");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    })
}

/// Publishes until shut down; `published` says whether any pass went through before an error.
fn run(
    runtime: &tokio::runtime::Runtime,
    settings: &BrokerSettings,
    connector: &Connector,
    metrics: &Metrics,
    shutdown: &Shutdown,
    published: &mut bool,
) -> Result<(), PublishError> {
    let js = runtime.block_on(async {
        let client = async_nats::connect(settings.url.as_str())
            .await
            .map_err(|e| PublishError::Broker(e.to_string()))?;
        let js = jetstream::new(client);
        js.get_or_create_stream(jetstream::stream::Config {
            name: settings.stream(),
            subjects: vec![format!("{}.events.>", settings.prefix)],
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(|e| PublishError::Broker(e.to_string()))?;
        Ok::<_, PublishError>(js)
    })?;
    tracing::info!(url = %settings.url, stream = %settings.stream(), "publishing events to the broker");
    // The engine's own connection settings: SQLite's busy_timeout (the writer holds the lock
    // often), PostgreSQL's timeouts and keepalives.
    let mut conn = connector
        .open()
        .map_err(|e| PublishError::Store(crate::db::DbError::Unavailable(e.to_string())))?;
    while !shutdown.is_triggered() {
        let count = pass(runtime, &js, settings, &mut conn)?;
        *published = true;
        metrics.broker_published(count);
        if count < BATCH as usize {
            std::thread::sleep(IDLE);
        }
    }
    Ok(())
}

/// Publishes one batch of unpublished events and marks them; returns how many.
fn pass(
    runtime: &tokio::runtime::Runtime,
    js: &jetstream::Context,
    settings: &BrokerSettings,
    conn: &mut DbConnection,
) -> Result<usize, PublishError> {
    match conn.backend() {
        // The claimed rows stay locked until they are marked: no other publisher takes them.
        crate::db::Backend::Postgres => conn.transaction(|conn| {
            let rows = claim(conn)?;
            publish_and_mark(runtime, js, settings, conn, rows)
        }),
        // One engine per SQLite file, so nothing to claim; marking is a short write of its own.
        crate::db::Backend::Sqlite => {
            let rows = outbox::unpublished(conn, BATCH)?;
            publish_and_mark(runtime, js, settings, conn, rows)
        }
    }
}

fn claim(conn: &mut DbConnection) -> Result<Vec<OutboxRow>, crate::db::DbError> {
    match &mut conn.inner {
        Inner::Postgres(c) => Ok(outbox_table::table
            .filter(outbox_table::published_at.is_null())
            .order((outbox_table::account_id, outbox_table::seq))
            .limit(BATCH)
            .select(OutboxRow::as_select())
            .for_update()
            .skip_locked()
            .load(c)?),
        Inner::Sqlite(_) => outbox::unpublished(conn, BATCH),
    }
}

fn publish_and_mark(
    runtime: &tokio::runtime::Runtime,
    js: &jetstream::Context,
    settings: &BrokerSettings,
    conn: &mut DbConnection,
    rows: Vec<OutboxRow>,
) -> Result<usize, PublishError> {
    if rows.is_empty() {
        return Ok(0);
    }
    runtime.block_on(publish(js, settings, &rows))?;
    crash_point("broker.after_publish");
    let keys: Vec<(AccountId, i64)> = rows.iter().map(|r| (r.account_id, r.seq)).collect();
    conn.transaction(|conn| outbox::mark_published(conn, &keys, now_micros()))?;
    Ok(rows.len())
}

/// Sends the whole batch, then waits for every acknowledgement.
async fn publish(
    js: &jetstream::Context,
    settings: &BrokerSettings,
    rows: &[OutboxRow],
) -> Result<(), PublishError> {
    let mut acks = Vec::with_capacity(rows.len());
    for row in rows {
        let message = PublishMessage::build()
            .message_id(format!("{}:{}", row.account_id, row.seq))
            .payload(row.payload.clone().into());
        let ack = js
            .send_publish(settings.subject(row.account_id), message)
            .await
            .map_err(|e| PublishError::Broker(e.to_string()))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await.map_err(|e| PublishError::Broker(e.to_string()))?;
    }
    Ok(())
}
