//! The adapter contract. An adapter knows one target system: its formats, its validation rules,
//! how to read its answers and receipts. Everything else — storage, retries, concurrency, rate
//! limits, circuit breaking, webhooks, audit — is the gateway's, so an adapter stays small.
//!
//! An adapter must never keep state about a message between calls (the engine may run the next
//! attempt in another process) and must never persist personal data from synchronous calls.
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::failure::{Failure, Rejection};
use crate::ids::MessageId;
use crate::message::Outgoing;
use crate::meter::ExchangeMeter;
use crate::receipt::Receipt;

/// Reads attachment bytes from the gateway's blob store, checked against their SHA-256.
#[async_trait]
pub trait AttachmentSource: Send + Sync {
    /// The whole content of attachment `index` of the message being delivered.
    async fn read(&self, index: usize) -> Result<Bytes, Failure>;
}

/// What the engine hands an adapter for one attempt or call.
pub struct Cx<'a> {
    /// Absolute time after which the engine abandons the attempt.
    pub deadline: std::time::Instant,
    /// The route's settings for this adapter instance (`[routes.settings]` in routes.toml),
    /// already checked at start-up by [`Adapter::check_settings`].
    pub settings: &'a toml_value::Table,
    /// Attachment bytes of the message being delivered (empty for calls and pushes).
    pub attachments: &'a dyn AttachmentSource,
    /// Trace id that follows the message everywhere.
    pub transaction_id: &'a str,
    /// Where the adapter reports the bodies it really sent to the target and read back, on
    /// success and on failure alike (see [`ExchangeMeter`]); the engine journals them with the
    /// attempt, the API with a synchronous call. Exchanges of one attempt add up.
    pub meter: &'a ExchangeMeter,
}

impl Cx<'_> {
    /// Time left before the deadline (zero when already past).
    pub fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(std::time::Instant::now())
    }
}

/// Route settings are kept as an untyped table so this crate needs no TOML parser; adapters
/// deserialise their own typed settings from it.
pub mod toml_value {
    /// A settings table (JSON-shaped so it serialises to the store and the API unchanged).
    pub type Table = serde_json::Map<String, serde_json::Value>;
}

/// A successful delivery attempt. The sizes of the exchange are not here: the adapter reports
/// them to [`Cx::meter`], which a failed attempt has as well. (Stored or older JSON of this type
/// with `request_bytes` / `response_bytes` still reads: unknown fields are ignored.)
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivered {
    /// The target's reference for the message (its id, a registration number…), if any.
    pub target_ref: Option<String>,
    /// Receipts that came back with the answer itself.
    pub receipts: Vec<Receipt>,
    /// The target's own result code, for the exchange journal: `http:200`, `shep:SCSS001`.
    #[serde(default)]
    pub result_code: Option<String>,
}

/// A synchronous call (`POST /v1/calls/{service}`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Call {
    pub service: String,
    pub params: serde_json::Value,
}

/// What [`Adapter::admit`] checked and found good.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    pub valid_signatures: Vec<SignatureVerdict>,
}

/// A signature checked and found valid (at admission, or in a push), for the audit journal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureVerdict {
    /// Where it is: `/signatures/0` in a submitted message, `head` or `ws-security` in a push.
    pub field: String,
    /// Who signed, as the adapter summarises the certificate (name, masked IIN, BIN, role).
    pub signer: Option<String>,
}

impl SignatureVerdict {
    /// One line for the audit journal: where the signature is, then who signed.
    pub fn summary(&self) -> String {
        format!("{} {}", self.field, self.signer.as_deref().unwrap_or("-"))
    }
}

/// A synchronous call's answer, returned to the caller and never stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub body: serde_json::Value,
    /// The target's own result code where it gave one (`shep:SCSS001`, `http:200`), for the
    /// exchange journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_code: Option<String>,
}

/// Something a target pushed to us (a receipt or a document), as raw bytes with its transport
/// metadata; the adapter parses and verifies it.
#[derive(Clone, Debug)]
pub struct Inbound {
    pub content_type: String,
    pub body: Bytes,
    pub received_at: OffsetDateTime,
}

/// What a push turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum PushOutcome {
    /// A receipt about one of our messages.
    Receipt {
        message: MessageId,
        receipt: Receipt,
    },
    /// A new document for the inbox.
    Document {
        /// The target's id of the document (dedup key for repeated pushes).
        external_id: String,
        kind: String,
        from: String,
        document: serde_json::Value,
        attachments: Vec<(crate::message::AttachmentMeta, Bytes)>,
        /// The signatures the adapter checked and found valid (of the document, of the
        /// envelope); one that is not valid refuses the push with [`Failure::bad_signature`].
        /// The gateway journals both.
        signatures: Vec<SignatureVerdict>,
    },
    /// Understood, nothing to store (e.g. a ping).
    Nothing,
}

