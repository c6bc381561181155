//! RFC 5424 formatting checked with an independent parser (`syslog_rfc5424`): every field of
//! every event kind present in STRUCTURED-DATA and MSG, escaping and quoting, one line per
//! event, IINs masked.
mod common;

use common::{as_recorded, assert_line_matches, sample_events};
use qaqpa_audit::syslog::Formatter;
use qaqpa_audit::{AuditEvent, ChangeOp, Level};

#[test]
fn every_kind_formats_to_parseable_rfc5424_with_every_field_in_sd_and_msg() {
    let f = Formatter::new(13, "gw-1.example.kz", "qaqpa");
    let events = sample_events();
    let mut kinds = std::collections::BTreeSet::new();
    for e in &events {
        let e = as_recorded(e);
        let line = f.format(&e);
        assert!(
            !line.contains('\n') && !line.contains('\r'),
            "one line: {line}"
        );
        assert_line_matches(&line, &e, "gw-1.example.kz", "qaqpa");
        kinds.insert(e.kind.name());
    }
    assert_eq!(kinds.len(), 18, "kinds covered: {kinds:?}");
}

#[test]
fn pri_is_facility_times_eight_plus_severity() {
    let e = AuditEvent::auth_fail("qaqpa-api", Some("k"), "bad").level(Level::Warning);
    let line = Formatter::new(13, "h", "a").format(&e);
    assert!(line.starts_with("<108>1 "), "{line}");
    let line = Formatter::new(4, "h", "a").format(&e.level(Level::Alert));
    assert!(line.starts_with("<33>1 "), "{line}");
}

#[test]
fn timestamp_has_microseconds_and_an_offset() {
    let t = time::macros::datetime!(2026-12-01 09:08:07.123456789 +05:00);
    let e = AuditEvent::auth_ok("a", "k").at(t);
    let line = Formatter::new(13, "h", "a").format(&e);
    assert!(
        line.starts_with("<110>1 2026-12-01T09:08:07.123456+05:00 h a "),
        "{line}"
    );
}

#[test]
fn sd_escapes_quotes_backslashes_and_brackets_and_msg_quotes_values_with_spaces() {
    let e = AuditEvent::config_change("a", ChangeOp::Changed, "say \"hi\" \\ to ] x=y");
    let line = Formatter::new(13, "h", "a").format(&e);
    assert!(
        line.contains(r#"what="say \"hi\" \\ to \] x=y""#),
        "SD escaping: {line}"
    );
    assert!(
        line.contains(r#" what="say \"hi\" \\ to ] x=y""#) && line.ends_with('"'),
        "MSG quoting: {line}"
    );
    assert!(
        line.contains(" kind=CONFIG_CHANGED "),
        "unquoted simple value: {line}"
    );
    assert!(
        line.contains(" account=\"\" "),
        "absent value is an empty quoted value: {line}"
    );
}

#[test]
fn newlines_never_split_an_event() {
    let e = AuditEvent::config_change("a", ChangeOp::Changed, "one\ntwo\r\nthree");
    let line = Formatter::new(13, "h", "a").format(&e);
    assert_eq!(line.lines().count(), 1);
    assert!(
        line.contains(r#"what="one\\ntwo\\r\\nthree""#),
        "SD: {line}"
    );
    assert!(line.contains(r#" what="one\ntwo\r\nthree""#), "MSG: {line}");
}

#[test]
fn iins_are_masked_in_every_text_field_of_the_line() {
    let mut e = AuditEvent::signature(
        "a",
        false,
        Some("IIN=870101300123"),
        Some("signer 870101300123 not allowed"),
        None,
    );
    e.description = "signature of 870101300123 / BIN 123456789012 invalid".into();
    e.mask_iins();
    let line = Formatter::new(13, "h", "a").format(&e);
    assert!(!line.contains("870101300123"), "{line}");
    assert!(!line.contains("123456789012"), "{line}");
    assert!(line.contains("8701******23"), "{line}");
    // The event id is a UUID, not text: its last group is twelve hex digits, all of them
    // decimal in about one event in 280, which is not an IIN.
    let texts = line.replace(&e.id.to_string(), "");
    let digits_runs: Vec<&str> = texts
        .split(|c: char| !c.is_ascii_digit())
        .filter(|r| r.len() == 12)
        .collect();
    assert!(
        digits_runs.is_empty(),
        "unmasked 12-digit runs {digits_runs:?} in {line}"
    );
}

#[test]
fn header_fields_respect_rfc_lengths() {
    let long = "h".repeat(400);
    let e = AuditEvent::auth_ok("a", "k");
    let line = Formatter::new(13, &long, &"a".repeat(100)).format(&e);
    let m = syslog_rfc5424::parse_message(&line).expect("parses");
    assert_eq!(m.hostname.map(|h| h.len()), Some(255));
    assert_eq!(m.appname.map(|a| a.len()), Some(48));
}

#[test]
fn param_names_are_short_printable_and_unique_per_event() {
    for e in sample_events() {
        let fields = qaqpa_audit::syslog::fields(&e);
        let mut names = std::collections::HashSet::new();
        for (k, _) in &fields {
            assert!(!k.is_empty() && k.len() <= 32, "{k}");
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"' | ' ')),
                "{k}"
            );
            assert!(names.insert(*k), "{k} twice in {}", e.kind.name());
        }
    }
}
