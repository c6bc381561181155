//! [`HttpAdapter`]: one delivery attempt is one `POST` of the message as JSON to the route's URL.
//!
//! Retrying a POST is safe here only because the target deduplicates on the `Idempotency-Key`
//! header, which carries our stable message id: a timeout or a lost answer may mean the target
//! already has the message, and the next attempt sends the same key. Connect errors are safe to
//! retry in any case (nothing was sent). The adapter must never follow redirects (a 301/302
//! would silently turn the POST into a GET) and never read an unbounded answer.
//!
//! Every attempt reports to [`Cx::meter`] the request body once the connection has taken it
//! to write (so not after a connect error, but after a timeout waiting for the answer), and the
//! answer's body as far as it was read, whatever its status.
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use qaqpa_core::adapter::toml_value::Table;
use qaqpa_core::{error_chain, Adapter, Cx, Delivered, Failure, Outgoing, Rejection};
use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use time::format_description::well_known::Rfc3339;

use crate::settings::HttpSettings;
use crate::wire::{WireAttachment, WireMessage};

/// The adapter's name in routes.toml.
pub const NAME: &str = "http";

/// Longest reason passed on from a target's answer.
pub const MAX_REASON_BYTES: usize = 1024;

/// Most of an answer's body the adapter reads (enough for an id or an error text).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The adapter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpAdapterError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The generic HTTP/JSON target. Holds a connection pool and nothing about any message.
#[derive(Clone, Debug)]
pub struct HttpAdapter {
    client: reqwest::Client,
}

impl HttpAdapter {
    /// An adapter with its own connection pool (rustls, no redirects, no proxy).
    pub fn new() -> Result<Self, HttpAdapterError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("qaqpa/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { client })
    }

    /// An adapter on a client built elsewhere (it should not follow redirects).
    pub fn with_client(client: reqwest::Client) -> Self {
        Self { client }
    }

    async fn wire_message(&self, msg: &Outgoing, cx: &Cx<'_>) -> Result<WireMessage, Failure> {
        let mut attachments = Vec::with_capacity(msg.attachments.len());
        for (index, meta) in msg.attachments.iter().enumerate() {
            let bytes = cx.attachments.read(index).await?;
            attachments.push(WireAttachment {
                name: meta.name.clone(),
                content_type: meta.content_type.clone(),
                size: meta.size,
                sha256: meta.sha256.clone(),
                content: B64.encode(&bytes),
            });
        }
        let created_at = msg.created_at.format(&Rfc3339).map_err(|e| {
            Failure::permanent("bad_message", format!("created_at cannot be written: {e}"))
        })?;
        Ok(WireMessage {
            id: msg.id.to_string(),
            kind: msg.kind.clone(),
            to: msg.to.clone(),
            client: msg.client.to_string(),
            document: msg.document.clone(),
            attachments,
            signatures: msg.signatures.iter().map(|s| B64.encode(s)).collect(),
            created_at,
            attempt: msg.attempt,
        })
    }
}

#[async_trait]
impl Adapter for HttpAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn meters_exchanges(&self) -> bool {
        true
    }

    fn check_settings(&self, settings: &Table) -> Result<(), Rejection> {
        HttpSettings::from_table(settings).map(|_| ())
    }

    fn validate(&self, msg: &Outgoing, _settings: &Table) -> Result<(), Rejection> {
        if msg.to.trim().is_empty() {
            return Err(Rejection::new("/to", "a recipient is required"));
        }
        if !msg.document.is_object() {
            return Err(Rejection::new(
                "/document",
                "the http target takes a JSON object as the document",
            ));
        }
        for (i, a) in msg.attachments.iter().enumerate() {
            if a.name.trim().is_empty() {
                return Err(Rejection::new(
                    format!("/attachments/{i}/name"),
                    "an attachment needs a file name",
                ));
            }
        }
        Ok(())
    }

    async fn deliver(&self, msg: &Outgoing, cx: &Cx<'_>) -> Result<Delivered, Failure> {
        let settings = HttpSettings::from_table(cx.settings)
            .map_err(|r| Failure::permanent("bad_settings", r.to_string()))?;
        let headers = settings
            .header_map()
            .map_err(|r| Failure::permanent("bad_settings", r.to_string()))?;
        let wire = self.wire_message(msg, cx).await?;
        let body = serde_json::to_vec(&wire).map_err(|e| {
            Failure::permanent(
                "bad_message",
                format!("message cannot be written as JSON: {e}"),
            )
        })?;

        let remaining = cx.remaining();
        if remaining.is_zero() {
            return Err(Failure::retry(
                "attempt deadline passed before sending (nothing sent)",
            ));
        }
        let timeout = settings.timeout().min(remaining);
        // The body is reported to the meter once it went out, however this attempt ends (the
        // engine's timeout drops this future, and the guard with it).
        let (body, _sent) = cx.meter.body(Bytes::from(body));
        let sent = self
            .client
            .post(&settings.url)
            .headers(headers)
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", wire.id.as_str())
            .header("X-Qaqpa-Transaction", cx.transaction_id)
            .timeout(timeout)
            .body(reqwest::Body::wrap(body))
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            // Without the URL: a route's URL may carry credentials, and reasons reach the EDMS.
            Err(e) => return Err(transport_failure(&e.without_url(), timeout)),
        };
        let status = response.status();
        let answer_headers = response.headers().clone();
        // An answer came: its body is measured as it is read (an empty one is 0 bytes).
        cx.meter.received(0);
        // The status decides; a failure reading the body only loses the detail in it.
        let mut answer = Vec::new();
        while answer.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    cx.meter.received(chunk.len() as u64);
                    answer.extend_from_slice(&chunk);
                }
                Ok(None) | Err(_) => break,
            }
        }
        classify(status, &answer_headers, &answer, SystemTime::now())
    }
}

