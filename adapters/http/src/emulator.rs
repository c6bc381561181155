//! A stand-in HTTP/JSON target for the sandbox and for tests: it accepts the adapter's POSTs on
//! any path, checks them as a strict target would (Idempotency-Key, JSON shape, attachment
//! base64/size/SHA-256), records them in memory by message id (so duplicates are visible only
//! as repeats of one id), and injects faults set at run time: a status code, a delay, a dropped
//! connection, for the next N requests or a ratio of them.
//!
//! Control API (same port): `POST /_control/faults` ([`Faults`] as JSON), `GET|DELETE
//! /_control/faults`, `GET|DELETE /_control/received`, `GET /_control/received/{id}`.
//!
//! ```text
//! curl -X POST $EMU/_control/faults -d '{"status": 503, "count": 5, "retry_after": "2"}'
//! curl -X POST $EMU/_control/faults -d '{"drop_connection": true, "ratio": 0.1}'
//! curl -X POST $EMU/_control/faults -d '{"delay_ms": 3000}'
//! curl -X POST $EMU/_control/faults -d '{"drop_connection": true, "record": true, "count": 1}'
//! curl -X DELETE $EMU/_control/faults
//! curl $EMU/_control/received
//! ```
//!
//! It must never be used as a real target: everything it receives stays in memory.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

use crate::wire::{sha256_hex, WireMessage};

/// Largest message the emulator takes (attachments are inline, base64).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Faults to inject. Every field is optional; `{}` clears all faults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Answer this status instead of accepting the message.
    pub status: Option<u16>,
    /// Close the connection without answering (takes precedence over `status`).
    pub drop_connection: bool,
    /// Wait this long before answering (or dropping); alone, it only slows acceptance.
    pub delay_ms: u64,
    /// Fault only the next `count` requests, then clear. Absent: until changed.
    pub count: Option<u64>,
    /// Fault this fraction of requests (0.0–1.0), spread evenly and deterministically
    /// (0.25 faults the 4th, 8th, 12th…). Absent: every request.
    pub ratio: Option<f64>,
    /// With `status`: the `Retry-After` header to send (seconds or an HTTP date).
    pub retry_after: Option<String>,
    /// With `status`: the answer's body (default: a short JSON error).
    pub body: Option<String>,
    /// Record the message as received although the answer is faulted: the target processed
    /// it but the answer was lost, which is how duplicates arise.
    pub record: bool,
}

impl Faults {
    fn check(&self) -> Result<(), String> {
        if let Some(s) = self.status {
            if !(200..=599).contains(&s) {
                return Err(format!(
                    "status: {s} is not an HTTP status between 200 and 599"
                ));
            }
        }
        if let Some(r) = self.ratio {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("ratio: {r} is not between 0 and 1"));
            }
        }
        Ok(())
    }
}

/// One message id as the emulator has seen it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedMessage {
    /// Times a request with this id was accepted (more than 1: duplicates).
    pub count: u64,
    /// The reference the emulator answered with (the same for every duplicate).
    pub target_ref: String,
    /// `X-Qaqpa-Transaction` of the latest request.
    pub transaction_id: Option<String>,
    /// The latest request's body; `None` when the emulator keeps no bodies
    /// ([`EmulatorState::counting_only`]).
    pub body: Option<WireMessage>,
}

/// Everything received so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// Requests that reached the message endpoint, faulted or not.
    pub requests: u64,
    /// Bytes of those requests' bodies, as received (all of them, faulted or not).
    #[serde(default)]
    pub request_bytes: u64,
    /// Accepted messages by id.
    pub messages: BTreeMap<String, ReceivedMessage>,
}

impl Received {
    /// How many times `id` was accepted.
    pub fn count(&self, id: &str) -> u64 {
        self.messages.get(id).map_or(0, |m| m.count)
    }

    /// Ids accepted more than once, with their counts.
    pub fn duplicates(&self) -> Vec<(&str, u64)> {
        self.messages
            .iter()
            .filter(|(_, m)| m.count > 1)
            .map(|(id, m)| (id.as_str(), m.count))
            .collect()
    }
}

