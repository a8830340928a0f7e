//! The simulator's order book: idempotent placement, tombstones, cancels, and chunked fills.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::RngExt;

use super::market::Market;
use super::store::{Changes, Saved, StoredOrder};
use crate::domain::{Cents, OrderType, Side, TimeInForce};
use crate::exchange::wire::{
    ExchangeFill, ExchangeOrder, ExchangeStatus, PlaceOrder, PushType, ReplaceOrder,
};

/// Something that happened to an order, to be pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookEvent {
    pub event_type: PushType,
    pub client_order_id: String,
    pub orig_client_order_id: Option<String>,
    pub exchange_order_id: Option<String>,
    pub fill: Option<ExchangeFill>,
}

#[derive(Debug, Clone)]
struct Resting {
    /// Where the order stands in `Book::arrival`.
    arrival: i64,
    request: PlaceOrder,
    order: ExchangeOrder,
}

#[derive(Debug, Default)]
pub struct Book {
    orders: HashMap<String, Resting>,
    /// Client order ids in the order they were first seen.
    arrival: Vec<String>,
    tombstones: HashSet<String>,
    /// Each id an order took by a replace, to the id it was first placed under (its key here).
    aliases: HashMap<String, String>,
    next_order: u64,
    next_fill: u64,
    /// Orders, tombstones and aliases changed since the book was last saved.
    unsaved_orders: BTreeSet<String>,
    unsaved_tombstones: BTreeSet<String>,
    unsaved_aliases: BTreeSet<String>,
}

/// Why a replace is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceRefused {
    /// No order has this id.
    NotFound,
    /// It is filled, cancelled or ended, or the new quantity is not above what it has filled.
    TooLate,
    /// The new id names another order.
    IdTaken,
}

/// The answer to a placement: whether it created the order, and the order as it now stands.
pub struct Placed {
    pub created: bool,
    pub order: ExchangeOrder,
    pub events: Vec<BookEvent>,
}

