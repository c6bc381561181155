//! Types shared by both ШЭП channels (the `common/v10/Types` of the contract): sender, properties,
//! status, ErrorInfo, the guid session id, xs:dateTime, and the `data` payload.
//! Each knows how to write itself and to read itself strictly; none does I/O.

use roxmltree::Node;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::xml::{self, schema_error, simple_text, Seq, XmlWriter};
use crate::{ns, EnvelopeError};

/// The offset assumed for an xs:dateTime that carries none: Astana time (UTC+5 since 2024).
/// The contract does not say; this is the one place the assumption lives.
pub const ASSUMED_OFFSET_HOURS: i8 = 5;

/// Now, at the millisecond precision the wire carries (so a value read back equals the one built).
pub fn now() -> OffsetDateTime {
    let at = OffsetDateTime::now_utc();
    at.replace_nanosecond(at.millisecond() as u32 * 1_000_000)
        .unwrap_or(at)
}

/// Formats an xs:dateTime with its offset (RFC 3339 is a valid subset).
pub fn format_datetime(at: OffsetDateTime) -> String {
    // Millisecond precision, as the Java stacks on the other side produce and expect.
    let at = at
        .replace_nanosecond(at.millisecond() as u32 * 1_000_000)
        .unwrap_or(at);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Parses an xs:dateTime; one without an offset is read in [`ASSUMED_OFFSET_HOURS`].
pub fn parse_datetime(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at);
    }
    // No offset: "2026-11-23T17:30:00" or with a fraction.
    let description = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    let local = PrimitiveDateTime::parse(text, &description).ok()?;
    let offset = UtcOffset::from_hms(ASSUMED_OFFSET_HOURS, 0, 0).ok()?;
    Some(local.assume_offset(offset))
}

pub(crate) fn read_datetime(
    node: Node<'_, '_>,
    path: &str,
) -> Result<OffsetDateTime, EnvelopeError> {
    let text = simple_text(node, path)?;
    parse_datetime(&text)
        .ok_or_else(|| schema_error(node, path, &format!("'{text}' is not an xs:dateTime")))
}

pub(crate) fn read_string(node: Node<'_, '_>, path: &str) -> Result<String, EnvelopeError> {
    simple_text(node, path)
}

