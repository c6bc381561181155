//! An outgoing message as the engine hands it to an adapter, and the lifecycle it moves through.
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{ClientId, MessageId};

/// What kind of document a message is (`http.post`, `esedo.letter`, …); routes match on it.
pub type Kind = String;

/// Where a message is in its life. Terminal states never change again, except that an operator
/// may move a dead-lettered message back to `Queued`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Durably stored and waiting for its (next) delivery attempt.
    Queued,
    /// Claimed by a delivery worker under a lease.
    Delivering,
    /// The target accepted it. Receipts may still follow.
    Delivered,
    /// The target refused it for good (business error); the reason is the target's.
    Failed,
    /// The route's retry budget (attempts or age) ran out; an operator can retry it.
    DeadLetter,
    /// Cancelled by the client before delivery.
    Cancelled,
}

impl MessageStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [MessageStatus; 6] = [
        Self::Queued,
        Self::Delivering,
        Self::Delivered,
        Self::Failed,
        Self::DeadLetter,
        Self::Cancelled,
    ];

    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Delivering => "delivering",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::DeadLetter => "dead_letter",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True when no further delivery attempt will happen on its own.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Failed | Self::DeadLetter | Self::Cancelled
        )
    }
}

/// One attachment's description; its bytes live in the blob store and are read through
/// [`crate::AttachmentSource`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentMeta {
    /// File name as the EDMS gave it.
    pub name: String,
    /// MIME type as the EDMS gave it.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

/// A message as an adapter sees it: everything the EDMS submitted except attachment bytes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outgoing {
    pub id: MessageId,
    pub client: ClientId,
    pub kind: Kind,
    /// Recipient id, meaning depends on the kind (an ЕСЭДО participant id, a BIN, a route key).
    pub to: String,
    /// The adapter-specific document card, as submitted.
    pub document: serde_json::Value,
    pub attachments: Vec<AttachmentMeta>,
    /// Detached or attached CMS signatures (DER), as submitted.
    pub signatures: Vec<Vec<u8>>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Attempt number this delivery is (1 for the first).
    pub attempt: u32,
    /// Trace id that follows the message through every step (audit, logs, webhooks).
    pub transaction_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_terminality_is_right() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).expect("serialises");
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert!(MessageStatus::parse("sent").is_none());
        assert!(!MessageStatus::Queued.is_terminal());
        assert!(!MessageStatus::Delivering.is_terminal());
        assert!(MessageStatus::DeadLetter.is_terminal());
    }
}
