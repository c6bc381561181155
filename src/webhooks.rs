//! Webhooks to the EDMS: every status change and receipt becomes a JSON event POSTed to the
//! message's `callback_url`, signed with HMAC-SHA256 over `"<unix time>.<body>"` and sent in the
//! `Qaqpa-Signature: t=<unix time>,v1=<hex>` header. Events are queued in the store, so they
//! survive restarts, and retried with backoff until delivered or given up.
//!
//! Each client has its own signing secret, derived from the master secret, so one EDMS cannot
//! forge events for another. Secrets never appear in logs.
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use qaqpa_core::{ClientId, MessageId};
use qaqpa_resilience::Backoff;
use qaqpa_store::{MessageRecord, StoredReceipt, WebhookEvent, WebhookResult};
use sha2::Sha256;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

type HmacSha256 = Hmac<Sha256>;

/// Derives per-client webhook secrets from the master secret and signs event bodies.
pub struct WebhookSigner {
    master: Vec<u8>,
}

impl std::fmt::Debug for WebhookSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSigner(<secret>)")
    }
}

impl WebhookSigner {
    pub fn new(master: &[u8]) -> Self {
        Self {
            master: master.to_vec(),
        }
    }

    /// The secret a client uses to check our signatures (hex).
    pub fn client_secret(&self, client: &ClientId) -> String {
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.master) else {
            return String::new();
        };
        mac.update(b"qaqpa-webhook:");
        mac.update(client.0.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The `Qaqpa-Signature` header value for a body sent at `unix_time`.
    pub fn signature_header(&self, client: &ClientId, unix_time: i64, body: &[u8]) -> String {
        sign_with(&self.client_secret(client), unix_time, body)
    }
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>.<body>")>`; public so EDMS-side code and tests
/// can check signatures the same way.
pub fn sign_with(client_secret: &str, unix_time: i64, body: &[u8]) -> String {
    let mac = HmacSha256::new_from_slice(client_secret.as_bytes()).map(|mut m| {
        m.update(unix_time.to_string().as_bytes());
        m.update(b".");
        m.update(body);
        hex::encode(m.finalize().into_bytes())
    });
    format!("t={unix_time},v1={}", mac.unwrap_or_default())
}

/// Queues a status-change event (and a receipt event when `receipt` is given) for a message with
/// a callback URL. Failures are logged, never propagated: the message's own state is already
/// committed and an event can be re-derived from it.
pub async fn status_changed(
    state: &AppState,
    rec: &MessageRecord,
    receipt: Option<&StoredReceipt>,
) {
    let Some(url) = &rec.callback_url else {
        return;
    };
    let now = OffsetDateTime::now_utc();
    let id = MessageId::new();
    let mut payload = serde_json::json!({
        "event": if receipt.is_some() { "message.receipt" } else { "message.status" },
        "event_id": id,
        "message_id": rec.id,
        "kind": rec.kind,
        "to": rec.to,
        "status": rec.status,
        "target_ref": rec.target_ref,
        "last_error": rec.last_error,
        "attempts": rec.attempts,
        "transaction_id": rec.transaction_id,
        "at": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    });
    if let Some(r) = receipt {
        payload["receipt"] = serde_json::to_value(r).unwrap_or_default();
    }
    let event = WebhookEvent {
        id,
        client: rec.client.clone(),
        message: Some(rec.id),
        url: url.clone(),
        payload,
        created_at: now,
        due_at: now,
        attempts: 0,
        state: "pending".into(),
        last_error: None,
    };
    match state.store.enqueue_webhook(event).await {
        Ok(()) => state.webhook_wake.notify_one(),
        Err(e) => tracing::error!(message = %rec.id, error = %e, "could not queue webhook event"),
    }
}

/// Tells the client a target pushed a new document into its inbox (`inbox.received`).
pub async fn inbox_received(
    state: &AppState,
    item: &qaqpa_store::InboxItem,
    id: MessageId,
    url: &str,
) {
    let now = OffsetDateTime::now_utc();
    let event_id = MessageId::new();
    let payload = serde_json::json!({
        "event": "inbox.received",
        "event_id": event_id,
        "inbox_id": id,
        "kind": item.kind,
        "from": item.from,
        "external_id": item.external_id,
        "source": item.source,
        "attachments": item.attachments.len(),
        "transaction_id": item.transaction_id,
        "at": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    });
    let event = WebhookEvent {
        id: event_id,
        client: item.client.clone(),
        message: None,
        url: url.to_string(),
        payload,
        created_at: now,
        due_at: now,
        attempts: 0,
        state: "pending".into(),
        last_error: None,
    };
    match state.store.enqueue_webhook(event).await {
        Ok(()) => state.webhook_wake.notify_one(),
        Err(e) => tracing::error!(inbox = %id, error = %e, "could not queue webhook event"),
    }
}

/// Delivers queued webhook events until `shutdown` fires.
pub async fn run_dispatcher(state: AppState, worker: String, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_millis(state.cfg.webhooks.timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook HTTP client could not start; webhooks disabled");
            return;
        }
    };
    let backoff = Arc::new(Backoff::new(
        Duration::from_secs(1),
        Duration::from_secs(600),
    ));
    let poll = Duration::from_millis(state.cfg.webhooks.poll_ms);
    let inflight = Arc::new(tokio::sync::Semaphore::new(64));
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let now = OffsetDateTime::now_utc();
        let batch = match state
            .store
            .claim_webhooks(&worker, now, Duration::from_secs(60), 64)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "claiming webhook events failed");
                Vec::new()
            }
        };
        let got = batch.len();
        for event in batch {
            let Ok(permit) = inflight.clone().acquire_owned().await else {
                return;
            };
            let (state, client, worker, backoff) = (
                state.clone(),
                client.clone(),
                worker.clone(),
                backoff.clone(),
            );
            tokio::spawn(async move {
                deliver_one(&state, &client, &worker, &backoff, event).await;
                drop(permit);
            });
        }
        if got == 0 {
            tokio::select! {
                _ = state.webhook_wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }
}