/// A ШЭП session id: the `guid` type, a GUID in braces (`{xxxxxxxx-xxxx-…}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(text: &str) -> Result<Self, EnvelopeError> {
        let ok = text.len() == 38
            && text.starts_with('{')
            && text.ends_with('}')
            && text[1..37].char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            });
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(EnvelopeError::invalid(
                "sessionId",
                format!("'{text}' is not a GUID in braces like {{01234567-89ab-cdef-0123-456789abcdef}}"),
            ))
        }
    }

    /// A fresh random session id (what ШЭП assigns; the emulator uses it).
    pub fn random() -> Self {
        Self(format!("{{{}}}", uuid::Uuid::new_v4()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn read_session_id(node: Node<'_, '_>, path: &str) -> Result<SessionId, EnvelopeError> {
    let text = simple_text(node, path)?;
    SessionId::parse(&text).map_err(|e| schema_error(node, path, &e.to_string()))
}

/// `SenderInfo`: the sending system's id in ШЭП and its password, if ШЭП issued one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderInfo {
    pub sender_id: String,
    pub password: Option<String>,
}

impl SenderInfo {
    pub fn new(sender_id: impl Into<String>, password: Option<String>) -> Self {
        Self {
            sender_id: sender_id.into(),
            password,
        }
    }

    pub(crate) fn check(&self) -> Result<(), EnvelopeError> {
        if self.sender_id.trim().is_empty() {
            return Err(EnvelopeError::invalid(
                "sender.senderId",
                "must not be empty",
            ));
        }
        xml::check_chars("sender.senderId", &self.sender_id)?;
        if let Some(p) = &self.password {
            xml::check_chars("sender.password", p)?;
        }
        Ok(())
    }

    pub(crate) fn write(&self, w: &mut XmlWriter, name: &str) {
        w.start(name);
        w.leaf("senderId", &self.sender_id);
        w.leaf_opt("password", self.password.as_deref());
        w.end();
    }

    pub(crate) fn read(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let sender_id = read_string(seq.required("senderId")?, path)?;
        let password = seq
            .optional("password")
            .map(|n| read_string(n, path))
            .transpose()?;
        seq.finish()?;
        Ok(Self {
            sender_id,
            password,
        })
    }
}

/// `Property`: an extra key/value agreed with ШЭП and the recipient (key ≤ 30, value ≤ 500 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
}

impl Property {
    pub const MAX_KEY_CHARS: usize = 30;
    pub const MAX_VALUE_CHARS: usize = 500;

    /// A property, refused if either part is longer than the contract allows.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Result<Self, EnvelopeError> {
        let property = Self {
            key: key.into(),
            value: value.into(),
        };
        property.check()?;
        Ok(property)
    }

    pub(crate) fn check(&self) -> Result<(), EnvelopeError> {
        let key_len = self.key.chars().count();
        if key_len > Self::MAX_KEY_CHARS {
            return Err(EnvelopeError::invalid(
                "properties.key",
                format!(
                    "'{}' has {key_len} characters; ШЭП allows {}",
                    self.key,
                    Self::MAX_KEY_CHARS
                ),
            ));
        }
        let value_len = self.value.chars().count();
        if value_len > Self::MAX_VALUE_CHARS {
            return Err(EnvelopeError::invalid(
                "properties.value",
                format!(
                    "the value of '{}' has {value_len} characters; ШЭП allows {}",
                    self.key,
                    Self::MAX_VALUE_CHARS
                ),
            ));
        }
        xml::check_chars("properties.key", &self.key)?;
        xml::check_chars("properties.value", &self.value)
    }

    pub(crate) fn write_all(props: &[Property], w: &mut XmlWriter) {
        for p in props {
            w.start("properties");
            w.leaf("key", &p.key);
            w.leaf("value", &p.value);
            w.end();
        }
    }

    pub(crate) fn read(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let key_node = seq.required("key")?;
        let key = read_string(key_node, path)?;
        let value_node = seq.required("value")?;
        let value = read_string(value_node, path)?;
        seq.finish()?;
        let property = Self { key, value };
        property
            .check()
            .map_err(|e| schema_error(node, path, &e.to_string()))?;
        Ok(property)
    }
}

/// `StatusInfo` of a SyncChannel response: the envelope return code and its message (≤ 250).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: String,
    pub message: String,
}

impl Status {
    pub const MAX_MESSAGE_CHARS: usize = 250;

    /// `SCSS001`: processed successfully.
    pub fn success(message: impl Into<String>) -> Self {
        Self::new("SCSS001", message)
    }

    /// A status whose message is cut to the contract's 250 characters.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        let message: String = message.into();
        let message = if message.chars().count() > Self::MAX_MESSAGE_CHARS {
            message.chars().take(Self::MAX_MESSAGE_CHARS).collect()
        } else {
            message
        };
        Self {
            code: code.into(),
            message,
        }
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.start("status");
        w.leaf("code", &self.code);
        w.leaf("message", &self.message);
        w.end();
    }

    pub(crate) fn read(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let code = read_string(seq.required("code")?, path)?;
        let message_node = seq.required("message")?;
        let message = read_string(message_node, path)?;
        seq.finish()?;
        if message.chars().count() > Self::MAX_MESSAGE_CHARS {
            return Err(schema_error(
                message_node,
                path,
                "status message is longer than 250 characters",
            ));
        }
        Ok(Self { code, message })
    }
}

/// `ErrorInfo`: what a ШЭП fault carries (and what a failed delivery status may carry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    pub error_code: String,
    pub error_message: String,
    pub error_data: Option<String>,
    pub error_date: OffsetDateTime,
    pub sub_error: Option<Box<ErrorInfo>>,
    pub session_id: Option<SessionId>,
}

