//! [`ExchangeMeter`]: how an adapter tells the gateway the sizes of what it really sent to a
//! target and read back, for the exchange journal (`request_bytes` / `response_bytes` of the
//! EXCHANGE event).
//!
//! The engine hands every attempt a fresh meter through [`crate::Cx::meter`] and reads it when
//! the attempt ends, whatever the ending: a success, a [`crate::Failure`], or the engine's own
//! timeout, which drops the attempt's future (what the meter got until then is what counts).
//! This is why the sizes travel beside the result rather than in it: a failed attempt has no
//! `Delivered` to carry them, yet its request may well have gone out and an error answer (a
//! 4xx/5xx body, a SOAP fault) come back.
//!
//! What to report:
//! - [`ExchangeMeter::sent`]: a request body, once it has gone on the wire (handed to the
//!   connection to write), even if no answer follows. Not a request that was only built, nor one
//!   whose connection never opened.
//! - [`ExchangeMeter::received`]: the bytes of an answer's body the adapter read, whatever the
//!   answer said (an error answer too), and only what was read: an answer cut short or refused
//!   for its size counts what had arrived. An answer with an empty body is reported as 0, so
//!   that "an answer came, with no body" differs from "no answer".
//!
//! Where one attempt makes several exchanges (ЕСЭДО: the ХЭД upload of the files, then the
//! SendMessage), each reports its own bodies and the meter holds their sums. Bodies only:
//! HTTP headers and framing are not counted.
//!
//! For an HTTP request, [`ExchangeMeter::body`] gives the body to send and a guard that reports
//! it once the connection took it, however the exchange ends.
//!
//! An adapter whose attempt may make several requests, to different services of the other
//! system, also itemises them: [`ExchangeMeter::begin`] opens a [`WireExchangeRecord`] for one
//! request (its service, when it left), whose own meter takes that request's bodies, and which
//! is closed with what came back ([`WireExchangeRecord::answered`], [`WireExchangeRecord::failed`]).
//! The gateway then journals one EXCHANGE event per request ([`ExchangeMeter::take_exchanges`])
//! instead of one for the attempt. A record dropped unclosed (the attempt's future dropped at
//! the engine's deadline) is kept as abandoned, without an answer.
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use time::OffsetDateTime;

/// Byte counters for one attempt or call, one per direction, and the requests itemised in it.
/// The counters are lock-free (atomics); the itemised requests take a lock once per request.
/// `Send + Sync`, so it can be shared by reference with whatever part of an adapter does the
/// I/O, on any thread.
#[derive(Debug, Default)]
pub struct ExchangeMeter {
    sent: AtomicU64,
    received: AtomicU64,
    sent_reported: AtomicBool,
    received_reported: AtomicBool,
    /// Each request itemised so far ([`ExchangeMeter::begin`]), in the order they ended.
    exchanges: Mutex<Vec<WireExchange>>,
}

/// One request to another system, itemised by the adapter that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireExchange {
    /// The service the request went to, as the other system names it (a ШЭП serviceId).
    pub service_id: String,
    /// When the request was about to leave.
    pub request_out: OffsetDateTime,
    /// When its answer had been read; `None` when no answer came.
    pub response_in: Option<OffsetDateTime>,
    /// When the exchange ended, with an answer or without one.
    pub ended: OffsetDateTime,
    /// The request body on the wire; `None` when it never went out (no connection).
    pub sent: Option<u64>,
    /// The answer's body as far as it was read; `None` when no answer came.
    pub received: Option<u64>,
    pub result: WireResult,
}

/// What a request to another system came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireResult {
    /// A ШЭП status or error code (`SCSS001`, `SCSE002`, …).
    Shep(String),
    /// An HTTP status, where the answer carried no code of the protocol.
    Http(u16),
    /// No usable answer: connection refused, timeout, TLS failure, an answer refused (its
    /// signature, its size), or the exchange abandoned at the deadline.
    Transport(String),
}

impl ExchangeMeter {
    /// A meter to which nothing was reported yet.
    pub const fn new() -> Self {
        Self {
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            sent_reported: AtomicBool::new(false),
            received_reported: AtomicBool::new(false),
            exchanges: Mutex::new(Vec::new()),
        }
    }

