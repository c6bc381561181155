//! An [`AuditEvent`]'s JSON, written by hand: the journal's record text for an event its
//! syslog MSG cannot say exactly ([`crate::record`]), as it was for every event before
//! 2026-12-03, and the JSON the tests compare with serde's.
//!
//! The text is what the hash chain covers, so it must be byte for byte what `serde_json` writes
//! for the event's derived `Serialize` (the struct's field order, absent options left out, the
//! kind tagged by `"type"`, times as [`json_time`] writes them). The derived path stays the
//! reference: [`write`] declines what it does not write the usual way (a time RFC 3339 cannot
//! say) and the caller falls back to `serde_json`, which refuses it as before; the tests compare
//! both on every kind with text that needs escaping.
//!
//! Why by hand: through serde, an internally tagged enum goes through a map serializer, and each
//! key is escaped at run time. An `EXCHANGE` event took ~10,700 instructions that way, a quarter
//! of the audit path per delivered message (SHA-256 aside); with the keys as literals and one
//! escape scan per value it took ~5,600 (the whole record, allocation and key codes included),
//! and ~4,400 once the scan looked at eight bytes at a time and the text needed no UTF-8 check
//! afterwards (docs/BENCHMARKS.md).
use std::net::IpAddr;

use time::OffsetDateTime;

use crate::event::json_time;
use crate::event::{AuditEvent, EventKind, Exchange, ExchangeResult};

/// Appends `event`'s JSON to `out`; `false` (with `out` left partly written) when an event's
/// time cannot be written as RFC 3339, which the caller hands to `serde_json` instead.
///
/// Everything goes in as text (strings, ASCII digits and punctuation), so the record needs no
/// UTF-8 check afterwards; that check was ~370 instructions per `EXCHANGE` record.
pub(crate) fn write(event: &AuditEvent, out: &mut String) -> bool {
    let mut w = Writer {
        out,
        recent: [(OffsetDateTime::UNIX_EPOCH, 0, 0); 2],
        next: 0,
    };
    w.raw("{\"id\":\"");
    let mut id = uuid::Uuid::encode_buffer();
    w.raw(event.id.hyphenated().encode_lower(&mut id));
    w.raw("\"");
    if !w.time(",\"time\":", event.time) {
        return false;
    }
    w.str(",\"source\":", &event.source);
    w.opt_str(",\"account\":", event.account.as_deref());
    if let Some(ip) = event.client_ip {
        w.ip(",\"client_ip\":", ip);
    }
    if !w.opt_time(",\"op_start\":", event.op_start) || !w.opt_time(",\"op_end\":", event.op_end) {
        return false;
    }
    w.raw(",\"level\":\"");
    w.raw(event.level.as_str());
    w.raw("\"");
    w.opt_str(",\"transaction_id\":", event.transaction_id.as_deref());
    w.raw(",\"kind\":{\"type\":\"");
    if !w.kind(&event.kind) {
        return false;
    }
    w.raw("}");
    w.str(",\"description\":", &event.description);
    w.raw("}");
    true
}

struct Writer<'a> {
    out: &'a mut String,
    /// The last two times written and where their text is in `out`: an `EXCHANGE` event's
    /// operation start and end are its request and response times again.
    recent: [(OffsetDateTime, usize, usize); 2],
    next: usize,
}

