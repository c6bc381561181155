//! The REST API: routes, OpenAPI document, health and metrics endpoints, and the HTTP server with
//! its header and connection limits. Handlers live one area per module.
pub mod body;
pub mod calls;
pub mod inbox;
pub mod messages;
pub mod pki;
pub mod push;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use crate::auth::{Caller, Role};
use crate::problem::Problem;
use crate::state::AppState;

/// The OpenAPI document, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Qaqpa gateway API", version = "1",
        description = "Hand documents to Kazakhstan's government systems and follow them: REST+JSON in, signed SOAP out."),
    paths(
        messages::submit, messages::list, messages::get_one, messages::attachment,
        messages::cancel, messages::retry,
        inbox::list, inbox::get_one, inbox::attachment, inbox::ack, inbox::reply,
        calls::call, pki::cms_verify, pki::x509_info, push::push, crate::esedo::participants, crate::audit::query, healthz, readyz, metrics,
    ),
    components(schemas(messages::SubmitMessage, messages::SubmitAttachment, messages::Accepted,
        messages::MessageView, messages::MessagePage, messages::WebhookView, inbox::InboxPage,
        inbox::Acked, inbox::Reply, crate::problem::Problem, crate::problem::FieldError,
        pki::CmsVerifyRequest, pki::Expectation, pki::CmsVerifyReport, pki::SignerView,
        pki::SubjectView, pki::CertificateView, pki::StatusView, pki::X509InfoRequest,
        pki::X509Info, pki::X509Validation, crate::esedo::ParticipantPage, crate::audit::AuditPage)),
    modifiers(&SecurityAddon),
    tags((name = "messages", description = "Outgoing documents"),
         (name = "inbox", description = "Documents pushed to us"),
         (name = "calls", description = "Synchronous services"),
         (name = "pki", description = "Signature and certificate checks"),
         (name = "targets", description = "Where target systems push to us"),
         (name = "esedo", description = "ЕСЭДО participants directory"),
         (name = "admin", description = "The audit journal (admin and auditor roles)"),
         (name = "ops", description = "Health and metrics")),
)]
pub struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every (method, path) the API serves; the OpenAPI test checks each is documented and routed.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/messages"),
    ("get", "/v1/messages"),
    ("get", "/v1/messages/{id}"),
    ("get", "/v1/messages/{id}/attachments/{n}"),
    ("post", "/v1/messages/{id}/cancel"),
    ("post", "/v1/messages/{id}/retry"),
    ("get", "/v1/inbox"),
    ("get", "/v1/inbox/{id}"),
    ("get", "/v1/inbox/{id}/attachments/{n}"),
    ("post", "/v1/inbox/{id}/ack"),
    ("post", "/v1/inbox/{id}/reply"),
    ("post", "/v1/calls/{service}"),
    ("post", "/v1/pki/cms/verify"),
    ("post", "/v1/pki/x509/info"),
    ("post", "/push/{route}"),
    ("get", "/v1/esedo/participants"),
    ("get", "/v1/admin/audit"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/messages", post(messages::submit).get(messages::list))
        .route("/v1/messages/{id}", get(messages::get_one))
        .route(
            "/v1/messages/{id}/attachments/{n}",
            get(messages::attachment),
        )
        .route("/v1/messages/{id}/cancel", post(messages::cancel))
        .route("/v1/messages/{id}/retry", post(messages::retry))
        .route("/v1/inbox", get(inbox::list))
        .route("/v1/inbox/{id}", get(inbox::get_one))
        .route("/v1/inbox/{id}/attachments/{n}", get(inbox::attachment))
        .route("/v1/inbox/{id}/ack", post(inbox::ack))
        .route(
            "/v1/inbox/{id}/reply",
            post(inbox::reply).layer(DefaultBodyLimit::max(1024 * 1024)),
        )
        .route(
            "/v1/calls/{service}",
            post(calls::call).layer(DefaultBodyLimit::max(1024 * 1024)),
        )
        .route(
            "/v1/pki/cms/verify",
            post(pki::cms_verify).layer(DefaultBodyLimit::max(96 * 1024 * 1024)),
        )
        .route(
            "/v1/pki/x509/info",
            post(pki::x509_info).layer(DefaultBodyLimit::max(1024 * 1024)),
        )
        // Targets' pushes: authenticated by the adapter (WS-Security), not by API key; bodies are
        // limited per route.
        .route("/push/{route}", post(push::push))
        .route("/v1/esedo/participants", get(crate::esedo::participants))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/admin/audit", get(crate::audit::query))
        // Bodies are limited per handler (JSON vs multipart), not by axum's default.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.audit.clone(),
            guard,
        ))
        .fallback(not_found)
        .with_state(state)
}