async fn deliver_one(
    state: &AppState,
    client: &reqwest::Client,
    worker: &str,
    backoff: &Backoff,
    event: WebhookEvent,
) {
    let body = match serde_json::to_vec(&event.payload) {
        Ok(b) => b,
        Err(e) => {
            let _ = state
                .store
                .finish_webhook(
                    event.id,
                    worker,
                    WebhookResult::GaveUp {
                        error: e.to_string(),
                    },
                )
                .await;
            return;
        }
    };
    let t = OffsetDateTime::now_utc().unix_timestamp();
    let sig = state
        .webhook_signer
        .signature_header(&event.client, t, &body);
    let sent = client
        .post(&event.url)
        .header("content-type", "application/json")
        .header("qaqpa-signature", sig)
        .header("qaqpa-event-id", event.id.to_string())
        .body(body)
        .send()
        .await;
    let error = match sent {
        Ok(resp) if resp.status().is_success() => None,
        Ok(resp) => Some(format!("HTTP {}", resp.status().as_u16())),
        Err(e) => Some(format!("transport: {e}")),
    };
    let attempt = event.attempts + 1;
    let result = match error {
        None => {
            state.metrics.webhook("delivered");
            WebhookResult::Delivered
        }
        Some(error) if attempt >= state.cfg.webhooks.max_attempts => {
            state.metrics.webhook("gave_up");
            tracing::warn!(event = %event.id, url = %event.url, %error, "webhook given up");
            WebhookResult::GaveUp { error }
        }
        Some(error) => {
            state.metrics.webhook("retry");
            let at = OffsetDateTime::now_utc() + backoff.delay(attempt);
            WebhookResult::RetryAt { at, error }
        }
    };
    let stage = match &result {
        WebhookResult::Delivered => Some(qaqpa_audit::LifecycleStage::WebhookDelivered),
        WebhookResult::GaveUp { .. } => Some(qaqpa_audit::LifecycleStage::WebhookFailed),
        WebhookResult::RetryAt { .. } => None,
    };
    if let Some(stage) = stage {
        let subject = event
            .message
            .map(|m| m.to_string())
            .unwrap_or_else(|| event.id.to_string());
        let mut e = qaqpa_audit::AuditEvent::lifecycle(
            crate::audit::WEBHOOKS,
            stage,
            &subject,
            None,
            event.payload.get("event").and_then(|v| v.as_str()),
        );
        if let Some(t) = event.payload.get("transaction_id").and_then(|v| v.as_str()) {
            e = e.transaction(t);
        }
        state.audit.record(e);
    }
    if let Err(e) = state.store.finish_webhook(event.id, worker, result).await {
        tracing::warn!(event = %event.id, error = %e, "recording webhook result failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_secrets_differ_per_client_and_signatures_cover_time_and_body() {
        let s = WebhookSigner::new(b"master secret of the test");
        let a = ClientId("a".into());
        let b = ClientId("b".into());
        assert_ne!(s.client_secret(&a), s.client_secret(&b));
        let h1 = s.signature_header(&a, 1_700_000_000, b"{}");
        assert_eq!(h1, sign_with(&s.client_secret(&a), 1_700_000_000, b"{}"));
        assert_ne!(h1, s.signature_header(&a, 1_700_000_001, b"{}"));
        assert_ne!(h1, s.signature_header(&a, 1_700_000_000, b"{ }"));
        assert!(h1.starts_with("t=1700000000,v1="));
        assert!(!format!("{s:?}").contains("master"));
    }
}
