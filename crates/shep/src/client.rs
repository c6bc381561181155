//! HTTP clients for ШЭП's SyncChannel and AsyncChannel: one POST per call, with a timeout, a cap
//! on the answer's size, optional WS-Security signing of requests and verification of answers.
//! The client never retries by itself: it classifies ([`crate::classify`]) and the engine decides.
//!
//! [`SyncChannelClient::send_metered`] reports the exchange's bodies to an [`ExchangeMeter`]:
//! the request envelope (signed, when signing) once the connection has taken it to write, and
//! the answer's body as far as it was read, a fault or an HTTP error answer included.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use qaqpa_core::{error_chain, ExchangeMeter, WireResult};
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};

use crate::async_channel::{
    self, AsyncMessage, AsyncReply, AsyncSendMessageResponse, ChangeStatusNotifyRequest,
    ChangeStatusNotifyResponse, GetMessageStatusRequest, GetMessageStatusResponse,
    GetMessagesRequest, GetMessagesResponse, Operation, Part, SendDeliveryNotificationRequest,
    SendDeliveryNotificationResponse,
};
use crate::classify::{self, shorten, RetryReason, ShepOutcome};
use crate::signing::{EnvelopeSigner, EnvelopeVerifier, SignatureError};
use crate::sync_channel::{SyncReply, SyncRequest, SyncResponse};
use crate::xml::XmlLimits;
use crate::EnvelopeError;

/// How a client reaches one ШЭП endpoint.
#[derive(Clone)]
pub struct ClientConfig {
    /// The endpoint URL (e.g. `…/bip-sync-wss-gost/`).
    pub endpoint: String,
    /// The whole exchange: connect, send, wait, read.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Largest answer read; a longer one is cut off and counts as a transport failure.
    pub max_response_bytes: usize,
    pub limits: XmlLimits,
    /// Signs each request (WS-Security over the Body) when set.
    pub signer: Option<Arc<dyn EnvelopeSigner>>,
    /// Verifies each SendMessageResponse (and async response) when set.
    pub verifier: Option<Arc<dyn EnvelopeVerifier>>,
}

impl ClientConfig {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_response_bytes: 16 * 1024 * 1024,
            limits: XmlLimits::default(),
            signer: None,
            verifier: None,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_signer(mut self, signer: Arc<dyn EnvelopeSigner>) -> Self {
        self.signer = Some(signer);
        self
    }

    pub fn with_verifier(mut self, verifier: Arc<dyn EnvelopeVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("signer", &self.signer.is_some())
            .field("verifier", &self.verifier.is_some())
            .finish()
    }
}

/// A failed ШЭП call, with the retry decision already made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShepError {
    /// The request could not be built; nothing was sent.
    #[error("request not sent: {0}")]
    Request(#[from] EnvelopeError),
    /// The request could not be signed; nothing was sent.
    #[error("request not sent: {0}")]
    Signing(SignatureError),
    /// The client could not be set up (bad URL, TLS).
    #[error("client configuration: {0}")]
    Config(String),
    /// The target refused for good; `message` is its own.
    #[error("{code}: {message}")]
    Permanent { code: String, message: String },
    /// Worth another attempt (after `after`, when the target said).
    #[error("{reason}")]
    Retry {
        reason: RetryReason,
        after: Option<Duration>,
    },
}

impl ShepError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retry { .. })
    }

    /// True when the request certainly never reached the target (so resending is always safe).
    pub fn nothing_sent(&self) -> bool {
        matches!(
            self,
            Self::Request(_)
                | Self::Signing(_)
                | Self::Config(_)
                | Self::Retry {
                    reason: RetryReason::Connect(_),
                    ..
                }
        )
    }
}

impl<T> From<ShepOutcome<T>> for Result<T, ShepError> {
    fn from(outcome: ShepOutcome<T>) -> Self {
        match outcome {
            ShepOutcome::Success { response } => Ok(response),
            ShepOutcome::Permanent { code, message } => Err(ShepError::Permanent { code, message }),
            ShepOutcome::Retry { reason, after } => Err(ShepError::Retry { reason, after }),
        }
    }
}

/// One HTTP answer, read within the limits.
struct RawReply {
    status: u16,
    retry_after: Option<Duration>,
    body: String,
}

/// The shared HTTP part of both clients.
#[derive(Clone, Debug)]
struct Transport {
    http: reqwest::Client,
    config: ClientConfig,
}

impl Transport {
    fn new(config: ClientConfig) -> Result<Self, ShepError> {
        reqwest::Url::parse(&config.endpoint)
            .map_err(|e| ShepError::Config(format!("endpoint '{}': {e}", config.endpoint)))?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .build()
            .map_err(|e| ShepError::Config(e.to_string()))?;
        Ok(Self { http, config })
    }

