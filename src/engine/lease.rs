//! This engine's lease on its open orders (see [`crate::db::leases`]): renewed on a timer, taken
//! up again under a new epoch if it was lost, and the work that several engines need: taking over
//! the orders of an engine whose lease ran out, and picking up the notes other engines leave.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::identity::{IdLock, IdentityError};
use super::messages::{Drive, Reason};
use super::Engine;
use super::EngineError;
use crate::db::leases::{self, Fence};
use crate::db::{self, DbConnection, DbError};
use crate::shutdown::Shutdown;

/// How often the notes other engines leave are looked for.
const NOTE_CHECK: Duration = Duration::from_millis(200);

pub struct Lease {
    engine: String,
    epoch: AtomicI64,
    ttl: Duration,
    /// When the last renewal that succeeded was sent: the lease holds until a TTL after it.
    renewed: Mutex<Instant>,
}

impl Lease {
    /// The lease `fence` was joined under, sent at `joined`.
    pub fn new(fence: Fence, ttl: Duration, joined: Instant) -> Self {
        Lease {
            engine: fence.engine,
            epoch: AtomicI64::new(fence.epoch),
            ttl,
            renewed: Mutex::new(joined),
        }
    }

    /// Whether the lease is still held as far as this engine knows: a renewal sent less than a TTL
    /// ago succeeded.
    pub fn is_held(&self) -> bool {
        self.renewed
            .lock()
            .map(|sent| sent.elapsed() < self.ttl)
            .unwrap_or(false)
    }

    fn renewed_at(&self, sent: Instant) {
        if let Ok(mut renewed) = self.renewed.lock() {
            *renewed = sent;
        }
    }

    /// What this engine's phases are written under now.
    pub fn fence(&self) -> Fence {
        Fence {
            engine: self.engine.clone(),
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    pub fn engine_id(&self) -> &str {
        &self.engine
    }

    pub fn ttl_micros(&self) -> i64 {
        i64::try_from(self.ttl.as_micros()).unwrap_or(i64::MAX)
    }
}

/// Renews the lease a few times per lease period, takes over the orders of expired engines, and
/// hands each note left for this engine to the order's actor.
pub fn spawn_keeper(engine: Engine, id_lock: Arc<IdLock>, shutdown: &Shutdown) {
    shutdown.spawn("lease keeper", |shutdown| async move {
        let renew_every = (engine.lease().ttl / 4).max(Duration::from_millis(20));
        let mut last_renewal = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval(NOTE_CHECK.min(renew_every));
        while shutdown.or(ticker.tick()).await.is_some() {
            if last_renewal.elapsed() >= renew_every {
                last_renewal = tokio::time::Instant::now();
                keep_the_id(&id_lock).await;
                if let Err(e) = renew_and_take_over(&engine).await {
                    tracing::warn!(error = %e, "lease upkeep failed");
                }
            }
            if let Err(e) = pick_up_notes(&engine).await {
                tracing::warn!(error = %e, "picking up notes from other engines failed");
            }
        }
    });
}

/// Stops the process at once if another process now holds this engine's id: two processes must
/// never act on one engine's orders, and everything acknowledged is already committed.
async fn keep_the_id(id_lock: &Arc<IdLock>) {
    let lock = id_lock.clone();
    match actix_web::web::block(move || lock.hold()).await {
        Ok(Ok(())) => {}
        Ok(Err(held @ IdentityError::Held { .. })) => {
            tracing::error!(error = %held, "this engine's id is another process's now; stopping");
            eprintln!("orderkeeper: {held}");
            std::process::exit(1);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot check this engine's id"),
        Err(e) => tracing::warn!(error = %e, "cannot check this engine's id"),
    }
}

/// `phase`, waiting at most `wait` for other transactions' row locks.
fn waiting_at_most<T>(
    wait: Duration,
    phase: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> impl FnOnce(&mut DbConnection) -> Result<T, DbError> {
    move |conn| {
        conn.limit_lock_wait(wait)?;
        phase(conn)
    }
}

async fn renew_and_take_over(engine: &Engine) -> Result<(), EngineError> {
    let lease = engine.lease();
    let (fence, ttl) = (lease.fence(), lease.ttl_micros());
    // The keeper never waits on another engine's locks for longer than its lease can spare.
    let wait = lease.ttl / 4;
    let sent = Instant::now();
    let renewed = engine
        .writer()
        .run(waiting_at_most(wait, move |conn| {
            leases::renew(conn, &fence, ttl)
        }))
        .await?;
    if renewed {
        lease.renewed_at(sent);
    }
    if !renewed {
        // Taken over (this engine was too slow to renew) or joined by another process under the
        // same id: the orders taken are another's now, and this engine's writes to them are
        // refused. Join again for new work and whatever is still ours.
        let id = lease.engine_id().to_owned();
        let sent = Instant::now();
        let fence = engine
            .writer()
            .run(waiting_at_most(wait, move |conn| {
                leases::join(conn, &id, ttl)
            }))
            .await?;
        tracing::warn!(engine = %fence.engine, epoch = fence.epoch, "lease lost; joined again");
        lease.epoch.store(fence.epoch, Ordering::Release);
        lease.renewed_at(sent);
        engine.adopt_orphans().await?;
    }
    let expired = db::run(engine.pool(), leases::expired).await?;
    for dead in expired {
        let fence = lease.fence();
        let from = dead.clone();
        let taken = engine
            .writer()
            .run(waiting_at_most(wait, move |conn| {
                leases::take_over(conn, &from, &fence)
            }))
            .await?;
        if taken > 0 {
            tracing::warn!(from = %dead, orders = taken, "took over the open orders of an expired engine");
            engine.metrics().orders_taken_over(taken);
        }
        engine.adopt_orphans().await?;
    }
    Ok(())
}

async fn pick_up_notes(engine: &Engine) -> Result<(), EngineError> {
    let id = engine.lease().engine_id().to_owned();
    let waiting = {
        let id = id.clone();
        db::run(engine.pool(), move |conn| leases::has_notes(conn, &id)).await?
    };
    if !waiting {
        return Ok(());
    }
    let orders = engine
        .writer()
        .run(move |conn| leases::take_notes(conn, &id))
        .await?;
    for order in orders {
        engine.mark_snapshot_stale(order);
        engine.spawn(order).do_send(Drive(Reason::Recover));
    }
    Ok(())
}

/// Gives the lease up at a clean shutdown, so that other engines on the database take this
/// engine's open orders over at once instead of after the lease runs out.
pub async fn give_up(engine: &Engine) -> Result<(), EngineError> {
    let fence = engine.lease().fence();
    Ok(engine
        .writer()
        .run(move |conn| leases::expire(conn, &fence))
        .await?)
}