impl Writer<'_> {
    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    /// `key` (with its comma and colon) and `value` as a JSON string.
    fn str(&mut self, key: &str, value: &str) {
        self.raw(key);
        escaped(self.out, value);
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    /// `key` and `value` in decimal, as `serde_json` writes an unsigned integer.
    fn number(&mut self, key: &str, value: u64) {
        self.raw(key);
        crate::event::push_decimal_chars(self.out, value);
    }

    /// `key` and `value` in decimal, as `serde_json` writes a signed integer.
    fn signed(&mut self, key: &str, value: i64) {
        self.raw(key);
        if value < 0 {
            self.out.push('-');
        }
        crate::event::push_decimal_chars(self.out, value.unsigned_abs());
    }

    fn opt_u64(&mut self, key: &str, value: Option<u64>) {
        if let Some(v) = value {
            self.number(key, v);
        }
    }

    fn ip(&mut self, key: &str, ip: IpAddr) {
        use std::fmt::Write as _;
        self.raw(key);
        let _ = write!(self.out, "\"{ip}\"");
    }

    fn time(&mut self, key: &str, t: OffsetDateTime) -> bool {
        let seen = self
            .recent
            .iter()
            .find(|&&(time, from, to)| to > from && crate::event::same_text(time, t))
            .map(|&(_, from, to)| from..to);
        if let Some(text) = seen {
            self.raw(key);
            self.out.push('"');
            self.out.extend_from_within(text);
            self.out.push('"');
            return true;
        }
        let mut buf = [0u8; json_time::MAX];
        let Some(n) = json_time::write(&mut buf, t) else {
            return false;
        };
        // ASCII only.
        let Ok(text) = std::str::from_utf8(&buf[..n]) else {
            return false;
        };
        self.raw(key);
        self.out.push('"');
        let start = self.out.len();
        self.out.push_str(text);
        self.recent[self.next] = (t, start, self.out.len());
        self.next = 1 - self.next;
        self.out.push('"');
        true
    }

    fn opt_time(&mut self, key: &str, t: Option<OffsetDateTime>) -> bool {
        t.is_none_or(|t| self.time(key, t))
    }

    /// The kind's tag value (the opening quote is written) and its own fields.
    fn kind(&mut self, kind: &EventKind) -> bool {
        match kind {
            EventKind::Login { user } => {
                self.raw("login\"");
                self.str(",\"user\":", user);
            }
            EventKind::Logout { user } => {
                self.raw("logout\"");
                self.str(",\"user\":", user);
            }
            EventKind::AuthOk { key_id } => {
                self.raw("auth_ok\"");
                self.str(",\"key_id\":", key_id);
            }
            EventKind::AuthFail { key_id, reason } => {
                self.raw("auth_fail\"");
                self.opt_str(",\"key_id\":", key_id.as_deref());
                self.str(",\"reason\":", reason);
            }
            EventKind::Account { op, key_id } => {
                self.raw("account\"");
                self.str(",\"op\":", op.as_str());
                self.str(",\"key_id\":", key_id);
            }
            EventKind::Config { op, what } => {
                self.raw("config\"");
                self.str(",\"op\":", op.as_str());
                self.str(",\"what\":", what);
            }
            EventKind::Refused {
                reason,
                action,
                detail,
            } => {
                self.raw("refused\"");
                self.str(",\"reason\":", reason.as_str());
                self.str(",\"action\":", action);
                self.opt_str(",\"detail\":", detail.as_deref());
            }
            EventKind::ObjectAccess { object, object_id } => {
                self.raw("object_access\"");
                self.str(",\"object\":", object.as_str());
                self.str(",\"object_id\":", object_id);
            }
            EventKind::Exchange(x) => {
                self.raw("exchange\"");
                return self.exchange(x);
            }
            EventKind::SignatureVerify {
                valid,
                signer,
                reason,
                message_id,
            } => {
                self.raw("signature_verify\",\"valid\":");
                self.raw(if *valid { "true" } else { "false" });
                self.opt_str(",\"signer\":", signer.as_deref());
                self.opt_str(",\"reason\":", reason.as_deref());
                self.opt_str(",\"message_id\":", message_id.as_deref());
            }
            EventKind::CertExpiry {
                subject,
                serial,
                not_after,
                days_left,
            } => {
                self.raw("cert_expiry\"");
                self.str(",\"subject\":", subject);
                self.str(",\"serial\":", serial);
                if !self.time(",\"not_after\":", *not_after) {
                    return false;
                }
                self.signed(",\"days_left\":", *days_left);
            }
            EventKind::Lifecycle {
                stage,
                message_id,
                target,
                detail,
            } => {
                self.raw("lifecycle\"");
                self.str(",\"stage\":", stage.as_str());
                self.str(",\"message_id\":", message_id);
                self.opt_str(",\"target\":", target.as_deref());
                self.opt_str(",\"detail\":", detail.as_deref());
            }
            EventKind::AuditDropped { count, sink } => {
                self.raw("audit_dropped\"");
                self.number(",\"count\":", *count);
                self.str(",\"sink\":", sink);
            }
            EventKind::UncleanStop {
                previous_pid,
                previous_start,
            } => {
                self.raw("unclean_stop\"");
                if let Some(pid) = previous_pid {
                    self.number(",\"previous_pid\":", u64::from(*pid));
                }
                return self.opt_time(",\"previous_start\":", *previous_start);
            }
        }
        true
    }

    fn exchange(&mut self, x: &Exchange) -> bool {
        self.str(",\"direction\":", x.direction.as_str());
        self.str(",\"target\":", &x.target);
        self.opt_str(",\"service_id\":", x.service_id.as_deref());
        self.opt_str(",\"message_id\":", x.message_id.as_deref());
        if !self.opt_time(",\"request_out\":", x.request_out)
            || !self.opt_time(",\"response_in\":", x.response_in)
            || !self.opt_time(",\"request_in\":", x.request_in)
            || !self.opt_time(",\"response_out\":", x.response_out)
        {
            return false;
        }
        self.opt_u64(",\"request_bytes\":", x.request_bytes);
        self.opt_u64(",\"response_bytes\":", x.response_bytes);
        match &x.result {
            ExchangeResult::Shep(code) => self.str(",\"result\":{\"shep\":", code),
            ExchangeResult::Http(status) => {
                self.number(",\"result\":{\"http\":", u64::from(*status))
            }
            ExchangeResult::Transport(error) => self.str(",\"result\":{\"transport\":", error),
        }
        self.raw("}");
        true
    }
}

