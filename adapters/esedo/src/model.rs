//! The ЕСЭДО message model on the wire (wsdl_consumer.wsdl): the abstract `message`
//! (`attachments*/fileIdentifier`, `metadataSystem`), the document `docOutgoing` and the
//! notification-receipts `state*`. A message travels in ШЭП's `data` as element content with
//! `xsi:type` naming its type; the schemas declare no elementFormDefault, so every child element
//! is unqualified. Writing follows the XSD's element order exactly; reading is strict (known
//! elements only, in schema order, no stray text) so that what the emulator accepts the real
//! schema accepts too.
use std::collections::BTreeMap;

use qaqpa_shep::xml::{self, schema_error, simple_text, XmlLimits, XmlWriter};
use qaqpa_shep::{EnvelopeError, MessageData, XsiType};
use roxmltree::{Node, NodeType};

/// `http://esedo.nitec.kz/service/model/document` (docOutgoing, docSection, docAppeal, docOL).
pub const NS_DOCUMENT: &str = "http://esedo.nitec.kz/service/model/document";
/// `http://esedo.nitec.kz/service/model/notification` (the state* receipts).
pub const NS_NOTIFICATION: &str = "http://esedo.nitec.kz/service/model/notification";

/// The fields (after the base `message`'s) of each type we build or read, in XSD order.
/// `eecbDocumentMetadata` is complex; it is accepted on reading and ignored.
pub fn fields_of(namespace: &str, local: &str) -> Option<&'static [&'static str]> {
    let fields: &'static [&'static str] = match (namespace, local) {
        (NS_DOCUMENT, "docOutgoing") => &[
            "appendCount",
            "authorNameKz",
            "authorNameRu",
            "carrierType",
            "character",
            "controlTypeOuterCode",
            "controlTypeOuterNameKz",
            "controlTypeOuterNameRu",
            "description",
            "docDate",
            "docKind",
            "docLang",
            "docNo",
            "docNoR",
            "docRecPostKz",
            "docRecPostRu",
            "docToNumber",
            "documentReceiverKz",
            "documentReceiverRu",
            "documentSectionId",
            "employeePhone",
            "executionDate",
            "executor",
            "idPortalInternal",
            "outTime",
            "portalSign",
            "preparedDate",
            "resolutionText",
            "secondSignData",
            "secondSignEnabled",
            "sectionId",
            "sheetCount",
            "signerNameKz",
            "signerNameRu",
            "userUin",
            "eecbDocumentMetadata",
        ],
        (NS_NOTIFICATION, "stateStartProcessResponse") => {
            &["date", "description", "idPortalInternal", "userUin"]
        }
        (NS_NOTIFICATION, "stateDelivered") => &["date", "idPortalInternal", "userUin"],
        (NS_NOTIFICATION, "stateRegistered") => &[
            "date",
            "idPortalInternal",
            "regNo",
            "secondSignNotifData",
            "userUin",
        ],
        (NS_NOTIFICATION, "stateNotValid") => &[
            "date",
            "idPortalInternal",
            "isValidReason",
            "secondSignNotifData",
            "userUin",
        ],
        (NS_NOTIFICATION, "stateExecution") => &[
            "date",
            "execDate",
            "executive",
            "executivePhone",
            "idPortalInternal",
            "userUin",
        ],
        (NS_NOTIFICATION, "stateNewControl")
        | (NS_NOTIFICATION, "stateNewExDate")
        | (NS_NOTIFICATION, "stateProlongExDate") => &[
            "controlTypeCode",
            "controlTypeNameKz",
            "controlTypeNameRu",
            "execDate",
        ],
        (NS_NOTIFICATION, "stateTakeOfControl") => &["execDate"],
        (NS_NOTIFICATION, "stateNewControlWrong")
        | (NS_NOTIFICATION, "stateTakeOfControlWrong") => &[],
        (NS_NOTIFICATION, "stateFinished") => &[
            "author",
            "idPortalInternal",
            "realDate",
            "resultCode",
            "resultText",
            "userUin",
        ],
        _ => return None,
    };
    Some(fields)
}

