//! The delivery engine: claims due messages under a lease, runs each attempt through its
//! target's concurrency limit, circuit breaker and rate limit, records the attempt, and decides
//! what comes next — delivered, retry at (exponential backoff with full jitter, or the target's
//! own Retry-After when longer), failed (the target's permanent refusal), or dead letter (the
//! route's budget of attempts or age is spent).
//!
//! Safety: a message is only ever changed by the worker holding its lease, and the lease is
//! longer than any attempt; a killed process's leases expire and another worker takes its
//! messages over. The engine never holds a message in memory only: every decision is committed
//! before the next step.
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use qaqpa_core::{AttachmentSource, Cx, ExchangeMeter, Failure, MessageStatus, Outgoing};
use qaqpa_resilience::{Backoff, Targets};
use qaqpa_store::{AttemptRecord, AttemptResult, BlobStore, Claimed, MessageRecord};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::routes::RouteConfig;
use crate::state::AppState;

/// Attempts that never reached the target because its breaker was open are recorded with this
/// outcome and do not count against the route's budget.
pub const DEFERRED: &str = "deferred";

/// The attachment source of calls and pushes: there are none.
pub struct NoAttachments;

#[async_trait]
impl AttachmentSource for NoAttachments {
    async fn read(&self, index: usize) -> Result<Bytes, Failure> {
        Err(Failure::permanent(
            "no_attachment",
            format!("there is no attachment {index}"),
        ))
    }
}

/// Reads a message's attachments from the blob store, checked against their SHA-256.
pub struct BlobAttachments<'a> {
    pub blobs: &'a dyn BlobStore,
    pub attachments: &'a [qaqpa_core::AttachmentMeta],
}

#[async_trait]
impl AttachmentSource for BlobAttachments<'_> {
    async fn read(&self, index: usize) -> Result<Bytes, Failure> {
        let meta = self.attachments.get(index).ok_or_else(|| {
            Failure::permanent("no_attachment", format!("there is no attachment {index}"))
        })?;
        self.blobs.get(&meta.sha256).await.map_err(|e| match e {
            qaqpa_store::StoreError::BlobCorrupt { .. } => Failure::permanent(
                "attachment_corrupt",
                format!(
                    "attachment '{}' is missing or damaged in the blob store",
                    meta.name
                ),
            ),
            other => Failure::retry(format!("reading attachment '{}': {other}", meta.name)),
        })
    }
}

/// The engine of one process.
pub struct Engine {
    state: AppState,
    worker: String,
    targets: Targets,
}

impl Engine {
    pub fn new(state: AppState, worker: String) -> Arc<Self> {
        Arc::new(Self {
            state,
            worker,
            targets: Targets::new(),
        })
    }

