//! Prometheus metrics: messages by route and status, attempts, delivery latency, queue depth,
//! dead letters, breaker states, webhooks. Rendered in the OpenMetrics text format.
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabel {
    route: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabel {
    outcome: String,
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    accepted: Family<RouteLabel, Counter>,
    attempts: Family<AttemptLabel, Counter>,
    latency: Family<RouteLabel, Histogram>,
    by_status: Family<StatusLabel, Gauge>,
    breaker: Family<RouteLabel, Gauge>,
    webhooks: Family<WebhookLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("qaqpa");
        let accepted = Family::<RouteLabel, Counter>::default();
        registry.register(
            "messages_accepted",
            "Messages durably accepted, by route",
            accepted.clone(),
        );
        let attempts = Family::<AttemptLabel, Counter>::default();
        registry.register(
            "delivery_attempts",
            "Delivery attempts by route and outcome (delivered, retry, failed, dead_letter, deferred)",
            attempts.clone(),
        );
        let latency = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 18))
        });
        registry.register(
            "delivery_latency_seconds",
            "Time from acceptance to successful delivery",
            latency.clone(),
        );
        let by_status = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "messages",
            "Messages in the store by status (queue depth = queued + delivering; dead_letter = DLQ size)",
            by_status.clone(),
        );
        let breaker = Family::<RouteLabel, Gauge>::default();
        registry.register(
            "breaker_state",
            "Circuit breaker per route: 0 closed, 1 half-open, 2 open",
            breaker.clone(),
        );
        let webhooks = Family::<WebhookLabel, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome",
            webhooks.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            accepted,
            attempts,
            latency,
            by_status,
            breaker,
            webhooks,
        }
    }

    pub fn accepted(&self, route: &str) {
        self.accepted
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .inc();
    }

    pub fn attempt(&self, route: &str, outcome: &str) {
        self.attempts
            .get_or_create(&AttemptLabel {
                route: route.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn delivered_after(&self, route: &str, seconds: f64) {
        self.latency
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    pub fn set_status_count(&self, status: &str, n: i64) {
        self.by_status
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .set(n);
    }

    pub fn set_breaker(&self, route: &str, state: i64) {
        self.breaker
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .set(state);
    }

    pub fn webhook(&self, outcome: &str) {
        self.webhooks
            .get_or_create(&WebhookLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(reg) = self.registry.lock() {
            if encode(&mut out, &reg).is_err() {
                out.clear();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_metrics_carry_labels_and_values() {
        let m = Metrics::new();
        m.accepted("echo");
        m.accepted("echo");
        m.attempt("echo", "delivered");
        m.set_status_count("dead_letter", 3);
        m.set_breaker("echo", 2);
        let text = m.render();
        assert!(
            text.contains("qaqpa_messages_accepted_total{route=\"echo\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("qaqpa_messages{status=\"dead_letter\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("qaqpa_breaker_state{route=\"echo\"} 2"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
