//! The audit event model: one [`AuditEvent`] with the tender's common fields and an
//! [`EventKind`] whose variants carry typed details, one variant per kind of significant event.
//!
//! Privacy is structural: there is no free-form map of data, only typed fields, and none of them
//! is meant for secrets (API key secrets, key passwords), document contents or personal data.
//! Free-text fields (description, reasons, certificate subjects) have every 12-digit run (an
//! IIN or BIN) masked by [`AuditEvent::mask_iins`] when masking is on, and are then cut to
//! [`MAX_TEXT_CHARS`] (masked first, so an IIN across the cut is masked too).
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Free-text fields longer than this (in characters) are cut, so one event stays one small
/// syslog line and one UDP datagram.
pub const MAX_TEXT_CHARS: usize = 2048;

/// How bad an event is; maps to the syslog severities 1..7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Informational,
    Debug,
}

impl Level {
    /// Every level, from the worst.
    pub const ALL: [Level; 7] = [
        Level::Alert,
        Level::Critical,
        Level::Error,
        Level::Warning,
        Level::Notice,
        Level::Informational,
        Level::Debug,
    ];

    /// The RFC 5424 severity (1 = alert … 7 = debug).
    pub fn severity(self) -> u8 {
        match self {
            Level::Alert => 1,
            Level::Critical => 2,
            Level::Error => 3,
            Level::Warning => 4,
            Level::Notice => 5,
            Level::Informational => 6,
            Level::Debug => 7,
        }
    }

    /// The level for an RFC 5424 severity (0, emergency, is taken as alert).
    pub fn from_severity(s: u8) -> Option<Level> {
        Some(match s {
            0 | 1 => Level::Alert,
            2 => Level::Critical,
            3 => Level::Error,
            4 => Level::Warning,
            5 => Level::Notice,
            6 => Level::Informational,
            7 => Level::Debug,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Alert => "alert",
            Level::Critical => "critical",
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Informational => "informational",
            Level::Debug => "debug",
        }
    }

    /// The tender's category: INFO (notice, informational), WARN (warning), ERROR (alert,
    /// critical, error), DEBUG (debug).
    pub fn category(self) -> Category {
        match self {
            Level::Alert | Level::Critical | Level::Error => Category::Error,
            Level::Warning => Category::Warn,
            Level::Notice | Level::Informational => Category::Info,
            Level::Debug => Category::Debug,
        }
    }
}

/// The tender's event category, derived from [`Level`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Info,
    Warn,
    Error,
    Debug,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Info => "INFO",
            Category::Warn => "WARN",
            Category::Error => "ERROR",
            Category::Debug => "DEBUG",
        }
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// Authenticated, but not allowed to do this.
    Unauthorized,
    /// The request was rejected by validation.
    Validation,
    /// A rate limit was hit.
    RateLimited,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 3] = [
        RefusalReason::Unauthorized,
        RefusalReason::Validation,
        RefusalReason::RateLimited,
    ];

    /// The name in the record JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Unauthorized => "unauthorized",
            RefusalReason::Validation => "validation",
            RefusalReason::RateLimited => "rate_limited",
        }
    }

    pub(crate) fn msgid(self) -> &'static str {
        match self {
            RefusalReason::Unauthorized => "ACCESS_DENIED",
            RefusalReason::Validation => "REJECTED",
            RefusalReason::RateLimited => "RATE_LIMITED",
        }
    }
}

/// What was created, changed or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Created,
    Changed,
    Deleted,
}

impl ChangeOp {
    pub const ALL: [ChangeOp; 3] = [ChangeOp::Created, ChangeOp::Changed, ChangeOp::Deleted];

    /// The name in the record JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Created => "created",
            ChangeOp::Changed => "changed",
            ChangeOp::Deleted => "deleted",
        }
    }
}

/// Which kind of object was accessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Message,
    Attachment,
    InboxItem,
    AuditJournal,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 4] = [
        ObjectKind::Message,
        ObjectKind::Attachment,
        ObjectKind::InboxItem,
        ObjectKind::AuditJournal,
    ];

    /// The name in the record JSON and the syslog fields.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Message => "message",
            ObjectKind::Attachment => "attachment",
            ObjectKind::InboxItem => "inbox_item",
            ObjectKind::AuditJournal => "audit_journal",
        }
    }
}

/// Which way an exchange went: we called the target, or the target pushed to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Outbound, Direction::Inbound];

    /// The name in the record JSON and the syslog fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// How an exchange with another system ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeResult {
    /// A ШЭП status code such as `SCSS001` (success), `SCSE002`, `SCSE003`.
    Shep(String),
    /// An HTTP status.
    Http(u16),
    /// No answer: a transport error (connect refused, timeout, TLS failure…).
    Transport(String),
}

impl ExchangeResult {
    /// Whether the exchange succeeded (ШЭП `SCSS…`, HTTP 2xx).
    pub fn is_success(&self) -> bool {
        match self {
            ExchangeResult::Shep(code) => code.starts_with("SCSS"),
            ExchangeResult::Http(status) => (200..300).contains(status),
            ExchangeResult::Transport(_) => false,
        }
    }

    /// `shep:SCSS001`, `http:200`, `transport:<error>`.
    pub fn code(&self) -> String {
        self.to_string()
    }

    /// Appends the result as `Display` writes it, without the formatting machinery: every
    /// delivery's `EXCHANGE` event has it in its description.
    pub(crate) fn push_to(&self, out: &mut String) {
        match self {
            ExchangeResult::Shep(code) => {
                out.push_str("shep:");
                out.push_str(code);
            }
            ExchangeResult::Http(status) => {
                out.push_str("http:");
                push_decimal_chars(out, u64::from(*status));
            }
            ExchangeResult::Transport(error) => {
                out.push_str("transport:");
                out.push_str(error);
            }
        }
    }
}

impl std::fmt::Display for ExchangeResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeResult::Shep(code) => write!(f, "shep:{code}"),
            ExchangeResult::Http(status) => write!(f, "http:{status}"),
            ExchangeResult::Transport(error) => write!(f, "transport:{error}"),
        }
    }
}

/// One request to (or push from) another system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub direction: Direction,
    /// The route name.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Outbound: when our request left.
    #[serde(
        with = "json_time::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_out: Option<OffsetDateTime>,
    /// Outbound: when the answer came in.
    #[serde(
        with = "json_time::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub response_in: Option<OffsetDateTime>,
    /// Inbound: when the pushed request came in.
    #[serde(
        with = "json_time::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_in: Option<OffsetDateTime>,
    /// Inbound: when our answer left.
    #[serde(
        with = "json_time::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub response_out: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_bytes: Option<u64>,
    pub result: ExchangeResult,
}

/// A step in a message's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStage {
    Accepted,
    Delivered,
    Failed,
    DeadLettered,
    ReceiptApplied,
    WebhookDelivered,
    WebhookFailed,
    /// Put back in the queue by an operator (`POST /v1/messages/{id}/retry`, `qaqpa dlq
    /// retry`) after it was dead-lettered or failed: it will be delivered again.
    Requeued,
}

