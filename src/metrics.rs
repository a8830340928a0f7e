//! Prometheus metrics, served at `GET /metrics` in the OpenMetrics text format. Every series an
//! operator alerts on exists from start-up, at zero until something happens.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::db::alarms::{self, AlarmKind};
use crate::domain::FillSource;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExchangeLabels {
    pub op: &'static str,
    pub outcome: &'static str,
}

/// Why an idempotency key was refused.
#[derive(Debug, Clone, Copy)]
pub enum KeyConflict {
    /// 409: a request under the key is still running.
    InUse,
    /// 422: the key was used for another request.
    Reused,
}

/// Exchange calls, by what they do.
pub const EXCHANGE_OPS: &[&str] = &["place", "lookup", "cancel", "replace", "list", "prices"];
/// How an exchange request went: answered, refused (a 4xx), or no trustworthy answer.
pub const EXCHANGE_OUTCOMES: &[&str] = &["ok", "refused", "unknown"];
/// What recovery did for an order it picked up (see `engine::steps`).
pub const RECOVERY_KINDS: &[&str] = &[
    "place", "lookup", "release", "cancel", "replace", "poll", "held",
];
/// What asks an order actor for a step (`engine::messages::Reason`).
pub const STEP_REASONS: &[&str] = &["place", "recover", "poll", "push", "cancel", "replace"];

type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    orders_created: Counter,
    submit_batch_orders: Histogram,
    status_batch_orders: Histogram,
    fill_batch_pushes: Histogram,
    idempotent_replays: Counter,
    idempotency_conflicts: Family<KindLabel, Counter>,
    idempotency_keys: Gauge,
    http_requests: Family<RouteLabels, Counter>,
    fills: Family<SourceLabel, Counter>,
    fills_duplicate: Family<SourceLabel, Counter>,
    exchange_requests: Family<ExchangeLabels, Counter>,
    exchange_retries: Counter,
    open_orders: Gauge,
    outbox_pending: Gauge,
    outbox_lag_seconds: FloatGauge,
    ws_sessions: Gauge,
    rehydration_seconds: FloatGauge,
    recovery_actions: Family<KindLabel, Counter>,
    alarms: Family<KindLabel, Counter>,
    pub actor_restarts: Counter,
    order_steps: Family<ReasonLabel, Counter>,
    orders_taken_over: Counter,
    fenced_steps: Counter,
    broker_published: Counter,
    invariant_violations: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Figures read at each scrape rather than counted as they happen.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sampled {
    pub open_orders: usize,
    pub outbox_lag_ms: i64,
    /// Stored idempotency keys; None when the database could not be read (the last value stays).
    pub idempotency_keys: Option<i64>,
    /// Events the broker has not yet acknowledged; None likewise.
    pub outbox_pending: Option<i64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Metrics {
            registry: Registry::with_prefix("orderkeeper"),
            orders_created: Counter::default(),
            submit_batch_orders: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            status_batch_orders: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            fill_batch_pushes: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            idempotent_replays: Counter::default(),
            idempotency_conflicts: Family::default(),
            idempotency_keys: Gauge::default(),
            http_requests: Family::default(),
            fills: Family::default(),
            fills_duplicate: Family::default(),
            exchange_requests: Family::default(),
            exchange_retries: Counter::default(),
            open_orders: Gauge::default(),
            outbox_pending: Gauge::default(),
            outbox_lag_seconds: FloatGauge::default(),
            ws_sessions: Gauge::default(),
            rehydration_seconds: FloatGauge::default(),
            recovery_actions: Family::default(),
            alarms: Family::default(),
            actor_restarts: Counter::default(),
            order_steps: Family::default(),
            orders_taken_over: Counter::default(),
            fenced_steps: Counter::default(),
            broker_published: Counter::default(),
            invariant_violations: Gauge::default(),
        };
        metrics.with_every_series().registered()
    }
}

impl Metrics {
    /// Creates every labelled series an operator alerts on, so each reads 0 from start-up.
    fn with_every_series(self) -> Self {
        // Order submission's answers, the ones alerts watch; other routes appear when first hit.
        for status in [201, 400, 401, 409, 422, 429, 500, 503] {
            let route = "/v1/orders".to_owned();
            let _ = self
                .http_requests
                .get_or_create(&RouteLabels { route, status });
        }
        for kind in ["in_use", "reused"] {
            let _ = self
                .idempotency_conflicts
                .get_or_create(&KindLabel { kind });
        }
        for source in FillSource::ALL {
            let label = SourceLabel {
                source: source.as_str(),
            };
            let _ = self.fills.get_or_create(&label);
            let _ = self.fills_duplicate.get_or_create(&label);
        }
        for op in EXCHANGE_OPS {
            for outcome in EXCHANGE_OUTCOMES {
                let _ = self
                    .exchange_requests
                    .get_or_create(&ExchangeLabels { op, outcome });
            }
        }
        for kind in RECOVERY_KINDS {
            let _ = self.recovery_actions.get_or_create(&KindLabel { kind });
        }
        for reason in STEP_REASONS {
            let _ = self.order_steps.get_or_create(&ReasonLabel { reason });
        }
        for kind in AlarmKind::ALL {
            let _ = self.alarms.get_or_create(&KindLabel {
                kind: kind.as_str(),
            });
        }
        self
    }

