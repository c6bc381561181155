//! The journal's record text: what an event is stored as, what the hash chain covers, and how
//! it is read back.
//!
//! A record is the event's syslog MSG, the `key=value` pairs of [`crate::syslog`] without the
//! BOM. The thread that records an event writes that MSG once for the event's syslog line, and
//! the journal keeps a copy of it, instead of writing the event a second time as JSON (which
//! was ~4,400 instructions of a delivery's audit path; docs/BENCHMARKS.md).
//!
//! The MSG says an event exactly, with two limits, and [`exact`] tells them:
//! - times to the microsecond (as RFC 5424 and PostgreSQL keep them), RFC 3339 only (years
//!   0000–9999, offsets in whole minutes up to ±23:59);
//! - the common optional fields `account` and `transaction_id` are written empty when absent,
//!   so an empty one cannot be told from an absent one.
//!
//! An event beyond them (a time RFC 3339 cannot say, an empty account) is stored as its JSON,
//! as every record was before, byte for byte what `serde_json` writes ([`crate::body`]).
//! [`decode`] reads both: a JSON record starts with `{`, a MSG with `id=`. Decoding is strict
//! about content: every field the kind has, no field it does not have, no field twice, the
//! category its level gives. It is lenient about form (field order, quotes a value does not
//! need, the time formats `time` reads), so other texts can decode to the same event; only
//! the chain, which hashes the text as stored, proves a record is the one written.
use std::collections::HashMap;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::event::{
    AuditEvent, ChangeOp, Direction, EventKind, Exchange, ExchangeResult, Level, LifecycleStage,
    ObjectKind, RefusalReason,
};
use crate::store::StoreError;

/// Whether `event`'s MSG says it exactly once its times are taken to the microsecond.
pub(crate) fn exact(event: &AuditEvent) -> bool {
    let says = crate::event::rfc3339_says;
    let says_opt = |t: Option<OffsetDateTime>| t.is_none_or(says);
    let kind = match &event.kind {
        EventKind::Exchange(x) => {
            says_opt(x.request_out)
                && says_opt(x.response_in)
                && says_opt(x.request_in)
                && says_opt(x.response_out)
        }
        EventKind::CertExpiry { not_after, .. } => says(*not_after),
        EventKind::UncleanStop { previous_start, .. } => says_opt(*previous_start),
        _ => true,
    };
    kind && says(event.time)
        && says_opt(event.op_start)
        && says_opt(event.op_end)
        && event.account.as_deref() != Some("")
        && event.transaction_id.as_deref() != Some("")
}

/// The record text of `event`: `msg` (its MSG, as its syslog line has it) when that says it
/// exactly, else its JSON.
pub(crate) fn from_msg(event: &AuditEvent, msg: &str) -> Result<String, serde_json::Error> {
    if exact(event) {
        Ok(msg.to_owned())
    } else {
        json(event)
    }
}

/// The record text of `event`, its MSG written here (no syslog line was made for it).
pub(crate) fn write(event: &AuditEvent) -> Result<String, serde_json::Error> {
    if exact(event) {
        let mut out = String::with_capacity(768);
        crate::syslog::write_msg(event, &mut out);
        Ok(out)
    } else {
        json(event)
    }
}

/// `event`'s JSON; what the hand-written text declines, serde writes or refuses.
fn json(event: &AuditEvent) -> Result<String, serde_json::Error> {
    let mut body = String::with_capacity(768);
    if crate::body::write(event, &mut body) {
        Ok(body)
    } else {
        serde_json::to_string(event)
    }
}

/// The event a record's text holds: a MSG, or JSON as records were written before.
pub fn decode(body: &str) -> Result<AuditEvent, StoreError> {
    if body.starts_with('{') {
        return Ok(serde_json::from_str(body)?);
    }
    from_msg_text(body).map_err(|e| StoreError::Record(e.0))
}

/// What was wrong with a MSG record.
#[derive(Debug)]
struct Bad(String);

fn bad(what: impl Into<String>) -> Bad {
    Bad(what.into())
}

/// A MSG's fields, taken one by one; whatever is left over at the end is an error.
struct Fields(HashMap<String, String>);

impl Fields {
    fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    fn need(&mut self, name: &str) -> Result<String, Bad> {
        self.take(name).ok_or_else(|| bad(format!("no `{name}`")))
    }

    /// A common field written empty when absent.
    fn maybe(&mut self, name: &str) -> Result<Option<String>, Bad> {
        Ok(Some(self.need(name)?).filter(|v| !v.is_empty()))
    }

