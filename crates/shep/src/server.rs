//! Our own ШЭП endpoints, as axum routers the gateway mounts: ISyncChannel (ЕСЭДО and others push
//! documents and receipts with SendMessage) and IAsyncChannelClient (ШЭП pushes sendMessage and
//! changeMassageStatusNotification). Each reads within a body limit, verifies WS-Security when
//! the policy says so, reads the envelope strictly, dispatches to a trait the gateway implements,
//! and answers SCSS001, an SCSE status, or a SOAP Fault. It never hands unverified input to a
//! handler when verification is required, and never stores anything itself.

// The early answers below are axum Responses returned as `Err`: built once per refused
// request, never propagated far; boxing them would buy nothing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::async_channel::{
    self, AsyncMessage, AsyncSendMessageResponse, ChangeStatusNotifyRequest,
    ChangeStatusNotifyResponse, Operation,
};
use crate::envelope::{body_payload, parse_envelope, Fault, FaultCode};
use crate::signing::{EnvelopeSigner, EnvelopeVerifier, VerifiedSigner};
use crate::sync_channel::{self, SyncRequest, SyncResponse};
use crate::types::{ErrorInfo, Status};
use crate::xml::XmlLimits;
use crate::{ns, EnvelopeError};

/// Why a handler did not process a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// The business data is wrong: answered `SCSE002` with this message (the sender must not resend).
    #[error("{0}")]
    Business(String),
    /// We failed: answered `SCSE003` (the sender may resend).
    #[error("{0}")]
    Internal(String),
}

/// What the gateway does with a SendMessage pushed to our ISyncChannel endpoint.
#[async_trait]
pub trait SyncChannelHandler: Send + Sync + 'static {
    /// `signer` is set when the endpoint verified a WS-Security signature.
    async fn handle(
        &self,
        request: SyncRequest,
        signer: Option<VerifiedSigner>,
    ) -> Result<SyncResponse, HandlerError>;
}

/// What the gateway does with pushes to our IAsyncChannelClient endpoint.
#[async_trait]
pub trait AsyncChannelClientHandler: Send + Sync + 'static {
    async fn send_message(
        &self,
        message: AsyncMessage,
        signer: Option<VerifiedSigner>,
    ) -> Result<AsyncSendMessageResponse, HandlerError>;

    async fn change_status(
        &self,
        request: ChangeStatusNotifyRequest,
        signer: Option<VerifiedSigner>,
    ) -> Result<ChangeStatusNotifyResponse, HandlerError>;
}

/// Whether incoming envelopes must carry a valid WS-Security signature.
#[derive(Clone)]
pub enum SignaturePolicy {
    /// Every envelope must verify with this verifier; the others get a `soap:Client` fault.
    Required(Arc<dyn EnvelopeVerifier>),
    /// Signatures are not checked (the sandbox, or a trusted network segment by decision).
    NotChecked,
}

/// Settings of one endpoint.
#[derive(Clone)]
pub struct EndpointConfig {
    /// Largest request body accepted (answered 413 with a fault beyond it).
    pub max_body_bytes: usize,
    pub limits: XmlLimits,
    pub signatures: SignaturePolicy,
    /// Signs our answers (WS-Security over the Body) when set.
    pub signer: Option<Arc<dyn EnvelopeSigner>>,
}

impl EndpointConfig {
    pub fn new(signatures: SignaturePolicy) -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            limits: XmlLimits::default(),
            signatures,
            signer: None,
        }
    }
}

/// Error codes our endpoints put in ErrorInfo when they refuse an envelope.
pub mod codes {
    pub const BODY_TOO_LARGE: &str = "BODY_TOO_LARGE";
    pub const NOT_UTF8: &str = "NOT_UTF8";
    pub const INVALID_ENVELOPE: &str = "INVALID_ENVELOPE";
    pub const SIGNATURE_INVALID: &str = "SIGNATURE_INVALID";
    pub const UNKNOWN_OPERATION: &str = "UNKNOWN_OPERATION";
    pub const BUSINESS_ERROR: &str = "SCSE002";
    pub const UNHANDLED: &str = "SCSE003";
}

/// A finished SOAP answer.
pub(crate) fn soap_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        Body::from(body),
    )
        .into_response()
}

