//! Events of every kind with every sort of value, from a fixed generator, for the tests that
//! check what an event is written as (its record text, its syslog line) against a reference.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::event::{
    AuditEvent, ChangeOp, Direction, EventKind, Exchange, ExchangeResult, Level, LifecycleStage,
    ObjectKind, RefusalReason,
};

/// A fixed LCG, so a failure repeats.
pub(crate) struct Gen(pub(crate) u64);

impl Gen {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, of: &[T]) -> T {
        of[self.below(of.len() as u64) as usize]
    }

    /// Text with every character class the escaping treats differently.
    pub(crate) fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "7",
            " ",
            "Қапқа",
            "\"",
            "\\",
            "/",
            "]",
            "=",
            "\n",
            "\r",
            "\t",
            "\u{8}",
            "\u{c}",
            "\u{0}",
            "\u{1}",
            "\u{1b}",
            "\u{1f}",
            "\u{7f}",
            "\u{85}",
            "\u{2028}",
            "😀",
            "<&>",
            "870101300123",
        ];
        let len = self.below(12);
        (0..len).map(|_| self.pick(PIECES)).collect()
    }

    pub(crate) fn opt_text(&mut self) -> Option<String> {
        (self.below(3) != 0).then(|| self.text())
    }

    pub(crate) fn time(&mut self) -> OffsetDateTime {
        let secs = i64::try_from(self.next() % 253_402_300_000).expect("fits");
        let nanos = match self.below(4) {
            0 => 0,
            1 => self.below(1000) * 1_000_000,
            2 => self.below(1_000_000) * 1000,
            _ => self.below(1_000_000_000),
        };
        let offset = self.pick(&[(0, 0), (5, 0), (6, 30), (-3, -30), (-11, 0), (23, 59)]);
        OffsetDateTime::from_unix_timestamp(secs)
            .expect("in range")
            .replace_nanosecond(u32::try_from(nanos).expect("fits"))
            .expect("nanos")
            .to_offset(UtcOffset::from_hms(offset.0, offset.1, 0).expect("offset"))
    }

    pub(crate) fn opt_time(&mut self) -> Option<OffsetDateTime> {
        (self.below(2) == 0).then(|| self.time())
    }

    pub(crate) fn kind(&mut self, which: u64) -> EventKind {
        match which % 14 {
            0 => EventKind::Login { user: self.text() },
            1 => EventKind::Logout { user: self.text() },
            2 => EventKind::AuthOk {
                key_id: self.text(),
            },
            3 => EventKind::AuthFail {
                key_id: self.opt_text(),
                reason: self.text(),
            },
            4 => EventKind::Account {
                op: self.pick(&ChangeOp::ALL),
                key_id: self.text(),
            },
            5 => EventKind::Config {
                op: self.pick(&ChangeOp::ALL),
                what: self.text(),
            },
            6 => EventKind::Refused {
                reason: self.pick(&RefusalReason::ALL),
                action: self.text(),
                detail: self.opt_text(),
            },
            7 => EventKind::ObjectAccess {
                object: self.pick(&ObjectKind::ALL),
                object_id: self.text(),
            },
            8 => EventKind::Exchange(Exchange {
                direction: self.pick(&Direction::ALL),
                target: self.text(),
                service_id: self.opt_text(),
                message_id: self.opt_text(),
                request_out: self.opt_time(),
                response_in: self.opt_time(),
                request_in: self.opt_time(),
                response_out: self.opt_time(),
                request_bytes: (self.below(2) == 0).then(|| self.next() * 7919),
                response_bytes: (self.below(2) == 0).then(|| u64::MAX - self.below(3)),
                result: match self.below(3) {
                    0 => ExchangeResult::Shep(self.text()),
                    1 => ExchangeResult::Http(u16::try_from(self.below(600)).expect("fits")),
                    _ => ExchangeResult::Transport(self.text()),
                },
            }),
            9 => EventKind::SignatureVerify {
                valid: self.below(2) == 0,
                signer: self.opt_text(),
                reason: self.opt_text(),
                message_id: self.opt_text(),
            },
            10 => EventKind::CertExpiry {
                subject: self.text(),
                serial: self.text(),
                not_after: self.time(),
                days_left: i64::try_from(self.below(61)).expect("fits") - 30,
            },
            11 => EventKind::Lifecycle {
                stage: self.pick(&LifecycleStage::ALL),
                message_id: self.text(),
                target: self.opt_text(),
                detail: self.opt_text(),
            },
            12 => EventKind::AuditDropped {
                count: self.next(),
                sink: self.text(),
            },
            _ => EventKind::UncleanStop {
                previous_pid: (self.below(2) == 0)
                    .then(|| u32::try_from(self.next() % u64::from(u32::MAX)).expect("fits")),
                previous_start: self.opt_time(),
            },
        }
    }

    pub(crate) fn event(&mut self, which: u64) -> AuditEvent {
        AuditEvent {
            id: Uuid::now_v7(),
            time: self.time(),
            source: self.text(),
            account: self.opt_text(),
            client_ip: match self.below(3) {
                0 => None,
                1 => Some(IpAddr::V4(Ipv4Addr::from(
                    u32::try_from(self.next() & 0xffff_ffff).expect("fits"),
                ))),
                _ => Some(IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0,
                    0,
                    0,
                    0,
                    0,
                    u16::try_from(self.below(65_536)).expect("fits"),
                ))),
            },
            op_start: self.opt_time(),
            op_end: self.opt_time(),
            level: self.pick(&Level::ALL),
            transaction_id: self.opt_text(),
            kind: self.kind(which),
            description: self.text(),
        }
    }
}