    /// Signs (if configured) and posts `envelope`; returns the answer or a retry reason. The
    /// request body and what was read of the answer's go to `meter`.
    async fn post(&self, envelope: String, meter: &ExchangeMeter) -> Result<RawReply, ShepError> {
        let body = match &self.config.signer {
            Some(signer) => signer.sign(&envelope).map_err(ShepError::Signing)?,
            None => envelope,
        };
        let (body, _sent) = meter.body(Bytes::from(body));
        let response = self
            .http
            .post(&self.config.endpoint)
            .header(CONTENT_TYPE, "text/xml; charset=utf-8")
            .header("SOAPAction", "\"\"")
            .body(reqwest::Body::wrap(body))
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        // An answer came: its body is measured as it is read (one refused for its declared
        // length, unread, is 0 bytes read).
        meter.received(0);
        let limit = self.config.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|len| len as usize > limit)
        {
            return Err(ShepError::Retry {
                reason: RetryReason::UnreadableResponse(format!(
                    "the answer is larger than {limit} bytes"
                )),
                after: retry_after,
            });
        }
        let mut response = response;
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            meter.received(chunk.len() as u64);
            if bytes.len() + chunk.len() > limit {
                return Err(ShepError::Retry {
                    reason: RetryReason::UnreadableResponse(format!(
                        "the answer is larger than {limit} bytes"
                    )),
                    after: retry_after,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = String::from_utf8(bytes).map_err(|_| ShepError::Retry {
            reason: RetryReason::UnreadableResponse("the answer is not UTF-8".into()),
            after: retry_after,
        })?;
        Ok(RawReply {
            status,
            retry_after,
            body,
        })
    }

    fn verify(&self, body: &str) -> Result<(), ShepError> {
        match &self.config.verifier {
            None => Ok(()),
            Some(v) => v.verify(body).map(|_| ()).map_err(|e| ShepError::Retry {
                reason: RetryReason::BadSignature(e.to_string()),
                after: None,
            }),
        }
    }
}

fn transport_error(e: reqwest::Error) -> ShepError {
    let reason = if e.is_timeout() {
        RetryReason::Timeout
    } else if e.is_connect() {
        RetryReason::Connect(error_chain(&e))
    } else {
        RetryReason::Transport(error_chain(&e))
    };
    ShepError::Retry {
        reason,
        after: None,
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Client of ШЭП's SyncChannel (`SendMessage`).
#[derive(Clone, Debug)]
pub struct SyncChannelClient {
    transport: Transport,
}

impl SyncChannelClient {
    pub fn new(config: ClientConfig) -> Result<Self, ShepError> {
        Ok(Self {
            transport: Transport::new(config)?,
        })
    }

    /// One SendMessage exchange, classified.
    pub async fn exchange(&self, request: &SyncRequest) -> ShepOutcome {
        match self.try_exchange(request, &ExchangeMeter::new()).await {
            Ok(outcome) => outcome,
            Err(ShepError::Retry { reason, after }) => ShepOutcome::Retry { reason, after },
            Err(ShepError::Permanent { code, message }) => ShepOutcome::Permanent { code, message },
            Err(other) => ShepOutcome::Permanent {
                code: "NOT_SENT".into(),
                message: other.to_string(),
            },
        }
    }

    async fn try_exchange(
        &self,
        request: &SyncRequest,
        meter: &ExchangeMeter,
    ) -> Result<ShepOutcome, ShepError> {
        let envelope = request.to_envelope()?;
        // The request is itemised on the meter: its service, times, bodies and result.
        let record = meter.begin(request.info.service_id.clone());
        let raw = match self.transport.post(envelope, record.meter()).await {
            Ok(raw) => raw,
            Err(e @ ShepError::Signing(_)) => {
                record.not_sent();
                return Err(e);
            }
            Err(e) => {
                record.failed(e.to_string());
                return Err(e);
            }
        };
        let limits = &self.transport.config.limits;
        let (outcome, result) = match SyncReply::from_envelope(&raw.body, limits) {
            Ok(SyncReply::Response(response)) => {
                if let Err(e) = self.transport.verify(&raw.body) {
                    record.failed(e.to_string());
                    return Err(e);
                }
                let code = response.info.status.code.clone();
                (
                    classify::classify_response(response),
                    WireResult::Shep(code),
                )
            }
            // Faults are classified unsigned: ШЭП's own faults carry no signature (assumed).
            Ok(SyncReply::Fault(fault)) => {
                let result = match fault.error_info.as_ref().map(|i| i.error_code.trim()) {
                    Some(code) if code.starts_with("SC") => WireResult::Shep(code.to_owned()),
                    _ => WireResult::Http(raw.status),
                };
                (classify::classify_fault(&fault, raw.retry_after), result)
            }
            Err(e) => (
                classify::classify_http_status(
                    raw.status,
                    raw.retry_after,
                    &shorten(&format!("HTTP {}: {e}", raw.status)),
                ),
                WireResult::Http(raw.status),
            ),
        };
        record.answered(result);
        Ok(outcome)
    }

    /// SendMessage; `Ok` only for an `SCSS*` status.
    pub async fn send(&self, request: &SyncRequest) -> Result<SyncResponse, ShepError> {
        self.send_metered(request, &ExchangeMeter::new()).await
    }

    /// [`SyncChannelClient::send`], reporting the exchange's bodies to `meter` whatever the
    /// outcome: the request envelope once it went on the wire (signed, when signing), and the
    /// answer's body as far as it was read (a SOAP fault, an HTTP error answer, an answer cut
    /// off for its size). Successive exchanges on one meter add up, and each is itemised on it
    /// ([`ExchangeMeter::begin`]) under the request's serviceId, with the answer's ШЭП code (or
    /// HTTP status, or why none came).
    pub async fn send_metered(
        &self,
        request: &SyncRequest,
        meter: &ExchangeMeter,
    ) -> Result<SyncResponse, ShepError> {
        self.try_exchange(request, meter).await?.into()
    }
}

/// Client of ШЭП's AsyncChannel, and of a participant's IAsyncChannelClient (for pushes).
#[derive(Clone, Debug)]
pub struct AsyncChannelClient {
    transport: Transport,
}

impl AsyncChannelClient {
    pub fn new(config: ClientConfig) -> Result<Self, ShepError> {
        Ok(Self {
            transport: Transport::new(config)?,
        })
    }

    /// One call of `op`: the typed response, or the classified failure.
    pub async fn call<Req: Part, Resp: Part>(
        &self,
        op: Operation,
        request: &Req,
    ) -> Result<Resp, ShepError> {
        let envelope = async_channel::request_envelope(op, request)?;
        let raw = self.transport.post(envelope, &ExchangeMeter::new()).await?;
        let limits = &self.transport.config.limits;
        match async_channel::read_reply::<Resp>(op, &raw.body, limits) {
            Ok(AsyncReply::Response(response)) => {
                self.transport.verify(&raw.body)?;
                Ok(response)
            }
            Ok(AsyncReply::Fault(fault)) => {
                classify::classify_fault(&fault, raw.retry_after).into()
            }
            Err(e) => classify::classify_http_status(
                raw.status,
                raw.retry_after,
                &shorten(&format!("HTTP {}: {e}", raw.status)),
            )
            .into(),
        }
    }

    pub async fn send_message(
        &self,
        message: &AsyncMessage,
    ) -> Result<AsyncSendMessageResponse, ShepError> {
        self.call(Operation::SendMessage, message).await
    }

    pub async fn get_messages(
        &self,
        request: &GetMessagesRequest,
    ) -> Result<GetMessagesResponse, ShepError> {
        self.call(Operation::GetMessages, request).await
    }

    pub async fn get_message_status(
        &self,
        request: &GetMessageStatusRequest,
    ) -> Result<GetMessageStatusResponse, ShepError> {
        self.call(Operation::GetMessageStatus, request).await
    }

    pub async fn send_delivery_notification(
        &self,
        request: &SendDeliveryNotificationRequest,
    ) -> Result<SendDeliveryNotificationResponse, ShepError> {
        self.call(Operation::SendDeliveryNotification, request)
            .await
    }

    /// What ШЭП calls on a participant's IAsyncChannelClient; the emulator pushes with it.
    pub async fn change_massage_status_notification(
        &self,
        request: &ChangeStatusNotifyRequest,
    ) -> Result<ChangeStatusNotifyResponse, ShepError> {
        self.call(Operation::ChangeMassageStatusNotification, request)
            .await
    }
}

/// SyncChannel clients by (endpoint, timeout), all signing and verifying with the same keys: one
/// per adapter (or tool), so HTTP connections are reused across messages. Holds connection pools
/// only, never message state; bounded to the (endpoint, timeout) pairs actually used.
pub struct SyncClientPool {
    signer: Option<Arc<dyn EnvelopeSigner>>,
    verifier: Option<Arc<dyn EnvelopeVerifier>>,
    clients: std::sync::Mutex<std::collections::HashMap<(String, Duration), SyncChannelClient>>,
    /// Most (endpoint, timeout) pairs kept before the pool starts afresh.
    max_clients: usize,
}

impl SyncClientPool {
    pub fn new(
        signer: Option<Arc<dyn EnvelopeSigner>>,
        verifier: Option<Arc<dyn EnvelopeVerifier>>,
        max_clients: usize,
    ) -> Self {
        Self {
            signer,
            verifier,
            clients: std::sync::Mutex::new(std::collections::HashMap::new()),
            max_clients: max_clients.max(1),
        }
    }

    /// The client for `endpoint` with this whole-exchange `timeout`.
    pub fn get(&self, endpoint: &str, timeout: Duration) -> Result<SyncChannelClient, ShepError> {
        let key = (endpoint.to_owned(), timeout);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let mut config = ClientConfig::new(endpoint).with_timeout(timeout);
        if let Some(s) = &self.signer {
            config = config.with_signer(s.clone());
        }
        if let Some(v) = &self.verifier {
            config = config.with_verifier(v.clone());
        }
        let client = SyncChannelClient::new(config)?;
        if clients.len() > self.max_clients {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }
}
