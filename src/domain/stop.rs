//! Held stop orders, by symbol and stop price, and which of them a last price triggers: a buy
//! when the last price is at or above its stop, a sell when it is at or below. Each symbol keeps
//! its buys and its sells sorted by stop, so a price that triggers nothing costs one lookup
//! however many stops wait, and one that triggers k of them costs O(k + log n).

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

use super::{Cents, OrderId, Side};

/// Whether `last` triggers a stop at `stop` on `side`.
pub fn triggers(side: Side, stop: Cents, last: Cents) -> bool {
    match side {
        Side::Buy => last >= stop,
        Side::Sell => last <= stop,
    }
}

#[derive(Debug, Default)]
struct SymbolStops {
    buys: BTreeSet<(Cents, OrderId)>,
    sells: BTreeSet<(Cents, OrderId)>,
}

/// The stops one engine holds, each once.
#[derive(Debug, Default)]
pub struct StopBook {
    by_symbol: HashMap<String, SymbolStops>,
    watched: HashMap<OrderId, (String, Side, Cents)>,
}

const LOWEST: OrderId = OrderId(Uuid::nil());

impl StopBook {
    /// Watches `order` (again: watching twice is watching once).
    pub fn watch(&mut self, order: OrderId, symbol: &str, side: Side, stop: Cents) {
        if self.watched.contains_key(&order) {
            return;
        }
        let stops = self.by_symbol.entry(symbol.to_owned()).or_default();
        match side {
            Side::Buy => stops.buys.insert((stop, order)),
            Side::Sell => stops.sells.insert((stop, order)),
        };
        self.watched.insert(order, (symbol.to_owned(), side, stop));
    }

    /// Stops watching `order` (cancelled, ended, or carried on by another engine).
    pub fn forget(&mut self, order: OrderId) {
        let Some((symbol, side, stop)) = self.watched.remove(&order) else {
            return;
        };
        if let Some(stops) = self.by_symbol.get_mut(&symbol) {
            match side {
                Side::Buy => stops.buys.remove(&(stop, order)),
                Side::Sell => stops.sells.remove(&(stop, order)),
            };
        }
    }

    /// Takes out every stop of `symbol` that `last` triggers, lowest buy stop and highest sell
    /// stop first.
    pub fn take_triggered(&mut self, symbol: &str, last: Cents) -> Vec<OrderId> {
        let Some(stops) = self.by_symbol.get_mut(symbol) else {
            return Vec::new();
        };
        // Buys with stop ≤ last: all below (last + 1, lowest id).
        let above = match last.0.checked_add(1) {
            Some(next) => stops.buys.split_off(&(Cents(next), LOWEST)),
            None => BTreeSet::new(),
        };
        let bought = std::mem::replace(&mut stops.buys, above);
        // Sells with stop ≥ last: all from (last, lowest id) up.
        let sold = stops.sells.split_off(&(last, LOWEST));
        let taken: Vec<OrderId> = bought
            .into_iter()
            .map(|(_, id)| id)
            .chain(sold.into_iter().rev().map(|(_, id)| id))
            .collect();
        for order in &taken {
            self.watched.remove(order);
        }
        taken
    }

    /// Takes out every stop the last prices trigger, with the price that triggered it.
    pub fn take_all_triggered<'a>(
        &mut self,
        prices: impl IntoIterator<Item = (&'a String, &'a Cents)>,
    ) -> Vec<(OrderId, Cents)> {
        let mut taken = Vec::new();
        for (symbol, last) in prices {
            taken.extend(
                self.take_triggered(symbol, *last)
                    .into_iter()
                    .map(|id| (id, *last)),
            );
        }
        taken
    }

    /// How many stops are watched.
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// The highest buy stop and the lowest sell stop of `symbol` still waiting.
    #[cfg(test)]
    fn nearest(&self, symbol: &str) -> (Option<Cents>, Option<Cents>) {
        let Some(stops) = self.by_symbol.get(symbol) else {
            return (None, None);
        };
        let buy = stops.buys.iter().next_back().map(|(stop, _)| *stop);
        let sell = stops.sells.iter().next().map(|(stop, _)| *stop);
        (buy, sell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_buy_triggers_at_or_above_its_stop_and_a_sell_at_or_below() {
        let mut book = StopBook::default();
        let (buy, sell, other) = (OrderId::new(), OrderId::new(), OrderId::new());
        book.watch(buy, "INFY", Side::Buy, Cents(150_000));
        book.watch(sell, "INFY", Side::Sell, Cents(140_000));
        book.watch(other, "TCS", Side::Buy, Cents(1));
        book.watch(buy, "INFY", Side::Buy, Cents(150_000));
        assert_eq!(book.len(), 3, "watched once");

        assert!(book.take_triggered("INFY", Cents(149_999)).is_empty());
        assert!(book.take_triggered("INFY", Cents(140_001)).is_empty());
        assert_eq!(book.take_triggered("INFY", Cents(150_000)), vec![buy]);
        assert!(
            book.take_triggered("INFY", Cents(150_000)).is_empty(),
            "taken once"
        );
        assert_eq!(book.take_triggered("INFY", Cents(140_000)), vec![sell]);
        assert_eq!(book.len(), 1, "TCS still waits");
        assert!(book.take_triggered("NOPE", Cents(1)).is_empty());
        assert!(book.take_triggered("INFY", Cents(i64::MAX)).is_empty());
    }

    #[test]
    fn a_forgotten_stop_never_triggers() {
        let mut book = StopBook::default();
        let order = OrderId::new();
        book.watch(order, "INFY", Side::Sell, Cents(100));
        book.forget(order);
        book.forget(order);
        assert!(book.take_triggered("INFY", Cents(1)).is_empty());
        assert!(book.is_empty());
    }

    fn any_stop() -> impl Strategy<Value = (bool, i64)> {
        (any::<bool>(), 1_i64..50)
    }

    proptest! {
        /// Against the rule applied to each stop alone: a price takes exactly the stops it
        /// triggers, each once, and leaves every other.
        #[test]
        fn a_price_takes_exactly_the_stops_it_triggers(
            stops in prop::collection::vec(any_stop(), 0..40),
            prices in prop::collection::vec(1_i64..50, 1..10),
        ) {
            let mut book = StopBook::default();
            let mut waiting: Vec<(OrderId, Side, Cents)> = Vec::new();
            for (buy, stop) in stops {
                let side = if buy { Side::Buy } else { Side::Sell };
                let id = OrderId::new();
                book.watch(id, "INFY", side, Cents(stop));
                waiting.push((id, side, Cents(stop)));
            }
            for last in prices {
                let mut taken = book.take_triggered("INFY", Cents(last));
                let (due, rest): (Vec<_>, Vec<_>) = waiting
                    .into_iter()
                    .partition(|(_, side, stop)| triggers(*side, *stop, Cents(last)));
                waiting = rest;
                let mut due: Vec<OrderId> = due.iter().map(|(id, _, _)| *id).collect();
                taken.sort();
                due.sort();
                prop_assert_eq!(taken, due);
                prop_assert_eq!(book.len(), waiting.len());
                // What waits is on the far side of the price.
                let (buy, sell) = book.nearest("INFY");
                prop_assert!(buy.is_none_or(|stop| stop.0 > last));
                prop_assert!(sell.is_none_or(|stop| stop.0 < last));
            }
        }
    }
}