/// The summary `GET /_control/received` answers (bodies left out).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceivedSummary {
    pub requests: u64,
    pub distinct: usize,
    pub accepted: u64,
    pub messages: Vec<ReceivedEntry>,
}

/// One line of [`ReceivedSummary`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceivedEntry {
    pub id: String,
    pub count: u64,
    pub target_ref: String,
}

#[derive(Debug, Default)]
struct FaultState {
    faults: Faults,
    /// Faulted requests left when `count` was given.
    left: Option<u64>,
    /// Requests considered since the faults were set (for `ratio`).
    seen: u64,
}

#[derive(Debug)]
struct Shared {
    received: Mutex<Received>,
    next_ref: Mutex<u64>,
    distinct: watch::Sender<usize>,
    faults: Mutex<FaultState>,
}

/// The emulator's memory: what it received and the faults in force. Clone it into a new
/// [`Emulator::start_with_state`] to bring a stopped emulator back with its memory (an outage).
#[derive(Clone, Debug)]
pub struct EmulatorState {
    shared: Arc<Shared>,
    keep_bodies: bool,
}

impl Default for EmulatorState {
    fn default() -> Self {
        Self {
            keep_bodies: true,
            shared: Arc::new(Shared {
                received: Mutex::new(Received::default()),
                next_ref: Mutex::new(0),
                distinct: watch::Sender::new(0),
                faults: Mutex::new(FaultState::default()),
            }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data always left consistent; a panicked holder cannot corrupt it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EmulatorState {
    /// Memory that counts messages by id but keeps none of their bodies: for benchmarks and
    /// long sandbox sessions, where keeping every document would grow without bound.
    pub fn counting_only() -> Self {
        Self {
            keep_bodies: false,
            ..Self::default()
        }
    }

    /// A snapshot of everything received.
    pub fn received(&self) -> Received {
        lock(&self.shared.received).clone()
    }

    /// How many times `id` was accepted.
    pub fn count(&self, id: &str) -> u64 {
        lock(&self.shared.received).count(id)
    }

    /// Distinct ids accepted.
    pub fn distinct(&self) -> usize {
        *self.shared.distinct.borrow()
    }

    /// Replaces the faults in force (an empty [`Faults`] clears them).
    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.check()?;
        let mut state = lock(&self.shared.faults);
        *state = FaultState {
            left: faults.count,
            faults,
            seen: 0,
        };
        Ok(())
    }

    /// The faults in force (with `count` showing what is left).
    pub fn faults(&self) -> Faults {
        let state = lock(&self.shared.faults);
        Faults {
            count: state.left,
            ..state.faults.clone()
        }
    }

    /// Forgets everything received.
    pub fn clear_received(&self) {
        *lock(&self.shared.received) = Received::default();
        self.shared.distinct.send_replace(0);
    }

    /// Waits until at least `n` distinct ids have been accepted. Never polls: it wakes on each
    /// new id.
    pub async fn wait_for(&self, n: usize) {
        let mut rx = self.shared.distinct.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|d| *d >= n).await;
    }

    /// Decides whether this request is faulted, and consumes one from `count`.
    fn next_fault(&self) -> Option<Faults> {
        let mut state = lock(&self.shared.faults);
        let f = &state.faults;
        if f.status.is_none() && !f.drop_connection && f.delay_ms == 0 {
            return None;
        }
        if state.left == Some(0) {
            return None;
        }
        state.seen += 1;
        if let Some(ratio) = state.faults.ratio {
            let n = state.seen as f64;
            if (n * ratio).floor() <= ((n - 1.0) * ratio).floor() {
                return None;
            }
        }
        if let Some(left) = state.left.as_mut() {
            *left -= 1;
        }
        Some(state.faults.clone())
    }

    /// Records an accepted message; answers its reference and whether it was a duplicate.
    fn record(&self, msg: WireMessage, transaction_id: Option<String>) -> (String, bool) {
        let mut received = lock(&self.shared.received);
        let distinct_before = received.messages.len();
        let reference = match received.messages.get_mut(&msg.id) {
            Some(seen) => {
                seen.count += 1;
                seen.transaction_id = transaction_id;
                seen.body = self.keep_bodies.then_some(msg);
                return (seen.target_ref.clone(), true);
            }
            None => {
                let mut next = lock(&self.shared.next_ref);
                *next += 1;
                format!("emu-{}", *next)
            }
        };
        received.messages.insert(
            msg.id.clone(),
            ReceivedMessage {
                count: 1,
                target_ref: reference.clone(),
                transaction_id,
                body: self.keep_bodies.then_some(msg),
            },
        );
        self.shared.distinct.send_replace(distinct_before + 1);
        (reference, false)
    }
}

/// The emulator server.
pub struct Emulator;

impl Emulator {
    /// Starts an emulator on `addr` (`127.0.0.1:0` picks a free port) with empty memory.
    pub async fn start(addr: SocketAddr) -> std::io::Result<EmulatorHandle> {
        Self::start_with_state(addr, EmulatorState::default()).await
    }

    /// Starts an emulator on `addr` with the given memory (e.g. that of a stopped one).
    pub async fn start_with_state(
        addr: SocketAddr,
        state: EmulatorState,
    ) -> std::io::Result<EmulatorHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, app, stop_rx));
        Ok(EmulatorHandle {
            addr,
            state,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }
}

/// A running emulator. Dropping it stops the server (without waiting).
#[derive(Debug)]
pub struct EmulatorHandle {
    addr: SocketAddr,
    state: EmulatorState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A URL to put in a route's settings (`http://ADDR/messages`).
    pub fn url(&self) -> String {
        format!("http://{}/messages", self.addr)
    }