    fn registered(mut self) -> Self {
        let mut registry = std::mem::take(&mut self.registry);
        let r = &mut registry;
        r.register(
            "http_requests",
            "HTTP requests answered, by route pattern and status",
            self.http_requests.clone(),
        );
        r.register(
            "orders_created",
            "Orders created by POST /v1/orders",
            self.orders_created.clone(),
        );
        r.register(
            "submit_batch_orders",
            "Submissions gathered into each batched submit phase (group commit across requests)",
            self.submit_batch_orders.clone(),
        );
        r.register(
            "status_batch_orders",
            "Orders whose placement_sent or accepted was written in each batched status phase",
            self.status_batch_orders.clone(),
        );
        r.register(
            "fill_batch_pushes",
            "Pushes bringing a fill taken in by each batched fill phase (one commit for them all)",
            self.fill_batch_pushes.clone(),
        );
        r.register(
            "idempotent_replays",
            "Requests answered from a stored Idempotency-Key",
            self.idempotent_replays.clone(),
        );
        r.register(
            "idempotency_conflicts",
            "Requests refused over their key: in_use (409, still running) or reused (422, another request)",
            self.idempotency_conflicts.clone(),
        );
        r.register(
            "idempotency_keys",
            "Idempotency keys stored (every engine's, until they expire)",
            self.idempotency_keys.clone(),
        );
        r.register(
            "fills",
            "Exchange fills recorded, by the channel that brought them first",
            self.fills.clone(),
        );
        r.register(
            "fills_duplicate",
            "Fills received again after they were recorded, by channel",
            self.fills_duplicate.clone(),
        );
        r.register(
            "exchange_requests",
            "Requests to the exchange, by operation and outcome (each attempt counts)",
            self.exchange_requests.clone(),
        );
        r.register(
            "exchange_retries",
            "Exchange requests sent again after an unknown outcome",
            self.exchange_retries.clone(),
        );
        r.register(
            "open_orders",
            "Open orders this engine runs an actor for",
            self.open_orders.clone(),
        );
        r.register(
            "outbox_pending",
            "Events not yet acknowledged by the broker (0 without --broker)",
            self.outbox_pending.clone(),
        );
        r.register(
            "outbox_lag_seconds",
            "Age of the oldest event the feed relay handed over in its last pass",
            self.outbox_lag_seconds.clone(),
        );
        r.register(
            "ws_sessions",
            "WebSocket feed sessions open",
            self.ws_sessions.clone(),
        );
        r.register(
            "rehydration_seconds",
            "How long the last start took from listening to ready (every open order back)",
            self.rehydration_seconds.clone(),
        );
        r.register(
            "recovery_actions",
            "What recovery did for each order it picked up, by kind",
            self.recovery_actions.clone(),
        );
        r.register(
            "alarms",
            "Alarms raised (repeats of one condition included), by kind",
            self.alarms.clone(),
        );
        r.register(
            "actor_restarts",
            "Order actors restarted by their supervisor after a panic",
            self.actor_restarts.clone(),
        );
        r.register(
            "order_steps",
            "Steps order actors ran, by what asked for them (recover, poll, push, cancel)",
            self.order_steps.clone(),
        );
        r.register(
            "orders_taken_over",
            "Open orders taken over from an engine whose lease expired",
            self.orders_taken_over.clone(),
        );
        r.register(
            "fenced_steps",
            "Order steps whose write was refused because another engine holds the order now",
            self.fenced_steps.clone(),
        );
        r.register(
            "broker_published",
            "Events published to the broker (each acknowledged by it)",
            self.broker_published.clone(),
        );
        r.register(
            "invariant_violations",
            "Violations the last money audit found (0 when every check passed)",
            self.invariant_violations.clone(),
        );
        self.registry = registry;
        self
    }

    pub fn order_created(&self) {
        self.orders_created.inc();
    }

    pub fn status_batch(&self, orders: usize) {
        self.status_batch_orders.observe(orders as f64);
    }

    pub fn fill_batch(&self, pushes: usize) {
        self.fill_batch_pushes.observe(pushes as f64);
    }

    pub fn submit_batch(&self, submissions: usize) {
        self.submit_batch_orders.observe(submissions as f64);
    }

    pub fn idempotent_replay(&self) {
        self.idempotent_replays.inc();
    }