/// `value` as a JSON string, escaped as `serde_json` escapes: `"` and `\` with a backslash,
/// the short forms `\b \t \n \f \r`, other control characters as `\u00xx`; nothing else.
/// Runs that need nothing are copied whole (the bytes looked for are ASCII, so every cut is on
/// a character boundary).
fn escaped(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push('"');
    let mut start = 0;
    while let Some(i) = next_to_escape(bytes, start) {
        out.push_str(&value[start..i]);
        start = i + 1;
        match bytes[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            b => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out.push_str(&value[start..]);
    out.push('"');
}

/// Whether a byte needs escaping in a JSON string: a control character, `"` or `\`.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The first byte from `from` on that needs escaping. Eight bytes are looked at together, as
/// one word, until a word holds one: most values (ids, names, times) hold none, and this scan
/// was most of what writing them cost.
fn next_to_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether some byte of `w` is below `n` (n at most 0x80); exact as to whether one is.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS != 0;
    let has = |w: u64, b: u8| below(w ^ (ONES * u64::from(b)), 1);
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_ne_bytes(word);
        if below(w, 0x20) || has(w, b'"') || has(w, b'\\') {
            break;
        }
        i += 8;
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&b| needs_escape(b))
        .map(|at| i + at)
}

#[cfg(test)]
mod tests {
    use time::UtcOffset;

    use super::*;
    use crate::event::Direction;
    use crate::testgen::Gen;

    /// `write` takes `event` and writes exactly what `serde_json` writes for it.
    fn assert_written_as_serde_writes(event: &AuditEvent) {
        let mut ours = String::new();
        assert!(write(event, &mut ours), "writes {event:?}");
        let theirs = serde_json::to_string(event).expect("serde writes it");
        assert_eq!(ours, theirs, "{event:?}");
    }

    #[test]
    fn the_record_text_is_byte_for_byte_what_serde_json_writes_for_every_kind() {
        let mut gen = Gen(0x05ee_d0fa_0d17);
        for i in 0..20_000 {
            assert_written_as_serde_writes(&gen.event(i));
        }
    }