    /// Opens the record of one request to `service_id`, leaving now. Its bodies go to the
    /// record's own [`WireExchangeRecord::meter`]; they are added to this meter's sums when the
    /// record closes or is dropped.
    pub fn begin(&self, service_id: impl Into<String>) -> WireExchangeRecord<'_> {
        WireExchangeRecord {
            parent: self,
            own: ExchangeMeter::new(),
            service_id: service_id.into(),
            request_out: OffsetDateTime::now_utc(),
            closed: false,
        }
    }

    /// The requests itemised so far, in the order they ended; the meter keeps none of them.
    pub fn take_exchanges(&self) -> Vec<WireExchange> {
        std::mem::take(&mut *self.exchanges.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Adds `bytes` of request body that went on the wire to the target (several exchanges of
    /// one attempt add up). `sent(0)` still marks the direction as reported.
    pub fn sent(&self, bytes: u64) {
        self.sent.fetch_add(bytes, Ordering::Relaxed);
        self.sent_reported.store(true, Ordering::Release);
    }

    /// Adds `bytes` of answer body read from the target, an error answer's included (several
    /// exchanges, or several chunks of one answer, add up). `received(0)` marks an answer with
    /// an empty body.
    pub fn received(&self, bytes: u64) {
        self.received.fetch_add(bytes, Ordering::Relaxed);
        self.received_reported.store(true, Ordering::Release);
    }

    /// `(sent, received)`: the sums so far, `None` for a direction the adapter never reported
    /// (the engine then falls back to its own figure for the request, and to none for the
    /// answer).
    pub fn sizes(&self) -> (Option<u64>, Option<u64>) {
        let read = |reported: &AtomicBool, bytes: &AtomicU64| {
            reported
                .load(Ordering::Acquire)
                .then(|| bytes.load(Ordering::Relaxed))
        };
        (
            read(&self.sent_reported, &self.sent),
            read(&self.received_reported, &self.received),
        )
    }
}

impl ExchangeMeter {
    /// `data` as an HTTP request body (for `reqwest::Body::wrap`), and a guard that reports it
    /// to this meter as sent when dropped, if the connection took the body to write by then:
    /// keep the guard until the exchange ends. A request whose connection never opened reports
    /// nothing; one that timed out waiting for its answer reports its body.
    pub fn body(&self, data: Bytes) -> (MeteredBody, SentOnDrop<'_>) {
        let taken = Arc::new(AtomicBool::new(false));
        let bytes = data.len() as u64;
        (
            MeteredBody {
                data: Some(data),
                taken: taken.clone(),
            },
            SentOnDrop {
                meter: self,
                taken,
                bytes,
            },
        )
    }
}

/// One request being made ([`ExchangeMeter::begin`]). Close it with what came back; dropped
/// unclosed, it is kept as abandoned before its answer.
pub struct WireExchangeRecord<'a> {
    parent: &'a ExchangeMeter,
    own: ExchangeMeter,
    service_id: String,
    request_out: OffsetDateTime,
    closed: bool,
}

impl WireExchangeRecord<'_> {
    /// Where this request's bodies are reported.
    pub fn meter(&self) -> &ExchangeMeter {
        &self.own
    }

    /// An answer came and was read: `result` is what it said.
    pub fn answered(mut self, result: WireResult) {
        self.close(true, result);
    }

    /// No usable answer: `reason` says why (refused connection, timeout, an answer refused).
    pub fn failed(mut self, reason: impl Into<String>) {
        self.close(false, WireResult::Transport(reason.into()));
    }

    /// The request never left (it could not be built or signed): nothing to itemise.
    pub fn not_sent(mut self) {
        self.closed = true;
        self.add_sizes();
    }

    fn add_sizes(&self) {
        let (sent, received) = self.own.sizes();
        if let Some(n) = sent {
            self.parent.sent(n);
        }
        if let Some(n) = received {
            self.parent.received(n);
        }
    }

    fn close(&mut self, answered: bool, result: WireResult) {
        let ended = OffsetDateTime::now_utc();
        self.closed = true;
        self.add_sizes();
        let (sent, received) = self.own.sizes();
        let exchange = WireExchange {
            service_id: std::mem::take(&mut self.service_id),
            request_out: self.request_out,
            response_in: answered.then_some(ended),
            ended,
            sent,
            received,
            result,
        };
        self.parent
            .exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(exchange);
    }
}

impl Drop for WireExchangeRecord<'_> {
    fn drop(&mut self) {
        if !self.closed {
            self.close(
                false,
                WireResult::Transport("abandoned before an answer (the deadline passed)".into()),
            );
        }
    }
}

/// A request body in one piece that notes when the connection takes it ([`ExchangeMeter::body`]).
pub struct MeteredBody {
    data: Option<Bytes>,
    taken: Arc<AtomicBool>,
}

