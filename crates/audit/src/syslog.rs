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

use crate::event::{write_rfc3339, AuditEvent, Fields};

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
        use std::fmt::Write as _;
        let pri = u16::from(self.facility) * 8 + u16::from(event.level.severity());
        let mut fields = Fields::new();
        write_fields(event, &mut fields);
        // Every value is written twice (STRUCTURED-DATA and MSG); escapes are rare.
        let mut line = String::with_capacity(
            2 * fields.text_len()
                + 40 * 24
                + self.hostname.len()
                + self.app_name.len()
                + self.procid.len(),
        );
        let _ = write!(line, "<{pri}>1 ");
        match fields.iter().find(|(k, _)| *k == "time") {
            Some((_, t)) => line.push_str(t),
            None => write_rfc3339(&mut line, event.time),
        }
        line.push(' ');
        line.push_str(&self.hostname);
        line.push(' ');
        line.push_str(&self.app_name);
        line.push(' ');
        line.push_str(&self.procid);
        line.push(' ');
        let kind = event.kind.name();
        if kind.len() <= 32 && kind.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
            line.push_str(kind);
        } else {
            line.push_str(&header_field(kind, 32));
        }
        line.push_str(" [");
        line.push_str(SD_ID);
        for (k, v) in fields.iter() {
            line.push(' ');
            line.push_str(k);
            line.push_str("=\"");
            escape_sd_value(v, &mut line);
            line.push('"');
        }
        line.push_str("] ");
        line.push_str(BOM);
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            line.push_str(k);
            line.push('=');
            write_msg_value(v, &mut line);
        }
        line
    }
}

/// Every field of an event in the order they are written: the common ones (always present,
/// absent as empty), then the kind's own.
pub fn fields(event: &AuditEvent) -> Vec<(&'static str, Cow<'_, str>)> {
    let mut f = Fields::new();
    write_fields(event, &mut f);
    f.iter()
        .map(|(k, v)| (k, Cow::Owned(v.to_owned())))
        .collect()
}

/// [`fields`] written into one buffer (formatting runs once per event per receiver).
fn write_fields(event: &AuditEvent, f: &mut Fields) {
    fn opt(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or_default()
    }
    let mut id = uuid::Uuid::encode_buffer();
    f.str("id", event.id.hyphenated().encode_lower(&mut id));
    f.time("time", event.time);
    f.str("source", &event.source);
    f.str("account", opt(&event.account));
    match event.client_ip {
        Some(ip) => f.display("client_ip", ip),
        None => f.str("client_ip", ""),
    }
    match event.op_start {
        Some(t) => f.time("op_start", t),
        None => f.str("op_start", ""),
    }
    match event.op_end {
        Some(t) => f.time("op_end", t),
        None => f.str("op_end", ""),
    }
    f.str("level", event.level.as_str());
    f.str("category", event.category().as_str());
    f.str("transaction_id", opt(&event.transaction_id));
    f.str("kind", event.kind.name());
    f.str("description", &event.description);
    event.kind.write_fields(f);
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