    fn time(&mut self, name: &str) -> Result<OffsetDateTime, Bad> {
        parse_time(name, &self.need(name)?)
    }

    fn opt_time(&mut self, name: &str) -> Result<Option<OffsetDateTime>, Bad> {
        self.take(name).map(|v| parse_time(name, &v)).transpose()
    }

    fn number<T: std::str::FromStr>(&mut self, name: &str) -> Result<T, Bad> {
        parse_number(name, &self.need(name)?)
    }

    fn opt_number<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, Bad> {
        self.take(name).map(|v| parse_number(name, &v)).transpose()
    }

    fn done(self) -> Result<(), Bad> {
        match self.0.keys().min() {
            Some(extra) => Err(bad(format!("unexpected field `{extra}`"))),
            None => Ok(()),
        }
    }
}

fn parse_time(name: &str, v: &str) -> Result<OffsetDateTime, Bad> {
    OffsetDateTime::parse(v, &Rfc3339).map_err(|e| bad(format!("`{name}` is not a time: {e}")))
}

fn parse_number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, Bad> {
    // `FromStr` for integers takes a leading `+`, which no record has.
    if v.starts_with('+') {
        return Err(bad(format!("`{name}` is not a number")));
    }
    v.parse()
        .map_err(|_| bad(format!("`{name}` is not a number")))
}

/// The value of `v` among `all` whose name (by `name`) it is.
fn named<T: Copy>(
    field: &str,
    v: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, Bad> {
    all.iter()
        .copied()
        .find(|&x| name(x) == v)
        .ok_or_else(|| bad(format!("`{field}` has no value `{v}`")))
}

fn from_msg_text(body: &str) -> Result<AuditEvent, Bad> {
    let pairs =
        crate::syslog::parse_msg(body).ok_or_else(|| bad("not a MSG of key=value pairs"))?;
    let count = pairs.len();
    let mut f = Fields(pairs.into_iter().collect());
    if f.0.len() != count {
        return Err(bad("a field appears twice"));
    }
    let id = f.need("id")?;
    let id = Uuid::try_parse(&id).map_err(|_| bad("`id` is not a UUID"))?;
    let time = f.time("time")?;
    let source = f.need("source")?;
    let account = f.maybe("account")?;
    let client_ip = f
        .maybe("client_ip")?
        .map(|v| {
            v.parse()
                .map_err(|_| bad("`client_ip` is not an IP address"))
        })
        .transpose()?;
    let op_start = f
        .maybe("op_start")?
        .map(|v| parse_time("op_start", &v))
        .transpose()?;
    let op_end = f
        .maybe("op_end")?
        .map(|v| parse_time("op_end", &v))
        .transpose()?;
    let level = named("level", &f.need("level")?, &Level::ALL, Level::as_str)?;
    if f.need("category")? != level.category().as_str() {
        return Err(bad("`category` is not the one its level gives"));
    }
    let transaction_id = f.maybe("transaction_id")?;
    let name = f.need("kind")?;
    let description = f.need("description")?;
    let kind = kind(&name, &mut f)?;
    f.done()?;
    Ok(AuditEvent {
        id,
        time,
        source,
        account,
        client_ip,
        op_start,
        op_end,
        level,
        transaction_id,
        kind,
        description,
    })
}

/// The kind named `name` (its MSGID) with its own fields from `f`.
fn kind(name: &str, f: &mut Fields) -> Result<EventKind, Bad> {
    // The operation whose kind (made by `make`) is named `name`.
    let op_of = |make: fn(ChangeOp) -> EventKind| {
        ChangeOp::ALL
            .into_iter()
            .find(|&op| make(op).name() == name)
    };
    Ok(match name {
        "LOGIN" => EventKind::Login {
            user: f.need("user")?,
        },
        "LOGOUT" => EventKind::Logout {
            user: f.need("user")?,
        },
        "AUTH_OK" => EventKind::AuthOk {
            key_id: f.need("key_id")?,
        },
        "AUTH_FAIL" => EventKind::AuthFail {
            key_id: f.take("key_id"),
            reason: f.need("reason")?,
        },
        "OBJECT_ACCESS" => EventKind::ObjectAccess {
            object: named(
                "object",
                &f.need("object")?,
                &ObjectKind::ALL,
                ObjectKind::as_str,
            )?,
            object_id: f.need("object_id")?,
        },
        "EXCHANGE" => EventKind::Exchange(Exchange {
            direction: named(
                "direction",
                &f.need("direction")?,
                &Direction::ALL,
                Direction::as_str,
            )?,
            target: f.need("target")?,
            service_id: f.take("service_id"),
            message_id: f.take("message_id"),
            request_out: f.opt_time("request_out")?,
            response_in: f.opt_time("response_in")?,
            request_in: f.opt_time("request_in")?,
            response_out: f.opt_time("response_out")?,
            request_bytes: f.opt_number("request_bytes")?,
            response_bytes: f.opt_number("response_bytes")?,
            result: exchange_result(&f.need("result")?)?,
        }),
        "SIG_VERIFY" => EventKind::SignatureVerify {
            valid: match f.need("valid")?.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(bad("`valid` is neither true nor false")),
            },
            signer: f.take("signer"),
            reason: f.take("reason"),
            message_id: f.take("message_id"),
        },
        "CERT_EXPIRY" => EventKind::CertExpiry {
            subject: f.need("subject")?,
            serial: f.need("serial")?,
            not_after: f.time("not_after")?,
            days_left: f.number("days_left")?,
        },
        "AUDIT_DROPPED" => EventKind::AuditDropped {
            count: f.number("count")?,
            sink: f.need("sink")?,
        },
        "UNCLEAN_STOP" => EventKind::UncleanStop {
            previous_pid: f.opt_number("previous_pid")?,
            previous_start: f.opt_time("previous_start")?,
        },
        other => {
            if let Some(op) = op_of(|op| EventKind::Account {
                op,
                key_id: String::new(),
            }) {
                EventKind::Account {
                    op,
                    key_id: f.need("key_id")?,
                }
            } else if let Some(op) = op_of(|op| EventKind::Config {
                op,
                what: String::new(),
            }) {
                EventKind::Config {
                    op,
                    what: f.need("what")?,
                }
            } else if let Some(reason) = RefusalReason::ALL.into_iter().find(|r| r.msgid() == other)
            {
                EventKind::Refused {
                    reason,
                    action: f.need("action")?,
                    detail: f.take("detail"),
                }
            } else if let Some(stage) = LifecycleStage::ALL.into_iter().find(|s| s.msgid() == other)
            {
                EventKind::Lifecycle {
                    stage,
                    message_id: f.need("message_id")?,
                    target: f.take("target"),
                    detail: f.take("detail"),
                }
            } else {
                return Err(bad(format!("no kind of event is named `{other}`")));
            }
        }
    })
}

