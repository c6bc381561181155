//! `POST /push/{route}`: where a target pushes receipts and documents to us (ЕСЭДО calling our
//! ISyncChannel with SendMessage, …). There is no API key here: the route must allow pushes
//! (`[route.push]` in routes.toml) and its adapter authenticates the push by the target's own
//! protocol (a WS-Security signature checked against the configured trust). What a push brings
//! is durably stored before the target gets its answer, so an acknowledged push is never lost;
//! when storing fails the target is told to push again.
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use qaqpa_core::{Cx, Failure, Inbound, MessageId, PushOutcome};
use qaqpa_store::InboxItem;
use time::OffsetDateTime;

use crate::api::messages::OneChunk;
use crate::engine::NoAttachments;
use crate::problem::Problem;
use crate::routes::{PushConfig, RouteConfig};
use crate::state::AppState;

/// Receive a target's push (receipt or document) for a route that allows pushes.
#[utoipa::path(post, operation_id = "push_receive", path = "/push/{route}", tag = "targets",
    params(("route" = String, Path, description = "Route name from routes.toml with [route.push]")),
    request_body(content = String, description = "The target's own message, e.g. a ШЭП SOAP envelope",
        content_type = "text/xml"),
    responses((status = 200, description = "Accepted, in the target's protocol"),
        (status = 404, description = "No route of that name takes pushes", body = Problem),
        (status = 413, description = "Larger than the route's push.max_bytes", body = Problem),
        (status = 500, description = "Refused, in the target's protocol (e.g. a SOAP fault)")))]
