//! Which orders have a live actor, and which fills each has already recorded (a fast path in front
//! of the fills table's unique key).

use std::collections::HashMap;

use actix::Addr;
use dashmap::DashMap;

use super::order_actor::OrderActor;
use crate::domain::OrderId;
use crate::domain::VenueFill;
use crate::orders::lifecycle::RecordedFill;

#[derive(Default)]
pub struct Registry {
    actors: DashMap<OrderId, Addr<OrderActor>>,
    fills_seen: DashMap<OrderId, HashMap<String, RecordedFill>>,
}

impl Registry {
    pub fn get(&self, order: OrderId) -> Option<Addr<OrderActor>> {
        self.actors.get(&order).map(|a| a.clone())
    }

    pub fn contains(&self, order: OrderId) -> bool {
        self.actors.contains_key(&order)
    }

    /// Registers `make()` unless the order already has an actor; returns the order's actor.
    pub fn get_or_insert_with(
        &self,
        order: OrderId,
        make: impl FnOnce() -> Addr<OrderActor>,
    ) -> Addr<OrderActor> {
        self.actors.entry(order).or_insert_with(make).clone()
    }

    /// Forgets a finished order (its actor and its cached fills), unless another actor has taken
    /// its place meanwhile.
    pub fn remove(&self, order: OrderId, actor: &Addr<OrderActor>) {
        if self
            .actors
            .remove_if(&order, |_, registered| registered == actor)
            .is_some()
        {
            self.fills_seen.remove(&order);
        }
    }

    pub fn len(&self) -> usize {
        self.actors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actors.is_empty()
    }

    /// Whether exactly this fill (same id, quantity and price) is recorded. A known id that says
    /// something else is not: it goes on to be compared and alarmed.
    pub fn has_recorded(&self, order: OrderId, fill: &VenueFill) -> bool {
        self.fills_seen.get(&order).is_some_and(|seen| {
            seen.get(&fill.fill_id)
                .is_some_and(|r| *r == RecordedFill::of(fill))
        })
    }

    /// How many orders have fills remembered: never more than those with a live actor, give or
    /// take one that is ending.
    pub fn orders_with_remembered_fills(&self) -> usize {
        self.fills_seen.len()
    }

    pub fn remember_fills<'a>(
        &self,
        order: OrderId,
        fills: impl IntoIterator<Item = (&'a String, &'a RecordedFill)>,
    ) {
        let mut seen = self.fills_seen.entry(order).or_default();
        seen.extend(fills.into_iter().map(|(id, f)| (id.clone(), *f)));
    }
}