impl LifecycleStage {
    /// Every stage, in the order of the enum.
    pub const ALL: [LifecycleStage; 8] = [
        LifecycleStage::Accepted,
        LifecycleStage::Delivered,
        LifecycleStage::Failed,
        LifecycleStage::DeadLettered,
        LifecycleStage::ReceiptApplied,
        LifecycleStage::WebhookDelivered,
        LifecycleStage::WebhookFailed,
        LifecycleStage::Requeued,
    ];

    /// The name in the record JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStage::Accepted => "accepted",
            LifecycleStage::Delivered => "delivered",
            LifecycleStage::Failed => "failed",
            LifecycleStage::DeadLettered => "dead_lettered",
            LifecycleStage::ReceiptApplied => "receipt_applied",
            LifecycleStage::WebhookDelivered => "webhook_delivered",
            LifecycleStage::WebhookFailed => "webhook_failed",
            LifecycleStage::Requeued => "requeued",
        }
    }

    pub(crate) fn msgid(self) -> &'static str {
        match self {
            LifecycleStage::Accepted => "MSG_ACCEPTED",
            LifecycleStage::Delivered => "MSG_DELIVERED",
            LifecycleStage::Failed => "MSG_FAILED",
            LifecycleStage::DeadLettered => "MSG_DEAD",
            LifecycleStage::ReceiptApplied => "RECEIPT_APPLIED",
            LifecycleStage::WebhookDelivered => "WEBHOOK_OK",
            LifecycleStage::WebhookFailed => "WEBHOOK_FAIL",
            LifecycleStage::Requeued => "MSG_REQUEUED",
        }
    }

    /// [`LifecycleStage::msgid`] in lower case, as the event's description says it.
    fn msgid_lower(self) -> &'static str {
        match self {
            LifecycleStage::Accepted => "msg_accepted",
            LifecycleStage::Delivered => "msg_delivered",
            LifecycleStage::Failed => "msg_failed",
            LifecycleStage::DeadLettered => "msg_dead",
            LifecycleStage::ReceiptApplied => "receipt_applied",
            LifecycleStage::WebhookDelivered => "webhook_ok",
            LifecycleStage::WebhookFailed => "webhook_fail",
            LifecycleStage::Requeued => "msg_requeued",
        }
    }
}

/// What happened, with the kind's own typed details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// An interactive login (user id in [`AuditEvent::account`]).
    Login {
        user: String,
    },
    Logout {
        user: String,
    },
    /// API key authentication succeeded. The key id, never the secret.
    AuthOk {
        key_id: String,
    },
    /// Authentication failed; `key_id` when the presented key's id could be read.
    AuthFail {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
        reason: String,
    },
    /// An account (API key) was created, changed or deleted/revoked.
    Account {
        op: ChangeOp,
        key_id: String,
    },
    /// Configuration was created, changed or deleted (e.g. routes reloaded).
    Config {
        op: ChangeOp,
        what: String,
    },
    /// An action was refused.
    Refused {
        reason: RefusalReason,
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// An object was read or downloaded.
    ObjectAccess {
        object: ObjectKind,
        object_id: String,
    },
    /// One exchange with another system.
    Exchange(Exchange),
    /// A signature was verified.
    SignatureVerify {
        valid: bool,
        /// A short summary of the signer (e.g. `IIN=870101300123, O=…`, masked when masking is
        /// on).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signer: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
    },
    /// A certificate expires within 30 days.
    CertExpiry {
        subject: String,
        serial: String,
        #[serde(with = "json_time")]
        not_after: OffsetDateTime,
        days_left: i64,
    },
    /// A step in a message's life.
    Lifecycle {
        stage: LifecycleStage,
        message_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Events a syslog sink had to drop: its spool was full, could not be written or was found
    /// damaged, or (UDP) a line was too long for a datagram. The gateway's log says which.
    AuditDropped {
        count: u64,
        sink: String,
    },
    /// The gateway's previous run ended without a clean stop (killed, crashed, power lost):
    /// events it had not yet journalled may be missing. What its run marker said, where it
    /// could be read.
    UncleanStop {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_pid: Option<u32>,
        #[serde(
            with = "json_time::option",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        previous_start: Option<OffsetDateTime>,
    },
}

impl EventKind {
    /// The short stable name, used as the syslog MSGID (≤ 32 printable ASCII characters).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Login { .. } => "LOGIN",
            EventKind::Logout { .. } => "LOGOUT",
            EventKind::AuthOk { .. } => "AUTH_OK",
            EventKind::AuthFail { .. } => "AUTH_FAIL",
            EventKind::Account { op, .. } => match op {
                ChangeOp::Created => "KEY_CREATED",
                ChangeOp::Changed => "KEY_CHANGED",
                ChangeOp::Deleted => "KEY_REVOKED",
            },
            EventKind::Config { op, .. } => match op {
                ChangeOp::Created => "CONFIG_CREATED",
                ChangeOp::Changed => "CONFIG_CHANGED",
                ChangeOp::Deleted => "CONFIG_DELETED",
            },
            EventKind::Refused { reason, .. } => reason.msgid(),
            EventKind::ObjectAccess { .. } => "OBJECT_ACCESS",
            EventKind::Exchange(_) => "EXCHANGE",
            EventKind::SignatureVerify { .. } => "SIG_VERIFY",
            EventKind::CertExpiry { .. } => "CERT_EXPIRY",
            EventKind::Lifecycle { stage, .. } => stage.msgid(),
            EventKind::AuditDropped { .. } => "AUDIT_DROPPED",
            EventKind::UncleanStop { .. } => "UNCLEAN_STOP",
        }
    }

    /// The target (route name) this event is about, if any; the store indexes it.
    pub fn target(&self) -> Option<&str> {
        match self {
            EventKind::Exchange(x) => Some(&x.target),
            EventKind::Lifecycle { target, .. } => target.as_deref(),
            _ => None,
        }
    }

    /// Adds the kind's own fields to `f` as (name, value) pairs, in a fixed order; absent
    /// optional fields are left out. Names are ≤ 32 characters of `[a-z_]`.
    pub fn write_fields<F: FieldSink>(&self, f: &mut F) {
        let opt = |f: &mut F, k: &'static Key, v: &Option<String>| {
            if let Some(v) = v {
                f.str(k, v);
            }
        };
        match self {
            EventKind::Login { user } | EventKind::Logout { user } => f.str(key!("user"), user),
            EventKind::AuthOk { key_id } => f.str(key!("key_id"), key_id),
            EventKind::AuthFail { key_id, reason } => {
                opt(f, key!("key_id"), key_id);
                f.str(key!("reason"), reason);
            }
            EventKind::Account { key_id, .. } => f.str(key!("key_id"), key_id),
            EventKind::Config { what, .. } => f.str(key!("what"), what),
            EventKind::Refused { action, detail, .. } => {
                f.str(key!("action"), action);
                opt(f, key!("detail"), detail);
            }
            EventKind::ObjectAccess { object, object_id } => {
                f.plain(key!("object"), object.as_str());
                f.str(key!("object_id"), object_id);
            }
            EventKind::Exchange(x) => {
                f.plain(key!("direction"), x.direction.as_str());
                f.str(key!("target"), &x.target);
                opt(f, key!("service_id"), &x.service_id);
                opt(f, key!("message_id"), &x.message_id);
                for (k, t) in [
                    (key!("request_out"), x.request_out),
                    (key!("response_in"), x.response_in),
                    (key!("request_in"), x.request_in),
                    (key!("response_out"), x.response_out),
                ] {
                    if let Some(t) = t {
                        f.time(k, t);
                    }
                }
                if let Some(n) = x.request_bytes {
                    f.number(key!("request_bytes"), "", n);
                }
                if let Some(n) = x.response_bytes {
                    f.number(key!("response_bytes"), "", n);
                }
                match &x.result {
                    ExchangeResult::Http(status) => {
                        f.number(key!("result"), "http:", u64::from(*status))
                    }
                    other => f.display(key!("result"), other),
                }
            }
            EventKind::SignatureVerify {
                valid,
                signer,
                reason,
                message_id,
            } => {
                f.plain(key!("valid"), if *valid { "true" } else { "false" });
                opt(f, key!("signer"), signer);
                opt(f, key!("reason"), reason);
                opt(f, key!("message_id"), message_id);
            }
            EventKind::CertExpiry {
                subject,
                serial,
                not_after,
                days_left,
            } => {
                f.str(key!("subject"), subject);
                f.str(key!("serial"), serial);
                f.time(key!("not_after"), *not_after);
                f.display(key!("days_left"), days_left);
            }
            EventKind::Lifecycle {
                message_id,
                target,
                detail,
                ..
            } => {
                f.str(key!("message_id"), message_id);
                opt(f, key!("target"), target);
                opt(f, key!("detail"), detail);
            }
            EventKind::AuditDropped { count, sink } => {
                f.number(key!("count"), "", *count);
                f.str(key!("sink"), sink);
            }
            EventKind::UncleanStop {
                previous_pid,
                previous_start,
            } => {
                if let Some(pid) = previous_pid {
                    f.number(key!("previous_pid"), "", u64::from(*pid));
                }
                if let Some(t) = previous_start {
                    f.time(key!("previous_start"), *t);
                }
            }
        }
    }

    /// Hands `f` every free-text field (the ones that may carry an IIN/BIN or be long), one by
    /// one: no list of them is built, as this runs for every event recorded.
    fn each_text_mut(&mut self, mut f: impl FnMut(&mut String)) {
        match self {
            EventKind::AuthFail { reason, .. } => f(reason),
            EventKind::Config { what, .. } => f(what),
            EventKind::Refused { action, detail, .. } => {
                f(action);
                detail.as_mut().map(f);
            }
            EventKind::Exchange(x) => match &mut x.result {
                // A SHEP status code is the target's text, as long as the target made it.
                ExchangeResult::Transport(text) | ExchangeResult::Shep(text) => f(text),
                ExchangeResult::Http(_) => {}
            },
            EventKind::SignatureVerify { signer, reason, .. } => {
                signer.as_mut().map(&mut f);
                reason.as_mut().map(f);
            }
            EventKind::CertExpiry { subject, .. } => f(subject),
            EventKind::Lifecycle { detail, .. } => {
                detail.as_mut().map(f);
            }
            EventKind::Login { .. }
            | EventKind::Logout { .. }
            | EventKind::AuthOk { .. }
            | EventKind::Account { .. }
            | EventKind::ObjectAccess { .. }
            | EventKind::AuditDropped { .. }
            | EventKind::UncleanStop { .. } => {}
        }
    }
}

