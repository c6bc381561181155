//! The SOAP 1.1 envelope around every ШЭП operation, and SOAP Faults with ErrorInfo details.
//! Reading accepts exactly Envelope/(Header?)/Body with one payload element; it never looks for
//! a payload anywhere else (a payload outside the Body is a wrapping attempt, not a message).

use roxmltree::{Document, Node};

use crate::types::ErrorInfo;
use crate::xml::{self, schema_error, simple_text, XmlLimits, XmlWriter};
use crate::{ns, EnvelopeError};

/// Writes a SOAP 1.1 envelope whose Body carries `wsu:Id` (the WS-Security reference target)
/// and whatever `payload` writes.
pub fn write_envelope(payload: impl FnOnce(&mut XmlWriter)) -> String {
    let mut w = XmlWriter::new();
    w.declaration();
    w.start("soap:Envelope");
    w.attr("xmlns:soap", ns::SOAP);
    w.start("soap:Body");
    w.attr("xmlns:wsu", ns::WSU);
    w.attr("wsu:Id", &format!("id-{}", uuid::Uuid::new_v4()));
    payload(&mut w);
    w.end();
    w.end();
    w.finish()
}

/// The one element inside `soap:Body`, after checking the envelope's shape.
pub fn body_payload<'a, 'i>(doc: &'a Document<'i>) -> Result<Node<'a, 'i>, EnvelopeError> {
    let root = doc.root_element();
    if !root.has_tag_name((ns::SOAP, "Envelope")) {
        return Err(schema_error(
            root,
            "Envelope",
            &format!(
                "the document is not a SOAP 1.1 envelope (root is {{{}}}{})",
                root.tag_name().namespace().unwrap_or(""),
                root.tag_name().name()
            ),
        ));
    }
    let mut header_seen = false;
    let mut body = None;
    for child in root.children() {
        if child.is_text() && child.text().unwrap_or("").trim().is_empty() {
            continue;
        }
        if !child.is_element() {
            if child.is_comment() || child.is_pi() {
                continue;
            }
            return Err(schema_error(
                child,
                "Envelope",
                "unexpected text in the envelope",
            ));
        }
        if child.has_tag_name((ns::SOAP, "Header")) && !header_seen && body.is_none() {
            header_seen = true;
        } else if child.has_tag_name((ns::SOAP, "Body")) && body.is_none() {
            body = Some(child);
        } else {
            return Err(schema_error(
                child,
                "Envelope",
                "only one Header followed by one Body may stand in a SOAP envelope",
            ));
        }
    }
    let body = body.ok_or_else(|| schema_error(root, "Envelope", "the envelope has no Body"))?;
    let mut payload = None;
    for child in body.children() {
        if child.is_element() {
            if payload.is_some() {
                return Err(schema_error(
                    child,
                    "Body",
                    "the Body holds more than one element",
                ));
            }
            payload = Some(child);
        } else if child.is_text() && !child.text().unwrap_or("").trim().is_empty() {
            return Err(schema_error(child, "Body", "unexpected text in the Body"));
        }
    }
    payload.ok_or_else(|| schema_error(body, "Body", "the Body is empty"))
}

/// Parses `text` safely and returns the document (for [`body_payload`]).
pub fn parse_envelope<'i>(
    text: &'i str,
    limits: &XmlLimits,
) -> Result<Document<'i>, EnvelopeError> {
    xml::parse(text, limits)
}

/// The standard SOAP 1.1 fault codes, and anything else as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultCode {
    /// The message was wrong (schema, validation, signature): not worth resending as it is.
    Client,
    /// The receiver failed: may succeed later.
    Server,
    VersionMismatch,
    MustUnderstand,
    /// A code outside the SOAP namespace, as `{namespace}local`.
    Other(String),
}

impl FaultCode {
    fn local(&self) -> Option<&'static str> {
        match self {
            Self::Client => Some("Client"),
            Self::Server => Some("Server"),
            Self::VersionMismatch => Some("VersionMismatch"),
            Self::MustUnderstand => Some("MustUnderstand"),
            Self::Other(_) => None,
        }
    }
}

