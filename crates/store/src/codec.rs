//! Encodings shared by both back ends: times as microseconds, signatures and attachment lists as
//! JSON text, hex. It holds no state and never touches a database itself.
use std::time::Duration;

use qaqpa_core::{AttachmentMeta, MessageStatus};
use time::OffsetDateTime;

use crate::contract::StoreError;

/// Page size used when a caller asks for `limit: 0`.
pub const DEFAULT_PAGE: u32 = 100;
/// Largest page either back end returns.
pub const MAX_PAGE: u32 = 1000;

/// The page size actually used for a requested `limit`.
pub fn page_size(limit: u32) -> u32 {
    if limit == 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    }
}

/// Microseconds since the Unix epoch (both back ends keep times to the microsecond).
pub fn to_micros(t: OffsetDateTime) -> i64 {
    let nanos = t.unix_timestamp_nanos();
    i64::try_from(nanos.div_euclid(1000)).unwrap_or(i64::MAX)
}

/// The inverse of [`to_micros`], in UTC.
pub fn from_micros(us: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|e| StoreError::Other(format!("stored time {us} out of range: {e}")))
}

/// Truncates a time to the precision the store keeps.
pub fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    from_micros(to_micros(t)).unwrap_or(t)
}

/// `now + lease`, refusing absurd leases instead of panicking.
pub fn lease_end(now: OffsetDateTime, lease: Duration) -> Result<OffsetDateTime, StoreError> {
    time::Duration::try_from(lease)
        .ok()
        .and_then(|d| now.checked_add(d))
        .ok_or_else(|| StoreError::Other(format!("lease of {lease:?} is out of range")))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// True for a lower-case hex SHA-256 (the only blob names accepted).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn encode_signatures(sigs: &[Vec<u8>]) -> String {
    let hexed: Vec<String> = sigs.iter().map(|s| hex(s)).collect();
    serde_json::Value::from(hexed).to_string()
}

pub fn decode_signatures(text: &str) -> Result<Vec<Vec<u8>>, StoreError> {
    let hexed: Vec<String> = json(text)?;
    hexed
        .iter()
        .map(|h| unhex(h).ok_or_else(|| StoreError::Other("stored signature is not hex".into())))
        .collect()
}

pub fn encode_attachments(a: &[AttachmentMeta]) -> Result<String, StoreError> {
    to_json(&a)
}

pub fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Other(format!("cannot encode JSON: {e}")))
}

pub fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Other(format!("stored JSON is invalid: {e}")))
}

pub fn status(text: &str) -> Result<MessageStatus, StoreError> {
    MessageStatus::parse(text)
        .ok_or_else(|| StoreError::Other(format!("unknown stored status '{text}'")))
}

/// Database spelling of an attempt result's status.
pub fn status_after(result: &crate::contract::AttemptResult) -> MessageStatus {
    use crate::contract::AttemptResult as R;
    match result {
        R::Delivered { .. } => MessageStatus::Delivered,
        R::RetryAt(_) => MessageStatus::Queued,
        R::Failed { .. } => MessageStatus::Failed,
        R::DeadLetter { .. } => MessageStatus::DeadLetter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_to_the_microsecond() {
        let t = time::macros::datetime!(2026-11-23 12:34:56.123456789 UTC);
        let back = from_micros(to_micros(t)).expect("in range");
        assert_eq!(
            back,
            time::macros::datetime!(2026-11-23 12:34:56.123456 UTC)
        );
    }

    #[test]
    fn signatures_round_trip_and_bad_hex_is_refused() {
        let sigs = vec![vec![0u8, 1, 254, 255], vec![]];
        assert_eq!(
            decode_signatures(&encode_signatures(&sigs)).expect("decodes"),
            sigs
        );
        assert!(decode_signatures("[\"0g\"]").is_err());
        assert!(decode_signatures("[\"abc\"]").is_err());
    }

    #[test]
    fn only_lowercase_sha256_hex_names_a_blob() {
        assert!(is_sha256_hex(&"a".repeat(64)));
        assert!(!is_sha256_hex(&"A".repeat(64)));
        assert!(!is_sha256_hex("../../etc/passwd"));
    }
}
