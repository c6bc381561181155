//! `/v1/calls/{service}`: a synchronous look-up through an adapter (a company by BIN, a person
//! through BMG) under a deadline. Only metadata (who, which service, how long, outcome) is logged;
//! the request and the answer are never stored anywhere: they may hold personal data. Each call
//! is journalled as an EXCHANGE event with times, sizes and the target's result code.
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use qaqpa_audit::{AuditEvent, Direction, Exchange};
use qaqpa_core::{Answer, Call, Cx, Failure};
use time::OffsetDateTime;

use crate::api::body::{check_depth, parse_json};
use crate::auth::{Caller, CausedBy, Role};
use crate::engine::NoAttachments;
use crate::problem::Problem;
use crate::state::AppState;

/// Call a synchronous service.
#[utoipa::path(post, operation_id = "calls_call", path = "/v1/calls/{service}", tag = "calls",
    params(("service" = String, Path, description = "Service name from routes.toml")),
    request_body(content = Object, description = "Service parameters"),
    responses((status = 200, description = "The service's answer", body = Object),
        (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 502, description = "The target refused or failed", body = Problem),
        (status = 504, description = "The target did not answer in time", body = Problem)),
    security(("api_key" = [])))]
pub async fn call(
    State(state): State<AppState>,
    caller: Caller,
    Path(service): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, Problem> {
    caller.require(&[Role::Client], "call services")?;
    let svc = state
        .routes
        .service(&service)
        .filter(|s| s.allows(&caller.client.0))
        .ok_or_else(|| Problem::not_found(&format!("service '{service}'")))?;
    let adapter = state
        .adapters
        .get(&svc.adapter)
        .ok_or_else(|| Problem::internal(format!("service '{service}' has no adapter")))?;
    check_depth(&body, state.cfg.api.max_json_depth)?;
    let params: serde_json::Value = if body.is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        parse_json(&body)?
    };
    let timeout = Duration::from_millis(svc.timeout_ms);
    let settings = svc.settings_table();
    let started = Instant::now();
    let asked = OffsetDateTime::now_utc();
    let transaction_id = qaqpa_core::MessageId::new().to_string();
    // What the adapter sent to the target and read back, for the exchange journal (see
    // below).
    let meter = qaqpa_core::ExchangeMeter::new();
    let cx = Cx {
        deadline: started + timeout,
        settings: &settings,
        attachments: &NoAttachments,
        transaction_id: &transaction_id,
        meter: &meter,
    };
    let result = tokio::time::timeout(
        timeout,
        adapter.call(
            Call {
                service: service.clone(),
                params,
            },
            &cx,
        ),
    )
    .await;
    let outcome = match &result {
        Ok(Ok(_)) => "ok",
        Ok(Err(Failure::Retry { .. })) => "temporary_failure",
        Ok(Err(Failure::Permanent { .. })) => "refused",
        Err(_) => "timeout",
    };
    tracing::info!(service = %service, client = %caller.client, transaction = %transaction_id,
        elapsed_ms = started.elapsed().as_millis() as u64, outcome, "synchronous call");
    // The exchange journal gets the metadata only: never the parameters or the answer.
    // The contract gives a call no message id of its own; an adapter whose protocol has one
    // names it in the answer (the ШЭП adapter's `message_id`, the SOAP messageId). Only that
    // id (if it is of an id's length) is kept, never the answer.
    let message_id = match &result {
        Ok(Ok(a)) => a
            .body
            .get("message_id")
            .and_then(|v| v.as_str())
            .filter(|id| id.len() <= 256)
            .map(str::to_owned),
        _ => None,
    };
    // An adapter that itemised its requests (the ШЭП client) gets an event per request, with
    // the service as the target names it (the ШЭП serviceId) and the answer's own code.
    let itemised = meter.take_exchanges();
    if !itemised.is_empty() {
        for event in crate::audit::itemised_exchanges(
            crate::audit::API,
            &svc.name,
            message_id.as_deref(),
            &transaction_id,
            itemised,
        ) {
            state.audit.record(event.by(&caller));
        }
    } else {
        let answered = OffsetDateTime::now_utc();
        let journal_result = match &result {
            Ok(r) => crate::audit::exchange_result(r.as_ref().map(|a| a.result_code.as_deref())),
            Err(_) => qaqpa_audit::ExchangeResult::Transport(format!(
                "no answer within {} ms",
                svc.timeout_ms
            )),
        };
        // The exchange's sizes are those of the bodies on the wire to and from the target, as
        // a metering adapter reported them (a fault or an error answer included, none for a
        // direction it never reported: no connection, no answer). An adapter that does not
        // meter is journalled by the call as the gateway saw it: the caller's body and the
        // answer handed back.
        let (request_bytes, response_bytes) = if adapter.meters_exchanges() {
            meter.sizes()
        } else {
            let answered = match &result {
                Ok(Ok(a)) => serde_json::to_string(&a.body).ok().map(|t| t.len() as u64),
                _ => None,
            };
            (Some(body.len() as u64), answered)
        };
        state.audit.record(
            AuditEvent::exchange(
                crate::audit::API,
                Exchange {
                    direction: Direction::Outbound,
                    target: svc.name.clone(),
                    service_id: Some(service.clone()),
                    message_id,
                    request_out: Some(asked),
                    response_in: Some(answered),
                    request_in: None,
                    response_out: None,
                    request_bytes,
                    response_bytes,
                    result: journal_result,
                },
            )
            .by(&caller)
            .operation(asked, answered)
            .transaction(transaction_id.clone()),
        );
    }
    match result {
        Ok(Ok(Answer { body, .. })) => Ok(Json(body)),
        Ok(Err(Failure::Permanent { code, reason })) => Err(Problem::new(
            StatusCode::BAD_GATEWAY,
            "target-refused",
            "The target refused the call",
            format!("{code}: {reason}"),
        )),
        Ok(Err(Failure::Retry { reason, after })) => Err(Problem::new(
            StatusCode::BAD_GATEWAY,
            "target-unavailable",
            "The target failed; the call may be repeated",
            reason,
        )
        .retry(after.map(|d| d.as_secs()).unwrap_or(1))),
        Err(_) => Err(Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "target-timeout",
            "The target did not answer in time",
            format!("no answer within {} ms", svc.timeout_ms),
        )),
    }
}
