//! Pushes from the venue: each is taken in once, in a batch with others, and handed to the order's
//! actor only when it may end the order or change its status.

use super::messages::{Drive, Reason, WatchClosely};
use super::Engine;
use super::EngineError;
use crate::db::now_micros;
use crate::domain::{ClientOrderId, FillSource, OrderStatus, VenueReport};
use crate::fault_points::crash_point;
use crate::orders::intake::{Intake, PushItem};
use crate::orders::lifecycle::{Applied, RecordedFill};

/// What became of a push, as the exchange is told (`{"status": …}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushOutcome {
    /// Taken in: its fill recorded, or its event stored, and the order's actor told if need be.
    Recorded,
    /// This very event (or its fill) was taken in before.
    Duplicate,
    /// It names no order of ours: kept and alarmed.
    Unmatched,
}

impl Engine {
    /// Takes in a push from the exchange: stores it and records its fill in one phase, then hands
    /// the order's actor only what may end the order or change its status. A fill already
    /// recorded exactly so is answered at once, without a write. Returns what became of it.
    ///
    /// Runs on a task of its own: once the event is stored, a later delivery is a duplicate, so
    /// what follows must not depend on the request surviving.
    pub async fn take_push(
        &self,
        event: VenueReport,
        raw: String,
    ) -> Result<PushOutcome, EngineError> {
        let order = ClientOrderId(event.client_order_id.clone()).order_id();
        if let (Some(order), Some(fill)) = (order, &event.fill) {
            if self.registry().has_recorded(order, fill) {
                self.metrics().fill_duplicate(FillSource::Push);
                return Ok(PushOutcome::Duplicate);
            }
        }
        let engine = self.clone();
        self.0
            .writers
            .run_to_completion(async move {
                let item = PushItem {
                    event: event.clone(),
                    raw,
                    now: now_micros(),
                    engine: engine.lease().engine_id().to_owned(),
                };
                let intake = engine.0.writers.take_in_push(item).await?;
                let Intake::New {
                    order,
                    fill,
                    status,
                    fully_filled,
                    owner,
                } = intake
                else {
                    if intake == Intake::Duplicate {
                        engine.metrics().fill_duplicate(FillSource::Push);
                        return Ok(PushOutcome::Duplicate);
                    }
                    return Ok(PushOutcome::Unmatched);
                };
                if let (Some(recorded), Some(exchange_fill)) = (&fill, &event.fill) {
                    match recorded {
                        Applied::Recorded => {
                            engine.metrics().fill_recorded(FillSource::Push);
                            crash_point("fill.after_commit");
                            engine.relay().wake();
                        }
                        Applied::Duplicate => engine.metrics().fill_duplicate(FillSource::Push),
                        Applied::Refused(_) => {}
                    }
                    // Only an order with a live actor here is remembered: the actor's end forgets it,
                    // so the cache never grows with other engines' orders.
                    if !matches!(recorded, Applied::Refused(_)) && engine.registry().contains(order)
                    {
                        let seen = RecordedFill::of(exchange_fill);
                        engine
                            .registry()
                            .remember_fills(order, [(&exchange_fill.fill_id, &seen)]);
                    }
                }
                // A fill that leaves the order open needs nothing more, nor does an acknowledgement of
                // an order already acknowledged; the rest goes to the actor.
                let needs_actor = if event.is_bare_ack() {
                    status == OrderStatus::PendingNew
                } else {
                    event.fill.is_none() || fully_filled
                };
                if !engine.owns(&owner) {
                    // Told to its owner above.
                } else if needs_actor && status.is_open() {
                    engine
                        .actor_for_push(order)
                        .do_send(Drive(Reason::Push(event)));
                } else if let Some(actor) = engine.registry().get(order) {
                    actor.do_send(WatchClosely);
                }
                Ok(PushOutcome::Recorded)
            })
            .await
    }
}
