//! A ШЭП emulator for tests and the sandbox: an HTTP server on loopback that answers SyncChannel
//! SendMessage by routing on serviceId to registered emulated services, and the AsyncChannel
//! (sendMessage, getMessages, getMessageStatus, sendDeliveryNotification) with in-memory queues.
//! It reads every request strictly by the schema, verifies WS-Security when given a verifier,
//! and injects faults on demand per serviceId and per request count. It never talks to anything
//! outside the machine and never keeps state beyond its own lifetime.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::async_channel::{
    self, AsyncMessage, AsyncSendMessageResponse, GetMessageStatusRequest,
    GetMessageStatusResponse, GetMessagesRequest, GetMessagesResponse, MessageState,
    MessageStatusInfo, Operation, Part, SendDeliveryNotificationRequest,
    SendDeliveryNotificationResponse,
};
use crate::async_channel::{ChangeStatusNotifyRequest, ChangeStatusNotifyResponse};
use crate::classify::ShepOutcome;
use crate::client::{AsyncChannelClient, ClientConfig, ShepError, SyncChannelClient};
use crate::envelope::{body_payload, parse_envelope, Fault, FaultCode};
use crate::ns;
use crate::server::{
    check_signature, check_signed_body, invalid_envelope, read_body, read_sync_request, refusal,
    soap_response, SignaturePolicy,
};
use crate::signing::{EnvelopeSigner, EnvelopeVerifier};
use crate::sync_channel::{self, SyncRequest, SyncResponse};
use crate::types::{ErrorInfo, MessageData, SessionId, Status};
use crate::xml::XmlLimits;

/// The path of the SyncChannel endpoint (as in public configuration).
pub const SYNC_PATH: &str = "/bip-sync-wss-gost/";
/// The path of the AsyncChannel endpoint.
pub const ASYNC_PATH: &str = "/bip-async/";

/// What an emulated service answers to a request that reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAnswer {
    /// SCSS001 with this data.
    Data(Option<MessageData>),
    /// SCSE002 with this message (the service's own business refusal).
    BusinessError(String),
}

/// One emulated government service behind the emulated ШЭП.
pub trait EmulatedService: Send + Sync + 'static {
    fn handle(&self, request: &SyncRequest) -> ServiceAnswer;
}

impl<F> EmulatedService for F
where
    F: Fn(&SyncRequest) -> ServiceAnswer + Send + Sync + 'static,
{
    fn handle(&self, request: &SyncRequest) -> ServiceAnswer {
        self(request)
    }
}

/// Answers with the request's own data.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoService;

impl EmulatedService for EchoService {
    fn handle(&self, request: &SyncRequest) -> ServiceAnswer {
        ServiceAnswer::Data(request.data.clone())
    }
}

/// A fault the emulator injects instead of (or, for slowness, before) the normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectedFault {
    /// A SendMessageResponse with status SCSE002 and this message (async: a fault with it).
    Scse002(String),
    /// A SendMessageResponse with status SCSE003 and this message (async: a fault with it).
    Scse003(String),
    /// A SOAP Fault with this faultcode and ErrorInfo.
    SoapFault {
        code: FaultCode,
        error_info: Option<ErrorInfo>,
    },
    /// This HTTP status with a plain-text body (no envelope).
    Http(u16),
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Send the status line and headers, then cut the connection mid-body.
    DropConnection,
    /// Answer normally, signed, then alter the signed Body (needs a signer).
    BadResponseSignature,
}

/// Which requests a fault applies to (counted per serviceId, from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// The next `n` requests.
    Next(u32),
    /// Only the request with this number.
    Nth(u64),
}

/// Why the emulator refused a setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmulatorError {
    #[error("a bad response signature needs the emulator to sign: configure a signer")]
    NoSigner,
}

#[derive(Debug)]
struct Rule {
    fault: InjectedFault,
    when: When,
}