/// What a transport error means: always worth another attempt.
fn transport_failure(e: &reqwest::Error, timeout: Duration) -> Failure {
    let detail = error_chain(e);
    if e.is_timeout() {
        Failure::retry(format!(
            "no answer within {} ms (the target dedups on Idempotency-Key): {detail}",
            timeout.as_millis()
        ))
    } else if e.is_connect() {
        Failure::retry(format!("cannot connect (nothing sent): {detail}"))
    } else {
        Failure::retry(format!(
            "transport error (the target dedups on Idempotency-Key): {detail}"
        ))
    }
}

/// Turns the target's answer into the attempt's outcome.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<Delivered, Failure> {
    if status.is_success() {
        return Ok(Delivered {
            target_ref: target_ref(headers, body),
            receipts: Vec::new(),
            result_code: Some(format!("http:{}", status.as_u16())),
        });
    }
    let text = body_text(status, body);
    let retryable = status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error();
    if retryable {
        Err(Failure::Retry {
            reason: format!("HTTP {}: {text}", status.as_u16()),
            after: retry_after(headers, now),
        })
    } else {
        let mut reason = text;
        if status.is_redirection() {
            if let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) {
                reason = format!("redirected to {location} (redirects are not followed): {reason}");
            }
        }
        Err(Failure::permanent(
            format!("http_{}", status.as_u16()),
            truncate(reason, MAX_REASON_BYTES),
        ))
    }
}

/// The target's reference: a JSON `id` (string or number) in the answer, else `Location`.
fn target_ref(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let from_body = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| match v.get("id") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        });
    from_body.or_else(|| {
        headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

/// The answer's text, truncated, or the status's name when the body is empty.
fn body_text(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned()
    } else {
        truncate(text.to_owned(), MAX_REASON_BYTES)
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).expect("valid"));
        }
        map
    }

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).expect("valid status")
    }

    #[test]
    fn success_takes_the_json_id_then_the_location() {
        let d = classify(
            status(200),
            &headers(&[]),
            br#"{"id": "T-42"}"#,
            SystemTime::now(),
        )
        .expect("delivered");
        assert_eq!(d.target_ref.as_deref(), Some("T-42"));
        let d = classify(
            status(201),
            &headers(&[]),
            br#"{"id": 42}"#,
            SystemTime::now(),
        )
        .expect("delivered");
        assert_eq!(d.target_ref.as_deref(), Some("42"));
        let d = classify(
            status(201),
            &headers(&[("location", "/docs/7")]),
            b"created",
            SystemTime::now(),
        )
        .expect("delivered");
        assert_eq!(d.target_ref.as_deref(), Some("/docs/7"));
        let d = classify(status(204), &headers(&[]), b"", SystemTime::now()).expect("delivered");
        assert_eq!(d.target_ref, None);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let f = classify(status(429), &headers(&[("retry-after", "120")]), b"", now)
            .expect_err("retry");
        assert_eq!(
            f,
            Failure::Retry {
                reason: "HTTP 429: Too Many Requests".into(),
                after: Some(Duration::from_secs(120))
            }
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        let f = classify(status(503), &headers(&[("retry-after", &date)]), b"", now)
            .expect_err("retry");
        assert!(
            matches!(f, Failure::Retry { after: Some(d), .. } if d == Duration::from_secs(90)),
            "{f:?}"
        );
        let f = classify(status(503), &headers(&[("retry-after", "soon")]), b"", now)
            .expect_err("retry");
        assert!(matches!(f, Failure::Retry { after: None, .. }), "{f:?}");
    }

    #[test]
    fn long_reasons_are_cut_at_one_kib_on_a_character_boundary() {
        let body = "ж".repeat(1000); // 2,000 bytes
        let f = classify(
            status(422),
            &headers(&[]),
            body.as_bytes(),
            SystemTime::now(),
        )
        .expect_err("permanent");
        match f {
            Failure::Permanent { code, reason } => {
                assert_eq!(code, "http_422");
                assert_eq!(reason.len(), 1024);
                assert!(reason.chars().all(|c| c == 'ж'));
            }
            other => panic!("expected permanent, got {other:?}"),
        }
    }

    #[test]
    fn redirects_are_permanent_and_say_where_to() {
        let f = classify(
            status(301),
            &headers(&[("location", "https://new.example/in")]),
            b"",
            SystemTime::now(),
        )
        .expect_err("permanent");
        assert!(
            matches!(&f, Failure::Permanent { code, reason } if code == "http_301" && reason.contains("https://new.example/in")),
            "{f:?}"
        );
    }
}