/// One significant event. Its JSON (the journal's record body) leaves absent optional fields
/// out; bodies written with them as `null` read the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// UUIDv7, unique: receivers drop duplicates by it.
    pub id: Uuid,
    #[serde(with = "json_time")]
    pub time: OffsetDateTime,
    /// The service: `qaqpa-api`, `qaqpa-engine`, `adapter/esedo`…
    pub source: String,
    /// API key id or user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddr>,
    #[serde(
        with = "json_time::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub op_start: Option<OffsetDateTime>,
    #[serde(
        with = "json_time::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub op_end: Option<OffsetDateTime>,
    pub level: Level,
    /// The same along a message's whole path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    pub kind: EventKind,
    pub description: String,
}

/// A field's name and how it opens in a syslog line: ` name="` in STRUCTURED-DATA and
/// ` name=` in MSG. Made by `key!` at compile time, so a line copies each opening whole
/// rather than a space, the name and `="` one after the other.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub(crate) sd: &'static str,
    pub(crate) msg: &'static str,
}

/// The [`Key`] of a field named by a literal.
macro_rules! key {
    ($name:literal) => {
        const {
            &$crate::event::Key {
                name: $name,
                sd: concat!(" ", $name, "=\""),
                msg: concat!(" ", $name, "="),
            }
        }
    };
}
pub(crate) use key;

/// Where an event's fields go, in order, each a name and a value: [`Fields`] keeps them as
/// pairs; the syslog formatter writes them straight into a line.
pub trait FieldSink {
    /// A text value.
    fn str(&mut self, key: &'static Key, value: &str);
    /// A value its writer knows to be plain: no space, `=`, `"`, `\\`, `]` or control
    /// character (ids, the model's own names, empty), so it need not be looked through for
    /// them.
    fn plain(&mut self, key: &'static Key, value: &str);
    /// A time as [`rfc3339`] writes it (plain).
    fn time(&mut self, key: &'static Key, value: OffsetDateTime);
    /// `prefix` (plain) and `value` in decimal.
    fn number(&mut self, key: &'static Key, prefix: &'static str, value: u64);
    /// A value as its `Display` writes it.
    fn display(&mut self, key: &'static Key, value: impl std::fmt::Display);
}

/// Named field values written end to end into one buffer, without an allocation per field:
/// an event's fields as (name, value) pairs ([`crate::syslog::fields`]).
#[derive(Debug, Default)]
pub struct Fields {
    text: String,
    /// Per field: its name and where its value ends in `text`.
    ends: Vec<(&'static str, usize)>,
}

impl Fields {
    /// Empty, with room for a typical event.
    pub fn new() -> Fields {
        Fields {
            text: String::with_capacity(512),
            ends: Vec::with_capacity(24),
        }
    }

    /// Empties it, keeping its buffers.
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    fn end(&mut self, name: &'static str) {
        self.ends.push((name, self.text.len()));
    }

    /// The fields in the order written.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(name, end)| {
            let value = &self.text[start..end];
            start = end;
            (name, value)
        })
    }
}

impl FieldSink for Fields {
    fn str(&mut self, key: &'static Key, value: &str) {
        self.text.push_str(value);
        self.end(key.name);
    }

    /// Checked in debug builds.
    fn plain(&mut self, key: &'static Key, value: &str) {
        debug_assert!(is_plain(value), "{}={value:?} is not plain", key.name);
        self.str(key, value);
    }

    fn time(&mut self, key: &'static Key, value: OffsetDateTime) {
        write_rfc3339(&mut self.text, value);
        self.end(key.name);
    }

    fn number(&mut self, key: &'static Key, prefix: &'static str, value: u64) {
        self.text.push_str(prefix);
        push_decimal_chars(&mut self.text, value);
        self.end(key.name);
    }

    fn display(&mut self, key: &'static Key, value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        let _ = write!(self.text, "{value}");
        self.end(key.name);
    }
}

/// What [`FieldSink::plain`] promises of a value.
pub(crate) fn is_plain(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b > b' ' && b < 0x7f && !matches!(b, b'=' | b'"' | b'\\' | b']'))
}

/// RFC 3339 with exactly six fractional digits and a numeric offset (RFC 5424's TIMESTAMP).
/// A syslog line carries up to seven of them, so the digits are written by hand: through a
/// `time` format description one took ~350 ns, this way ~120 ns (allocation included).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let mut out = String::with_capacity(32);
    write_rfc3339(&mut out, t);
    out
}

