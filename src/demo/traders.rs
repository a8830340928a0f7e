//! One trader per account: it submits a stream of orders and cancels some of the ones that
//! rest, each request retried under its key until the engine answers, as a careful client does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

use super::client::{Api, Call};
use crate::domain::Cents;
use crate::exchange::sim::market::LISTINGS;

/// A share of the actions that cancel a resting order rather than submit a new one.
const CANCEL_SHARE: f64 = 0.15;

/// What a trader asked for under one key, and the engine's first final answer.
pub struct Submitted {
    pub key: String,
    pub body: Value,
    pub status: u16,
    pub answer: Value,
}

/// A trader's counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Orders the engine took (201).
    pub acknowledged: u64,
    /// Orders refused for funds or shares (422).
    pub refused: u64,
    /// Any other final answer to a submission: none is expected.
    pub unexpected: u64,
    /// Cancels a client asked for (answered 202, 200, or 422 when the order had filled).
    pub cancels: u64,
    /// Requests that had to be sent again (no answer, 5xx, 429, key in use).
    pub retried: u64,
    /// Requests never answered within the client's patience.
    pub unanswered: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.acknowledged += other.acknowledged;
        self.refused += other.refused;
        self.unexpected += other.unexpected;
        self.cancels += other.cancels;
        self.retried += other.retried;
        self.unanswered += other.unanswered;
    }
}

pub struct Trader {
    pub token: String,
    key_prefix: String,
    rng: StdRng,
    prices: BTreeMap<String, i64>,
    /// Limit orders it may cancel later (the far ones rest; the others may have filled).
    limits: Vec<String>,
    pub submitted: Vec<Submitted>,
    pub tally: Tally,
}

impl Trader {
    pub fn new(token: String, key_prefix: String, seed: u64) -> Self {
        Self {
            token,
            key_prefix,
            rng: StdRng::seed_from_u64(seed),
            prices: BTreeMap::new(),
            limits: Vec::new(),
            submitted: Vec::new(),
            tally: Tally::default(),
        }
    }

    /// Acts once every `every` until `until`; a request under way is always finished.
    pub async fn trade_until(&mut self, api: &Api, until: Instant, every: Duration) {
        let mut ticker = actix_web::rt::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut actions = 0_u64;
        while Instant::now() < until {
            ticker.tick().await;
            if actions.is_multiple_of(25) {
                self.refresh_prices(api).await;
            }
            actions += 1;
            if !self.limits.is_empty() && self.rng.random_bool(CANCEL_SHARE) {
                self.cancel_one(api).await;
            } else {
                self.submit_one(api).await;
            }
        }
    }

    async fn refresh_prices(&mut self, api: &Api) {
        let call = Call::get("/v1/prices", &self.token);
        if let Some(((200, Value::Object(prices)), _)) = api.send(&call).await {
            for (symbol, price) in prices {
                if let Some(cents) = price.as_str().and_then(|p| Cents::parse(p).ok()) {
                    self.prices.insert(symbol, cents.0);
                }
            }
        }
    }

    /// A third market orders, a third limits that cross the market, a third limits far away
    /// that rest until cancelled.
    fn plan(&mut self) -> Value {
        let (symbol, listed) = LISTINGS[self.rng.random_range(0..LISTINGS.len())];
        let last = self.prices.get(symbol).copied().unwrap_or(listed);
        let side = if self.rng.random_bool(0.5) {
            "buy"
        } else {
            "sell"
        };
        let qty = self.rng.random_range(1..=10);
        let limit = match (self.rng.random_range(0..3), side) {
            (0, _) => None,
            (1, "buy") => Some(last * 11 / 10),
            (1, _) => Some(last * 9 / 10),
            (_, "buy") => Some(last / 2),
            (_, _) => Some(last * 2),
        };
        match limit {
            None => json!({"symbol": symbol, "side": side, "type": "market", "qty": qty}),
            Some(limit) => json!({"symbol": symbol, "side": side, "type": "limit", "qty": qty,
                "limit_price": Cents(limit).to_string()}),
        }
    }

    async fn submit_one(&mut self, api: &Api) {
        let body = self.plan();
        let key = format!("{}-{}", self.key_prefix, self.submitted.len() + 1);
        let call = Call::submit(&self.token, &key, &body);
        let Some(answered) = api.until_answered(&call).await else {
            self.tally.unanswered += 1;
            return;
        };
        self.tally.retried += u64::from(answered.retried);
        let (status, answer) = answered.reply;
        match status {
            201 => {
                self.tally.acknowledged += 1;
                if let (true, Some(id)) = (answer["type"] == "limit", answer["id"].as_str()) {
                    self.limits.push(id.to_owned());
                }
            }
            422 => self.tally.refused += 1,
            _ => self.tally.unexpected += 1,
        }
        self.submitted.push(Submitted {
            key,
            body,
            status,
            answer,
        });
    }

    async fn cancel_one(&mut self, api: &Api) {
        let at = self.rng.random_range(0..self.limits.len());
        let id = self.limits.swap_remove(at);
        let path = format!("/v1/orders/{id}");
        let call = Call::delete(&path, &self.token);
        match api.until_answered(&call).await {
            Some(answered) => {
                self.tally.cancels += 1;
                self.tally.retried += u64::from(answered.retried);
            }
            None => self.tally.unanswered += 1,
        }
    }
}