fn event(order: &ExchangeOrder, event_type: PushType, fill: Option<ExchangeFill>) -> BookEvent {
    BookEvent {
        event_type,
        client_order_id: order.client_order_id.clone(),
        orig_client_order_id: order.orig_client_order_id.clone(),
        exchange_order_id: order.exchange_order_id.clone(),
        fill,
    }
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Book {
    /// The book as it was saved.
    pub fn restore(saved: Saved) -> Self {
        let mut book = Self {
            next_order: saved.counters.next_order,
            next_fill: saved.counters.next_fill,
            tombstones: saved.tombstones.into_iter().collect(),
            aliases: saved.aliases.into_iter().collect(),
            ..Self::default()
        };
        for stored in saved.orders {
            let id = stored.key.clone();
            book.arrival.push(id.clone());
            let resting = Resting {
                arrival: stored.arrival,
                request: stored.request,
                order: stored.order,
            };
            book.orders.insert(id, resting);
        }
        book
    }

    /// What changed since [`Book::mark_saved`] was last called.
    pub fn unsaved(&self) -> Changes {
        let orders = self
            .unsaved_orders
            .iter()
            .filter_map(|id| self.orders.get_key_value(id))
            .map(|(key, r)| StoredOrder {
                key: key.clone(),
                arrival: r.arrival,
                request: r.request.clone(),
                order: r.order.clone(),
            })
            .collect();
        let aliases = self
            .unsaved_aliases
            .iter()
            .filter_map(|id| self.aliases.get_key_value(id))
            .map(|(id, key)| (id.clone(), key.clone()))
            .collect();
        Changes {
            orders,
            tombstones: self.unsaved_tombstones.iter().cloned().collect(),
            aliases,
        }
    }

    pub fn mark_saved(&mut self) {
        self.unsaved_orders.clear();
        self.unsaved_tombstones.clear();
        self.unsaved_aliases.clear();
    }

    /// The counters behind new order and fill ids.
    pub fn next_ids(&self) -> (u64, u64) {
        (self.next_order, self.next_fill)
    }

    /// Places an order. The same client order id again returns the same order and changes nothing;
    /// an id that was cancelled before it was ever placed is rejected.
    pub fn place(&mut self, request: PlaceOrder, market: &Market) -> Placed {
        if let Some(resting) = self.resting(&request.client_order_id) {
            return Placed {
                created: false,
                order: resting.order.clone(),
                events: Vec::new(),
            };
        }
        self.next_order += 1;
        let refusal = if self.tombstones.contains(&request.client_order_id) {
            Some("cancelled before it was placed")
        } else if market.price(&request.symbol).is_none() {
            Some("unknown symbol")
        } else if request.qty <= 0 {
            Some("qty must be positive")
        } else if request.order_type == OrderType::Limit
            && request.limit_price.is_none_or(|p| p.0 <= 0)
        {
            Some("a limit order needs a positive limit_price")
        } else {
            None
        };
        let status = if refusal.is_some() {
            ExchangeStatus::Rejected
        } else {
            ExchangeStatus::New
        };
        let order = ExchangeOrder {
            client_order_id: request.client_order_id.clone(),
            orig_client_order_id: None,
            exchange_order_id: Some(format!("X{:010}", self.next_order)),
            status,
            qty: request.qty,
            filled_qty: 0,
            fills: Vec::new(),
            updated_at: Some(now_text()),
        };
        let event_type = if refusal.is_some() {
            PushType::Rejected
        } else {
            PushType::Accepted
        };
        let mut order = order;
        let mut events = vec![event(&order, event_type, None)];
        if refusal.is_none() && request.time_in_force.is_immediate() {
            events.extend(self.fill_at_once(&request, &mut order, market));
        }
        let arrival = i64::try_from(self.arrival.len()).unwrap_or(i64::MAX);
        self.arrival.push(request.client_order_id.clone());
        self.unsaved_orders.insert(request.client_order_id.clone());
        self.orders.insert(
            request.client_order_id.clone(),
            Resting {
                arrival,
                request,
                order: order.clone(),
            },
        );
        Placed {
            created: true,
            order,
            events,
        }
    }

    /// An `ioc` order takes what the book shows at once (a third of it, as a matching round would
    /// give, at the least one share) and a `fok` order all of it or nothing, if the price crosses
    /// their limit; what is left expires.
    fn fill_at_once(
        &mut self,
        request: &PlaceOrder,
        order: &mut ExchangeOrder,
        market: &Market,
    ) -> Vec<BookEvent> {
        let mut events = Vec::new();
        let price = market
            .price(&request.symbol)
            .filter(|p| crosses(request, *p));
        let qty = match (request.time_in_force, price) {
            (_, None) => 0,
            (TimeInForce::Fok, Some(_)) => order.qty,
            _ => shown(order),
        };
        if let (Some(price), true) = (price, qty > 0) {
            let fill = self.new_fill(qty, price);
            order.filled_qty = qty;
            order.updated_at = Some(fill.ts.clone());
            order.fills.push(fill.clone());
            order.status = ExchangeStatus::PartiallyFilled;
            events.push(event(order, PushType::Fill, Some(fill)));
        }
        if order.filled_qty == order.qty {
            order.status = ExchangeStatus::Filled;
        } else {
            // The push names it as the contract's pushes can: cancelled, by the exchange.
            order.status = ExchangeStatus::Expired;
            events.push(event(order, PushType::Canceled, None));
        }
        events
    }

    fn new_fill(&mut self, qty: i64, price: Cents) -> ExchangeFill {
        self.next_fill += 1;
        fill_numbered(self.next_fill, qty, price)
    }

    /// Cancels what is left of an order. An unknown id is tombstoned, and answered as a cancelled
    /// order with nothing filled.
    pub fn cancel(&mut self, client_order_id: &str) -> (ExchangeOrder, Vec<BookEvent>) {
        let key = self.key_of(client_order_id).to_owned();
        let Some(resting) = self.orders.get_mut(&key) else {
            if self.tombstones.insert(client_order_id.to_owned()) {
                self.unsaved_tombstones.insert(client_order_id.to_owned());
            }
            return (tombstone(client_order_id), Vec::new());
        };
        let order = &mut resting.order;
        if order.status.is_terminal() {
            return (order.clone(), Vec::new());
        }
        order.status = ExchangeStatus::Canceled;
        order.updated_at = Some(now_text());
        self.unsaved_orders.insert(key);
        let events = vec![event(order, PushType::Canceled, None)];
        (order.clone(), events)
    }

    /// Gives an order new terms under a new id: its fills so far are kept, and so are its
    /// exchange order id and its place in the book. The same new id again answers the same.
    pub fn replace(
        &mut self,
        client_order_id: &str,
        replace: ReplaceOrder,
    ) -> Result<ExchangeOrder, ReplaceRefused> {
        let key = self.key_of(client_order_id).to_owned();
        if let Some(owner) = self.aliases.get(&replace.new_client_order_id) {
            let ours = owner == &key;
            return match self.orders.get(&key) {
                Some(resting) if ours => Ok(resting.order.clone()),
                _ => Err(ReplaceRefused::IdTaken),
            };
        }
        if self.orders.contains_key(&replace.new_client_order_id)
            || self.tombstones.contains(&replace.new_client_order_id)
        {
            return Err(ReplaceRefused::IdTaken);
        }
        let Some(resting) = self.orders.get_mut(&key) else {
            return Err(if self.tombstones.contains(client_order_id) {
                ReplaceRefused::TooLate
            } else {
                ReplaceRefused::NotFound
            });
        };
        let order = &mut resting.order;
        if order.status.is_terminal() || replace.qty <= order.filled_qty {
            return Err(ReplaceRefused::TooLate);
        }
        let new_id = replace.new_client_order_id;
        resting.request.client_order_id = new_id.clone();
        resting.request.qty = replace.qty;
        if replace.limit_price.is_some() {
            resting.request.limit_price = replace.limit_price;
        }
        order.orig_client_order_id = Some(std::mem::replace(
            &mut order.client_order_id,
            new_id.clone(),
        ));
        order.qty = replace.qty;
        order.updated_at = Some(now_text());
        let answer = order.clone();
        self.aliases.insert(new_id.clone(), key.clone());
        self.unsaved_aliases.insert(new_id);
        self.unsaved_orders.insert(key);
        Ok(answer)
    }

    /// The id an order is kept under here: its first, whichever of its ids is given.
    fn key_of<'a>(&'a self, client_order_id: &'a str) -> &'a str {
        self.aliases
            .get(client_order_id)
            .map_or(client_order_id, String::as_str)
    }

    fn resting(&self, client_order_id: &str) -> Option<&Resting> {
        self.orders.get(self.key_of(client_order_id))
    }

    /// An order as the exchange knows it; a tombstoned id is a cancelled empty order.
    pub fn get(&self, client_order_id: &str) -> Option<ExchangeOrder> {
        match self.resting(client_order_id) {
            Some(resting) => Some(resting.order.clone()),
            None if self.tombstones.contains(client_order_id) => Some(tombstone(client_order_id)),
            None => None,
        }
    }

    /// The terms an order rests under now (its latest version's), by any of its ids.
    pub fn terms(&self, client_order_id: &str) -> Option<&PlaceOrder> {
        self.resting(client_order_id).map(|r| &r.request)
    }

    /// The orders it holds, in arrival order: the open ones only if asked, and only those changed
    /// at or after `since`.
    pub fn list(&self, open_only: bool, since: Option<DateTime<Utc>>) -> Vec<ExchangeOrder> {
        let changed_since = |order: &ExchangeOrder| match since {
            None => true,
            Some(since) => order
                .updated_at
                .as_deref()
                .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                .is_none_or(|at| at >= since),
        };
        self.all()
            .into_iter()
            .filter(|o| !(open_only && o.status.is_terminal()))
            .filter(changed_since)
            .collect()
    }

    pub fn all(&self) -> Vec<ExchangeOrder> {
        self.arrival
            .iter()
            .filter_map(|id| self.orders.get(id))
            .map(|r| r.order.clone())
            .collect()
    }

    /// One matching round: every open order whose limit the price crosses gets one fill of a random
    /// size at the market price.
    pub fn match_round(&mut self, market: &Market, rng: &mut StdRng) -> Vec<BookEvent> {
        let mut events = Vec::new();
        for id in &self.arrival {
            let Some(resting) = self.orders.get_mut(id) else {
                continue;
            };
            if resting.order.status.is_terminal() {
                continue;
            }
            let Some(price) = market.price(&resting.request.symbol) else {
                continue;
            };
            if !crosses(&resting.request, price) {
                continue;
            }
            let qty = rng.random_range(1..=shown(&resting.order));
            self.next_fill += 1;
            let fill = fill_numbered(self.next_fill, qty, price);
            let order = &mut resting.order;
            order.filled_qty += qty;
            order.updated_at = Some(fill.ts.clone());
            order.fills.push(fill.clone());
            order.status = if order.filled_qty == order.qty {
                ExchangeStatus::Filled
            } else {
                ExchangeStatus::PartiallyFilled
            };
            self.unsaved_orders.insert(id.clone());
            events.push(event(order, PushType::Fill, Some(fill)));
        }
        events
    }
}

/// The most of an order the book fills at once: a third of it, at least a share, at most its rest.
fn shown(order: &ExchangeOrder) -> i64 {
    (order.qty - order.filled_qty).min((order.qty / 3).max(1))
}

fn fill_numbered(number: u64, qty: i64, price: Cents) -> ExchangeFill {
    ExchangeFill {
        fill_id: format!("F{number:012}"),
        qty,
        price,
        ts: now_text(),
    }
}

/// Whether an order may trade at `price`: a buy at or under its limit, a sell at or over it. A
/// market order without a protection limit always may.
fn crosses(request: &PlaceOrder, price: Cents) -> bool {
    match (request.side, request.limit_price) {
        (_, None) => true,
        (Side::Buy, Some(limit)) => price <= limit,
        (Side::Sell, Some(limit)) => price >= limit,
    }
}

fn tombstone(client_order_id: &str) -> ExchangeOrder {
    ExchangeOrder {
        client_order_id: client_order_id.to_owned(),
        orig_client_order_id: None,
        exchange_order_id: None,
        status: ExchangeStatus::Canceled,
        qty: 0,
        filled_qty: 0,
        fills: Vec::new(),
        updated_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn request(
        id: &str,
        side: Side,
        order_type: OrderType,
        qty: i64,
        limit: Option<i64>,
    ) -> PlaceOrder {
        PlaceOrder {
            client_order_id: id.to_owned(),
            symbol: "INFY".to_owned(),
            side,
            order_type,
            qty,
            limit_price: limit.map(Cents),
            time_in_force: TimeInForce::Gtc,
        }
    }

    #[test]
    fn placement_is_idempotent_by_client_order_id() {
        let market = Market::default();
        let mut book = Book::default();
        let first = book.place(
            request("a", Side::Buy, OrderType::Limit, 10, Some(1)),
            &market,
        );
        let again = book.place(
            request("a", Side::Buy, OrderType::Limit, 99, Some(1)),
            &market,
        );
        assert!(first.created && !again.created);
        assert_eq!(first.order, again.order);
        assert!(again.events.is_empty());
        assert_eq!(book.all().len(), 1);
    }

    #[test]
    fn a_tombstoned_id_is_rejected_when_placed_later() {
        let market = Market::default();
        let mut book = Book::default();
        let (tomb, events) = book.cancel("ghost");
        assert_eq!(
            (tomb.status, tomb.filled_qty, events.len()),
            (ExchangeStatus::Canceled, 0, 0)
        );
        let placed = book.place(
            request("ghost", Side::Buy, OrderType::Market, 5, None),
            &market,
        );
        assert_eq!(placed.order.status, ExchangeStatus::Rejected);
        assert_eq!(placed.events[0].event_type, PushType::Rejected);
    }

    #[test]
    fn market_orders_fill_in_chunks_that_sum_to_qty_and_far_limits_never_fill() {
        let market = Market::default();
        let mut book = Book::default();
        let mut rng = StdRng::seed_from_u64(1);
        book.place(
            request("m", Side::Buy, OrderType::Market, 10, None),
            &market,
        );
        book.place(
            request("far", Side::Buy, OrderType::Limit, 10, Some(100)),
            &market,
        );
        let mut fills = Vec::new();
        for _ in 0..20 {
            fills.extend(
                book.match_round(&market, &mut rng)
                    .into_iter()
                    .filter_map(|e| e.fill),
            );
        }
        assert!(fills.len() > 1, "several chunks");
        assert_eq!(fills.iter().map(|f| f.qty).sum::<i64>(), 10);
        let filled = book.get("m").unwrap();
        assert_eq!(
            (filled.status, filled.filled_qty, filled.fills),
            (ExchangeStatus::Filled, 10, fills)
        );
        assert_eq!(book.get("far").unwrap().filled_qty, 0);
        // A filled order stays filled when cancelled.
        assert_eq!(book.cancel("m").0.status, ExchangeStatus::Filled);
        assert_eq!(book.cancel("far").0.status, ExchangeStatus::Canceled);
    }

    fn new_terms(id: &str, qty: i64, limit: i64) -> ReplaceOrder {
        ReplaceOrder {
            new_client_order_id: id.to_owned(),
            qty,
            limit_price: Some(Cents(limit)),
        }
    }

    #[test]
    fn a_replace_keeps_the_fills_and_the_order_answers_to_each_of_its_ids() {
        let market = Market::default();
        let mut book = Book::default();
        let mut rng = StdRng::seed_from_u64(3);
        let crossing = 99_999_999;
        book.place(
            request("v1", Side::Buy, OrderType::Limit, 9, Some(crossing)),
            &market,
        );
        book.match_round(&market, &mut rng);
        let before = book.get("v1").unwrap();
        assert!(before.filled_qty > 0 && before.filled_qty < 9);

        let replaced = book.replace("v1", new_terms("v2", 12, crossing)).unwrap();
        assert_eq!(
            (
                replaced.client_order_id.as_str(),
                replaced.orig_client_order_id.as_deref(),
                replaced.qty
            ),
            ("v2", Some("v1"), 12)
        );
        assert_eq!(replaced.fills, before.fills, "the fills so far are kept");
        assert_eq!(replaced.exchange_order_id, before.exchange_order_id);
        // The same replace again answers the same; either id finds the order; placing the new id
        // makes no second order.
        assert_eq!(
            book.replace("v1", new_terms("v2", 12, crossing)),
            Ok(replaced.clone())
        );
        assert_eq!(book.get("v1"), Some(replaced.clone()));
        assert_eq!(book.get("v2"), Some(replaced.clone()));
        let placed = book.place(
            request("v2", Side::Buy, OrderType::Limit, 12, Some(crossing)),
            &market,
        );
        assert!(!placed.created);
        assert_eq!(book.all().len(), 1);
        // Its later fills are pushed under the new id, naming the old one.
        let events = book.match_round(&market, &mut rng);
        assert_eq!(events[0].client_order_id, "v2");
        assert_eq!(events[0].orig_client_order_id.as_deref(), Some("v1"));
        // Kept on disk under its first id, with every id it took.
        let changes = book.unsaved();
        assert_eq!(changes.aliases, vec![("v2".to_owned(), "v1".to_owned())]);
        assert_eq!(changes.orders[0].key, "v1");
    }

    #[test]
    fn a_replace_is_too_late_once_the_order_ended_or_at_its_filled_qty() {
        let market = Market::default();
        let mut book = Book::default();
        let mut rng = StdRng::seed_from_u64(3);
        book.place(
            request("a", Side::Buy, OrderType::Limit, 9, Some(99_999_999)),
            &market,
        );
        book.match_round(&market, &mut rng);
        let filled = book.get("a").unwrap().filled_qty;
        assert_eq!(
            book.replace("a", new_terms("a2", filled, 1)),
            Err(ReplaceRefused::TooLate)
        );
        book.place(
            request("b", Side::Buy, OrderType::Limit, 5, Some(1)),
            &market,
        );
        assert_eq!(
            book.replace("a", new_terms("b", 20, 1)),
            Err(ReplaceRefused::IdTaken)
        );
        book.cancel("b");
        assert_eq!(
            book.replace("b", new_terms("b2", 20, 1)),
            Err(ReplaceRefused::TooLate)
        );
        assert_eq!(
            book.replace("nobody", new_terms("n2", 20, 1)),
            Err(ReplaceRefused::NotFound)
        );
    }
}