    /// Its memory, to keep across a restart.
    pub fn state(&self) -> EmulatorState {
        self.state.clone()
    }

    /// A snapshot of everything received.
    pub fn received(&self) -> Received {
        self.state.received()
    }

    /// How many times `id` was accepted.
    pub fn count(&self, id: &str) -> u64 {
        self.state.count(id)
    }

    /// Replaces the faults in force; an error names the bad field.
    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        self.state.set_faults(faults)
    }

    /// Waits until at least `n` distinct message ids have been accepted.
    pub async fn wait_for(&self, n: usize) {
        self.state.wait_for(n).await
    }

    /// Stops accepting, closes every connection and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Lets a handler close its own connection without answering.
#[derive(Clone)]
struct ConnectionKill(Arc<Notify>);

async fn serve(listener: TcpListener, app: Router, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    // Out of descriptors or similar: give the system a moment, keep serving.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(serve_connection(stream, app.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Dropping the set aborts every open connection.
    drop(connections);
}

async fn serve_connection(stream: tokio::net::TcpStream, app: Router) {
    let kill = Arc::new(Notify::new());
    let handle = kill.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectionKill(handle.clone()));
        let mut app = app.clone();
        async move { tower_service::Service::call(&mut app, req).await }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        // Dropping the connection closes the socket with no answer written.
        _ = kill.notified() => {}
    }
}

fn router(state: EmulatorState) -> Router {
    Router::new()
        .route(
            "/_control/faults",
            get(get_faults).post(post_faults).delete(delete_faults),
        )
        .route(
            "/_control/received",
            get(get_received).delete(delete_received),
        )
        .route("/_control/received/{id}", get(get_received_one))
        .fallback(accept)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": detail.into() }))).into_response()
}

