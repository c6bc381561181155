//! The retry decision for ШЭП exchanges, made from what the other side said: the envelope's
//! status code, a SOAP Fault and its ErrorInfo, the HTTP status, or a transport failure.
//! Every rule lives here, in one place; nothing here does I/O or guesses past these rules.
//!
//! | what came back                                  | outcome                          |
//! |-------------------------------------------------|----------------------------------|
//! | status `SCSS*`                                  | success                          |
//! | status `SCSE002` (error in the business data)   | permanent, with the target's text|
//! | status `SCSE003` (unhandled exception)          | retry                            |
//! | any other status code                           | permanent (unknown to us)        |
//! | Fault whose ErrorInfo.errorCode is `SCSE002`    | permanent                        |
//! | Fault whose ErrorInfo.errorCode is `SCSE003`    | retry                            |
//! | Fault `soap:Client`, `VersionMismatch`, `MustUnderstand` | permanent (the message is wrong) |
//! | Fault `soap:Server` or a non-standard faultcode | retry (the receiver failed)      |
//! | no readable envelope and HTTP 5xx, 408 or 429   | retry (honouring Retry-After)    |
//! | no readable envelope and any other 4xx or 3xx   | permanent                        |
//! | no readable envelope and HTTP 2xx               | retry (a proxy page, a cut body) |
//! | timeout, refused or dropped connection          | retry                            |
//! | response signature invalid                      | retry (the answer cannot be trusted) |

use std::time::Duration;

use crate::envelope::{Fault, FaultCode};
use crate::sync_channel::{SyncReply, SyncResponse};
use crate::types::Status;
use crate::xml::XmlLimits;

/// Why an exchange is worth another attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryReason {
    /// No connection could be made: nothing reached the target.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The exchange did not finish within the timeout.
    #[error("no answer within the timeout")]
    Timeout,
    /// The connection failed after the request was (perhaps) sent.
    #[error("transport failure: {0}")]
    Transport(String),
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    /// `SCSE003` in the status or in a fault's ErrorInfo.
    #[error("unhandled exception at the target ({code}): {message}")]
    UnhandledException { code: String, message: String },
    /// A `soap:Server` (or non-standard) fault.
    #[error("server fault {code}: {message}")]
    ServerFault { code: String, message: String },
    /// The body was not a readable answer.
    #[error("unreadable response: {0}")]
    UnreadableResponse(String),
    /// The answer's WS-Security signature did not verify.
    #[error("response signature rejected: {0}")]
    BadSignature(String),
}

/// The outcome of one exchange, as the delivery engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShepOutcome<T = SyncResponse> {
    Success {
        response: T,
    },
    /// Do not resend as it is; `message` is the target's own words where it gave any.
    Permanent {
        code: String,
        message: String,
    },
    Retry {
        reason: RetryReason,
        after: Option<Duration>,
    },
}

/// How a status code alone classifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    Permanent,
    Retry,
}

/// `SCSS*` success, `SCSE003` retry, everything else (SCSE002 and unknown codes) permanent.
pub fn classify_status(status: &Status) -> StatusClass {
    let code = status.code.trim();
    if code.starts_with("SCSS") {
        StatusClass::Success
    } else if code == "SCSE003" {
        StatusClass::Retry
    } else {
        StatusClass::Permanent
    }
}

/// A SyncChannel response by its status code.
pub fn classify_response(response: SyncResponse) -> ShepOutcome {
    let status = &response.info.status;
    match classify_status(status) {
        StatusClass::Success => ShepOutcome::Success { response },
        StatusClass::Retry => ShepOutcome::Retry {
            reason: RetryReason::UnhandledException {
                code: status.code.clone(),
                message: status.message.clone(),
            },
            after: None,
        },
        StatusClass::Permanent => ShepOutcome::Permanent {
            code: status.code.clone(),
            message: status.message.clone(),
        },
    }
}

/// A SOAP Fault: ErrorInfo's code first, then the faultcode.
pub fn classify_fault<T>(fault: &Fault, retry_after: Option<Duration>) -> ShepOutcome<T> {
    let (code, message) = match &fault.error_info {
        Some(info) => (info.error_code.clone(), info.error_message.clone()),
        None => (fault.code.to_string(), fault.message.clone()),
    };
    let message = if message.is_empty() {
        fault.message.clone()
    } else {
        message
    };
    match fault.error_info.as_ref().map(|i| i.error_code.trim()) {
        Some("SCSE002") => return ShepOutcome::Permanent { code, message },
        Some("SCSE003") => {
            return ShepOutcome::Retry {
                reason: RetryReason::UnhandledException { code, message },
                after: retry_after,
            }
        }
        _ => {}
    }
    match fault.code {
        FaultCode::Client | FaultCode::VersionMismatch | FaultCode::MustUnderstand => {
            ShepOutcome::Permanent { code, message }
        }
        FaultCode::Server | FaultCode::Other(_) => ShepOutcome::Retry {
            reason: RetryReason::ServerFault { code, message },
            after: retry_after,
        },
    }
}