    /// Claims and delivers until `shutdown` fires; then lets attempts in flight finish for the
    /// grace period, and gives back (releases) what has not started.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let cfg = &self.state.cfg.engine;
        let lease = Duration::from_secs(cfg.lease_secs);
        let poll = Duration::from_millis(cfg.poll_ms);
        let slots = Arc::new(Semaphore::new(cfg.max_in_flight));
        let tracker = TaskTracker::new();
        tracing::info!(worker = %self.worker, "delivery engine started");
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // Never claim more than we can start: claimed messages are held under our lease.
            // Wait until a quarter of a batch can start, so that claims (each one a write
            // transaction) stay batched while a backlog drains instead of going one by one.
            let batch = (cfg.claim_batch as usize).clamp(1, cfg.max_in_flight.max(1));
            let min_room = (batch / 4).max(1) as u32;
            let mut permits = tokio::select! {
                p = slots.clone().acquire_many_owned(min_room) => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = shutdown.cancelled() => break,
            };
            let extra = slots
                .available_permits()
                .min(batch.saturating_sub(min_room as usize)) as u32;
            if extra > 0 {
                if let Ok(more) = slots.clone().try_acquire_many_owned(extra) {
                    permits.merge(more);
                }
            }
            let room = permits.num_permits() as u32;
            let claimed = match self
                .state
                .store
                .claim_due(&self.worker, OffsetDateTime::now_utc(), lease, room)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming due messages failed; will retry");
                    Vec::new()
                }
            };
            let n = claimed.len();
            for c in claimed {
                let Some(permit) = permits.split(1) else {
                    break;
                };
                let me = self.clone();
                let stop = shutdown.clone();
                tracker.spawn(async move {
                    me.attempt(c, stop).await;
                    drop(permit);
                });
            }
            // Permits not used by this claim go back.
            drop(permits);
            if (n as u32) < room {
                tokio::select! {
                    _ = self.state.engine_wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
        tracker.close();
        let grace = Duration::from_secs(cfg.shutdown_grace_secs);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                "attempts still running after the grace period; their leases will expire"
            );
        }
        tracing::info!(worker = %self.worker, "delivery engine stopped");
    }

    /// Runs one claimed message through one attempt and commits the outcome.
    async fn attempt(&self, claimed: Claimed, shutdown: CancellationToken) {
        let rec = claimed.record;
        let id = rec.id;
        let Some(route) = self.state.routes.route(&rec.route).cloned() else {
            let reason = format!(
                "route '{}' is no longer configured; fix routes.toml and retry the message",
                rec.route
            );
            self.finish(
                &rec,
                None,
                OffsetDateTime::now_utc(),
                "dead_letter",
                Some(reason.clone()),
                AttemptResult::DeadLetter { reason },
            )
            .await;
            return;
        };
        let Some(adapter) = self.state.adapters.get(&route.adapter).cloned() else {
            let reason = format!("adapter '{}' is not available in this build", route.adapter);
            self.finish(
                &rec,
                Some(&route),
                OffsetDateTime::now_utc(),
                "dead_letter",
                Some(reason.clone()),
                AttemptResult::DeadLetter { reason },
            )
            .await;
            return;
        };
        let target = match self.targets.get_or_create(&route.name, &route.limits) {
            Ok(t) => t,
            Err(e) => {
                let reason = format!("route '{}' has invalid limits: {e}", route.name);
                self.finish(
                    &rec,
                    Some(&route),
                    OffsetDateTime::now_utc(),
                    "dead_letter",
                    Some(reason.clone()),
                    AttemptResult::DeadLetter { reason },
                )
                .await;
                return;
            }
        };
        let permit = tokio::select! {
            p = target.acquire() => p,
            _ = shutdown.cancelled() => {
                // Not started: give it back so another worker (or our next life) takes it now.
                if let Err(e) = self.state.store.release(id, &self.worker).await {
                    tracing::warn!(message = %id, error = %e, "release on shutdown failed; the lease will expire");
                }
                return;
            }
        };
        self.state
            .metrics
            .set_breaker(&route.name, target.breaker_state().as_gauge());
        let permit = match permit {
            Ok(p) => p,
            Err(open) => {
                let now = OffsetDateTime::now_utc();
                let at = now + open.retry_after;
                self.state.metrics.attempt(&route.name, DEFERRED);
                self.finish(
                    &rec,
                    Some(&route),
                    now,
                    DEFERRED,
                    Some(format!(
                        "circuit open for target '{}'; not sent",
                        route.name
                    )),
                    AttemptResult::RetryAt(at),
                )
                .await;
                return;
            }
        };
        let attempt_no = counted_attempts(&rec) + 1;
        let out = Outgoing {
            id,
            client: rec.client.clone(),
            kind: rec.kind.clone(),
            to: rec.to.clone(),
            document: rec.document.clone(),
            attachments: rec.attachments.clone(),
            signatures: rec.signatures.clone(),
            created_at: rec.created_at,
            attempt: attempt_no,
            transaction_id: rec.transaction_id.clone(),
        };
        let settings = route.settings_table();
        let attachments = BlobAttachments {
            blobs: self.state.blobs.as_ref(),
            attachments: &rec.attachments,
        };
        let started = OffsetDateTime::now_utc();
        let timeout = route.timeout();
        let meter = ExchangeMeter::new();
        let cx = Cx {
            deadline: Instant::now() + timeout,
            settings: &settings,
            attachments: &attachments,
            transaction_id: &rec.transaction_id,
            meter: &meter,
        };
        let span = tracing::info_span!("attempt", message = %id, route = %route.name, attempt = attempt_no, transaction = %rec.transaction_id);
        let result = {
            let _e = span.enter();
            tokio::time::timeout(timeout, adapter.deliver(&out, &cx)).await
        };
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(Failure::retry(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        };
        let now = OffsetDateTime::now_utc();
        // An adapter that itemised its requests on the meter (the ШЭП client does: ЕСЭДО's ХЭД
        // upload and SendMessage are two) gets an EXCHANGE event per request, each with its
        // own service, times, bodies and result; one abandoned at our timeout says so.
        let itemised = meter.take_exchanges();
        if !itemised.is_empty() {
            for event in crate::audit::itemised_exchanges(
                crate::audit::ENGINE,
                &route.name,
                Some(&id.to_string()),
                &rec.transaction_id,
                itemised,
            ) {
                self.state.audit.record(event);
            }
        } else {
            // Otherwise the attempt's one EXCHANGE event carries the bodies the adapter
            // reported to the meter (`ExchangeMeter`), on success and failure alike: what went
            // on the wire and what was read back, an error answer included. After our timeout,
            // whatever the meter got before the attempt was dropped counts. A metering adapter
            // that reported no request sent none (its connection never opened): no size. One
            // that does not meter has its request recorded as what the engine handed over
            // (`payload_bytes`, a lower bound). An answer never reported has no size.
            let (sent, received) = meter.sizes();
            let sent = match adapter.meters_exchanges() {
                true => sent,
                false => Some(sent.unwrap_or_else(|| payload_bytes(&out))),
            };
            self.state.audit.record(
                qaqpa_audit::AuditEvent::exchange(
                    crate::audit::ENGINE,
                    qaqpa_audit::Exchange {
                        direction: qaqpa_audit::Direction::Outbound,
                        target: route.name.clone(),
                        service_id: Some(rec.kind.clone()),
                        message_id: Some(id.to_string()),
                        request_out: Some(started),
                        response_in: Some(now),
                        request_in: None,
                        response_out: None,
                        request_bytes: sent,
                        response_bytes: received,
                        result: crate::audit::exchange_result(
                            result.as_ref().map(|d| d.result_code.as_deref()),
                        ),
                    },
                )
                .operation(started, now)
                .transaction(rec.transaction_id.clone()),
            );
        }
        match result {
            Ok(delivered) => {
                permit.success();
                self.state.metrics.attempt(&route.name, "delivered");
                self.state.metrics.delivered_after(
                    &route.name,
                    (now - rec.created_at).as_seconds_f64().max(0.0),
                );
                let receipts = delivered.receipts;
                let ok = self
                    .finish(
                        &rec,
                        Some(&route),
                        started,
                        "delivered",
                        None,
                        AttemptResult::Delivered {
                            target_ref: delivered.target_ref,
                        },
                    )
                    .await;
                if ok {
                    for r in receipts {
                        self.receipt(id, r).await;
                    }
                }
            }
            Err(Failure::Permanent { code, reason }) => {
                // The target answered: it is healthy, the message is not.
                permit.success();
                self.state.metrics.attempt(&route.name, "failed");
                let reason = format!("{code}: {reason}");
                self.finish(
                    &rec,
                    Some(&route),
                    started,
                    "failed",
                    Some(reason.clone()),
                    AttemptResult::Failed { reason },
                )
                .await;
            }
            Err(Failure::Retry { reason, after }) => {
                permit.failure();
                let age = now - rec.created_at;
                let spent_attempts = attempt_no >= route.max_attempts;
                let too_old =
                    age >= time::Duration::try_from(route.max_age()).unwrap_or(time::Duration::MAX);
                if spent_attempts || too_old {
                    self.state.metrics.attempt(&route.name, "dead_letter");
                    let why = if spent_attempts {
                        format!(
                            "{} attempts made (max_attempts = {})",
                            attempt_no, route.max_attempts
                        )
                    } else {
                        format!("older than max_age_secs = {}", route.max_age_secs)
                    };
                    let dl = format!("gave up: {why}; last error: {reason}");
                    self.finish(
                        &rec,
                        Some(&route),
                        started,
                        "dead_letter",
                        Some(reason),
                        AttemptResult::DeadLetter { reason: dl },
                    )
                    .await;
                } else {
                    self.state.metrics.attempt(&route.name, "retry");
                    let backoff = Backoff::new(
                        Duration::from_millis(route.backoff_base_ms),
                        Duration::from_millis(route.backoff_cap_ms),
                    );
                    let delay = backoff.delay_with_hint(attempt_no - 1, after);
                    self.finish(
                        &rec,
                        Some(&route),
                        started,
                        "retry",
                        Some(reason),
                        AttemptResult::RetryAt(now + delay),
                    )
                    .await;
                }
            }
        }
        self.state
            .metrics
            .set_breaker(&route.name, target.breaker_state().as_gauge());
    }

    /// Commits one attempt's outcome; returns false when the lease was lost (another worker
    /// owns the message now, and our result is dropped).
    async fn finish(
        &self,
        rec: &MessageRecord,
        route: Option<&RouteConfig>,
        started: OffsetDateTime,
        outcome: &str,
        error: Option<String>,
        result: AttemptResult,
    ) -> bool {
        let error_text = error.clone();
        let attempt = AttemptRecord {
            number: rec.attempt_log.len() as u32 + 1,
            worker: self.worker.clone(),
            started_at: started,
            finished_at: OffsetDateTime::now_utc(),
            outcome: outcome.to_string(),
            error,
        };
        let terminal = !matches!(result, AttemptResult::RetryAt(_));
        match self
            .state
            .store
            .finish_attempt(rec.id, &self.worker, attempt, result)
            .await
        {
            Ok(true) => {
                // Only messages with a callback need their new state read back.
                if terminal && rec.callback_url.is_some() {
                    if let Ok(Some(updated)) = self.state.store.get_message(None, rec.id).await {
                        crate::webhooks::status_changed(&self.state, &updated, None).await;
                    }
                }
                if terminal {
                    // A delivery is journalled by its successful EXCHANGE event (same message and
                    // transaction); only the other endings get an event of their own.
                    let stage = match outcome {
                        "failed" => Some(qaqpa_audit::LifecycleStage::Failed),
                        "dead_letter" => Some(qaqpa_audit::LifecycleStage::DeadLettered),
                        _ => None,
                    };
                    if let Some(stage) = stage {
                        let detail = error_text.as_deref();
                        self.state.audit.record(
                            qaqpa_audit::AuditEvent::lifecycle(
                                crate::audit::ENGINE,
                                stage,
                                &rec.id.to_string(),
                                route.map(|r| r.name.as_str()),
                                if stage == qaqpa_audit::LifecycleStage::Delivered {
                                    None
                                } else {
                                    detail
                                },
                            )
                            .transaction(rec.transaction_id.clone()),
                        );
                    }
                    tracing::debug!(message = %rec.id,
                        route = route.map(|r| r.name.as_str()).unwrap_or(""),
                        outcome, "message settled");
                }
                true
            }
            Ok(false) => {
                tracing::warn!(message = %rec.id, "lease lost before the attempt was recorded; another worker owns it");
                false
            }
            Err(e) => {
                tracing::error!(message = %rec.id, error = %e, "recording the attempt failed; the lease will expire and the message will be tried again");
                false
            }
        }
    }

    /// Stores a receipt (once) and tells the EDMS.
    pub async fn receipt(&self, id: qaqpa_core::MessageId, receipt: qaqpa_core::Receipt) {
        if let Err(e) = apply_receipt(&self.state, id, receipt).await {
            tracing::error!(message = %id, error = %e, "storing a receipt failed");
        }
    }
}