/// The answer to a push, in the target's own protocol (a ШЭП `SendMessageResponse` with
/// `SCSS001`, a SOAP fault…). The gateway sends it as it is.
#[derive(Clone, Debug, PartialEq)]
pub struct PushAnswer {
    /// HTTP status code.
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

impl PushAnswer {
    /// A JSON answer (the default for adapters without a protocol of their own).
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json".to_owned(),
            body: Bytes::from(body.to_string()),
        }
    }
}

/// One target system. Implementations live in `adapters/<name>`.
#[async_trait]
pub trait Adapter: Send + Sync {
    /// The adapter's name as routes.toml spells it (`http`, `esedo`, `shep`…).
    fn name(&self) -> &'static str;

    /// Checks a route's settings at start-up, naming the offending key.
    fn check_settings(&self, settings: &toml_value::Table) -> Result<(), Rejection> {
        let _ = settings;
        Ok(())
    }

    /// Checks a message before it is accepted (limits, required fields, signatures).
    /// Runs before the 202: a rejection reaches the EDMS as a 422 naming the field.
    fn validate(&self, msg: &Outgoing, settings: &toml_value::Table) -> Result<(), Rejection> {
        let _ = (msg, settings);
        Ok(())
    }

    /// Deeper checks before the 202 that need the attachments' bytes or the network: signatures
    /// and full certificate validation (revocation included). Runs after [`Adapter::validate`],
    /// with the attachments already in the blob store; a rejection is a 422 naming the field.
    /// The signatures found valid are listed in [`Admitted`]; a rejection at `/signatures/N`
    /// means signature N was checked and is not valid. The gateway journals both.
    async fn admit(&self, msg: &Outgoing, cx: &Cx<'_>) -> Result<Admitted, Rejection> {
        let _ = (msg, cx);
        Ok(Admitted::default())
    }

    /// One delivery attempt.
    async fn deliver(&self, msg: &Outgoing, cx: &Cx<'_>) -> Result<Delivered, Failure>;

    /// Whether [`Adapter::deliver`] and [`Adapter::call`] report every body they send and read
    /// to [`Cx::meter`]. Then an attempt or call that reported no request sent none (a
    /// connection that never opened, a call the adapter does not offer), and the exchange
    /// journal says so; an adapter that does not meter (the default) has its requests journalled
    /// by the size of what the gateway handed it (a call: the caller's body and the answer
    /// handed back).
    fn meters_exchanges(&self) -> bool {
        false
    }

    /// A synchronous service call; adapters without any answer `Permanent`.
    async fn call(&self, req: Call, cx: &Cx<'_>) -> Result<Answer, Failure> {
        let _ = cx;
        Err(Failure::permanent(
            "unsupported",
            format!(
                "adapter {} offers no synchronous service {}",
                self.name(),
                req.service
            ),
        ))
    }

    /// A push from the target (receipt or document).
    async fn on_push(&self, inbound: Inbound, cx: &Cx<'_>) -> Result<PushOutcome, Failure> {
        let _ = (inbound, cx);
        Err(Failure::permanent(
            "unsupported",
            format!("adapter {} accepts no pushes", self.name()),
        ))
    }

    /// What to answer the target after a push was handled: `result` is `Ok` once the outcome is
    /// durably stored, or why it was not (a `Retry` asks the target to push again later).
    fn answer_push(&self, inbound: &Inbound, result: &Result<(), Failure>) -> PushAnswer {
        let _ = inbound;
        match result {
            Ok(()) => PushAnswer::json(200, &serde_json::json!({"status": "accepted"})),
            Err(Failure::Retry { reason, .. }) => PushAnswer::json(
                503,
                &serde_json::json!({"status": "retry", "reason": reason}),
            ),
            Err(Failure::Permanent { code, reason }) => PushAnswer::json(
                422,
                &serde_json::json!({"status": "rejected", "code": code, "reason": reason}),
            ),
        }
    }

    /// Folds a message's receipts (in arrival order) into the target's card shown by
    /// `GET /v1/messages/{id}` (for ЕСЭДО: sent, delivered, registered number, executor,
    /// deadline, result). Must never move a stage backwards on a late or repeated receipt.
    /// `None` when the adapter has no card.
    fn card(&self, receipts: &[Receipt]) -> Option<serde_json::Value> {
        let _ = receipts;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_json_from_before_the_meter_still_reads() {
        // Written when `Delivered` carried the sizes itself.
        let old = r#"{"target_ref":"T-1","receipts":[],"result_code":"http:200",
                      "request_bytes":2048,"response_bytes":512}"#;
        let d: Delivered = serde_json::from_str(old).expect("reads");
        assert_eq!(
            d,
            Delivered {
                target_ref: Some("T-1".into()),
                receipts: Vec::new(),
                result_code: Some("http:200".into()),
            }
        );
    }
}