async fn accept(
    State(state): State<EmulatorState>,
    Extension(kill): Extension<ConnectionKill>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return problem(StatusCode::METHOD_NOT_ALLOWED, "messages are POSTed");
    }
    {
        let mut received = lock(&state.shared.received);
        received.requests += 1;
        received.request_bytes += body.len() as u64;
    }
    let fault = state.next_fault();
    if let Some(f) = &fault {
        if f.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
        }
    }
    let faulting = fault
        .as_ref()
        .filter(|f| f.drop_connection || f.status.is_some());
    let Some(f) = faulting else {
        return match check_message(&headers, &body) {
            Ok((msg, tx)) => {
                let (reference, duplicate) = state.record(msg, tx);
                (
                    StatusCode::OK,
                    Json(serde_json::json!({ "id": reference, "duplicate": duplicate })),
                )
                    .into_response()
            }
            Err(refusal) => refusal.into_response(),
        };
    };
    if f.record {
        match check_message(&headers, &body) {
            Ok((msg, tx)) => {
                state.record(msg, tx);
            }
            Err(refusal) => return refusal.into_response(),
        }
    }
    if f.drop_connection {
        kill.0.notify_one();
        // The connection is dropped under us; never answer.
        std::future::pending::<()>().await;
    }
    let status = f
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = match &f.body {
        Some(text) => (status, text.clone()).into_response(),
        None => problem(status, "fault injected by the emulator"),
    };
    if let Some(value) = f
        .retry_after
        .as_deref()
        .and_then(|v| axum::http::HeaderValue::from_str(v).ok())
    {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}

/// Why the emulator refuses a message: the status and text it answers.
struct Refusal(StatusCode, String);

impl Refusal {
    fn into_response(self) -> Response {
        problem(self.0, self.1)
    }
}

/// Checks a message as a strict target would; a refusal is the answer to send.
fn check_message(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(WireMessage, Option<String>), Refusal> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Refusal(
                StatusCode::BAD_REQUEST,
                "Idempotency-Key header is required".into(),
            )
        })?;
    let msg: WireMessage = serde_json::from_slice(body)
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("body: {e}")))?;
    if msg.id != key {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!(
                "Idempotency-Key {key} differs from the body's id {}",
                msg.id
            ),
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    for (i, a) in msg.attachments.iter().enumerate() {
        let bytes = b64.decode(&a.content).map_err(|e| {
            Refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("attachments/{i}/content: not base64: {e}"),
            )
        })?;
        if bytes.len() as u64 != a.size {
            return Err(Refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "attachments/{i}: {} bytes received, size says {}",
                    bytes.len(),
                    a.size
                ),
            ));
        }
        if sha256_hex(&bytes) != a.sha256 {
            return Err(Refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("attachments/{i}: content does not match its sha256"),
            ));
        }
    }
    for (i, s) in msg.signatures.iter().enumerate() {
        b64.decode(s).map_err(|e| {
            Refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("signatures/{i}: not base64: {e}"),
            )
        })?;
    }
    let tx = headers
        .get("x-qaqpa-transaction")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((msg, tx))
}

async fn get_faults(State(state): State<EmulatorState>) -> Json<Faults> {
    Json(state.faults())
}

/// Takes the faults as JSON whatever the Content-Type says (`curl -d` sends a form type).
async fn post_faults(State(state): State<EmulatorState>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("faults: {e}")),
    };
    match state.set_faults(faults) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => problem(StatusCode::BAD_REQUEST, e),
    }
}

async fn delete_faults(State(state): State<EmulatorState>) -> StatusCode {
    let _ = state.set_faults(Faults::default());
    StatusCode::NO_CONTENT
}

async fn get_received(State(state): State<EmulatorState>) -> Json<ReceivedSummary> {
    let received = lock(&state.shared.received);
    Json(ReceivedSummary {
        requests: received.requests,
        distinct: received.messages.len(),
        accepted: received.messages.values().map(|m| m.count).sum(),
        messages: received
            .messages
            .iter()
            .map(|(id, m)| ReceivedEntry {
                id: id.clone(),
                count: m.count,
                target_ref: m.target_ref.clone(),
            })
            .collect(),
    })
}

async fn get_received_one(State(state): State<EmulatorState>, Path(id): Path<String>) -> Response {
    match lock(&state.shared.received).messages.get(&id) {
        Some(m) => Json(m.clone()).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            format!("nothing received under id {id}"),
        ),
    }
}

async fn delete_received(State(state): State<EmulatorState>) -> StatusCode {
    state.clear_received();
    StatusCode::NO_CONTENT
}