/// Elements whose XSD type is `xs:long`: checked on writing and reading.
fn is_long(field: &str) -> bool {
    matches!(field, "character" | "docKind" | "idPortalInternal")
}

/// Elements whose XSD type is `xs:dateTime`.
fn is_datetime(field: &str) -> bool {
    matches!(
        field,
        "docDate" | "executionDate" | "outTime" | "preparedDate" | "date" | "execDate" | "realDate"
    )
}

/// `metadataSystem`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataSystem {
    pub activity_id: Option<String>,
    /// Sender participant id.
    pub from: Option<i64>,
    /// The document's GUID.
    pub href: Option<String>,
    /// Recipient participant ids.
    pub performers: Vec<i64>,
    pub sender_org: Option<i64>,
}

/// One ЕСЭДО message of any supported type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsedoMessage {
    /// The type's namespace ([`NS_DOCUMENT`] or [`NS_NOTIFICATION`]).
    pub namespace: String,
    /// The type's name (`docOutgoing`, `stateRegistered`…).
    pub type_name: String,
    /// `attachments/fileIdentifier`, in order.
    pub attachments: Vec<String>,
    pub metadata: MetadataSystem,
    /// The type's own simple fields present, by element name.
    pub fields: BTreeMap<String, String>,
}

impl EsedoMessage {
    pub fn new(namespace: &str, type_name: &str, metadata: MetadataSystem) -> Self {
        Self {
            namespace: namespace.to_owned(),
            type_name: type_name.to_owned(),
            attachments: Vec::new(),
            metadata,
            fields: BTreeMap::new(),
        }
    }

