//! Which orders have a live actor, and which fills each has already recorded (a fast path in front
//! of the fills table's unique key).

use std::collections::HashSet;

use actix::Addr;
use dashmap::DashMap;

use super::order_actor::OrderActor;
use crate::domain::OrderId;

#[derive(Default)]
pub struct Registry {
    actors: DashMap<OrderId, Addr<OrderActor>>,
    fills_seen: DashMap<OrderId, HashSet<String>>,
}

impl Registry {
    pub fn get(&self, order: OrderId) -> Option<Addr<OrderActor>> {
        self.actors.get(&order).map(|a| a.clone())
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

    pub fn has_seen_fill(&self, order: OrderId, fill_id: &str) -> bool {
        self.fills_seen
            .get(&order)
            .is_some_and(|seen| seen.contains(fill_id))
    }

    pub fn remember_fills<'a>(
        &self,
        order: OrderId,
        fill_ids: impl IntoIterator<Item = &'a String>,
    ) {
        let mut seen = self.fills_seen.entry(order).or_default();
        seen.extend(fill_ids.into_iter().cloned());
    }
}
