//! Identifiers: a message id is a UUIDv7 (time-ordered, so ids sort by submission time and make
//! good cursors); a client id names the EDMS that owns a message.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The stable id of a message, shown to the EDMS and sent to targets so they can drop duplicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub uuid::Uuid);

impl MessageId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for MessageId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

/// The EDMS (API client) a message belongs to. A client sees only its own messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub String);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_round_trip_through_text_and_sort_by_creation() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert!(a < b, "v7 ids are time-ordered");
        let parsed: MessageId = a.to_string().parse().expect("parses");
        assert_eq!(parsed, a);
        assert!("not-a-uuid".parse::<MessageId>().is_err());
    }
}
