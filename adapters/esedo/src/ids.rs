//! Identifiers on the ЕСЭДО wire derived from ours: a letter's `metadataSystem.href` (the document
//! GUID, also the ШЭП messageId) is our message id itself, so every attempt reuses it and a
//! receipt naming the href leads straight back to our message; `activityId` is derived from it
//! deterministically too.
use qaqpa_core::MessageId;

/// The href (document GUID) of our letter `id`: the message id, lower-case and hyphenated.
pub fn href_for(id: MessageId) -> String {
    id.0.hyphenated().to_string()
}

/// Our message id behind an href we produced, or `None` when the href cannot be one of ours
/// (not a GUID, or not a time-ordered v7 id like every message id the gateway issues).
pub fn message_id_from_href(href: &str) -> Option<MessageId> {
    let text = href.trim().trim_start_matches('{').trim_end_matches('}');
    let uuid = uuid::Uuid::parse_str(text).ok()?;
    (uuid.get_version_num() == 7).then_some(MessageId(uuid))
}

/// The activityId of our letter `id`: a GUID derived from the id (same on every attempt,
/// different from the href).
pub fn activity_id_for(id: MessageId) -> String {
    const MASK: [u8; 16] = [
        0x5a, 0x1e, 0x3c, 0x77, 0x91, 0x0d, 0xe4, 0x28, 0x6b, 0xc3, 0x0f, 0x99, 0x42, 0xa7, 0x18,
        0xd5,
    ];
    let mut bytes = *id.0.as_bytes();
    for (b, m) in bytes.iter_mut().zip(MASK) {
        *b ^= m;
    }
    // A well-formed version-4-shaped GUID.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

/// The ШЭП session id (`guid` in braces) that carries `activity_id`.
pub fn session_for(activity_id: &str) -> String {
    format!("{{{activity_id}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn href_round_trips_to_the_message_id_and_activity_is_stable() {
        let id = MessageId::new();
        let href = href_for(id);
        assert_eq!(message_id_from_href(&href), Some(id));
        assert_eq!(message_id_from_href(&format!("{{{href}}}")), Some(id));
        assert_eq!(activity_id_for(id), activity_id_for(id));
        assert_ne!(activity_id_for(id), href);
        assert!(qaqpa_shep::SessionId::parse(&session_for(&activity_id_for(id))).is_ok());
    }

    #[test]
    fn foreign_hrefs_are_not_taken_for_ours() {
        assert_eq!(message_id_from_href("not-a-guid"), None);
        // A v4 GUID (what another participant may use) is not one of our v7 ids.
        assert_eq!(
            message_id_from_href("0f8fad5b-d9cb-469f-a165-70867728950e"),
            None
        );
    }
}
