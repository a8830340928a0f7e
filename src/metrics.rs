//! Prometheus metrics, served at `GET /metrics` in the OpenMetrics text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::db::alarms;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FillSourceLabel {
    pub source: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub orders_created: Counter,
    pub idempotent_replays: Counter,
    pub fills_recorded: Family<FillSourceLabel, Counter>,
    pub fills_duplicate: Family<FillSourceLabel, Counter>,
    pub actor_restarts: Counter,
    pub orders_taken_over: Counter,
    pub broker_published: Counter,
    alarms: Counter,
    live_order_actors: Gauge,
    outbox_lag_ms: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("orderkeeper");
        let metrics = Metrics {
            orders_created: Counter::default(),
            idempotent_replays: Counter::default(),
            fills_recorded: Family::default(),
            fills_duplicate: Family::default(),
            actor_restarts: Counter::default(),
            orders_taken_over: Counter::default(),
            broker_published: Counter::default(),
            alarms: Counter::default(),
            live_order_actors: Gauge::default(),
            outbox_lag_ms: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "orders_created",
            "Orders created by POST /v1/orders",
            metrics.orders_created.clone(),
        );
        registry.register(
            "idempotent_replays",
            "Requests answered from a stored Idempotency-Key",
            metrics.idempotent_replays.clone(),
        );
        registry.register(
            "fills_recorded",
            "Exchange fills recorded, by the channel that brought them first",
            metrics.fills_recorded.clone(),
        );
        registry.register(
            "fills_duplicate",
            "Exchange fills received again after they were recorded, by channel",
            metrics.fills_duplicate.clone(),
        );
        registry.register(
            "actor_restarts",
            "Order actors restarted by their supervisor after a panic",
            metrics.actor_restarts.clone(),
        );
        registry.register(
            "orders_taken_over",
            "Open orders taken over from an engine whose lease expired",
            metrics.orders_taken_over.clone(),
        );
        registry.register(
            "broker_published",
            "Events published to the broker (each acknowledged by it)",
            metrics.broker_published.clone(),
        );
        registry.register(
            "alarms_raised",
            "Refused actions, unmatched pushes and late fills",
            metrics.alarms.clone(),
        );
        registry.register(
            "live_order_actors",
            "Open orders with a running actor",
            metrics.live_order_actors.clone(),
        );
        registry.register(
            "outbox_lag_milliseconds",
            "Age of the oldest event the feed relay handed over in its last pass",
            metrics.outbox_lag_ms.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    pub fn order_created(&self) {
        self.orders_created.inc();
    }

    pub fn fill_recorded(&self, source: crate::domain::FillSource) {
        self.fills_recorded
            .get_or_create(&FillSourceLabel {
                source: source.as_str(),
            })
            .inc();
    }

    pub fn fill_duplicate(&self, source: crate::domain::FillSource) {
        self.fills_duplicate
            .get_or_create(&FillSourceLabel {
                source: source.as_str(),
            })
            .inc();
    }

    pub fn actor_restarted(&self) {
        self.actor_restarts.inc();
    }

    pub fn orders_taken_over(&self, n: usize) {
        self.orders_taken_over.inc_by(n as u64);
    }

    pub fn broker_published(&self, n: usize) {
        self.broker_published.inc_by(n as u64);
    }

    /// The exposition, with the sampled figures brought up to date first.
    pub fn render(
        &self,
        live_order_actors: usize,
        outbox_lag_ms: i64,
    ) -> Result<String, std::fmt::Error> {
        self.live_order_actors
            .set(i64::try_from(live_order_actors).unwrap_or(i64::MAX));
        self.outbox_lag_ms.set(outbox_lag_ms);
        let raised = alarms::raised();
        let counted = self.alarms.get();
        if raised > counted {
            self.alarms.inc_by(raised - counted);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_the_prefix() {
        let metrics = Metrics::default();
        metrics.orders_created.inc();
        metrics
            .fills_recorded
            .get_or_create(&FillSourceLabel { source: "poll" })
            .inc_by(3);
        let text = metrics.render(2, 15).unwrap();
        assert!(
            text.contains("orderkeeper_orders_created_total 1"),
            "{text}"
        );
        assert!(
            text.contains("orderkeeper_fills_recorded_total{source=\"poll\"} 3"),
            "{text}"
        );
        assert!(text.contains("orderkeeper_live_order_actors 2"), "{text}");
        assert!(
            text.contains("orderkeeper_outbox_lag_milliseconds 15"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
