//! RFC 5424 formatting of an [`AuditEvent`]: one event, one line.
//!
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [qaqpa@32473 k="v" …] BOM k=v …`
//!
//! * PRI = facility × 8 + severity; TIMESTAMP is RFC 3339 with six fractional digits and an
//!   offset; HOSTNAME, APP-NAME, PROCID and MSGID are cut to 255/48/128/32 printable US-ASCII
//!   characters (anything else becomes `_`, empty becomes `-`).
//! * STRUCTURED-DATA: one element `qaqpa@32473` (32473 is the documentation enterprise number)
//!   with every common field (absent ones as empty values) and then the kind's own fields.
//!   `"`, `\` and `]` are escaped with a backslash; a line break is written as the two characters
//!   `\n` (backslash escaped), so SD values never span lines.
//! * MSG always starts with the UTF-8 BOM (RFC 5424 §6.4: the MSG is UTF-8) and holds the same
//!   fields as `key=value` separated by single spaces. A value that is empty or contains a space,
//!   `"`, `=`, `\` or a control character is double-quoted, with `"` and `\` backslash-escaped
//!   and line feed, carriage return and tab written as `\n`, `\r`, `\t` (other control
//!   characters as `\u{XX}`); [`parse_msg`] reads it back.
use std::borrow::Cow;

use crate::event::{rfc3339, AuditEvent};

/// The SD-ID of our structured-data element.
pub const SD_ID: &str = "qaqpa@32473";
/// The UTF-8 byte order mark that starts every MSG.
pub const BOM: &str = "\u{feff}";
/// RFC 5424 facility 13: log audit.
pub const DEFAULT_FACILITY: u8 = 13;

/// Formats events for one host and application.
#[derive(Debug, Clone)]
pub struct Formatter {
    facility: u8,
    hostname: String,
    app_name: String,
    procid: String,
}

/// RFC 5424 header field: printable US-ASCII (33..=126) only, at most `max` characters, `-`
/// when empty.
fn header_field(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .take(max)
        .collect();
    if out.is_empty() {
        "-".to_owned()
    } else {
        out
    }
}

impl Formatter {
    /// `facility` above 23 is taken as 23.
    pub fn new(facility: u8, hostname: &str, app_name: &str) -> Formatter {
        Formatter {
            facility: facility.min(23),
            hostname: header_field(hostname, 255),
            app_name: header_field(app_name, 48),
            procid: std::process::id().to_string(),
        }
    }

    /// The RFC 5424 line for `event`, without a trailing newline.
    pub fn format(&self, event: &AuditEvent) -> String {
        let pri = u16::from(self.facility) * 8 + u16::from(event.level.severity());
        let fields = fields(event);
        let mut line = String::with_capacity(512);
        line.push('<');
        line.push_str(&pri.to_string());
        line.push_str(">1 ");
        // The header's TIMESTAMP is the event's `time` field, formatted once.
        match fields.iter().find(|(k, _)| *k == "time") {
            Some((_, t)) => line.push_str(t),
            None => line.push_str(&rfc3339(event.time)),
        }
        line.push(' ');
        line.push_str(&self.hostname);
        line.push(' ');
        line.push_str(&self.app_name);
        line.push(' ');
        line.push_str(&self.procid);
        line.push(' ');
        line.push_str(&header_field(event.kind.name(), 32));
        line.push_str(" [");
        line.push_str(SD_ID);
        for (k, v) in &fields {
            line.push(' ');
            line.push_str(k);
            line.push_str("=\"");
            escape_sd_value(v, &mut line);
            line.push('"');
        }
        line.push_str("] ");
        line.push_str(BOM);
        let mut first = true;
        for (k, v) in &fields {
            if !first {
                line.push(' ');
            }
            first = false;
            line.push_str(k);
            line.push('=');
            write_msg_value(v, &mut line);
        }
        line
    }
}