    #[test]
    fn times_that_repeat_within_an_event_are_written_as_serde_json_writes_them() {
        let t0 =
            OffsetDateTime::UNIX_EPOCH + time::Duration::nanoseconds(1_764_000_000_123_456_789);
        let t1 = t0 + time::Duration::milliseconds(250);
        let t2 = t1 + time::Duration::nanoseconds(1);
        let almaty = UtcOffset::from_hms(5, 0, 0).expect("offset");
        let exchange = |out, back, start, end| Exchange {
            direction: Direction::Outbound,
            target: "route".into(),
            service_id: None,
            message_id: None,
            request_out: out,
            response_in: back,
            request_in: start,
            response_out: end,
            request_bytes: None,
            response_bytes: None,
            result: ExchangeResult::Http(200),
        };
        let cases = [
            // The gateway's own shape: the operation is the request and the response.
            AuditEvent::exchange("engine", exchange(Some(t0), Some(t1), None, None)),
            // Every time the same instant, and the event's time too.
            AuditEvent::exchange("engine", exchange(Some(t0), Some(t0), Some(t0), Some(t0))).at(t0),
            // Three instants, a nanosecond apart at the end, in turn.
            AuditEvent::exchange("engine", exchange(Some(t1), Some(t2), Some(t1), Some(t2)))
                .operation(t2, t0)
                .at(t1),
            // The same instant at another offset is other text: never copied from UTC's.
            AuditEvent::exchange(
                "engine",
                exchange(Some(t0.to_offset(almaty)), Some(t0), None, None),
            )
            .operation(t0, t0.to_offset(almaty))
            .at(t0),
        ];
        for event in cases {
            assert_written_as_serde_writes(&event);
        }
    }

    #[test]
    fn numbers_at_their_limits_are_written_as_serde_json_writes_them() {
        let mut gen = Gen(11);
        let kinds = [
            EventKind::AuditDropped {
                count: u64::MAX,
                sink: "s".into(),
            },
            EventKind::AuditDropped {
                count: 0,
                sink: "s".into(),
            },
            EventKind::CertExpiry {
                subject: "CN=x".into(),
                serial: "01".into(),
                not_after: OffsetDateTime::UNIX_EPOCH,
                days_left: i64::MIN,
            },
            EventKind::CertExpiry {
                subject: "CN=x".into(),
                serial: "01".into(),
                not_after: OffsetDateTime::UNIX_EPOCH,
                days_left: i64::MAX,
            },
            EventKind::UncleanStop {
                previous_pid: Some(u32::MAX),
                previous_start: None,
            },
        ];
        for kind in kinds {
            let mut event = gen.event(3);
            event.kind = kind;
            assert_written_as_serde_writes(&event);
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them_wherever_the_escape_falls() {
        // Every byte that needs escaping and a few that do not, at every position of strings
        // of up to 20 bytes: in the first eight-byte word, across its edge, in the tail.
        let specials = [
            "\"", "\\", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{0}", "\u{1f}", "\u{7f}", "]", " ",
            "=", "\u{85}", "ж", "🙂",
        ];
        for len in 0..=20 {
            for at in 0..=len {
                for s in specials {
                    let value = format!("{}{s}{}", "a".repeat(at), "b".repeat(len - at));
                    let mut out = String::new();
                    escaped(&mut out, &value);
                    assert_eq!(
                        out,
                        serde_json::to_string(&value).expect("serde"),
                        "{value:?}"
                    );
                }
            }
        }
        // Two in one word, and one in each of two words.
        for value in [
            "ab\"c\\defgh",
            "abcdefg\"hijklmno\n",
            "\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}\u{8}\u{9}",
        ] {
            let mut out = String::new();
            escaped(&mut out, value);
            assert_eq!(
                out,
                serde_json::to_string(value).expect("serde"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_time_rfc3339_cannot_say_is_declined_for_serde_to_refuse() {
        let mut gen = Gen(7);
        // Offsets with seconds: RFC 3339 has no way to write them.
        for (h, m, sec) in [(1, 2, 3), (0, 0, -30)] {
            let bad = OffsetDateTime::UNIX_EPOCH
                .to_offset(UtcOffset::from_hms(h, m, sec).expect("offset"));
            let mut event = gen.event(8);
            event.time = bad;
            assert!(!write(&event, &mut String::new()));
            assert!(
                serde_json::to_string(&event).is_err(),
                "serde refuses it too"
            );
            let mut event = gen.event(13);
            event.kind = EventKind::UncleanStop {
                previous_pid: None,
                previous_start: Some(bad),
            };
            assert!(!write(&event, &mut String::new()));
        }
    }
}