/// A client-side refusal as a fault answered with HTTP `status`.
pub(crate) fn refusal(
    status: StatusCode,
    code: &str,
    message: &str,
    detail: (&str, &str),
) -> Response {
    let fault = Fault::new(
        FaultCode::Client,
        message,
        Some(ErrorInfo::new(code, message)),
    );
    soap_response(status, fault.to_envelope(detail.0, detail.1))
}

/// Body bytes → text within the limit, or the refusal to send back.
pub(crate) async fn read_body(
    body: Body,
    max: usize,
    detail: (&str, &str),
) -> Result<String, Response> {
    let bytes: Bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BODY_TOO_LARGE,
            &format!("the request is larger than {max} bytes"),
            detail,
        )
    })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        refusal(
            StatusCode::BAD_REQUEST,
            codes::NOT_UTF8,
            "the request is not UTF-8",
            detail,
        )
    })
}

/// Applies the signature policy.
pub(crate) fn check_signature(
    policy: &SignaturePolicy,
    text: &str,
    detail: (&str, &str),
) -> Result<Option<VerifiedSigner>, Response> {
    match policy {
        SignaturePolicy::NotChecked => Ok(None),
        SignaturePolicy::Required(verifier) => verifier.verify(text).map(Some).map_err(|e| {
            refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::SIGNATURE_INVALID,
                &e.to_string(),
                detail,
            )
        }),
    }
}

/// Refuses unless the Body holding `payload` is the one the verified signature covered.
pub fn check_signed_body(
    payload: roxmltree::Node<'_, '_>,
    signer: Option<&VerifiedSigner>,
) -> Result<(), EnvelopeError> {
    let Some(signer) = signer else { return Ok(()) };
    let body = payload.parent_element().map(|b| b.range());
    if body.as_ref() == Some(&signer.body_range) {
        Ok(())
    } else {
        Err(EnvelopeError::invalid(
            "Body",
            "the Body read is not the Body the signature covered",
        ))
    }
}

pub(crate) fn invalid_envelope(e: &EnvelopeError, detail: (&str, &str)) -> Response {
    refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        codes::INVALID_ENVELOPE,
        &e.to_string(),
        detail,
    )
}

/// Serialises, signs if configured, and answers 200.
pub(crate) fn signed_ok(
    signer: Option<&Arc<dyn EnvelopeSigner>>,
    envelope: Result<String, EnvelopeError>,
    detail: (&str, &str),
) -> Response {
    let envelope = match envelope {
        Ok(e) => e,
        Err(e) => {
            let fault = Fault::new(
                FaultCode::Server,
                "the answer could not be built",
                Some(ErrorInfo::new(codes::UNHANDLED, e.to_string())),
            );
            return soap_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                fault.to_envelope(detail.0, detail.1),
            );
        }
    };
    match signer {
        None => soap_response(StatusCode::OK, envelope),
        Some(s) => match s.sign(&envelope) {
            Ok(signed) => soap_response(StatusCode::OK, signed),
            Err(e) => {
                let fault = Fault::new(
                    FaultCode::Server,
                    "the answer could not be signed",
                    Some(ErrorInfo::new(codes::UNHANDLED, e.to_string())),
                );
                soap_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    fault.to_envelope(detail.0, detail.1),
                )
            }
        },
    }
}

/// Reads SendMessage from the Body that was verified (when one was).
pub fn read_sync_request(
    text: &str,
    limits: &XmlLimits,
    signer: Option<&VerifiedSigner>,
) -> Result<SyncRequest, EnvelopeError> {
    let doc = parse_envelope(text, limits)?;
    let payload = body_payload(&doc)?;
    check_signed_body(payload, signer)?;
    SyncRequest::read_payload(payload)
}

struct SyncState {
    handler: Arc<dyn SyncChannelHandler>,
    config: EndpointConfig,
}

const SYNC_FAULT: (&str, &str) = (ns::SYNC, sync_channel::FAULT_ELEMENT);

/// Router answering SendMessage at `/` (mount it where the route says).
pub fn sync_channel_router(handler: Arc<dyn SyncChannelHandler>, config: EndpointConfig) -> Router {
    Router::new()
        .route("/", post(sync_endpoint))
        .with_state(Arc::new(SyncState { handler, config }))
}

