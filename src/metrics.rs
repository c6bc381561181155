//! Prometheus metrics: messages by route and status, attempts, delivery latency, queue depth,
//! dead letters, breaker states, webhooks, and the audit journal's and syslog sinks' counters.
//! Rendered in the OpenMetrics text format.
use std::collections::HashMap;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyslogLabel {
    target: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
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
    audit_journal: Family<WebhookLabel, Counter>,
    audit_syslog: Family<SyslogLabel, Counter>,
    audit_spool_bytes: Family<TargetLabel, Gauge>,
    audit_connected: Family<TargetLabel, Gauge>,
    /// The audit counters as last seen, so that each render adds only what is new.
    audit_seen: Mutex<HashMap<(String, String), u64>>,
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
        let audit_journal = Family::<WebhookLabel, Counter>::default();
        registry.register(
            "audit_journal_events",
            "Audit events by outcome: appended to the journal, dropped (queue full or shutdown), failed_appends (retried)",
            audit_journal.clone(),
        );
        let audit_syslog = Family::<SyslogLabel, Counter>::default();
        registry.register(
            "audit_syslog_lines",
            "Syslog lines per receiver by outcome: sent, spooled, dropped (spool full), replayed",
            audit_syslog.clone(),
        );
        let audit_spool_bytes = Family::<TargetLabel, Gauge>::default();
        registry.register(
            "audit_syslog_spool_bytes",
            "Bytes waiting in a syslog receiver's disk spool",
            audit_spool_bytes.clone(),
        );
        let audit_connected = Family::<TargetLabel, Gauge>::default();
        registry.register(
            "audit_syslog_connected",
            "Whether the syslog receiver is connected (1) or not (0)",
            audit_connected.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            accepted,
            attempts,
            latency,
            by_status,
            breaker,
            webhooks,
            audit_journal,
            audit_syslog,
            audit_spool_bytes,
            audit_connected,
            audit_seen: Mutex::new(HashMap::new()),
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

    /// Takes the auditor's counters (cumulative since start) into the audit metrics.
    pub fn observe_audit(&self, store: qaqpa_audit::StoreStats, sinks: &[qaqpa_audit::SinkStats]) {
        let mut seen = self.audit_seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut delta = |family: &str, target: &str, outcome: &str, now: u64| -> u64 {
            let last = seen
                .entry((format!("{family}/{target}"), outcome.to_string()))
                .or_insert(0);
            let d = now.saturating_sub(*last);
            *last = now.max(*last);
            d
        };
        for (outcome, now) in [
            ("appended", store.appended),
            ("dropped", store.dropped),
            ("failed_appends", store.failures),
        ] {
            let d = delta("journal", "", outcome, now);
            self.audit_journal
                .get_or_create(&WebhookLabel {
                    outcome: outcome.to_string(),
                })
                .inc_by(d);
        }
        for sink in sinks {
            for (outcome, now) in [
                ("sent", sink.sent),
                ("spooled", sink.spooled),
                ("dropped", sink.dropped),
                ("replayed", sink.replayed),
            ] {
                let d = delta("syslog", &sink.target, outcome, now);
                self.audit_syslog
                    .get_or_create(&SyslogLabel {
                        target: sink.target.clone(),
                        outcome: outcome.to_string(),
                    })
                    .inc_by(d);
            }
            let target = TargetLabel {
                target: sink.target.clone(),
            };
            self.audit_spool_bytes
                .get_or_create(&target)
                .set(i64::try_from(sink.spool_bytes).unwrap_or(i64::MAX));
            self.audit_connected
                .get_or_create(&target)
                .set(i64::from(sink.connected));
        }
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

    #[test]
    fn audit_counters_are_added_once_however_often_they_are_observed() {
        let m = Metrics::new();
        let store = qaqpa_audit::StoreStats {
            appended: 40,
            dropped: 2,
            failures: 0,
        };
        let sink = qaqpa_audit::SinkStats {
            target: "tcp://siem:514".into(),
            sent: 30,
            spooled: 10,
            dropped: 0,
            reconnects: 1,
            replayed: 5,
            spool_bytes: 2048,
            connected: true,
        };
        m.observe_audit(store, std::slice::from_ref(&sink));
        m.observe_audit(
            qaqpa_audit::StoreStats {
                appended: 50,
                ..store
            },
            &[sink],
        );
        let text = m.render();
        for line in [
            "qaqpa_audit_journal_events_total{outcome=\"appended\"} 50",
            "qaqpa_audit_journal_events_total{outcome=\"dropped\"} 2",
            "qaqpa_audit_syslog_lines_total{target=\"tcp://siem:514\",outcome=\"sent\"} 30",
            "qaqpa_audit_syslog_lines_total{target=\"tcp://siem:514\",outcome=\"replayed\"} 5",
            "qaqpa_audit_syslog_spool_bytes{target=\"tcp://siem:514\"} 2048",
            "qaqpa_audit_syslog_connected{target=\"tcp://siem:514\"} 1",
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
    }
}