    /// Sets a field (ignored when `value` is `None`).
    pub fn set(&mut self, field: &str, value: Option<String>) {
        if let Some(v) = value {
            self.fields.insert(field.to_owned(), v);
        }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    pub fn is_notification(&self) -> bool {
        self.namespace == NS_NOTIFICATION
    }

    /// Checks types, field names and values before writing.
    pub fn check(&self) -> Result<(), EnvelopeError> {
        let fields =
            fields_of(&self.namespace, &self.type_name).ok_or_else(|| EnvelopeError::Invalid {
                field: "data".into(),
                problem: format!(
                    "{{{}}}{} is not an ЕСЭДО type this adapter knows",
                    self.namespace, self.type_name
                ),
            })?;
        for (name, value) in &self.fields {
            if !fields.contains(&name.as_str()) || name == "eecbDocumentMetadata" {
                return Err(EnvelopeError::Invalid {
                    field: name.clone(),
                    problem: format!("{} has no simple element {name}", self.type_name),
                });
            }
            check_value(name, value).map_err(|problem| EnvelopeError::Invalid {
                field: name.clone(),
                problem,
            })?;
            xml::check_chars(name, value)?;
        }
        for (field, value) in [
            ("activityId", &self.metadata.activity_id),
            ("href", &self.metadata.href),
        ] {
            if let Some(v) = value {
                xml::check_chars(field, v)?;
            }
        }
        for f in &self.attachments {
            xml::check_chars("fileIdentifier", f)?;
        }
        Ok(())
    }

    /// The element content of `data` (unqualified children, in XSD order).
    pub fn to_fragment(&self) -> Result<String, EnvelopeError> {
        self.check()?;
        let mut w = XmlWriter::new();
        for f in &self.attachments {
            w.start("attachments");
            w.leaf("fileIdentifier", f);
            w.end();
        }
        let m = &self.metadata;
        w.start("metadataSystem");
        w.leaf_opt("activityId", m.activity_id.as_deref());
        w.leaf_opt("from", m.from.map(|v| v.to_string()).as_deref());
        w.leaf_opt("href", m.href.as_deref());
        for p in &m.performers {
            w.leaf("performers", &p.to_string());
        }
        w.leaf_opt("senderOrg", m.sender_org.map(|v| v.to_string()).as_deref());
        w.end();
        let order = fields_of(&self.namespace, &self.type_name).unwrap_or(&[]);
        for name in order {
            if let Some(v) = self.fields.get(*name) {
                w.leaf(name, v);
            }
        }
        Ok(w.finish())
    }

    /// The ШЭП `data` carrying this message with its `xsi:type`.
    pub fn to_data(&self) -> Result<MessageData, EnvelopeError> {
        MessageData::xml(
            self.to_fragment()?,
            Some(XsiType {
                namespace: self.namespace.clone(),
                local: self.type_name.clone(),
            }),
        )
    }

    /// Reads the message carried by ШЭП `data` (strictly: known type, schema order).
    pub fn from_data(data: &MessageData, limits: &XmlLimits) -> Result<Self, EnvelopeError> {
        let (xsi_type, fragment) = match data {
            MessageData::Xml { xsi_type, fragment } => (xsi_type, fragment),
            MessageData::Text(_) => {
                return Err(EnvelopeError::Invalid {
                    field: "data".into(),
                    problem: "an ЕСЭДО message must be element content with an xsi:type, \
                              not text"
                        .into(),
                })
            }
        };
        let Some(t) = xsi_type else {
            return Err(EnvelopeError::Invalid {
                field: "data".into(),
                problem: "the ЕСЭДО message carries no xsi:type".into(),
            });
        };
        let wrapped = format!("<data>{fragment}</data>");
        let doc = xml::parse(&wrapped, limits)?;
        Self::read(doc.root_element(), &t.namespace, &t.local)
    }

    /// Reads the children of `node` as a message of type `{namespace}local`.
    pub fn read(node: Node<'_, '_>, namespace: &str, local: &str) -> Result<Self, EnvelopeError> {
        let path = format!("data[{local}]");
        let fields = fields_of(namespace, local).ok_or_else(|| {
            schema_error(
                node,
                &path,
                &format!("xsi:type {{{namespace}}}{local} is not an ЕСЭДО type this adapter knows"),
            )
        })?;
        let mut seq = xml::Seq::new(node, &path)?;
        let mut attachments = Vec::new();
        for a in seq.many("attachments") {
            let apath = format!("{path}/attachments");
            let mut s = xml::Seq::new(a, &apath)?;
            if let Some(f) = s.optional("fileIdentifier") {
                attachments.push(simple_text(f, &apath)?.trim().to_owned());
            }
            s.finish()?;
        }
        let metadata = match seq.optional("metadataSystem") {
            Some(m) => read_metadata(m, &format!("{path}/metadataSystem"))?,
            None => MetadataSystem::default(),
        };
        let mut out = BTreeMap::new();
        for name in fields {
            if let Some(n) = seq.optional(name) {
                if *name == "eecbDocumentMetadata" {
                    continue;
                }
                let value = simple_text(n, &path)?;
                check_value(name, value.trim())
                    .map_err(|problem| schema_error(n, &path, &problem))?;
                out.insert((*name).to_owned(), value);
            }
        }
        seq.finish()?;
        Ok(Self {
            namespace: namespace.to_owned(),
            type_name: local.to_owned(),
            attachments,
            metadata,
            fields: out,
        })
    }
}

fn check_value(name: &str, value: &str) -> Result<(), String> {
    if is_long(name) && value.trim().parse::<i64>().is_err() {
        return Err(format!("{name} must be an xs:long, found '{value}'"));
    }
    if is_datetime(name) && qaqpa_shep::types::parse_datetime(value).is_none() {
        return Err(format!("{name} must be an xs:dateTime, found '{value}'"));
    }
    Ok(())
}

fn read_long(node: Node<'_, '_>, path: &str) -> Result<i64, EnvelopeError> {
    let text = simple_text(node, path)?;
    text.trim()
        .parse::<i64>()
        .map_err(|_| schema_error(node, path, &format!("'{text}' is not an xs:long")))
}

fn read_metadata(node: Node<'_, '_>, path: &str) -> Result<MetadataSystem, EnvelopeError> {
    let mut seq = xml::Seq::new(node, path)?;
    let activity_id = seq
        .optional("activityId")
        .map(|n| simple_text(n, path).map(|t| t.trim().to_owned()))
        .transpose()?;
    let from = seq
        .optional("from")
        .map(|n| read_long(n, path))
        .transpose()?;
    let href = seq
        .optional("href")
        .map(|n| simple_text(n, path).map(|t| t.trim().to_owned()))
        .transpose()?;
    let mut performers = Vec::new();
    for n in seq.many("performers") {
        // nillable: an empty, xsi:nil element names nobody.
        if n.children().any(|c| c.node_type() == NodeType::Text) {
            performers.push(read_long(n, path)?);
        }
    }
    let sender_org = seq
        .optional("senderOrg")
        .map(|n| read_long(n, path))
        .transpose()?;
    seq.finish()?;
    Ok(MetadataSystem {
        activity_id,
        from,
        href,
        performers,
        sender_org,
    })
}

/// An xs:dateTime for a calendar date (`YYYY-MM-DD`), at midnight Astana time.
pub fn date_to_datetime(date: &str) -> Option<String> {
    let d = time::Date::parse(
        date,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    let offset = time::UtcOffset::from_hms(qaqpa_shep::types::ASSUMED_OFFSET_HOURS, 0, 0).ok()?;
    Some(qaqpa_shep::types::format_datetime(
        d.midnight().assume_offset(offset),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter() -> EsedoMessage {
        let mut m = EsedoMessage::new(
            NS_DOCUMENT,
            "docOutgoing",
            MetadataSystem {
                activity_id: Some("a".into()),
                from: Some(7),
                href: Some("h".into()),
                performers: vec![42],
                sender_org: Some(7),
            },
        );
        m.attachments = vec!["f1".into(), "f2".into()];
        m.set("sheetCount", Some("2".into()));
        m.set("docNo", Some("01-12/345".into()));
        m.set("docKind", Some("1".into()));
        m.set("docDate", date_to_datetime("2026-11-30"));
        m
    }

    #[test]
    fn fields_are_written_in_schema_order_and_read_back() {
        let m = letter();
        let fragment = m.to_fragment().expect("writes");
        let docdate = fragment.find("<docDate>").expect("docDate");
        let docno = fragment.find("<docNo>").expect("docNo");
        let sheets = fragment.find("<sheetCount>").expect("sheetCount");
        assert!(docdate < docno && docno < sheets, "{fragment}");
        let back = EsedoMessage::from_data(&m.to_data().expect("data"), &XmlLimits::default())
            .expect("reads");
        assert_eq!(back, m);
    }

    #[test]
    fn out_of_order_unknown_and_mistyped_elements_are_refused() {
        let t = XsiType {
            namespace: NS_DOCUMENT.into(),
            local: "docOutgoing".into(),
        };
        let read = |fragment: &str| {
            EsedoMessage::from_data(
                &MessageData::Xml {
                    xsi_type: Some(t.clone()),
                    fragment: fragment.into(),
                },
                &XmlLimits::default(),
            )
        };
        assert!(read("<metadataSystem><href>x</href></metadataSystem><docNo>1</docNo>").is_ok());
        assert!(
            read("<metadataSystem/><docNo>1</docNo><docDate>2026-01-01T00:00:00</docDate>")
                .is_err()
        );
        assert!(read("<metadataSystem/><bogus>1</bogus>").is_err());
        assert!(read("<metadataSystem/><docKind>one</docKind>").is_err());
        assert!(read("<metadataSystem><href>x</href><from>1</from></metadataSystem>").is_err());
        assert!(read("<docNo>1</docNo><metadataSystem/>").is_err());
    }
}