/// `shep:<code>`, `http:<status>` or `transport:<error>`, as [`ExchangeResult`] displays them.
fn exchange_result(v: &str) -> Result<ExchangeResult, Bad> {
    match v.split_once(':') {
        Some(("shep", code)) => Ok(ExchangeResult::Shep(code.to_owned())),
        Some(("http", status)) => Ok(ExchangeResult::Http(parse_number("result", status)?)),
        Some(("transport", error)) => Ok(ExchangeResult::Transport(error.to_owned())),
        _ => Err(bad(format!("`result` is not a result: `{v}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::to_micros;
    use crate::syslog::{Formatter, Scratch};
    use crate::testgen::Gen;

    /// `event` with every time taken to the microsecond.
    fn in_micros(event: &AuditEvent) -> AuditEvent {
        let mut e = event.clone();
        let opt = |t: &mut Option<OffsetDateTime>| *t = t.map(to_micros);
        e.time = to_micros(e.time);
        opt(&mut e.op_start);
        opt(&mut e.op_end);
        match &mut e.kind {
            EventKind::Exchange(x) => {
                opt(&mut x.request_out);
                opt(&mut x.response_in);
                opt(&mut x.request_in);
                opt(&mut x.response_out);
            }
            EventKind::CertExpiry { not_after, .. } => *not_after = to_micros(*not_after),
            EventKind::UncleanStop { previous_start, .. } => opt(previous_start),
            _ => {}
        }
        e
    }

    /// Equal, offsets included (`OffsetDateTime`'s `==` compares instants only).
    fn assert_same(read: &AuditEvent, expected: &AuditEvent) {
        assert_eq!(read, expected);
        assert_eq!(
            serde_json::to_string(read).expect("json"),
            serde_json::to_string(expected).expect("json")
        );
    }

    #[test]
    fn every_event_reads_back_from_its_record_with_its_times_to_the_microsecond() {
        let mut gen = Gen(0x7ec0_4d5e_ed01);
        let (mut msgs, mut jsons) = (0, 0);
        for i in 0..20_000 {
            let event = gen.event(i);
            let Ok(record) = write(&event) else {
                // Only what neither a MSG nor JSON can say: serde refuses it too.
                assert!(!exact(&event), "{event:?}");
                assert!(serde_json::to_string(&event).is_err(), "{event:?}");
                continue;
            };
            let read = decode(&record).unwrap_or_else(|e| panic!("{e}: {record}"));
            if exact(&event) {
                assert!(record.starts_with("id="), "{record}");
                assert_same(&read, &in_micros(&event));
                msgs += 1;
            } else {
                assert!(record.starts_with('{'), "{record}");
                assert_same(&read, &event);
                jsons += 1;
            }
        }
        // Both ways were taken, the MSG by most.
        assert!(msgs > 10_000 && jsons > 100, "{msgs} {jsons}");
    }

    #[test]
    fn the_record_of_an_event_is_the_msg_of_its_syslog_line() {
        let mut gen = Gen(0x11ce_0f5e_1f00);
        let formatter = Formatter::new(13, "gw", "qaqpa");
        let mut scratch = Scratch::default();
        for i in 0..5_000 {
            let event = gen.event(i);
            if !exact(&event) {
                continue;
            }
            let [_, msg] = formatter.format_parts(&event, &mut scratch);
            assert_eq!(write(&event).expect("written"), msg);
            assert_eq!(from_msg(&event, msg).expect("written"), msg);
        }
    }

    #[test]
    fn an_empty_account_or_transaction_is_recorded_as_json_and_reads_back_empty() {
        for event in [
            AuditEvent::login("api", "u").account(""),
            AuditEvent::login("api", "u").transaction(""),
        ] {
            let record = write(&event).expect("written");
            assert!(record.starts_with('{'), "{record}");
            assert_same(&decode(&record).expect("read"), &event);
            // The line's MSG is not taken for it either.
            assert!(from_msg(&event, "id=x").expect("written").starts_with('{'));
        }
    }

    #[test]
    fn a_time_neither_a_msg_nor_json_can_say_is_refused() {
        // An offset with seconds, and offsets of 24 hours or more (`time` allows up to
        // ±25:59:59, RFC 3339 only up to ±23:59).
        for (h, m, s) in [(5, 0, 30), (24, 0, 0), (-24, 0, 0), (25, 59, 0)] {
            let odd = time::UtcOffset::from_hms(h, m, s).expect("offset");
            let event = AuditEvent::login("api", "u").at(OffsetDateTime::now_utc().to_offset(odd));
            assert!(!exact(&event), "{odd}");
            assert!(write(&event).is_err(), "{odd}");
            assert!(from_msg(&event, "id=x").is_err(), "{odd}");
            // Its syslog line says the time as Unix seconds, never as an offset RFC 5424
            // cannot read.
            let line = crate::syslog::Formatter::new(13, "h", "qaqpa").format(&event);
            let seconds = event.time.unix_timestamp().to_string();
            assert!(line.contains(&format!(" time=\"{seconds}\"")), "{line}");
        }
        // The greatest offset RFC 3339 can say is recorded and reads back.
        let edge = time::UtcOffset::from_hms(23, 59, 0).expect("offset");
        let event = AuditEvent::login("api", "u").at(OffsetDateTime::now_utc().to_offset(edge));
        assert!(exact(&event));
        assert_same(
            &decode(&write(&event).expect("written")).expect("read"),
            &event,
        );
    }

    #[test]
    fn a_record_this_journal_did_not_write_is_refused_with_what_is_wrong() {
        let event = AuditEvent::lifecycle(
            "engine",
            LifecycleStage::Delivered,
            "m-1",
            Some("esedo"),
            None,
        )
        .transaction("m-1");
        let good = write(&event).expect("written");
        assert_same(&decode(&good).expect("read"), &event);
        let cases = [
            (
                good.replace(" kind=MSG_DELIVERED", " kind=MSG_LOST"),
                "no kind of event is named `MSG_LOST`",
            ),
            (
                good.replace(" level=informational", " level=loud"),
                "`level` has no value `loud`",
            ),
            (
                good.replace(" category=INFO", " category=ERROR"),
                "`category` is not the one its level gives",
            ),
            (good.replace(" message_id=m-1", ""), "no `message_id`"),
            (format!("{good} colour=red"), "unexpected field `colour`"),
            (format!("{good} detail=a detail=b"), "a field appears twice"),
            (
                good.replace("message_id=m-1", "message_id=\"m-1"),
                "not a MSG of key=value pairs",
            ),
            (good.replacen("id=", "id=x", 1), "`id` is not a UUID"),
        ];
        for (record, expected) in cases {
            assert_ne!(record, good, "{expected}");
            match decode(&record) {
                Err(StoreError::Record(what)) => assert_eq!(what, expected, "{record}"),
                other => panic!("{record}: {other:?}"),
            }
        }
    }
}