impl ErrorInfo {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_code: code.into(),
            error_message: message.into(),
            error_data: None,
            error_date: now(),
            sub_error: None,
            session_id: None,
        }
    }

    /// Writes the ErrorInfo's children into an already opened element.
    pub(crate) fn write_content(&self, w: &mut XmlWriter) {
        w.leaf("errorCode", &self.error_code);
        w.leaf("errorMessage", &self.error_message);
        w.leaf_opt("errorData", self.error_data.as_deref());
        w.leaf("errorDate", &format_datetime(self.error_date));
        if let Some(sub) = &self.sub_error {
            w.start("subError");
            sub.write_content(w);
            w.end();
        }
        w.leaf_opt("sessionId", self.session_id.as_ref().map(SessionId::as_str));
    }

    pub(crate) fn read(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let error_code = read_string(seq.required("errorCode")?, path)?;
        let error_message = read_string(seq.required("errorMessage")?, path)?;
        let error_data = seq
            .optional("errorData")
            .map(|n| read_string(n, path))
            .transpose()?;
        let error_date = read_datetime(seq.required("errorDate")?, path)?;
        let sub_error = seq
            .optional("subError")
            .map(|n| ErrorInfo::read(n, &format!("{path}/subError")).map(Box::new))
            .transpose()?;
        let session_id = seq
            .optional("sessionId")
            .map(|n| read_session_id(n, path))
            .transpose()?;
        seq.finish()?;
        Ok(Self {
            error_code,
            error_message,
            error_data,
            error_date,
            sub_error,
            session_id,
        })
    }
}

/// An `xsi:type` given as namespace URI and local name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XsiType {
    pub namespace: String,
    pub local: String,
}

/// The business payload in `data` (`xsd:anyType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageData {
    /// `xsi:type="xs:string"`: text, often escaped XML (ГБД ЮЛ, Enbek).
    Text(String),
    /// Element content: a well-formed, namespace-complete XML fragment, with the `xsi:type`
    /// of `data` when it has one.
    Xml {
        xsi_type: Option<XsiType>,
        fragment: String,
    },
}

impl MessageData {
    /// Text carried as `xs:string`.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// An XML fragment, checked to be well-formed and namespace-complete on its own.
    pub fn xml(
        fragment: impl Into<String>,
        xsi_type: Option<XsiType>,
    ) -> Result<Self, EnvelopeError> {
        let fragment = fragment.into();
        let wrapped = format!("<fragment>{fragment}</fragment>");
        xml::parse(&wrapped, &xml::XmlLimits::default()).map_err(|e| {
            EnvelopeError::invalid("data", format!("not a well-formed XML fragment: {e}"))
        })?;
        Ok(Self::Xml { xsi_type, fragment })
    }

    /// The payload as text: the string itself, or the XML fragment.
    pub fn as_text(&self) -> &str {
        match self {
            Self::Text(t) => t,
            Self::Xml { fragment, .. } => fragment,
        }
    }

    pub(crate) fn check(&self) -> Result<(), EnvelopeError> {
        match self {
            Self::Text(t) => xml::check_chars("data", t),
            Self::Xml { fragment, .. } => xml::check_chars("data", fragment),
        }
    }

    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.start("data");
        match self {
            Self::Text(text) => {
                w.attr("xmlns:xsi", ns::XSI);
                w.attr("xmlns:xs", ns::XS);
                w.attr("xsi:type", "xs:string");
                w.text(text);
            }
            Self::Xml { xsi_type, fragment } => {
                if let Some(t) = xsi_type {
                    w.attr("xmlns:xsi", ns::XSI);
                    w.attr("xmlns:dt", &t.namespace);
                    w.attr("xsi:type", &format!("dt:{}", t.local));
                }
                w.raw(fragment);
            }
        }
        w.end();
    }

    pub(crate) fn read(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let xsi_type = match node.attribute((ns::XSI, "type")) {
            None => None,
            Some(qname) => {
                let (prefix, local) = match qname.split_once(':') {
                    Some((p, l)) => (Some(p), l),
                    None => (None, qname),
                };
                let namespace = node.lookup_namespace_uri(prefix).ok_or_else(|| {
                    schema_error(
                        node,
                        path,
                        &format!("xsi:type '{qname}' uses an undeclared prefix"),
                    )
                })?;
                Some(XsiType {
                    namespace: namespace.to_owned(),
                    local: local.to_owned(),
                })
            }
        };
        let is_string = xsi_type
            .as_ref()
            .is_some_and(|t| t.namespace == ns::XS && t.local == "string");
        let has_elements = node.children().any(|c| c.is_element());
        if is_string || (xsi_type.is_none() && !has_elements) {
            return Ok(Self::Text(simple_text(node, path)?));
        }
        Ok(Self::Xml {
            xsi_type,
            fragment: xml::serialize_children(node),
        })
    }
}
