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

use time::OffsetDateTime;

use crate::event::{key, write_rfc3339, AuditEvent, FieldSink, Fields, Key};

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
        let mut scratch = Scratch::default();
        self.format_with(event, &mut scratch);
        scratch.line
    }

    /// [`Formatter::format`] into reused buffers: the line is valid until the next call.
    /// A sink formats every event this way, so a line costs no allocation.
    pub fn format_with<'s>(&self, event: &AuditEvent, scratch: &'s mut Scratch) -> &'s str {
        self.write_parts(event, scratch);
        scratch.line.push_str(&scratch.msg);
        &scratch.line
    }

    /// The line of [`Formatter::format_with`] in two parts that make it end to end: everything
    /// up to the MSG (the header, the STRUCTURED-DATA and the BOM), and the MSG. A sink takes
    /// both parts ([`crate::SyslogSink::record_parts`]), so the MSG, written apart while the
    /// STRUCTURED-DATA is, is not copied behind the rest first.
    pub fn format_parts<'s>(&self, event: &AuditEvent, scratch: &'s mut Scratch) -> [&'s str; 2] {
        self.write_parts(event, scratch);
        [&scratch.line, &scratch.msg]
    }

    /// Writes the line up to its MSG into `scratch.line` and the MSG into `scratch.msg`.
    fn write_parts(&self, event: &AuditEvent, scratch: &mut Scratch) {
        let Scratch { line, msg, text } = scratch;
        line.clear();
        msg.clear();
        let pri = u64::from(self.facility) * 8 + u64::from(event.level.severity());
        line.push('<');
        crate::event::push_decimal_chars(line, pri);
        line.push_str(">1 ");
        let time_start = line.len();
        write_rfc3339(line, event.time);
        let time_end = line.len();
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
        // One pass over the fields: each goes into STRUCTURED-DATA (in `line`) and into MSG
        // (in `msg`, appended at the end), its value looked through once.
        let mut w = LineFields {
            sd: line,
            msg,
            text,
            times: RecentTimes::new((event.time, time_start, time_end)),
        };
        write_fields(event, &mut w);
        line.push_str("] ");
        line.push_str(BOM);
    }
}

/// Buffers reused from one [`Formatter::format_with`] call to the next.
#[derive(Debug, Default)]
pub struct Scratch {
    line: String,
    /// The MSG part while the STRUCTURED-DATA is written.
    msg: String,
    /// A value written by its `Display` before it is escaped.
    text: String,
}

/// Writes each field into the STRUCTURED-DATA element (`sd`, the line so far) and the MSG
/// (`msg`).
struct LineFields<'a> {
    sd: &'a mut String,
    msg: &'a mut String,
    text: &'a mut String,
    /// Times written in `sd`, the event's time in the header first.
    times: RecentTimes,
}

/// Times a writer has written and where their text is in its buffer: a fixed first one (a
/// line's header time) and the last two others, taken in turn. An `EXCHANGE` event's
/// operation start and end are often its request and response times again, and their text is
/// then copied rather than formatted.
struct RecentTimes {
    slots: [(OffsetDateTime, usize, usize); 3],
    next: usize,
}

impl RecentTimes {
    /// `first` stays; an empty range (`0, 0`) is none.
    fn new(first: (OffsetDateTime, usize, usize)) -> RecentTimes {
        RecentTimes {
            slots: [first, (first.0, 0, 0), (first.0, 0, 0)],
            next: 1,
        }
    }

    /// Appends `value`'s text to `out`: a copy of the same text written before in `out`
    /// (the same date, time of day and offset; `==` compares instants), else formatted.
    fn write(&mut self, out: &mut String, value: OffsetDateTime) {
        let start = out.len();
        let seen = self
            .slots
            .iter()
            .find(|&&(time, from, to)| to > from && crate::event::same_text(time, value))
            .map(|&(_, from, to)| from..to);
        match seen {
            Some(text) => out.extend_from_within(text),
            None => {
                write_rfc3339(out, value);
                self.slots[self.next] = (value, start, out.len());
                self.next = if self.next == 1 { 2 } else { 1 };
            }
        }
    }
}