impl http_body::Body for MeteredBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let data = self.data.take();
        if data.is_some() {
            self.taken.store(true, Ordering::Release);
        }
        Poll::Ready(data.map(|d| Ok(http_body::Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    // Exact, so the request carries a Content-Length as a plain body would.
    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// Reports its [`MeteredBody`] to the meter when dropped, if the connection took the body.
pub struct SentOnDrop<'a> {
    meter: &'a ExchangeMeter,
    taken: Arc<AtomicBool>,
    bytes: u64,
}

impl Drop for SentOnDrop<'_> {
    fn drop(&mut self) {
        if self.taken.load(Ordering::Acquire) {
            self.meter.sent(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `body` once, as a connection does when it writes it.
    fn take(body: &mut MeteredBody) -> Option<Bytes> {
        use http_body::Body as _;
        let waker = std::task::Waker::noop();
        match Pin::new(body).poll_frame(&mut Context::from_waker(waker)) {
            Poll::Ready(Some(Ok(frame))) => frame.into_data().ok(),
            _ => None,
        }
    }

    #[test]
    fn a_body_is_reported_once_taken_and_only_when_its_guard_goes() {
        use http_body::Body as _;
        let m = ExchangeMeter::new();
        let (mut body, guard) = m.body(Bytes::from_static(b"twelve bytes"));
        assert_eq!(body.size_hint().exact(), Some(12));
        assert_eq!(take(&mut body).as_deref(), Some(&b"twelve bytes"[..]));
        assert!(body.is_end_stream());
        assert_eq!(take(&mut body), None);
        assert_eq!(m.sizes(), (None, None), "reported when the exchange ends");
        drop(guard);
        assert_eq!(m.sizes(), (Some(12), None));
    }

    #[test]
    fn a_body_the_connection_never_took_is_not_reported() {
        let m = ExchangeMeter::new();
        let (body, guard) = m.body(Bytes::from_static(b"never sent"));
        drop(body);
        drop(guard);
        assert_eq!(m.sizes(), (None, None));
    }

    #[test]
    fn a_direction_never_reported_reads_as_none() {
        let m = ExchangeMeter::new();
        assert_eq!(m.sizes(), (None, None));
        m.sent(120);
        assert_eq!(m.sizes(), (Some(120), None));
    }

    #[test]
    fn an_empty_answer_reads_as_zero_not_none() {
        let m = ExchangeMeter::new();
        m.received(0);
        assert_eq!(m.sizes(), (None, Some(0)));
    }

    #[test]
    fn several_exchanges_of_one_attempt_add_up() {
        let m = ExchangeMeter::new();
        m.sent(1000);
        m.received(300);
        m.sent(500);
        m.received(0);
        m.received(20);
        assert_eq!(m.sizes(), (Some(1500), Some(320)));
    }

    #[test]
    fn reports_from_many_threads_all_count() {
        let m = ExchangeMeter::new();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        m.sent(3);
                        m.received(1);
                    }
                });
            }
        });
        assert_eq!(m.sizes(), (Some(24_000), Some(8_000)));
    }

    #[test]
    fn each_request_is_itemised_with_its_own_sizes_and_the_sums_still_add_up() {
        let m = ExchangeMeter::new();
        let upload = m.begin("HED_SERVICE");
        upload.meter().sent(4000);
        upload.meter().received(300);
        upload.answered(WireResult::Shep("SCSS001".into()));
        let send = m.begin("ESEDO_SERVICE");
        send.meter().sent(2500);
        send.meter().received(0);
        send.answered(WireResult::Http(500));
        m.begin("NSI_SERVICE").failed("connection refused");
        let signing_failed = m.begin("ESEDO_SERVICE");
        signing_failed.not_sent();
        assert_eq!(m.sizes(), (Some(6500), Some(300)));
        let items = m.take_exchanges();
        let summary: Vec<_> = items
            .iter()
            .map(|x| (x.service_id.as_str(), x.sent, x.received, x.result.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "HED_SERVICE",
                    Some(4000),
                    Some(300),
                    WireResult::Shep("SCSS001".into())
                ),
                ("ESEDO_SERVICE", Some(2500), Some(0), WireResult::Http(500)),
                (
                    "NSI_SERVICE",
                    None,
                    None,
                    WireResult::Transport("connection refused".into())
                ),
            ]
        );
        assert!(items[0].response_in.is_some() && items[2].response_in.is_none());
        assert!(items
            .iter()
            .all(|x| x.response_in.is_none_or(|t| t >= x.request_out)));
        assert!(m.take_exchanges().is_empty(), "taken once");
    }

    #[test]
    fn a_request_dropped_before_its_answer_is_kept_as_abandoned_with_what_went_out() {
        let m = ExchangeMeter::new();
        {
            let pending = m.begin("ESEDO_SERVICE");
            pending.meter().sent(900);
            // The attempt's future is dropped here, at the engine's deadline.
        }
        let items = m.take_exchanges();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].sent, Some(900));
        assert_eq!((items[0].received, items[0].response_in), (None, None));
        assert!(
            matches!(&items[0].result, WireResult::Transport(r) if r.starts_with("abandoned")),
            "{items:?}"
        );
        assert_eq!(m.sizes(), (Some(900), None));
    }

    #[test]
    fn the_meter_is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<ExchangeMeter>();
    }
}