#[derive(Default)]
struct Book {
    rules: HashMap<String, Vec<Rule>>,
    counts: HashMap<String, u64>,
    received: HashMap<String, Vec<SyncRequest>>,
    queues: HashMap<String, VecDeque<AsyncMessage>>,
    async_known: HashMap<String, MessageState>,
    notifications: Vec<SendDeliveryNotificationRequest>,
    wire: Vec<WireSizes>,
}

/// The bodies of one SyncChannel exchange as the emulator saw them on its side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireSizes {
    /// The request's serviceId, when the envelope could be read that far.
    pub service_id: Option<String>,
    /// Bytes of the request body received (signed envelope and all).
    pub request_bytes: u64,
    /// Bytes of the answer body sent; `None` for an answer cut off on purpose
    /// ([`InjectedFault::DropConnection`]).
    pub response_bytes: Option<u64>,
}

impl Book {
    /// Counts a request for `service` and picks the fault that applies to it, if any.
    fn next_fault(&mut self, service: &str) -> Option<InjectedFault> {
        let count = self.counts.entry(service.to_owned()).or_insert(0);
        *count += 1;
        let n = *count;
        for key in [service, "*"] {
            let Some(rules) = self.rules.get_mut(key) else {
                continue;
            };
            let mut picked = None;
            for rule in rules.iter_mut() {
                let applies = match &mut rule.when {
                    When::Always => true,
                    When::Nth(k) => *k == n,
                    When::Next(left) => {
                        if *left > 0 {
                            *left -= 1;
                            true
                        } else {
                            false
                        }
                    }
                };
                if applies {
                    picked = Some(rule.fault.clone());
                    break;
                }
            }
            rules.retain(|r| r.when != When::Next(0));
            if picked.is_some() {
                return picked;
            }
        }
        None
    }
}

struct Shared {
    services: HashMap<String, Arc<dyn EmulatedService>>,
    signatures: SignaturePolicy,
    signer: Option<Arc<dyn EnvelopeSigner>>,
    limits: XmlLimits,
    max_body_bytes: usize,
    book: Mutex<Book>,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        // A panic while holding the lock cannot leave the book half-written in a way that
        // matters to an emulator; keep serving.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Builds an emulator.
#[derive(Default)]
pub struct EmulatorBuilder {
    services: HashMap<String, Arc<dyn EmulatedService>>,
    verifier: Option<Arc<dyn EnvelopeVerifier>>,
    signer: Option<Arc<dyn EnvelopeSigner>>,
    limits: Option<XmlLimits>,
    listen: Option<SocketAddr>,
}

impl EmulatorBuilder {
    /// Registers `service` under `service_id`; later adapters add theirs the same way.
    pub fn service(mut self, service_id: impl Into<String>, service: impl EmulatedService) -> Self {
        self.services.insert(service_id.into(), Arc::new(service));
        self
    }