pub async fn push(
    State(state): State<AppState>,
    Path(route_name): Path<String>,
    req: Request,
) -> Response {
    let Some(route) = state.routes.push_route(&route_name).cloned() else {
        return Problem::not_found(&format!("push endpoint '{route_name}'")).into_response();
    };
    let Some(push_cfg) = route.push.clone() else {
        return Problem::not_found(&format!("push endpoint '{route_name}'")).into_response();
    };
    let Some(adapter) = state.adapters.get(&route.adapter).cloned() else {
        return Problem::internal(format!("route '{}' has no adapter", route.name)).into_response();
    };
    let client_ip = crate::audit::client_ip(req.extensions());
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), push_cfg.max_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return Problem::too_large(format!(
                "a push to '{route_name}' may be at most {} bytes",
                push_cfg.max_bytes
            ))
            .into_response()
        }
    };
    let inbound = Inbound {
        content_type,
        body,
        received_at: OffsetDateTime::now_utc(),
    };
    let settings = route.settings_table();
    let transaction_id = MessageId::new().to_string();
    // The push's exchange is journalled by the bodies we received and answered; the requests
    // the adapter makes meanwhile (ЕСЭДО: the files fetched from ХЭД) are itemised on the
    // meter and journalled each as an outbound exchange of their own.
    let meter = qaqpa_core::ExchangeMeter::new();
    let cx = Cx {
        deadline: std::time::Instant::now() + route.timeout(),
        settings: &settings,
        attachments: &NoAttachments,
        transaction_id: &transaction_id,
        meter: &meter,
    };
    // The OCSP questions of a pushed letter's signature checks share the push's transaction.
    let scope = crate::pki_exchanges::ExchangeScope {
        source: crate::audit::PUSH,
        transaction: transaction_id.clone(),
        account: None,
        client_ip,
        message_id: None,
    };
    let handled = crate::pki_exchanges::within(scope, adapter.on_push(inbound.clone(), &cx));
    let outcome = match tokio::time::timeout(route.timeout(), handled).await {
        Ok(r) => r,
        Err(_) => Err(Failure::retry(format!(
            "handling the push took longer than {} ms",
            route.timeout_ms
        ))),
    };
    journal_signatures(&state, &transaction_id, client_ip, &outcome);
    // The exchange names the message the push is about: ours for a receipt, the target's id of
    // a document (the ШЭП messageId for the ШЭП adapter).
    let message_id = match &outcome {
        Ok(PushOutcome::Receipt { message, .. }) => Some(message.to_string()),
        Ok(PushOutcome::Document { external_id, .. }) => Some(external_id.clone()),
        Ok(PushOutcome::Nothing) | Err(_) => None,
    };
    let result = match outcome {
        Ok(outcome) => store_outcome(&state, &route, &push_cfg, outcome, &transaction_id).await,
        Err(f) => Err(f),
    };
    match &result {
        Ok(()) => {
            tracing::info!(route = %route.name, transaction = %transaction_id, "push accepted")
        }
        Err(f) => {
            tracing::warn!(route = %route.name, transaction = %transaction_id, error = %f, "push refused")
        }
    }
    let answer = adapter.answer_push(&inbound, &result);
    let now = OffsetDateTime::now_utc();
    let event = qaqpa_audit::AuditEvent::exchange(
        crate::audit::PUSH,
        qaqpa_audit::Exchange {
            direction: qaqpa_audit::Direction::Inbound,
            target: route.name.clone(),
            service_id: Some(route.adapter.clone()),
            message_id: message_id.clone(),
            request_out: None,
            response_in: None,
            request_in: Some(inbound.received_at),
            response_out: Some(now),
            request_bytes: Some(inbound.body.len() as u64),
            response_bytes: Some(answer.body.len() as u64),
            result: qaqpa_audit::ExchangeResult::Http(answer.status),
        },
    )
    .operation(inbound.received_at, now)
    .transaction(transaction_id.clone())
    .client_ip(client_ip);
    for fetched in crate::audit::itemised_exchanges(
        crate::audit::PUSH,
        &route.name,
        message_id.as_deref(),
        &transaction_id,
        meter.take_exchanges(),
    ) {
        state.audit.record(fetched.client_ip(client_ip));
    }
    state.audit.record(event);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, answer.content_type)
        .body(Body::from(answer.body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Journals the signatures the adapter checked in a push: each valid one of a document, or the
/// one that was not valid and refused the push.
fn journal_signatures(
    state: &AppState,
    transaction_id: &str,
    client_ip: Option<std::net::IpAddr>,
    outcome: &Result<PushOutcome, Failure>,
) {
    let event = |valid: bool, signer: Option<&str>, reason: Option<&str>| {
        // No account: the push's exchange event, under the same transaction, names the target.
        qaqpa_audit::AuditEvent::signature(crate::audit::PUSH, valid, signer, reason, None)
            .transaction(transaction_id)
            .client_ip(client_ip)
    };
    match outcome {
        Ok(PushOutcome::Document { signatures, .. }) => {
            for v in signatures {
                state.audit.record(event(true, Some(&v.summary()), None));
            }
        }
        Err(f) => {
            if let Some(reason) = f.bad_signature_reason() {
                state.audit.record(event(false, None, Some(reason)));
            }
        }
        Ok(_) => {}
    }
}

/// Makes what the push brought durable: a receipt on one of this route's messages, or a new
/// inbox item (repeated pushes of the same document are stored once).
async fn store_outcome(
    state: &AppState,
    route: &RouteConfig,
    push: &PushConfig,
    outcome: PushOutcome,
    transaction_id: &str,
) -> Result<(), Failure> {
    let unavailable = |e: qaqpa_store::StoreError| Failure::retry(format!("storing failed: {e}"));
    match outcome {
        PushOutcome::Nothing => Ok(()),
        PushOutcome::Receipt { message, receipt } => {
            // A target may only speak about messages that went out on its own route.
            let known = state
                .store
                .get_message(None, message)
                .await
                .map_err(unavailable)?
                .filter(|m| m.route == route.name);
            if known.is_none() {
                return Err(Failure::permanent(
                    "unknown_message",
                    format!("no message {message} was sent through this route"),
                ));
            }
            crate::engine::apply_receipt(state, message, receipt)
                .await
                .map(|_| ())
                .map_err(unavailable)
        }
        PushOutcome::Document {
            external_id,
            kind,
            from,
            document,
            attachments,
            ..
        } => {
            let mut metas = Vec::with_capacity(attachments.len());
            for (mut meta, bytes) in attachments {
                let mut source = OneChunk(Some(bytes));
                let (sha256, size) = state
                    .blobs
                    .put(&mut source, state.cfg.api.max_attachment_bytes)
                    .await
                    .map_err(unavailable)?;
                meta.sha256 = sha256;
                meta.size = size;
                metas.push(meta);
            }
            let item = InboxItem {
                id: MessageId::new(),
                client: qaqpa_core::ClientId(push.client.clone()),
                source: route.name.clone(),
                external_id,
                kind,
                from,
                document,
                attachments: metas,
                received_at: OffsetDateTime::now_utc(),
                acked_at: None,
                transaction_id: transaction_id.to_string(),
            };
            let (id, new) = state
                .store
                .insert_inbox(item.clone())
                .await
                .map_err(unavailable)?;
            if new {
                if let Some(url) = &push.callback_url {
                    crate::webhooks::inbox_received(state, &item, id, url).await;
                }
            }
            Ok(())
        }
    }
}