async fn sync_endpoint(State(state): State<Arc<SyncState>>, body: Body) -> Response {
    let config = &state.config;
    let text = match read_body(body, config.max_body_bytes, SYNC_FAULT).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let signer = match check_signature(&config.signatures, &text, SYNC_FAULT) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let request = match read_sync_request(&text, &config.limits, signer.as_ref()) {
        Ok(r) => r,
        Err(e) => return invalid_envelope(&e, SYNC_FAULT),
    };
    let request_id = request.info.message_id.clone();
    let session = request.info.session_id.clone();
    let response = match state.handler.handle(request, signer).await {
        Ok(r) => r,
        Err(HandlerError::Business(m)) => {
            SyncResponse::new(Status::new(codes::BUSINESS_ERROR, m), None)
        }
        Err(HandlerError::Internal(m)) => SyncResponse::new(Status::new(codes::UNHANDLED, m), None),
    };
    let mut response = response;
    if response.info.correlation_id.is_none() {
        response.info.correlation_id = Some(request_id);
    }
    if response.info.session_id.is_none() {
        response.info.session_id = session;
    }
    signed_ok(config.signer.as_ref(), response.to_envelope(), SYNC_FAULT)
}

struct AsyncState {
    handler: Arc<dyn AsyncChannelClientHandler>,
    config: EndpointConfig,
}

/// Router answering IAsyncChannelClient's sendMessage and changeMassageStatusNotification at `/`.
pub fn async_client_router(
    handler: Arc<dyn AsyncChannelClientHandler>,
    config: EndpointConfig,
) -> Router {
    Router::new()
        .route("/", post(async_client_endpoint))
        .with_state(Arc::new(AsyncState { handler, config }))
}

fn handler_fault(op: Operation, namespace: &str, e: HandlerError) -> Response {
    let (code, fault_code, message) = match e {
        HandlerError::Business(m) => (codes::BUSINESS_ERROR, FaultCode::Client, m),
        HandlerError::Internal(m) => (codes::UNHANDLED, FaultCode::Server, m),
    };
    let fault = Fault::new(
        fault_code,
        message.clone(),
        Some(ErrorInfo::new(code, message)),
    );
    soap_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        async_channel::fault_envelope(op, namespace, &fault),
    )
}

async fn async_client_endpoint(State(state): State<Arc<AsyncState>>, body: Body) -> Response {
    let config = &state.config;
    let generic = (ns::ASYNC_CLIENT, "fault");
    let text = match read_body(body, config.max_body_bytes, generic).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let signer = match check_signature(&config.signatures, &text, generic) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let doc = match parse_envelope(&text, &config.limits) {
        Ok(d) => d,
        Err(e) => return invalid_envelope(&e, generic),
    };
    let payload = match body_payload(&doc) {
        Ok(p) => p,
        Err(e) => return invalid_envelope(&e, generic),
    };
    if let Err(e) = check_signed_body(payload, signer.as_ref()) {
        return invalid_envelope(&e, generic);
    }
    let namespace = payload.tag_name().namespace().unwrap_or("").to_owned();
    let known_ns = namespace == ns::ASYNC || namespace == ns::ASYNC_CLIENT;
    let op = Operation::from_name(payload.tag_name().name()).filter(|_| known_ns);
    match op {
        Some(op @ Operation::SendMessage) => {
            let detail_name = op.fault_element();
            let detail = (namespace.as_str(), detail_name.as_str());
            let message = match async_channel::read_operation::<AsyncMessage>(payload, "request") {
                Ok(m) => m,
                Err(e) => return invalid_envelope(&e, detail),
            };
            match state.handler.send_message(message, signer).await {
                Ok(r) => signed_ok(
                    config.signer.as_ref(),
                    async_channel::response_envelope(op, &namespace, &r),
                    detail,
                ),
                Err(e) => handler_fault(op, &namespace, e),
            }
        }
        Some(op @ Operation::ChangeMassageStatusNotification) => {
            let detail_name = op.fault_element();
            let detail = (namespace.as_str(), detail_name.as_str());
            let request = match async_channel::read_operation::<ChangeStatusNotifyRequest>(
                payload, "request",
            ) {
                Ok(m) => m,
                Err(e) => return invalid_envelope(&e, detail),
            };
            match state.handler.change_status(request, signer).await {
                Ok(r) => signed_ok(
                    config.signer.as_ref(),
                    async_channel::response_envelope(op, &namespace, &r),
                    detail,
                ),
                Err(e) => handler_fault(op, &namespace, e),
            }
        }
        _ => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::UNKNOWN_OPERATION,
            &format!(
                "IAsyncChannelClient has no operation {{{namespace}}}{}",
                payload.tag_name().name()
            ),
            generic,
        ),
    }
}