/// Stores a receipt unless it is a repeat, and queues the webhook for it. `Ok(false)` for a
/// repeat; `Err` when it could not be stored (the pusher should push it again).
pub async fn apply_receipt(
    state: &AppState,
    id: qaqpa_core::MessageId,
    receipt: qaqpa_core::Receipt,
) -> Result<bool, qaqpa_store::StoreError> {
    match state
        .store
        .add_receipt(id, receipt, OffsetDateTime::now_utc())
        .await?
    {
        Some(stored) => {
            if let Ok(Some(rec)) = state.store.get_message(None, id).await {
                state.audit.record(
                    qaqpa_audit::AuditEvent::lifecycle(
                        crate::audit::ENGINE,
                        qaqpa_audit::LifecycleStage::ReceiptApplied,
                        &id.to_string(),
                        Some(&rec.route),
                        Some(&stored.receipt.kind),
                    )
                    .transaction(rec.transaction_id.clone()),
                );
                crate::webhooks::status_changed(state, &rec, Some(&stored)).await;
            }
            Ok(true)
        }
        None => {
            tracing::debug!(message = %id, "repeated receipt ignored");
            Ok(false)
        }
    }
}

/// The request size an outbound exchange is journalled with when the adapter reported none to
/// its meter: what the engine hands the adapter for the attempt — the document as JSON, the
/// attachments and the signatures. The adapter's own framing (HTTP headers, a SOAP envelope,
/// base64) is not counted.
fn payload_bytes(out: &Outgoing) -> u64 {
    json_bytes(&out.document)
        + out.attachments.iter().map(|a| a.size).sum::<u64>()
        + out.signatures.iter().map(|s| s.len() as u64).sum::<u64>()
}

/// The length of `value` as compact JSON, counted without building the text.
fn json_bytes<T: serde::Serialize>(value: &T) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail; a value serde cannot write counts what it wrote.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Attempts that count against the route's budget (deferrals by an open breaker do not).
fn counted_attempts(rec: &MessageRecord) -> u32 {
    rec.attempt_log
        .iter()
        .filter(|a| a.outcome != DEFERRED)
        .count() as u32
}

/// Refreshes the per-status gauges from the store every few seconds.
pub async fn run_gauges(state: AppState, shutdown: CancellationToken) {
    loop {
        match state.store.status_counts().await {
            Ok(counts) => {
                for s in MessageStatus::ALL {
                    let n = counts
                        .iter()
                        .find(|(st, _)| *st == s)
                        .map(|(_, n)| *n)
                        .unwrap_or(0);
                    state.metrics.set_status_count(s.as_str(), n as i64);
                }
            }
            Err(e) => tracing::debug!(error = %e, "status counts unavailable"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