impl LineFields<'_> {
    /// `name=` in MSG, after a space unless it is the first field.
    fn msg_key(&mut self, key: &Key) {
        if self.msg.is_empty() {
            self.msg.push_str(&key.msg[1..]);
        } else {
            self.msg.push_str(key.msg);
        }
    }

    /// ` name="` in STRUCTURED-DATA.
    fn sd_key(&mut self, key: &Key) {
        self.sd.push_str(key.sd);
    }

    /// A value that needs no escaping or quoting anywhere, already written to `sd` from
    /// `start` on: closes it there and copies it to MSG (`""` when empty).
    fn close_plain(&mut self, key: &Key, start: usize) {
        let end = self.sd.len();
        self.sd.push('"');
        self.msg_key(key);
        if start == end {
            self.msg.push_str("\"\"");
        } else {
            self.msg.push_str(&self.sd[start..end]);
        }
    }

    fn value(&mut self, key: &Key, value: &str, class: u8) {
        self.sd_key(key);
        if class & SD_ESCAPE == 0 {
            self.sd.push_str(value);
        } else {
            escape_sd_value(value, self.sd);
        }
        self.sd.push('"');
        self.msg_key(key);
        if class & MSG_QUOTE == 0 && !value.is_empty() {
            self.msg.push_str(value);
        } else {
            write_msg_value(value, self.msg);
        }
    }
}

impl FieldSink for LineFields<'_> {
    fn str(&mut self, key: &'static Key, value: &str) {
        self.value(key, value, classify(value));
    }

    fn plain(&mut self, key: &'static Key, value: &str) {
        debug_assert!(
            crate::event::is_plain(value),
            "{}={value:?} is not plain",
            key.name
        );
        self.sd_key(key);
        let start = self.sd.len();
        self.sd.push_str(value);
        self.close_plain(key, start);
    }

    fn time(&mut self, key: &'static Key, value: OffsetDateTime) {
        self.sd_key(key);
        let start = self.sd.len();
        self.times.write(self.sd, value);
        self.close_plain(key, start);
    }

    fn number(&mut self, key: &'static Key, prefix: &'static str, value: u64) {
        self.sd_key(key);
        let start = self.sd.len();
        self.sd.push_str(prefix);
        crate::event::push_decimal_chars(self.sd, value);
        self.close_plain(key, start);
    }

    fn display(&mut self, key: &'static Key, value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        let mut text = std::mem::take(&mut *self.text);
        text.clear();
        let _ = write!(text, "{value}");
        self.value(key, &text, classify(&text));
        *self.text = text;
    }
}

/// Appends `event`'s MSG (without the BOM) to `out`: the same text as the MSG of its line,
/// for the journal's record when no sink formats a line ([`crate::record`]).
pub(crate) fn write_msg(event: &AuditEvent, out: &mut String) {
    let mut w = MsgFields {
        msg: out,
        first: true,
        text: String::new(),
        times: RecentTimes::new((event.time, 0, 0)),
    };
    write_fields(event, &mut w);
}

/// Writes each field into a MSG only.
struct MsgFields<'a> {
    msg: &'a mut String,
    first: bool,
    /// A value written by its `Display` before it is quoted.
    text: String,
    /// Times written in `msg`.
    times: RecentTimes,
}

impl MsgFields<'_> {
    fn key(&mut self, key: &Key) {
        if self.first {
            self.first = false;
            self.msg.push_str(&key.msg[1..]);
        } else {
            self.msg.push_str(key.msg);
        }
    }
}

