//! Why something did not work, in the two forms the gateway acts on: a [`Rejection`] before a
//! message is accepted (the EDMS gets a 422 naming the field), and a [`Failure`] of one delivery
//! attempt, whose variant decides whether the engine tries again.
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An error with its causes, outermost first, joined by `: ` (`error sending request: client
/// error (Connect): tcp connect error: Connection refused`). Many libraries (reqwest, hyper,
/// tokio-postgres) say only the outermost part in their `Display` and leave the reason to
/// `source()`; a reason written for an operator needs the whole chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A message refused before it is stored: the EDMS must fix it. `field` is a JSON pointer into
/// the submitted body (`/document/docNo`, `/attachments/3/name`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Rejection {
    pub field: String,
    pub message: String,
}

impl Rejection {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One failed attempt. The adapter decides which it is from what the target said.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Worth trying again: transport error, timeout, HTTP 5xx, 429, ШЭП SCSE003.
    /// `after` is the target's own hint (Retry-After), which the engine honours when longer than
    /// its backoff.
    #[error("temporary failure: {reason}")]
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Will never work as sent: HTTP 4xx, ШЭП SCSE002, schema faults. `code` is the target's code
    /// (`http_422`, `SCSE002`); `reason` is the target's own message, passed on to the EDMS.
    #[error("permanent failure {code}: {reason}")]
    Permanent { code: String, reason: String },
}

impl Failure {
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    pub fn permanent(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Permanent {
            code: code.into(),
            reason: reason.into(),
        }
    }

    pub fn is_retry(&self) -> bool {
        matches!(self, Self::Retry { .. })
    }

    /// A signature that was checked (or looked for) and is not valid, with the target's `code`:
    /// permanent. `which` names the signature (`head`, `registration`). The gateway journals
    /// such a failure as a signature verification that failed.
    pub fn bad_signature(
        code: impl Into<String>,
        which: &str,
        reason: impl std::fmt::Display,
    ) -> Self {
        Self::permanent(code, format!("{BAD_SIGNATURE} ({which}): {reason}"))
    }

    /// The reason, when this failure is a signature found not valid ([`Failure::bad_signature`]).
    pub fn bad_signature_reason(&self) -> Option<&str> {
        match self {
            Self::Permanent { reason, .. } if reason.starts_with(BAD_SIGNATURE) => Some(reason),
            _ => None,
        }
    }
}

/// How [`Failure::bad_signature`] reasons begin.
const BAD_SIGNATURE: &str = "signature check failed";

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chain_names_every_cause_outermost_first() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "tcp connect error");
        let e = Outer(inner);
        assert_eq!(e.to_string(), "error sending request");
        assert_eq!(error_chain(&e), "error sending request: tcp connect error");
    }
}