/// Whether two times are written the same: the same date and time of day at the same offset.
/// The same instant at another offset is other text, so `==` (which compares instants) must not
/// decide whether a time's text can be copied; this is also cheaper, as it converts nothing.
pub(crate) fn same_text(a: OffsetDateTime, b: OffsetDateTime) -> bool {
    a.offset() == b.offset() && a.date() == b.date() && a.time() == b.time()
}

/// Whether RFC 3339 can say `t`: a year from 0000 to 9999 and an offset of whole minutes
/// within ±23:59 (`time` allows offsets up to ±25:59:59).
pub(crate) fn rfc3339_says(t: OffsetDateTime) -> bool {
    let (off_h, _, off_s) = t.offset().as_hms();
    (0..=9999).contains(&t.year()) && off_h.unsigned_abs() <= 23 && off_s == 0
}

/// [`rfc3339`] appended to `out`. Years outside 0000–9999 and offsets RFC 3339 cannot write
/// (with seconds, or of 24 hours or more) fall back to the Unix time in seconds.
pub fn write_rfc3339(out: &mut String, t: OffsetDateTime) {
    if !rfc3339_says(t) {
        out.push_str(&t.unix_timestamp().to_string());
        return;
    }
    let (year, month, day) = t.to_calendar_date();
    let (off_h, off_m, _) = t.offset().as_hms();
    let (h, m, sec, micro) = t.to_hms_micro();
    // `YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM`, digits written in place, one copy into `out`.
    let mut buf = *b"0000-00-00T00:00:00.000000+00:00";
    digits(&mut buf[0..4], year.unsigned_abs());
    digits(&mut buf[5..7], u32::from(u8::from(month)));
    digits(&mut buf[8..10], u32::from(day));
    digits(&mut buf[11..13], u32::from(h));
    digits(&mut buf[14..16], u32::from(m));
    digits(&mut buf[17..19], u32::from(sec));
    digits(&mut buf[20..26], micro);
    if t.offset().is_negative() {
        buf[26] = b'-';
    }
    digits(&mut buf[27..29], u32::from(off_h.unsigned_abs()));
    digits(&mut buf[30..32], u32::from(off_m.unsigned_abs()));
    // ASCII only.
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
}

/// The two decimal digits of 0 to 99, in order.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Writes `n` in decimal into all of `buf`, zero-padded on the left (higher digits are cut).
/// Two digits at a time from a table: a time stamp has up to 17 digits, ten time stamps go
/// into an `EXCHANGE` event's record and syslog line, and one division per digit was most of
/// their cost.
fn digits(buf: &mut [u8], n: u32) {
    let mut n = n;
    let mut rest = buf;
    while let [head @ .., a, b] = rest {
        let pair = (n % 100) as usize * 2;
        *a = PAIRS[pair];
        *b = PAIRS[pair + 1];
        n /= 100;
        rest = head;
    }
    if let [d] = rest {
        *d = b'0' + (n % 10) as u8;
    }
}

/// `n` in decimal (no padding) appended to `out`, two digits at a time as [`digits`] writes
/// them.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let (buf, start) = decimal(n);
    out.extend_from_slice(&buf[start..]);
}

/// [`push_decimal`] for a `String` (digits are single-byte characters).
pub(crate) fn push_decimal_chars(out: &mut String, n: u64) {
    let (buf, start) = decimal(n);
    // ASCII digits only: the check cannot fail, and copying them whole beats a char at a time.
    out.push_str(std::str::from_utf8(&buf[start..]).unwrap_or_default());
}

/// `n`'s decimal digits, at the end of the buffer from the index returned.
fn decimal(n: u64) -> ([u8; 20], usize) {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    let mut n = n;
    while n >= 100 {
        start -= 2;
        let pair = (n % 100) as usize * 2;
        buf[start] = PAIRS[pair];
        buf[start + 1] = PAIRS[pair + 1];
        n /= 100;
    }
    if n >= 10 {
        start -= 2;
        buf[start] = PAIRS[n as usize * 2];
        buf[start + 1] = PAIRS[n as usize * 2 + 1];
    } else {
        start -= 1;
        buf[start] = b'0' + n as u8;
    }
    (buf, start)
}

/// Times in the event JSON (the journal's JSON records, [`crate::body`]): exactly what
/// `time::serde::rfc3339` writes (nanoseconds without trailing zeros, `Z` for UTC, else a
/// numeric offset), but into a buffer on the stack; an EXCHANGE record carries five. Reading
/// is `time`'s. What RFC 3339 cannot say (a year beyond 9999, an offset with seconds) goes to
/// `time`, which refuses it as before.
pub(crate) mod json_time {
    use serde::{Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Longest: `9999-12-31T23:59:59.999999999+23:59`.
    pub(crate) const MAX: usize = 35;

    /// `t` as RFC 3339 in `buf`; `None` when RFC 3339 cannot say it.
    pub(crate) fn write(buf: &mut [u8; MAX], t: OffsetDateTime) -> Option<usize> {
        struct Out<'a> {
            buf: &'a mut [u8; MAX],
            n: usize,
        }
        impl Out<'_> {
            fn digits(&mut self, v: u32, width: usize) {
                super::digits(&mut self.buf[self.n..self.n + width], v);
                self.n += width;
            }
            fn byte(&mut self, b: u8) {
                self.buf[self.n] = b;
                self.n += 1;
            }
        }
        if !super::rfc3339_says(t) {
            return None;
        }
        let (year, month, day) = t.to_calendar_date();
        let (off_h, off_m, _) = t.offset().as_hms();
        let (h, m, sec, nanos) = t.to_hms_nano();
        let mut out = Out { buf, n: 0 };
        out.digits(year.unsigned_abs(), 4);
        out.byte(b'-');
        out.digits(u32::from(u8::from(month)), 2);
        out.byte(b'-');
        out.digits(u32::from(day), 2);
        out.byte(b'T');
        out.digits(u32::from(h), 2);
        out.byte(b':');
        out.digits(u32::from(m), 2);
        out.byte(b':');
        out.digits(u32::from(sec), 2);
        if nanos != 0 {
            let (mut frac, mut width) = (nanos, 9);
            while frac % 10 == 0 {
                frac /= 10;
                width -= 1;
            }
            out.byte(b'.');
            out.digits(frac, width);
        }
        if t.offset().is_utc() {
            out.byte(b'Z');
        } else {
            out.byte(if t.offset().is_negative() { b'-' } else { b'+' });
            out.digits(u32::from(off_h.unsigned_abs()), 2);
            out.byte(b':');
            out.digits(u32::from(off_m.unsigned_abs()), 2);
        }
        Some(out.n)
    }

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; MAX];
        match write(&mut buf, *t).and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
            Some(text) => s.serialize_str(text),
            None => time::serde::rfc3339::serialize(t, s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        time::serde::rfc3339::deserialize(d)
    }

    pub mod option {
        use serde::{Deserializer, Serializer};
        use time::OffsetDateTime;

        pub fn serialize<S: Serializer>(
            t: &Option<OffsetDateTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&Wrapped(*t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            time::serde::rfc3339::option::deserialize(d)
        }

        struct Wrapped(OffsetDateTime);

        impl serde::Serialize for Wrapped {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                super::serialize(&self.0, s)
            }
        }
    }
}