/// What an HTTP status says when the body is not a readable envelope.
pub fn classify_http_status<T>(
    status: u16,
    retry_after: Option<Duration>,
    detail: &str,
) -> ShepOutcome<T> {
    match status {
        500..=599 | 408 | 429 => ShepOutcome::Retry {
            reason: RetryReason::HttpStatus(status),
            after: retry_after,
        },
        200..=299 => ShepOutcome::Retry {
            reason: RetryReason::UnreadableResponse(detail.to_owned()),
            after: retry_after,
        },
        _ => ShepOutcome::Permanent {
            code: format!("HTTP_{status}"),
            message: detail.to_owned(),
        },
    }
}

/// Classifies a SyncChannel reply from its HTTP status, Retry-After and body.
pub fn classify_reply(
    http_status: u16,
    retry_after: Option<Duration>,
    body: &str,
    limits: &XmlLimits,
) -> ShepOutcome {
    match SyncReply::from_envelope(body, limits) {
        Ok(SyncReply::Response(response)) => classify_response(response),
        Ok(SyncReply::Fault(fault)) => classify_fault(&fault, retry_after),
        Err(e) => classify_http_status(http_status, retry_after, &shorten(&e.to_string())),
    }
}

/// At most 300 characters of `text`, for messages that travel on.
pub(crate) fn shorten(text: &str) -> String {
    if text.chars().count() <= 300 {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(300).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ErrorInfo;

    fn response(code: &str, message: &str) -> String {
        SyncResponse::new(Status::new(code, message), None)
            .to_envelope()
            .expect("builds")
    }

    #[test]
    fn scss_codes_are_success() {
        let out = classify_reply(200, None, &response("SCSS001", "ok"), &XmlLimits::default());
        assert!(matches!(out, ShepOutcome::Success { .. }));
    }

    #[test]
    fn scse002_is_permanent_with_the_targets_message() {
        let out = classify_reply(
            200,
            None,
            &response("SCSE002", "БИН не найден"),
            &XmlLimits::default(),
        );
        assert_eq!(
            out,
            ShepOutcome::Permanent {
                code: "SCSE002".into(),
                message: "БИН не найден".into()
            }
        );
    }

    #[test]
    fn scse003_is_retried() {
        let out = classify_reply(
            200,
            None,
            &response("SCSE003", "NPE"),
            &XmlLimits::default(),
        );
        assert!(matches!(
            out,
            ShepOutcome::Retry {
                reason: RetryReason::UnhandledException { .. },
                ..
            }
        ));
    }

    #[test]
    fn unknown_status_code_is_permanent() {
        let out = classify_reply(200, None, &response("XYZ42", "?"), &XmlLimits::default());
        assert!(matches!(out, ShepOutcome::Permanent { code, .. } if code == "XYZ42"));
    }

    #[test]
    fn client_fault_is_permanent_and_server_fault_is_retried() {
        let client = Fault::new(
            FaultCode::Client,
            "schema",
            Some(ErrorInfo::new("E1", "bad field")),
        );
        let server = Fault::new(FaultCode::Server, "down", None);
        let limits = XmlLimits::default();
        let c = classify_reply(
            500,
            None,
            &crate::sync_channel::fault_envelope(&client),
            &limits,
        );
        assert_eq!(
            c,
            ShepOutcome::Permanent {
                code: "E1".into(),
                message: "bad field".into()
            }
        );
        let s = classify_reply(
            500,
            None,
            &crate::sync_channel::fault_envelope(&server),
            &limits,
        );
        assert!(matches!(
            s,
            ShepOutcome::Retry {
                reason: RetryReason::ServerFault { .. },
                ..
            }
        ));
    }

    #[test]
    fn error_info_code_overrides_faultcode() {
        let f = Fault::new(
            FaultCode::Server,
            "x",
            Some(ErrorInfo::new("SCSE002", "нет данных")),
        );
        let out = classify_reply(
            500,
            None,
            &crate::sync_channel::fault_envelope(&f),
            &XmlLimits::default(),
        );
        assert!(matches!(out, ShepOutcome::Permanent { code, .. } if code == "SCSE002"));
        let f = Fault::new(
            FaultCode::Client,
            "x",
            Some(ErrorInfo::new("SCSE003", "boom")),
        );
        let out = classify_reply(
            500,
            None,
            &crate::sync_channel::fault_envelope(&f),
            &XmlLimits::default(),
        );
        assert!(matches!(out, ShepOutcome::Retry { .. }));
    }

    #[test]
    fn http_statuses_without_envelope() {
        let l = XmlLimits::default();
        assert!(matches!(
            classify_reply(503, None, "<html/>", &l),
            ShepOutcome::Retry {
                reason: RetryReason::HttpStatus(503),
                ..
            }
        ));
        assert!(matches!(
            classify_reply(429, None, "", &l),
            ShepOutcome::Retry { .. }
        ));
        assert!(
            matches!(classify_reply(404, None, "not found", &l), ShepOutcome::Permanent { code, .. } if code == "HTTP_404")
        );
        assert!(matches!(
            classify_reply(200, None, "garbage", &l),
            ShepOutcome::Retry {
                reason: RetryReason::UnreadableResponse(_),
                ..
            }
        ));
    }
}