    pub fn key_conflict(&self, conflict: KeyConflict) {
        let kind = match conflict {
            KeyConflict::InUse => "in_use",
            KeyConflict::Reused => "reused",
        };
        self.idempotency_conflicts
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    pub fn http_request(&self, route: String, status: u16) {
        self.http_requests
            .get_or_create(&RouteLabels { route, status })
            .inc();
    }

    pub fn fill_recorded(&self, source: FillSource) {
        self.fills
            .get_or_create(&SourceLabel {
                source: source.as_str(),
            })
            .inc();
    }

    pub fn fill_duplicate(&self, source: FillSource) {
        self.fills_duplicate
            .get_or_create(&SourceLabel {
                source: source.as_str(),
            })
            .inc();
    }

    pub fn exchange_request(&self, op: &'static str, outcome: &'static str) {
        self.exchange_requests
            .get_or_create(&ExchangeLabels { op, outcome })
            .inc();
    }

    pub fn exchange_retry(&self) {
        self.exchange_retries.inc();
    }

    pub fn rehydrated_in(&self, elapsed: std::time::Duration) {
        self.rehydration_seconds.set(elapsed.as_secs_f64());
    }

    pub fn recovery_action(&self, kind: &'static str) {
        self.recovery_actions
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    pub fn order_step(&self, reason: &'static str) {
        self.order_steps
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn actor_restarted(&self) {
        self.actor_restarts.inc();
    }

    pub fn orders_taken_over(&self, n: usize) {
        self.orders_taken_over.inc_by(n as u64);
    }

    pub fn step_fenced(&self) {
        self.fenced_steps.inc();
    }

    pub fn audited(&self, violations: usize) {
        self.invariant_violations
            .set(i64::try_from(violations).unwrap_or(i64::MAX));
    }

    pub fn broker_published(&self, n: usize) {
        self.broker_published.inc_by(n as u64);
    }

    /// The exposition, with the sampled figures brought up to date first.
    pub fn render(&self, sampled: Sampled) -> Result<String, std::fmt::Error> {
        self.open_orders
            .set(i64::try_from(sampled.open_orders).unwrap_or(i64::MAX));
        self.outbox_lag_seconds
            .set(sampled.outbox_lag_ms as f64 / 1000.0);
        if let Some(keys) = sampled.idempotency_keys {
            self.idempotency_keys.set(keys);
        }
        if let Some(pending) = sampled.outbox_pending {
            self.outbox_pending.set(pending);
        }
        for kind in AlarmKind::ALL {
            let counter = self.alarms.get_or_create(&KindLabel {
                kind: kind.as_str(),
            });
            let (raised, counted) = (alarms::raised(*kind), counter.get());
            if raised > counted {
                counter.inc_by(raised - counted);
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Counts one open WebSocket session for as long as it lives.
pub struct WsSessionGauge(std::sync::Arc<Metrics>);

impl WsSessionGauge {
    pub fn new(metrics: std::sync::Arc<Metrics>) -> Self {
        metrics.ws_sessions.inc();
        WsSessionGauge(metrics)
    }
}

impl Drop for WsSessionGauge {
    fn drop(&mut self) {
        self.0.ws_sessions.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_from_the_start() {
        let metrics = Metrics::default();
        let text = metrics.render(Sampled::default()).unwrap();
        for series in [
            "orderkeeper_idempotent_replays_total 0",
            "orderkeeper_idempotency_conflicts_total{kind=\"in_use\"} 0",
            "orderkeeper_idempotency_conflicts_total{kind=\"reused\"} 0",
            "orderkeeper_idempotency_keys 0",
            "orderkeeper_fills_total{source=\"push\"} 0",
            "orderkeeper_fills_duplicate_total{source=\"poll\"} 0",
            "orderkeeper_exchange_requests_total{op=\"place\",outcome=\"unknown\"} 0",
            "orderkeeper_exchange_retries_total 0",
            "orderkeeper_open_orders 0",
            "orderkeeper_outbox_pending 0",
            "orderkeeper_outbox_lag_seconds 0.0",
            "orderkeeper_ws_sessions 0",
            "orderkeeper_rehydration_seconds 0.0",
            "orderkeeper_recovery_actions_total{kind=\"lookup\"} 0",
            "orderkeeper_alarms_total{kind=\"fill_outside_limit\"} 0",
            "# TYPE orderkeeper_http_requests counter",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn counts_and_samples_move() {
        let metrics = std::sync::Arc::new(Metrics::default());
        metrics.order_created();
        metrics.fill_recorded(FillSource::Poll);
        metrics.key_conflict(KeyConflict::Reused);
        metrics.http_request("/v1/orders".into(), 201);
        let session = WsSessionGauge::new(metrics.clone());
        let sampled = Sampled {
            open_orders: 2,
            outbox_lag_ms: 1500,
            idempotency_keys: Some(7),
            outbox_pending: None,
        };
        let text = metrics.render(sampled).unwrap();
        for series in [
            "orderkeeper_orders_created_total 1",
            "orderkeeper_fills_total{source=\"poll\"} 1",
            "orderkeeper_idempotency_conflicts_total{kind=\"reused\"} 1",
            "orderkeeper_http_requests_total{route=\"/v1/orders\",status=\"201\"} 1",
            "orderkeeper_ws_sessions 1",
            "orderkeeper_open_orders 2",
            "orderkeeper_outbox_lag_seconds 1.5",
            "orderkeeper_idempotency_keys 7",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
        // A feed session counts while it lives.
        drop(session);
        let text = metrics.render(sampled).unwrap();
        assert!(text.contains("orderkeeper_ws_sessions 0"), "{text}");
    }
}