/// Total size of request headers accepted (names and values).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// In front of every route (one layer, as it runs on every request): refuses requests whose
/// headers together exceed [`MAX_HEADER_BYTES`] (431) before any handler or authentication
/// runs, and journals refused requests (403, and 400/409/413/415/422 validation failures) with
/// the caller's key id, address, the operation and its times; 401 and 429 are journalled where
/// they arise.
async fn guard(
    State(audit): State<qaqpa_audit::Auditor>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let total: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if total > MAX_HEADER_BYTES {
        return Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "Request headers too large",
            format!(
                "the request headers total {total} bytes; at most {MAX_HEADER_BYTES} are accepted"
            ),
        )
        .into_response();
    }
    // Cheap copies only: the happy path records nothing.
    let started = time::OffsetDateTime::now_utc();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let ip = crate::audit::client_ip(req.extensions());
    let authorization = req.headers().get(header::AUTHORIZATION).cloned();
    let response = next.run(req).await;
    let reason = match response.status() {
        StatusCode::FORBIDDEN => Some(qaqpa_audit::RefusalReason::Unauthorized),
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::CONFLICT => Some(qaqpa_audit::RefusalReason::Validation),
        _ => None,
    };
    if let Some(reason) = reason {
        let action = format!("{method} {}", uri.path());
        let key_id = authorization
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.strip_prefix("Bearer "))
            .and_then(|t| crate::auth::key_id_of(t.trim()))
            .map(str::to_string);
        let detail = format!("HTTP {}", response.status().as_u16());
        let mut e =
            qaqpa_audit::AuditEvent::refused(crate::audit::API, reason, &action, Some(&detail))
                .operation(started, time::OffsetDateTime::now_utc())
                .client_ip(ip);
        if let Some(k) = key_id {
            e = e.account(k);
        }
        audit.record(e);
    }
    response
}

async fn not_found() -> Problem {
    Problem::not_found("this route")
}

/// Liveness: the process answers.
#[utoipa::path(get, operation_id = "ops_healthz", path = "/healthz", tag = "ops", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the store answers.
#[utoipa::path(get, operation_id = "ops_readyz", path = "/readyz", tag = "ops",
    responses((status = 200, description = "ready"), (status = 503, body = Problem)))]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, Problem> {
    state
        .store
        .ping()
        .await
        .map(|_| "ready\n")
        .map_err(|e| Problem::unavailable(format!("store not reachable: {e}")))
}

/// Prometheus metrics (operators, or anyone when `metrics_public` is set).
#[utoipa::path(get, operation_id = "ops_metrics", path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")),
    security(("api_key" = [])))]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    if !state.cfg.api.metrics_public {
        let mut parts = axum::http::Request::new(()).into_parts().0;
        parts.headers = headers;
        let caller = <Caller as axum::extract::FromRequestParts<AppState>>::from_request_parts(
            &mut parts, &state,
        )
        .await?;
        caller.require(
            &[Role::Operator, Role::Admin, Role::Auditor],
            "read metrics",
        )?;
    }
    state
        .metrics
        .observe_audit(state.audit.store_stats(), &state.audit.sink_stats());
    let text = state.metrics.render();
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Serves the API on `listener` until `shutdown` fires, then lets open requests finish (up to
/// `grace`). HTTP/1.1 and HTTP/2 (prior knowledge), with header-size limits.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(64 * 1024)
        .header_read_timeout(Duration::from_secs(30))
        .timer(hyper_util::rt::TokioTimer::new());
    builder.http2().max_header_list_size(64 * 1024);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(
            app.clone().layer(axum::Extension(ClientAddr(peer))),
        );
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, peer = %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the shutdown grace period");
    }
    Ok(())
}

/// The client's socket address, for logs and audit.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);