impl FieldSink for MsgFields<'_> {
    fn str(&mut self, key: &'static Key, value: &str) {
        self.key(key);
        write_msg_value(value, self.msg);
    }

    fn plain(&mut self, key: &'static Key, value: &str) {
        self.key(key);
        self.msg
            .push_str(if value.is_empty() { "\"\"" } else { value });
    }

    fn time(&mut self, key: &'static Key, value: OffsetDateTime) {
        self.key(key);
        self.times.write(self.msg, value);
    }

    fn number(&mut self, key: &'static Key, prefix: &'static str, value: u64) {
        self.key(key);
        self.msg.push_str(prefix);
        crate::event::push_decimal_chars(self.msg, value);
    }

    fn display(&mut self, key: &'static Key, value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        self.text.clear();
        let _ = write!(self.text, "{value}");
        self.key(key);
        write_msg_value(&self.text, self.msg);
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

/// [`fields`] written into `f` (a syslog line or [`Fields`]).
fn write_fields<F: FieldSink>(event: &AuditEvent, f: &mut F) {
    fn opt(v: &Option<String>) -> &str {
        v.as_deref().unwrap_or_default()
    }
    let mut id = uuid::Uuid::encode_buffer();
    f.plain(key!("id"), event.id.hyphenated().encode_lower(&mut id));
    f.time(key!("time"), event.time);
    f.str(key!("source"), &event.source);
    f.str(key!("account"), opt(&event.account));
    match event.client_ip {
        Some(ip) => f.display(key!("client_ip"), ip),
        None => f.plain(key!("client_ip"), ""),
    }
    match event.op_start {
        Some(t) => f.time(key!("op_start"), t),
        None => f.plain(key!("op_start"), ""),
    }
    match event.op_end {
        Some(t) => f.time(key!("op_end"), t),
        None => f.plain(key!("op_end"), ""),
    }
    f.plain(key!("level"), event.level.as_str());
    f.plain(key!("category"), event.category().as_str());
    f.str(key!("transaction_id"), opt(&event.transaction_id));
    f.plain(key!("kind"), event.kind.name());
    f.str(key!("description"), &event.description);
    event.kind.write_fields(f);
}

// Byte classes: a value none of whose bytes has a class is written as it is, and most values
// (ids, names, times, Cyrillic text) are. `0xC2` is the first byte of U+0080..=U+00BF, which
// holds the C1 control characters, so it is flagged and looked at closely.

/// Needs a backslash escape in a STRUCTURED-DATA value.
const SD_ESCAPE: u8 = 1;
/// Needs a backslash escape inside a quoted MSG value.
const MSG_ESCAPE: u8 = 2;
/// Makes a MSG value quoted.
const MSG_QUOTE: u8 = 4;
/// The classes of each byte value.
const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let control = b < 0x20 || b == 0x7f || b == 0xc2;
        let mut class = 0;
        if control || b == b'"' || b == b'\\' || b == b']' {
            class |= SD_ESCAPE;
        }
        if control || b == b'"' || b == b'\\' {
            class |= MSG_ESCAPE | MSG_QUOTE;
        }
        if b == b' ' || b == b'=' {
            class |= MSG_QUOTE;
        }
        table[i] = class;
        i += 1;
    }
    table
};

/// The union of the classes of `v`'s bytes.
fn classify(v: &str) -> u8 {
    v.bytes().fold(0, |acc, b| acc | CLASS[usize::from(b)])
}

/// Copies `v` to `out`, handing each character that has a byte in `class` (and really needs
/// it: `0xC2` only for a C1 control) to `escape`, and copying everything else in runs.
fn escape_runs(v: &str, out: &mut String, class: u8, escape: fn(char, &mut String)) {
    let bytes = v.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if CLASS[usize::from(b)] & class == 0 {
            i += 1;
            continue;
        }
        let c = if b == 0xc2 {
            match bytes.get(i + 1) {
                Some(&next @ 0x80..=0x9f) => char::from(next),
                _ => {
                    i += 1;
                    continue;
                }
            }
        } else {
            char::from(b)
        };
        out.push_str(&v[run..i]);
        escape(c, out);
        i += c.len_utf8();
        run = i;
    }
    out.push_str(&v[run..]);
}

/// `\u{XX}` for a control character, after `prefix`.
fn push_control(c: char, prefix: &str, out: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(out, "{prefix}u{{{:02X}}}", u32::from(c));
}

fn escape_sd_value(v: &str, out: &mut String) {
    escape_runs(v, out, SD_ESCAPE, |c, out| match c {
        '"' | '\\' | ']' => {
            out.push('\\');
            out.push(c);
        }
        '\n' => out.push_str("\\\\n"),
        '\r' => out.push_str("\\\\r"),
        c => push_control(c, "\\\\", out),
    });
}

fn write_msg_value(v: &str, out: &mut String) {
    if !msg_needs_quotes(v) {
        out.push_str(v);
        return;
    }
    out.push('"');
    escape_runs(v, out, MSG_ESCAPE, |c, out| match c {
        '"' | '\\' => {
            out.push('\\');
            out.push(c);
        }
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => push_control(c, "\\", out),
    });
    out.push('"');
}