    /// Requires every request to carry a WS-Security signature that `verifier` accepts.
    pub fn verify_with(mut self, verifier: Arc<dyn EnvelopeVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Signs every answer with `signer`.
    pub fn sign_with(mut self, signer: Arc<dyn EnvelopeSigner>) -> Self {
        self.signer = Some(signer);
        self
    }

    pub fn limits(mut self, limits: XmlLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Serves on `addr` instead of a free port of 127.0.0.1 (a port 0 still picks a free one).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Binds its address (by default 127.0.0.1 on a free port) and starts serving.
    pub async fn start(self) -> std::io::Result<ShepEmulator> {
        let shared = Arc::new(Shared {
            services: self.services,
            signatures: match self.verifier {
                Some(v) => SignaturePolicy::Required(v),
                None => SignaturePolicy::NotChecked,
            },
            signer: self.signer,
            limits: self.limits.unwrap_or_default(),
            max_body_bytes: 16 * 1024 * 1024,
            book: Mutex::new(Book::default()),
        });
        let app = Router::new()
            .route(SYNC_PATH, post(sync_endpoint))
            .route(ASYNC_PATH, post(async_endpoint))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(
            self.listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        )
        .await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(ShepEmulator {
            shared,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running emulator. Dropping it stops the server.
pub struct ShepEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ShepEmulator {
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The SyncChannel endpoint URL.
    pub fn sync_url(&self) -> String {
        format!("http://{}{}", self.addr, SYNC_PATH)
    }

    /// The AsyncChannel endpoint URL.
    pub fn async_url(&self) -> String {
        format!("http://{}{}", self.addr, ASYNC_PATH)
    }

    /// Injects `fault` for requests to `service_id` (`"*"`: any service) matching `when`.
    /// Rules are tried in the order given; the service's own before the `"*"` ones.
    pub fn inject(
        &self,
        service_id: &str,
        fault: InjectedFault,
        when: When,
    ) -> Result<(), EmulatorError> {
        if fault == InjectedFault::BadResponseSignature && self.shared.signer.is_none() {
            return Err(EmulatorError::NoSigner);
        }
        self.shared
            .book()
            .rules
            .entry(service_id.to_owned())
            .or_default()
            .push(Rule { fault, when });
        Ok(())
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.shared.book().rules.clear();
    }

    /// How many requests named `service_id` (valid ones, faulted or not).
    pub fn request_count(&self, service_id: &str) -> u64 {
        self.shared
            .book()
            .counts
            .get(service_id)
            .copied()
            .unwrap_or(0)
    }

    /// The sizes of every SyncChannel exchange whose request body was read, in order of arrival.
    pub fn wire_sizes(&self) -> Vec<WireSizes> {
        self.shared.book().wire.clone()
    }

    /// The SyncChannel requests `service_id` received, in order.
    pub fn received(&self, service_id: &str) -> Vec<SyncRequest> {
        self.shared
            .book()
            .received
            .get(service_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Puts `message` in `service_id`'s async queue, as if another participant had sent it.
    pub fn enqueue(&self, service_id: &str, message: AsyncMessage) {
        self.shared
            .book()
            .queues
            .entry(service_id.to_owned())
            .or_default()
            .push_back(message);
    }

    /// Delivery notifications received through sendDeliveryNotification.
    pub fn delivery_notifications(&self) -> Vec<SendDeliveryNotificationRequest> {
        self.shared.book().notifications.clone()
    }

    /// Pushes `request` to a participant's ISyncChannel endpoint, as ЕСЭДО does through ШЭП,
    /// signed with the emulator's signer when it has one.
    pub async fn push_sync(&self, endpoint: &str, request: &SyncRequest) -> ShepOutcome {
        match SyncChannelClient::new(self.push_config(endpoint)) {
            Ok(client) => client.exchange(request).await,
            Err(e) => ShepOutcome::Permanent {
                code: "NOT_SENT".into(),
                message: e.to_string(),
            },
        }
    }

    /// Pushes a message-state change to a participant's IAsyncChannelClient endpoint.
    pub async fn push_status(
        &self,
        endpoint: &str,
        request: &ChangeStatusNotifyRequest,
    ) -> Result<ChangeStatusNotifyResponse, ShepError> {
        AsyncChannelClient::new(self.push_config(endpoint))?
            .change_massage_status_notification(request)
            .await
    }

    fn push_config(&self, endpoint: &str) -> ClientConfig {
        let config = ClientConfig::new(endpoint);
        match &self.shared.signer {
            Some(s) => config.with_signer(s.clone()),
            None => config,
        }
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ShepEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

const SYNC_FAULT: (&str, &str) = (ns::SYNC, sync_channel::FAULT_ELEMENT);

fn fault_response(
    detail: (&str, &str),
    code: FaultCode,
    error_info: Option<ErrorInfo>,
) -> Response {
    let message = error_info
        .as_ref()
        .map(|i| i.error_message.clone())
        .unwrap_or_else(|| "emulated fault".to_owned());
    let fault = Fault::new(code, message, error_info);
    soap_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        fault.to_envelope(detail.0, detail.1),
    )
}

fn http_failure(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Body::from(format!("emulated HTTP {}", status.as_u16())))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// A response whose body fails after the headers: the connection is cut mid-answer.
fn dropped_connection() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "emulated dropped connection",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/xml; charset=utf-8")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Signs `envelope` when a signer is set; `tamper` then alters the signed Body.
fn answer(shared: &Shared, envelope: String, tamper: bool, detail: (&str, &str)) -> Response {
    let Some(signer) = &shared.signer else {
        return soap_response(StatusCode::OK, envelope);
    };
    match signer.sign(&envelope) {
        Ok(signed) if !tamper => soap_response(StatusCode::OK, signed),
        Ok(signed) => match tamper_body(&signed) {
            Some(altered) => soap_response(StatusCode::OK, altered),
            None => fault_response(
                detail,
                FaultCode::Server,
                Some(ErrorInfo::new(
                    "SCSE003",
                    "emulator found nothing to alter in the Body",
                )),
            ),
        },
        Err(e) => fault_response(
            detail,
            FaultCode::Server,
            Some(ErrorInfo::new(
                "SCSE003",
                format!("emulator could not sign: {e}"),
            )),
        ),
    }
}

/// Alters the signed Body while keeping it schema-valid: the last digit of `responseDate`
/// (which every ШЭП answer carries) changes. `None` when there is none to alter.
fn tamper_body(signed: &str) -> Option<String> {
    let body_at = signed.find("Body")?;
    let end = body_at + signed[body_at..].find("</responseDate>")?;
    let start = body_at + signed[body_at..end].rfind('>')? + 1;
    let rel = signed[start..end].rfind(|c: char| c.is_ascii_digit())?;
    let at = start + rel;
    let digit = signed[at..].chars().next()?.to_digit(10)?;
    let mut out = signed.to_owned();
    out.replace_range(at..at + 1, &((digit + 1) % 10).to_string());
    Some(out)
}

async fn sync_endpoint(State(shared): State<Arc<Shared>>, body: Body) -> Response {
    let text = match read_body(body, shared.max_body_bytes, SYNC_FAULT).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut service_id = None;
    let response = sync_answer(&shared, &text, &mut service_id).await;
    let response_bytes = axum::body::HttpBody::size_hint(response.body()).exact();
    shared.book().wire.push(WireSizes {
        service_id,
        request_bytes: text.len() as u64,
        response_bytes,
    });
    response
}

/// The answer to one SyncChannel request; `service_id` is set once the request names it.
async fn sync_answer(shared: &Shared, text: &str, service_id_out: &mut Option<String>) -> Response {
    let signer = match check_signature(&shared.signatures, text, SYNC_FAULT) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let request = match read_sync_request(text, &shared.limits, signer.as_ref()) {
        Ok(r) => r,
        Err(e) => return invalid_envelope(&e, SYNC_FAULT),
    };
    let service_id = request.info.service_id.clone();
    *service_id_out = Some(service_id.clone());
    let fault = {
        let mut book = shared.book();
        book.received
            .entry(service_id.clone())
            .or_default()
            .push(request.clone());
        book.next_fault(&service_id)
    };
    let Some(service) = shared.services.get(&service_id).cloned() else {
        return fault_response(
            SYNC_FAULT,
            FaultCode::Client,
            Some(ErrorInfo::new(
                "SERVICE_NOT_FOUND",
                format!("serviceId '{service_id}' is not in the emulated registry"),
            )),
        );
    };
    let session = SessionId::random();
    let mut tamper = false;
    match fault {
        None => {}
        Some(InjectedFault::Slow(d)) => tokio::time::sleep(d).await,
        Some(InjectedFault::Scse002(m)) => {
            let r = SyncResponse::new(Status::new("SCSE002", m), None)
                .with_correlation_id(request.info.message_id.clone())
                .with_session_id(session);
            return answer(
                shared,
                r.to_envelope().unwrap_or_default(),
                false,
                SYNC_FAULT,
            );
        }
        Some(InjectedFault::Scse003(m)) => {
            let r = SyncResponse::new(Status::new("SCSE003", m), None)
                .with_correlation_id(request.info.message_id.clone())
                .with_session_id(session);
            return answer(
                shared,
                r.to_envelope().unwrap_or_default(),
                false,
                SYNC_FAULT,
            );
        }
        Some(InjectedFault::SoapFault { code, error_info }) => {
            return fault_response(SYNC_FAULT, code, error_info)
        }
        Some(InjectedFault::Http(status)) => return http_failure(status),
        Some(InjectedFault::DropConnection) => return dropped_connection(),
        Some(InjectedFault::BadResponseSignature) => tamper = true,
    }
    let response = match service.handle(&request) {
        ServiceAnswer::Data(data) => SyncResponse::success(data),
        ServiceAnswer::BusinessError(m) => SyncResponse::new(Status::new("SCSE002", m), None),
    }
    .with_correlation_id(request.info.message_id.clone())
    .with_session_id(session);
    match response.to_envelope() {
        Ok(envelope) => answer(shared, envelope, tamper, SYNC_FAULT),
        Err(e) => fault_response(
            SYNC_FAULT,
            FaultCode::Server,
            Some(ErrorInfo::new("SCSE003", e.to_string())),
        ),
    }
}

/// What an injected fault does to an async operation.
enum AsyncInjection {
    /// Answer this instead.
    Answer(Response),
    /// Answer normally, signed, then alter the signed Body.
    Tamper,
    Nothing,
}

/// The fault (if any) an async operation on `service_id` gets.
async fn async_fault(shared: &Shared, op: Operation, service_id: &str) -> AsyncInjection {
    let fault = shared.book().next_fault(service_id);
    let Some(fault) = fault else {
        return AsyncInjection::Nothing;
    };
    let name = op.fault_element();
    let detail = (ns::ASYNC, name.as_str());
    AsyncInjection::Answer(match fault {
        InjectedFault::Slow(d) => {
            tokio::time::sleep(d).await;
            return AsyncInjection::Nothing;
        }
        InjectedFault::Scse002(m) => fault_response(
            detail,
            FaultCode::Client,
            Some(ErrorInfo::new("SCSE002", m)),
        ),
        InjectedFault::Scse003(m) => fault_response(
            detail,
            FaultCode::Server,
            Some(ErrorInfo::new("SCSE003", m)),
        ),
        InjectedFault::SoapFault { code, error_info } => fault_response(detail, code, error_info),
        InjectedFault::Http(status) => http_failure(status),
        InjectedFault::DropConnection => dropped_connection(),
        InjectedFault::BadResponseSignature => return AsyncInjection::Tamper,
    })
}

fn async_answer<T: Part>(shared: &Shared, op: Operation, part: &T, tamper: bool) -> Response {
    let name = op.fault_element();
    let detail = (ns::ASYNC, name.as_str());
    match async_channel::response_envelope(op, ns::ASYNC, part) {
        Ok(envelope) => answer(shared, envelope, tamper, detail),
        Err(e) => fault_response(
            detail,
            FaultCode::Server,
            Some(ErrorInfo::new("SCSE003", e.to_string())),
        ),
    }
}

async fn async_endpoint(State(shared): State<Arc<Shared>>, body: Body) -> Response {
    let generic = (ns::ASYNC, "fault");
    let text = match read_body(body, shared.max_body_bytes, generic).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let signer = match check_signature(&shared.signatures, &text, generic) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let doc = match parse_envelope(&text, &shared.limits) {
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
    let op = Operation::from_name(payload.tag_name().name())
        .filter(|op| *op != Operation::ChangeMassageStatusNotification)
        .filter(|_| payload.tag_name().namespace() == Some(ns::ASYNC));
    let Some(op) = op else {
        return refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_OPERATION",
            &format!(
                "IAsyncChannel has no operation {}",
                payload.tag_name().name()
            ),
            generic,
        );
    };
    let name = op.fault_element();
    let detail = (ns::ASYNC, name.as_str());
    let now = OffsetDateTime::now_utc();
    match op {
        Operation::SendMessage => {
            let message = match async_channel::read_operation::<AsyncMessage>(payload, "request") {
                Ok(m) => m,
                Err(e) => return invalid_envelope(&e, detail),
            };
            if let Err(e) = message.check() {
                return invalid_envelope(&e, detail);
            }
            let tamper = match async_fault(&shared, op, &message.info.service_id).await {
                AsyncInjection::Answer(r) => return r,
                AsyncInjection::Tamper => true,
                AsyncInjection::Nothing => false,
            };
            let message_id = uuid::Uuid::new_v4().to_string();
            let correlation_id = message
                .info
                .correlation_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let session = SessionId::random();
            let mut stored = message.clone();
            stored.info.message_id = Some(message_id.clone());
            stored.info.correlation_id = Some(correlation_id.clone());
            stored.info.session_id = Some(session.clone());
            {
                let mut book = shared.book();
                book.async_known
                    .insert(message_id.clone(), MessageState::OnDelivery);
                book.queues
                    .entry(message.info.service_id.clone())
                    .or_default()
                    .push_back(stored);
            }
            async_answer(
                &shared,
                op,
                &AsyncSendMessageResponse {
                    message_id,
                    correlation_id,
                    response_date: now,
                    session_id: Some(session),
                },
                tamper,
            )
        }
        Operation::GetMessages => {
            let request =
                match async_channel::read_operation::<GetMessagesRequest>(payload, "request") {
                    Ok(m) => m,
                    Err(e) => return invalid_envelope(&e, detail),
                };
            let tamper = match async_fault(&shared, op, &request.service_id).await {
                AsyncInjection::Answer(r) => return r,
                AsyncInjection::Tamper => true,
                AsyncInjection::Nothing => false,
            };
            let amount = request.amount.map_or(usize::MAX, |a| a.max(0) as usize);
            let messages: Vec<AsyncMessage> = {
                let mut book = shared.book();
                let taken: Vec<AsyncMessage> = match book.queues.get_mut(&request.service_id) {
                    Some(q) => {
                        let n = amount.min(q.len());
                        q.drain(..n).collect()
                    }
                    None => Vec::new(),
                };
                for m in &taken {
                    if let Some(id) = &m.info.message_id {
                        book.async_known.insert(id.clone(), MessageState::Delivered);
                    }
                }
                taken
            };
            async_answer(
                &shared,
                op,
                &GetMessagesResponse {
                    response_date: now,
                    session_id: SessionId::random(),
                    messages,
                },
                tamper,
            )
        }
        Operation::GetMessageStatus => {
            let request = match async_channel::read_operation::<GetMessageStatusRequest>(
                payload, "request",
            ) {
                Ok(m) => m,
                Err(e) => return invalid_envelope(&e, detail),
            };
            let state = shared.book().async_known.get(&request.message_id).copied();
            match state {
                None => fault_response(
                    detail,
                    FaultCode::Client,
                    Some(ErrorInfo::new(
                        "MESSAGE_NOT_FOUND",
                        format!("no message '{}' in the emulator", request.message_id),
                    )),
                ),
                Some(state) => async_answer(
                    &shared,
                    op,
                    &GetMessageStatusResponse {
                        message_state: state,
                        status: MessageStatusInfo {
                            status_code: state.wire().to_owned(),
                            status_message: format!("message is {}", state.wire()),
                            status_date: now,
                        },
                        response_date: now,
                        session_id: None,
                    },
                    false,
                ),
            }
        }
        Operation::SendDeliveryNotification => {
            let request = match async_channel::read_operation::<SendDeliveryNotificationRequest>(
                payload, "request",
            ) {
                Ok(m) => m,
                Err(e) => return invalid_envelope(&e, detail),
            };
            shared.book().notifications.push(request);
            async_answer(
                &shared,
                op,
                &SendDeliveryNotificationResponse {
                    notification_id: uuid::Uuid::new_v4().to_string(),
                    response_date: now,
                    session_id: SessionId::random(),
                },
                false,
            )
        }
        Operation::ChangeMassageStatusNotification => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_OPERATION",
            "changeMassageStatusNotification is the participant's operation, not ШЭП's",
            generic,
        ),
    }
}