/// `870101300123` → `8701******23`: the first four and last two digits stay.
pub fn mask_iin(iin: &str) -> String {
    let chars: Vec<char> = iin.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < 4 || i >= chars.len() - 2 {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// Masks every run of exactly 12 ASCII digits (an IIN or BIN) in `text`.
/// Whether `text` holds a run of exactly 12 ASCII digits (what [`mask_iins_in`] masks); lets
/// the common case of nothing to mask skip the copy.
fn has_iin_run(text: &str) -> bool {
    // A run of exactly twelve digits holds exactly one index that is 11 modulo 12, so only
    // those bytes are looked at, and the run around a digit found there is measured.
    let bytes = text.as_bytes();
    let mut i = IIN_DIGITS - 1;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += IIN_DIGITS;
            continue;
        }
        let start = bytes[..i]
            .iter()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |p| p + 1);
        let end = bytes[i..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(bytes.len(), |p| i + p);
        if end - start == IIN_DIGITS {
            return true;
        }
        // The next run starts after this one's end.
        i = end + IIN_DIGITS;
    }
    false
}

/// Digits in an IIN or a BIN.
const IIN_DIGITS: usize = 12;

pub fn mask_iins_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() == 12 {
            out.push_str(&mask_iin(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn cut(s: &mut String) {
    // No more bytes than the limit has characters: nothing to count.
    if s.len() <= MAX_TEXT_CHARS {
        return;
    }
    if let Some((idx, _)) = s.char_indices().nth(MAX_TEXT_CHARS) {
        s.truncate(idx);
    }
}

/// A fresh UUIDv7 for an event made at `time`: the time's millisecond and 74 random bits from
/// the thread's generator.
///
/// Not `Uuid::now_v7`: that one counts within a millisecond under a process-wide lock (and
/// reads the clock again), so that ids sort in the order they were made. Event ids need only
/// be unique (receivers drop duplicates by them); the journal orders events by its own
/// sequence. Without the lock an id costs about half, and two threads making ids at once do
/// not take turns on its cache line.
fn event_id(time: OffsetDateTime) -> Uuid {
    // `unix_timestamp_nanos() / 1_000_000` (0 before the epoch) without 128-bit division.
    let millis = u64::try_from(time.unix_timestamp()).map_or(0, |secs| {
        secs * 1000 + u64::from(time.nanosecond() / 1_000_000)
    });
    let mut random = [0u8; 10];
    rand::Rng::fill(&mut rand::rng(), &mut random);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// `t` without its nanoseconds beyond the microsecond: the precision of an event's syslog line
/// and journal record ([`crate::record`]), and of PostgreSQL.
pub fn to_micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t)
}

impl AuditEvent {
    /// A new event at the current time with a fresh UUIDv7 and the kind's default level.
    pub fn new(source: impl Into<String>, kind: EventKind, description: impl Into<String>) -> Self {
        let level = default_level(&kind);
        let time = to_micros(OffsetDateTime::now_utc());
        AuditEvent {
            id: event_id(time),
            time,
            source: source.into(),
            account: None,
            client_ip: None,
            op_start: None,
            op_end: None,
            level,
            transaction_id: None,
            kind,
            description: description.into(),
        }
    }

    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// The client's IP; `None` (an address not known) leaves the field empty.
    pub fn client_ip(mut self, ip: impl Into<Option<IpAddr>>) -> Self {
        self.client_ip = ip.into();
        self
    }

    /// The operation's start and end, to the microsecond as the journal and syslog keep them.
    pub fn operation(mut self, start: OffsetDateTime, end: OffsetDateTime) -> Self {
        self.op_start = Some(to_micros(start));
        self.op_end = Some(to_micros(end));
        self
    }

    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    pub fn transaction(mut self, transaction_id: impl Into<String>) -> Self {
        self.transaction_id = Some(transaction_id.into());
        self
    }

    /// The event's time, to the microsecond as the journal and syslog keep it.
    pub fn at(mut self, time: OffsetDateTime) -> Self {
        self.time = to_micros(time);
        self
    }

    /// The tender's category, derived from the level.
    pub fn category(&self) -> Category {
        self.level.category()
    }

    /// Cuts free-text fields to [`MAX_TEXT_CHARS`].
    pub fn limit_texts(&mut self) {
        cut(&mut self.description);
        self.kind.each_text_mut(cut);
    }

    /// Masks every 12-digit run (IIN/BIN) in the description and the kind's free-text fields
    /// (signer, subject, reasons, details).
    pub fn mask_iins(&mut self) {
        let mask = |s: &mut String| {
            if has_iin_run(s) {
                *s = mask_iins_in(s);
            }
        };
        mask(&mut self.description);
        self.kind.each_text_mut(mask);
    }

    // ----- builders, one per kind, with default levels -----

    pub fn login(source: &str, user: &str) -> Self {
        Self::new(
            source,
            EventKind::Login { user: user.into() },
            format!("user {user} logged in"),
        )
        .account(user)
    }

    pub fn logout(source: &str, user: &str) -> Self {
        Self::new(
            source,
            EventKind::Logout { user: user.into() },
            format!("user {user} logged out"),
        )
        .account(user)
    }

    /// API key authentication succeeded (informational).
    pub fn auth_ok(source: &str, key_id: &str) -> Self {
        Self::new(
            source,
            EventKind::AuthOk {
                key_id: key_id.into(),
            },
            "API key authentication succeeded",
        )
        .account(key_id)
    }

    /// Authentication failed (warning). `key_id` only, never the secret.
    pub fn auth_fail(source: &str, key_id: Option<&str>, reason: &str) -> Self {
        let mut e = Self::new(
            source,
            EventKind::AuthFail {
                key_id: key_id.map(Into::into),
                reason: reason.into(),
            },
            format!("authentication failed: {reason}"),
        );
        e.account = key_id.map(Into::into);
        e
    }

    /// An API key was created, changed or revoked (notice) by `by`.
    pub fn account_change(source: &str, op: ChangeOp, key_id: &str, by: Option<&str>) -> Self {
        let verb = match op {
            ChangeOp::Created => "created",
            ChangeOp::Changed => "changed",
            ChangeOp::Deleted => "revoked",
        };
        let mut e = Self::new(
            source,
            EventKind::Account {
                op,
                key_id: key_id.into(),
            },
            format!("API key {key_id} {verb}"),
        );
        e.account = by.map(Into::into);
        e
    }

    /// Configuration was created, changed or deleted (notice).
    pub fn config_change(source: &str, op: ChangeOp, what: &str) -> Self {
        Self::new(
            source,
            EventKind::Config {
                op,
                what: what.into(),
            },
            format!("configuration changed: {what}"),
        )
    }

    /// An action was refused (warning).
    pub fn refused(
        source: &str,
        reason: RefusalReason,
        action: &str,
        detail: Option<&str>,
    ) -> Self {
        let why = match reason {
            RefusalReason::Unauthorized => "not authorised",
            RefusalReason::Validation => "rejected by validation",
            RefusalReason::RateLimited => "rate limited",
        };
        Self::new(
            source,
            EventKind::Refused {
                reason,
                action: action.into(),
                detail: detail.map(Into::into),
            },
            format!("{action}: {why}"),
        )
    }

    /// An object was read or downloaded (informational).
    pub fn object_access(source: &str, object: ObjectKind, object_id: &str) -> Self {
        Self::new(
            source,
            EventKind::ObjectAccess {
                object,
                object_id: object_id.into(),
            },
            format!("{} {object_id} read", object.as_str()),
        )
    }

    /// One exchange with another system: informational when it succeeded, error otherwise.
    pub fn exchange(source: &str, exchange: Exchange) -> Self {
        // `<direction> exchange with <target>: <result>`, written piece by piece (one per
        // delivery: `format!` cost more than the rest of building the event).
        let direction = match exchange.direction {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        };
        let mut description = String::with_capacity(exchange.target.len() + 48);
        description.push_str(direction);
        description.push_str(" exchange with ");
        description.push_str(&exchange.target);
        description.push_str(": ");
        exchange.result.push_to(&mut description);
        let (start, end) = match exchange.direction {
            Direction::Outbound => (exchange.request_out, exchange.response_in),
            Direction::Inbound => (exchange.request_in, exchange.response_out),
        };
        let mut e = Self::new(source, EventKind::Exchange(exchange), description);
        e.op_start = start;
        e.op_end = end;
        e
    }

    /// A signature verification outcome: informational when valid, warning when not.
    pub fn signature(
        source: &str,
        valid: bool,
        signer: Option<&str>,
        reason: Option<&str>,
        message_id: Option<&str>,
    ) -> Self {
        Self::new(
            source,
            EventKind::SignatureVerify {
                valid,
                signer: signer.map(Into::into),
                reason: reason.map(Into::into),
                message_id: message_id.map(Into::into),
            },
            if valid {
                "signature valid".to_owned()
            } else {
                format!("signature invalid: {}", reason.unwrap_or("unknown reason"))
            },
        )
    }

    /// A message lifecycle step (informational; failed/dead-lettered/webhook failed: warning,
    /// error, warning; requeued by an operator: notice).
    pub fn lifecycle(
        source: &str,
        stage: LifecycleStage,
        message_id: &str,
        target: Option<&str>,
        detail: Option<&str>,
    ) -> Self {
        // Written piece by piece: `format!` and a lower-cased copy were most of what building
        // an accept's event cost (docs/BENCHMARKS.md).
        let name = stage.msgid_lower();
        let mut description = String::with_capacity(message_id.len() + name.len() + 10);
        description.push_str("message ");
        description.push_str(message_id);
        description.push_str(": ");
        description.push_str(name);
        Self::new(
            source,
            EventKind::Lifecycle {
                stage,
                message_id: message_id.into(),
                target: target.map(Into::into),
                detail: detail.map(Into::into),
            },
            description,
        )
    }

    /// The previous run ended without a clean stop (warning).
    pub fn unclean_stop(
        source: &str,
        previous_pid: Option<u32>,
        previous_start: Option<OffsetDateTime>,
    ) -> Self {
        let pid = previous_pid
            .map(|p| format!(" (pid {p})"))
            .unwrap_or_default();
        let started = previous_start
            .map(|t| format!(", started {}", rfc3339(t)))
            .unwrap_or_default();
        Self::new(
            source,
            EventKind::UncleanStop {
                previous_pid,
                previous_start,
            },
            format!(
                "the previous run{pid}{started} ended without a clean stop: audit events it had not yet journalled may be missing"
            ),
        )
    }

    /// `count` events were dropped by sink `sink` (error).
    pub fn audit_dropped(source: &str, count: u64, sink: &str) -> Self {
        Self::new(
            source,
            EventKind::AuditDropped {
                count,
                sink: sink.into(),
            },
            format!(
                "{count} audit events dropped by syslog sink {sink}: its spool was full, \
                 unwritable or damaged, or a line was too long for UDP (the gateway's log says which)"
            ),
        )
    }
}

/// The default level of a kind.
pub fn default_level(kind: &EventKind) -> Level {
    match kind {
        EventKind::Login { .. } | EventKind::Logout { .. } | EventKind::AuthOk { .. } => {
            Level::Informational
        }
        EventKind::AuthFail { .. } => Level::Warning,
        EventKind::Account { .. } | EventKind::Config { .. } => Level::Notice,
        EventKind::Refused { .. } => Level::Warning,
        EventKind::ObjectAccess { .. } => Level::Informational,
        EventKind::Exchange(x) => {
            if x.result.is_success() {
                Level::Informational
            } else {
                Level::Error
            }
        }
        EventKind::SignatureVerify { valid, .. } => {
            if *valid {
                Level::Informational
            } else {
                Level::Warning
            }
        }
        EventKind::CertExpiry { days_left, .. } => {
            if *days_left <= 7 {
                Level::Error
            } else {
                Level::Warning
            }
        }
        EventKind::Lifecycle { stage, .. } => match stage {
            LifecycleStage::Failed | LifecycleStage::WebhookFailed => Level::Warning,
            LifecycleStage::DeadLettered => Level::Error,
            // An operator's change, which a SOC wants to see beside the routine steps.
            LifecycleStage::Requeued => Level::Notice,
            _ => Level::Informational,
        },
        EventKind::AuditDropped { .. } => Level::Error,
        EventKind::UncleanStop { .. } => Level::Warning,
    }
}

/// An event when the certificate expires within 30 days of `now` (or already has); `None`
/// otherwise. Warning, or error with 7 days or fewer left.
pub fn expiry_warning(
    subject: &str,
    serial: &str,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> Option<AuditEvent> {
    let left = not_after - now;
    if left > time::Duration::days(30) {
        return None;
    }
    let days_left = left.whole_days();
    let description = if left.is_negative() {
        format!(
            "certificate {serial} ({subject}) expired on {}",
            rfc3339(not_after)
        )
    } else {
        format!(
            "certificate {serial} ({subject}) expires in {days_left} days, on {}",
            rfc3339(not_after)
        )
    };
    Some(
        AuditEvent::new(
            "qaqpa-pki",
            EventKind::CertExpiry {
                subject: subject.into(),
                serial: serial.into(),
                not_after,
                days_left,
            },
            description,
        )
        .at(now),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` instants from 1970 to 9999 (a fixed LCG from `seed`, so failures repeat), in turn in
    /// seven offsets (UTC, whole hours either way, half hours either way, and `last`), with
    /// the nanoseconds `sub` picks from the step number and the LCG's value.
    fn spread_of_instants(
        n: usize,
        seed: u64,
        last: (i8, i8),
        sub: impl Fn(usize, u64) -> u64,
    ) -> impl Iterator<Item = (usize, OffsetDateTime)> {
        let offsets = [(0, 0), (5, 0), (6, 30), (-3, -30), (0, -30), (-11, 0), last];
        let mut x = seed;
        (0..n).filter_map(move |i| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let nanos = i128::from(x % 253_402_000_000) * 1_000_000_000 + i128::from(sub(i, x));
            let (h, m) = offsets[i % offsets.len()];
            let offset = time::UtcOffset::from_hms(h, m, 0).expect("offset");
            let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
            Some((i, t.to_offset(offset)))
        })
    }

    #[test]
    fn event_json_times_are_written_exactly_as_the_time_crate_writes_them() {
        #[derive(serde::Serialize)]
        struct Ours {
            #[serde(with = "json_time")]
            t: OffsetDateTime,
            #[serde(with = "json_time::option")]
            o: Option<OffsetDateTime>,
        }
        #[derive(serde::Serialize)]
        struct Theirs {
            #[serde(with = "time::serde::rfc3339")]
            t: OffsetDateTime,
            #[serde(with = "time::serde::rfc3339::option")]
            o: Option<OffsetDateTime>,
        }
        // Whole seconds, milliseconds, microseconds and nanoseconds (trailing zeros are left
        // out).
        let sub = |i: usize, x: u64| match i % 4 {
            0 => 0,
            1 => (x % 1000) * 1_000_000,
            2 => (x % 1_000_000) * 1000,
            _ => x % 1_000_000_000,
        };
        for (i, t) in spread_of_instants(30_000, 0x2545_f491_4f6c_dd1d, (23, 59), sub) {
            let o = (i % 3 != 0).then_some(t);
            let ours = serde_json::to_string(&Ours { t, o });
            let theirs = serde_json::to_string(&Theirs { t, o });
            match theirs {
                Ok(theirs) => assert_eq!(ours.expect("ours formats"), theirs, "{t:?}"),
                Err(_) => assert!(ours.is_err(), "{t:?} is refused by both"),
            }
        }
        // Refused as before: an offset with seconds.
        let odd = OffsetDateTime::UNIX_EPOCH
            .to_offset(time::UtcOffset::from_hms(1, 2, 3).expect("offset"));
        assert!(serde_json::to_string(&Ours { t: odd, o: None }).is_err());
    }

    #[test]
    fn rfc3339_matches_the_time_crate_for_any_instant_and_offset() {
        let oracle = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6][offset_hour sign:mandatory]:[offset_minute]"
        );
        let sub = |_: usize, x: u64| x % 1_000_000_007;
        for (_, t) in spread_of_instants(20_000, 0x9e37_79b9_7f4a_7c15, (14, 0), sub) {
            if t.year() > 9999 {
                continue;
            }
            assert_eq!(rfc3339(t), t.format(&oracle).expect("formats"), "{t:?}");
        }
        // What RFC 3339 cannot say falls back to Unix seconds.
        let odd = OffsetDateTime::UNIX_EPOCH
            .to_offset(time::UtcOffset::from_hms(1, 2, 3).expect("offset"));
        assert_eq!(rfc3339(odd), "0");
    }

    #[test]
    fn times_written_one_after_another_each_match_the_time_crate() {
        let oracle = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6][offset_hour sign:mandatory]:[offset_minute]"
        );
        let base = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_764_000_000);
        let almaty = time::UtcOffset::from_hms(5, 0, 0).expect("offset");
        let odd = time::UtcOffset::from_hms(1, 2, 3).expect("offset");
        // The same second at another offset, the next second, a second a day later, one RFC
        // 3339 cannot say, then back: each after the one before, in one buffer.
        let mut out = String::new();
        let mut expected = String::new();
        for (i, (secs, nanos, offset)) in [
            (0, 0, time::UtcOffset::UTC),
            (0, 999_999_999, time::UtcOffset::UTC),
            (0, 123_456_000, time::UtcOffset::UTC),
            (0, 123_456_000, almaty),
            (0, 5_000, almaty),
            (1, 5_000, almaty),
            (86_400, 5_000, almaty),
            (86_400, 7_000, odd),
            (86_400, 9_000, almaty),
            (0, 1_000, time::UtcOffset::UTC),
        ]
        .into_iter()
        .enumerate()
        {
            let t = (base + time::Duration::seconds(secs) + time::Duration::nanoseconds(nanos))
                .to_offset(offset);
            out.push(' ');
            write_rfc3339(&mut out, t);
            expected.push(' ');
            match t.format(&oracle) {
                Ok(text) if offset != odd => expected.push_str(&text),
                _ => expected.push_str(&t.unix_timestamp().to_string()),
            }
            assert_eq!(out, expected, "time {i}");
        }
    }

    #[test]
    fn event_ids_are_version_7_carry_the_events_millisecond_and_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..50_000)
                        .map(|_| AuditEvent::auth_ok("api", "key"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for t in threads {
            for e in t.join().expect("thread") {
                assert_eq!(e.id.get_version_num(), 7, "{}", e.id);
                assert_eq!(e.id.get_variant(), uuid::Variant::RFC4122, "{}", e.id);
                let (secs, nanos) = e.id.get_timestamp().expect("v7 time").to_unix();
                let millis = i128::from(secs) * 1000 + i128::from(nanos / 1_000_000);
                assert_eq!(
                    millis,
                    e.time.unix_timestamp_nanos() / 1_000_000,
                    "{}",
                    e.id
                );
                assert!(seen.insert(e.id), "{} made twice", e.id);
            }
        }
    }

    /// An exchange with nothing but its direction, target and result.
    fn bare_exchange(direction: Direction, target: &str, result: ExchangeResult) -> Exchange {
        Exchange {
            direction,
            target: target.into(),
            service_id: None,
            message_id: None,
            request_out: None,
            response_in: None,
            request_in: None,
            response_out: None,
            request_bytes: None,
            response_bytes: None,
            result,
        }
    }

    #[test]
    fn exchange_results_are_written_the_same_by_hand_and_by_display() {
        for result in [
            ExchangeResult::Http(200),
            ExchangeResult::Http(0),
            ExchangeResult::Http(u16::MAX),
            ExchangeResult::Shep("SCSE002".into()),
            ExchangeResult::Transport("connection refused: \"x\"".into()),
        ] {
            let mut by_hand = String::from("x ");
            result.push_to(&mut by_hand);
            assert_eq!(by_hand, format!("x {result}"));
        }
        let e = AuditEvent::exchange(
            "engine",
            bare_exchange(
                Direction::Inbound,
                "shep-push",
                ExchangeResult::Shep("SCSS001".into()),
            ),
        );
        assert_eq!(
            e.description,
            "inbound exchange with shep-push: shep:SCSS001"
        );
    }

    #[test]
    fn lifecycle_descriptions_name_the_message_and_the_stage_in_lower_case() {
        for stage in LifecycleStage::ALL {
            let e = AuditEvent::lifecycle("api", stage, "m-1", Some("esedo"), None);
            assert_eq!(
                e.description,
                format!("message m-1: {}", stage.msgid().to_lowercase())
            );
            assert_eq!(e.kind.name(), stage.msgid());
        }
        let e = AuditEvent::lifecycle("api", LifecycleStage::Accepted, "m-2", None, None);
        assert_eq!(e.description, "message m-2: msg_accepted");
    }

    #[test]
    fn a_twelve_digit_run_is_found_wherever_it_falls_and_only_when_exactly_twelve() {
        // Reference: masking changes the text exactly when it holds such a run.
        let reference = |t: &str| mask_iins_in(t) != t;
        let mut seed = 0x1f2e_3d4c_u64;
        for _ in 0..200_000 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let len = (seed >> 58) as usize; // 0..=63
            let mut bits = seed;
            let text: String = (0..len)
                .map(|i| {
                    bits = bits.rotate_left(7) ^ (i as u64).wrapping_mul(0x9e37_79b9);
                    // Mostly digits, so runs of every length occur.
                    match bits % 8 {
                        0 => 'a',
                        1 => 'Ж',
                        _ => char::from(b'0' + (bits >> 3) as u8 % 10),
                    }
                })
                .collect();
            assert_eq!(has_iin_run(&text), reference(&text), "{text:?}");
        }
        for (text, run) in [
            ("870101300123", true),
            ("x870101300123", true),
            ("87010130012", false),
            ("8701013001234", false),
            ("1234567890123 870101300123", true),
            ("12345678901 1234567890123", false),
            ("", false),
        ] {
            assert_eq!(has_iin_run(text), run, "{text}");
        }
    }

    #[test]
    fn iin_masked_keeps_four_first_and_two_last_digits() {
        assert_eq!(mask_iin("870101300123"), "8701******23");
        assert_eq!(
            mask_iins_in("signer IIN870101300123, BIN 123456789012; tel 87011234567"),
            "signer IIN8701******23, BIN 1234******12; tel 87011234567"
        );
        // A longer digit run is not an IIN and stays as it is.
        assert_eq!(mask_iins_in("1234567890123"), "1234567890123");
    }

    #[test]
    fn severities_and_categories_follow_the_tender() {
        let all = [
            (Level::Alert, 1, "ERROR"),
            (Level::Critical, 2, "ERROR"),
            (Level::Error, 3, "ERROR"),
            (Level::Warning, 4, "WARN"),
            (Level::Notice, 5, "INFO"),
            (Level::Informational, 6, "INFO"),
            (Level::Debug, 7, "DEBUG"),
        ];
        for (level, sev, cat) in all {
            assert_eq!(level.severity(), sev);
            assert_eq!(level.category().as_str(), cat);
            assert_eq!(Level::from_severity(sev), Some(level));
        }
    }

    #[test]
    fn default_levels_fit_the_kind() {
        assert_eq!(
            AuditEvent::auth_fail("a", Some("k1"), "bad secret").level,
            Level::Warning
        );
        assert_eq!(AuditEvent::auth_ok("a", "k1").level, Level::Informational);
        assert_eq!(
            AuditEvent::refused("a", RefusalReason::RateLimited, "submit", None).level,
            Level::Warning
        );
        let x = |result| bare_exchange(Direction::Outbound, "esedo", result);
        assert_eq!(
            AuditEvent::exchange("a", x(ExchangeResult::Shep("SCSS001".into()))).level,
            Level::Informational
        );
        assert_eq!(
            AuditEvent::exchange("a", x(ExchangeResult::Shep("SCSE002".into()))).level,
            Level::Error
        );
        assert_eq!(
            AuditEvent::exchange("a", x(ExchangeResult::Transport("timeout".into()))).level,
            Level::Error
        );
    }

    #[test]
    fn expiry_warning_only_within_thirty_days() {
        let now = time::macros::datetime!(2026-12-01 00:00 UTC);
        assert!(expiry_warning("CN=x", "01", now + time::Duration::days(31), now).is_none());
        let e = expiry_warning("CN=x", "01", now + time::Duration::days(30), now)
            .expect("30 days left warns");
        assert_eq!(e.kind.name(), "CERT_EXPIRY");
        assert_eq!(e.level, Level::Warning);
        let e = expiry_warning("CN=x", "01", now + time::Duration::days(3), now)
            .expect("3 days left warns");
        assert_eq!(e.level, Level::Error);
        assert!(expiry_warning("CN=x", "01", now - time::Duration::days(3), now).is_some());
    }

    #[test]
    fn long_texts_are_cut() {
        let mut e = AuditEvent::config_change("a", ChangeOp::Changed, &"ж".repeat(5000));
        e.limit_texts();
        assert_eq!(e.description.chars().count(), MAX_TEXT_CHARS);
        let EventKind::Config { what, .. } = &e.kind else {
            panic!("kind changed")
        };
        assert_eq!(what.chars().count(), MAX_TEXT_CHARS);
    }

    #[test]
    fn a_targets_shep_status_code_is_masked_and_cut_like_free_text() {
        // The code is whatever the target answered: a hostile or broken one can make it long
        // or put an IIN in it.
        let code = format!("SCSE 870101300123 {}", "9".repeat(5000));
        let mut e = AuditEvent::exchange(
            "engine",
            bare_exchange(Direction::Outbound, "esedo", ExchangeResult::Shep(code)),
        );
        e.mask_iins();
        e.limit_texts();
        let EventKind::Exchange(x) = &e.kind else {
            panic!("kind changed")
        };
        let ExchangeResult::Shep(kept) = &x.result else {
            panic!("result changed")
        };
        assert_eq!(kept.chars().count(), MAX_TEXT_CHARS);
        assert!(kept.starts_with("SCSE 8701******23 999"), "{}", &kept[..24]);
        assert!(!e.description.contains("870101300123"));
    }
}