/// Whether a MSG value is quoted: empty, or holding a space, `"`, `=`, `\\` or a control
/// character (C0, DEL or C1; `0xC2` starts a C1 control only before `0x80..=0x9F`).
fn msg_needs_quotes(v: &str) -> bool {
    let bytes = v.as_bytes();
    bytes.is_empty()
        || bytes.iter().enumerate().any(|(i, &b)| {
            CLASS[usize::from(b)] & MSG_QUOTE != 0
                && (b != 0xc2 || matches!(bytes.get(i + 1), Some(0x80..=0x9f)))
        })
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
    fn a_time_equal_to_an_earlier_one_at_another_offset_keeps_its_own_offset() {
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_764_000_000);
        let almaty = t.to_offset(time::UtcOffset::from_hms(5, 0, 0).expect("offset"));
        let event = AuditEvent::login("api", "admin").at(t).operation(almaty, t);
        let line = Formatter::new(13, "gw", "qaqpa").format(&event);
        for expected in [
            "time=\"2025-11-24T16:00:00.000000+00:00\"",
            "op_start=\"2025-11-24T21:00:00.000000+05:00\"",
            "op_end=\"2025-11-24T16:00:00.000000+00:00\"",
            " op_start=2025-11-24T21:00:00.000000+05:00 ",
        ] {
            assert!(line.contains(expected), "{expected} in {line}");
        }
    }

    #[test]
    fn the_two_parts_of_a_line_make_the_line_end_to_end() {
        let formatter = Formatter::new(13, "gw", "qaqpa");
        let event = AuditEvent::login("api", "admin \"root\"");
        let whole = formatter.format(&event);
        let mut scratch = Scratch::default();
        let [head, msg] = formatter.format_parts(&event, &mut scratch);
        assert!(head.ends_with(&format!("] {BOM}")), "{head}");
        assert!(msg.starts_with("id="), "{msg}");
        assert_eq!(format!("{head}{msg}"), whole);
        // The buffers are reused: the whole line again after the parts.
        assert_eq!(formatter.format_with(&event, &mut scratch), whole);
    }

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

    /// The escaping rules character by character, as the module comment states them.
    fn reference_sd(v: &str) -> String {
        let mut out = String::new();
        for c in v.chars() {
            match c {
                '"' | '\\' | ']' => out.extend(['\\', c]),
                '\n' => out.push_str(r"\\n"),
                '\r' => out.push_str(r"\\r"),
                c if c.is_control() => out.push_str(&format!(r"\\u{{{:02X}}}", u32::from(c))),
                c => out.push(c),
            }
        }
        out
    }

    fn reference_msg(v: &str) -> String {
        let quote = v.is_empty()
            || v.chars()
                .any(|c| matches!(c, ' ' | '"' | '=' | '\\') || c.is_control());
        if !quote {
            return v.to_owned();
        }
        let mut out = String::from('"');
        for c in v.chars() {
            match c {
                '"' | '\\' => out.extend(['\\', c]),
                '\n' => out.push_str(r"\n"),
                '\r' => out.push_str(r"\r"),
                '\t' => out.push_str(r"\t"),
                c if c.is_control() => out.push_str(&format!(r"\u{{{:02X}}}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn escaping_in_runs_matches_escaping_char_by_char() {
        // Every special character, C1 controls and their non-control neighbours under the same
        // lead byte 0xC2, Cyrillic and 4-byte characters, at the start, middle and end.
        let alphabet: Vec<char> =
            "a =\"\\]\n\r\t\u{0}\u{1f}\u{7f}\u{80}\u{85}\u{9f}\u{a0}\u{a7}\u{bf}жӘ€😀"
                .chars()
                .collect();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut values = vec![String::new()];
        values.extend(alphabet.iter().map(|c| c.to_string()));
        for _ in 0..5000 {
            let mut v = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 12) as usize;
            for k in 0..len {
                v.push(alphabet[((state >> (k * 5)) as usize) % alphabet.len()]);
            }
            values.push(v);
        }
        for v in &values {
            let mut sd = String::new();
            if classify(v) & SD_ESCAPE == 0 {
                sd.push_str(v);
            } else {
                escape_sd_value(v, &mut sd);
            }
            assert_eq!(sd, reference_sd(v), "SD value {v:?}");
            let mut msg = String::new();
            if classify(v) & MSG_QUOTE == 0 && !v.is_empty() {
                msg.push_str(v);
            } else {
                write_msg_value(v, &mut msg);
            }
            assert_eq!(msg, reference_msg(v), "MSG value {v:?}");
            let parsed = parse_msg(&format!("k={msg}")).expect("parses");
            assert_eq!(parsed[0].1, *v);
        }
    }

    #[test]
    fn sd_values_escape_quote_backslash_bracket_and_newline() {
        let mut out = String::new();
        escape_sd_value("a\"b\\c]d\ne", &mut out);
        assert_eq!(out, r#"a\"b\\c\]d\\ne"#);
    }
}
