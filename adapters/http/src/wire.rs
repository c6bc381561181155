//! The JSON document the HTTP adapter POSTs, shared by the adapter (which writes it) and the
//! emulator (which reads it), so the two can never drift apart.
//!
//! It must never carry anything the EDMS did not submit, apart from the attempt number.
use serde::{Deserialize, Serialize};

/// One message on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireMessage {
    /// Qaqpa's message id (also sent as the `Idempotency-Key` header).
    pub id: String,
    pub kind: String,
    pub to: String,
    pub client: String,
    /// The document card exactly as submitted.
    pub document: serde_json::Value,
    pub attachments: Vec<WireAttachment>,
    /// CMS signatures, standard base64 of the DER.
    pub signatures: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// One attachment on the wire, its bytes inline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireAttachment {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// Standard base64 (with padding) of the content.
    pub content: String,
}

/// Lower-case hex SHA-256, as [`WireAttachment::sha256`] spells it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_matches_the_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