impl std::fmt::Display for FaultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self, self.local()) {
            (_, Some(local)) => write!(f, "soap:{local}"),
            (Self::Other(code), None) => f.write_str(code),
            _ => Ok(()),
        }
    }
}

/// A SOAP 1.1 Fault; ШЭП puts an [`ErrorInfo`] in its detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: FaultCode,
    pub message: String,
    pub actor: Option<String>,
    pub error_info: Option<ErrorInfo>,
}

impl Fault {
    pub fn new(code: FaultCode, message: impl Into<String>, error_info: Option<ErrorInfo>) -> Self {
        Self {
            code,
            message: message.into(),
            actor: None,
            error_info,
        }
    }

    /// The whole fault envelope; the ErrorInfo goes into `detail` as the element
    /// `{detail_ns}detail_name` (e.g. the SyncChannel's `SendMessageFault1_SendMessageFault`).
    pub fn to_envelope(&self, detail_ns: &str, detail_name: &str) -> String {
        write_envelope(|w| {
            w.start("soap:Fault");
            match (&self.code, self.code.local()) {
                (_, Some(local)) => w.leaf("faultcode", &format!("soap:{local}")),
                (FaultCode::Other(code), None) => {
                    // `{ns}local` written with a prefix of its own.
                    match code.strip_prefix('{').and_then(|c| c.split_once('}')) {
                        Some((code_ns, local)) => {
                            w.start("faultcode");
                            w.attr("xmlns:fc", code_ns);
                            w.text(&format!("fc:{local}"));
                            w.end();
                        }
                        None => w.leaf("faultcode", code),
                    }
                }
                _ => {}
            }
            w.leaf("faultstring", &self.message);
            w.leaf_opt("faultactor", self.actor.as_deref());
            if let Some(info) = &self.error_info {
                w.start("detail");
                w.start(&format!("f:{detail_name}"));
                w.attr("xmlns:f", detail_ns);
                info.write_content(w);
                w.end();
                w.end();
            }
            w.end();
        })
    }

    /// Reads a `soap:Fault` element. The detail's ErrorInfo is taken when it has one.
    pub fn read(node: Node<'_, '_>) -> Result<Self, EnvelopeError> {
        let path = "Fault";
        let mut code = None;
        let mut message = None;
        let mut actor = None;
        let mut error_info = None;
        for child in node.children().filter(|c| c.is_element()) {
            match child.tag_name().name() {
                "faultcode" => {
                    let text = simple_text(child, path)?;
                    let text = text.trim();
                    let (prefix, local) = match text.split_once(':') {
                        Some((p, l)) => (Some(p), l),
                        None => (None, text),
                    };
                    let code_ns = child.lookup_namespace_uri(prefix).unwrap_or("");
                    // "Server.Something" is a refinement of Server.
                    let head = local.split('.').next().unwrap_or(local);
                    code = Some(match (code_ns == ns::SOAP, head) {
                        (true, "Client") => FaultCode::Client,
                        (true, "Server") => FaultCode::Server,
                        (true, "VersionMismatch") => FaultCode::VersionMismatch,
                        (true, "MustUnderstand") => FaultCode::MustUnderstand,
                        _ => FaultCode::Other(format!("{{{code_ns}}}{local}")),
                    });
                }
                "faultstring" => message = Some(simple_text(child, path)?),
                "faultactor" => actor = Some(simple_text(child, path)?),
                "detail" => {
                    error_info = child
                        .children()
                        .filter(|c| c.is_element())
                        .find_map(|c| ErrorInfo::read(c, "Fault/detail").ok());
                }
                _ => {}
            }
        }
        let code = code.ok_or_else(|| schema_error(node, path, "the Fault has no faultcode"))?;
        Ok(Self {
            code,
            message: message.unwrap_or_default(),
            actor,
            error_info,
        })
    }
}

/// True when `node` is a SOAP 1.1 Fault.
pub fn is_fault(node: Node<'_, '_>) -> bool {
    node.has_tag_name((ns::SOAP, "Fault"))
}