/// Every field of an event in the order they are written: the common ones (always present,
/// absent as empty), then the kind's own.
/// Values borrow from the event where they can: formatting runs once per event per receiver.
pub fn fields(event: &AuditEvent) -> Vec<(&'static str, Cow<'_, str>)> {
    fn opt(v: &Option<String>) -> Cow<'_, str> {
        Cow::Borrowed(v.as_deref().unwrap_or_default())
    }
    let time = |t: Option<time::OffsetDateTime>| t.map(rfc3339).map(Cow::Owned).unwrap_or_default();
    let mut f = Vec::with_capacity(24);
    f.extend([
        ("id", Cow::Owned(event.id.to_string())),
        ("time", Cow::Owned(rfc3339(event.time))),
        ("source", Cow::Borrowed(event.source.as_str())),
        ("account", opt(&event.account)),
        (
            "client_ip",
            event
                .client_ip
                .map(|ip| Cow::Owned(ip.to_string()))
                .unwrap_or_default(),
        ),
        ("op_start", time(event.op_start)),
        ("op_end", time(event.op_end)),
        ("level", Cow::Borrowed(event.level.as_str())),
        ("category", Cow::Borrowed(event.category().as_str())),
        ("transaction_id", opt(&event.transaction_id)),
        ("kind", Cow::Borrowed(event.kind.name())),
        ("description", Cow::Borrowed(event.description.as_str())),
    ]);
    f.extend(
        event
            .kind
            .fields()
            .into_iter()
            .map(|(k, v)| (k, Cow::Owned(v))),
    );
    f
}

/// Whether `v` is printable ASCII without `"`, `\`, `]` (and without spaces and `=` when
/// `in_msg`): such a value is written as it is, and most values (ids, names, times) are.
fn plain(v: &str, in_msg: bool) -> bool {
    v.bytes().all(|b| {
        (0x20..0x7f).contains(&b)
            && !matches!(b, b'"' | b'\\' | b']')
            && !(in_msg && matches!(b, b' ' | b'='))
    })
}

fn escape_sd_value(v: &str, out: &mut String) {
    if plain(v, false) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\\\n"),
            '\r' => out.push_str("\\\\r"),
            c if c.is_control() => out.push_str(&format!("\\\\u{{{:02X}}}", u32::from(c))),
            c => out.push(c),
        }
    }
}

fn write_msg_value(v: &str, out: &mut String) {
    if !v.is_empty() && plain(v, true) {
        out.push_str(v);
        return;
    }
    let needs_quotes = v.is_empty()
        || v.chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c == '\\' || c.is_control());
    if !needs_quotes {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:02X}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Reads a MSG written by [`Formatter::format`] (with or without the BOM) back into its
/// `(key, value)` pairs; `None` if it is not in that shape.
pub fn parse_msg(msg: &str) -> Option<Vec<(String, String)>> {
    let msg = msg.strip_prefix(BOM).unwrap_or(msg);
    let mut out = Vec::new();
    let mut chars = msg.chars().peekable();
    loop {
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if key.is_empty() {
            return None;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => match chars.next()? {
                        'n' => value.push('\n'),
                        'r' => value.push('\r'),
                        't' => value.push('\t'),
                        'u' => {
                            if chars.next()? != '{' {
                                return None;
                            }
                            let mut hex = String::new();
                            for c in chars.by_ref() {
                                if c == '}' {
                                    break;
                                }
                                hex.push(c);
                            }
                            value.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                        }
                        c => value.push(c),
                    },
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
        match chars.next() {
            None => return Some(out),
            Some(' ') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_are_printable_ascii_and_bounded() {
        assert_eq!(header_field("", 48), "-");
        assert_eq!(header_field("шлюз gw", 48), "_____gw");
        assert_eq!(header_field(&"a".repeat(300), 255).len(), 255);
    }

    #[test]
    fn msg_values_are_quoted_only_when_needed_and_round_trip() {
        let mut out = String::new();
        for v in [
            "plain",
            "",
            "a b",
            "x=\"y\"",
            "back\\slash",
            "two\nlines\r\t",
            "\u{1}",
        ] {
            out.clear();
            write_msg_value(v, &mut out);
            assert!(!out.contains('\n'));
            let parsed = parse_msg(&format!("k={out}")).expect("parses");
            assert_eq!(parsed, vec![("k".to_owned(), v.to_owned())], "{out}");
        }
        out.clear();
        write_msg_value("plain", &mut out);
        assert_eq!(out, "plain");
        out.clear();
        write_msg_value("a \"b\"", &mut out);
        assert_eq!(out, r#""a \"b\"""#);
    }

    #[test]
    fn sd_values_escape_quote_backslash_bracket_and_newline() {
        let mut out = String::new();
        escape_sd_value("a\"b\\c]d\ne", &mut out);
        assert_eq!(out, r#"a\"b\\c\]d\\ne"#);
    }
}
