//! What the EDMS submits: the letter card of an `esedo.letter` and the decision of an
//! `esedo.receipt` (our receipt about an incoming letter), as strict serde types; the cheap
//! checks with exact JSON pointers; and their translation into ЕСЭДО messages.
use base64::Engine as _;
use qaqpa_core::{AttachmentMeta, Outgoing, Rejection};
use serde::{Deserialize, Serialize};

use crate::model::{date_to_datetime, EsedoMessage, MetadataSystem, NS_DOCUMENT, NS_NOTIFICATION};
use crate::settings::EsedoSettings;

/// Kind of an outgoing letter.
pub const KIND_LETTER: &str = "esedo.letter";
/// Kind of our receipt about an incoming letter.
pub const KIND_RECEIPT: &str = "esedo.receipt";

/// The responsible executor of a letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Executor {
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// The letter card (`document` of an `esedo.letter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LetterCard {
    /// Outgoing number.
    pub doc_no: String,
    /// Outgoing date, `YYYY-MM-DD`.
    pub doc_date: String,
    /// Document kind (ЕСЭДО dictionary code).
    pub doc_kind: i64,
    /// RU, KZ, KZRU, ENG…
    pub doc_lang: String,
    /// 1: electronic original; 3: electronic copy of a paper document.
    pub carrier_type: u8,
    /// Character of the question (ЕСЭДО dictionary code).
    #[serde(default)]
    pub character: Option<i64>,
    /// Summary.
    pub description: String,
    /// Deadline asked of the recipient, `YYYY-MM-DD`.
    #[serde(default)]
    pub execution_date: Option<String>,
    #[serde(default)]
    pub executor: Option<Executor>,
    /// Who signed (names).
    pub signers: Vec<String>,
    /// Who wrote it (names).
    #[serde(default)]
    pub authors: Vec<String>,
    /// The recipient's number of the letter this one answers.
    #[serde(default)]
    pub in_reply_to: Option<String>,
    pub sheet_count: u32,
    #[serde(default)]
    pub append_count: Option<u32>,
}

/// Languages ЕСЭДО names in docLang.
pub const LANGUAGES: [&str; 4] = ["RU", "KZ", "KZRU", "ENG"];

fn is_date(s: &str) -> bool {
    date_to_datetime(s).is_some()
}

impl LetterCard {
    /// Parses `/document`, naming the failing field.
    pub fn parse(document: &serde_json::Value) -> Result<Self, Rejection> {
        serde_json::from_value::<LetterCard>(document.clone())
            .map_err(|e| Rejection::new(pointer_of_serde_error(&e, "/document"), e.to_string()))
    }

    /// Field checks serde cannot express.
    pub fn check(&self) -> Result<(), Rejection> {
        let required = [
            ("/document/docNo", &self.doc_no),
            ("/document/docLang", &self.doc_lang),
            ("/document/description", &self.description),
        ];
        for (field, value) in required {
            if value.trim().is_empty() {
                return Err(Rejection::new(field, "must not be empty"));
            }
        }
        if !is_date(&self.doc_date) {
            return Err(Rejection::new(
                "/document/docDate",
                format!("'{}' is not a date YYYY-MM-DD", self.doc_date),
            ));
        }
        if let Some(d) = &self.execution_date {
            if !is_date(d) {
                return Err(Rejection::new(
                    "/document/executionDate",
                    format!("'{d}' is not a date YYYY-MM-DD"),
                ));
            }
        }
        if !LANGUAGES.contains(&self.doc_lang.as_str()) {
            return Err(Rejection::new(
                "/document/docLang",
                format!("'{}' is not one of {}", self.doc_lang, LANGUAGES.join(", ")),
            ));
        }
        if !matches!(self.carrier_type, 1 | 3) {
            return Err(Rejection::new(
                "/document/carrierType",
                "must be 1 (electronic original) or 3 (electronic copy of a paper document)",
            ));
        }
        if self.signers.is_empty() || self.signers.iter().any(|s| s.trim().is_empty()) {
            return Err(Rejection::new(
                "/document/signers",
                "name at least one signer, none empty",
            ));
        }
        if self.sheet_count == 0 {
            return Err(Rejection::new("/document/sheetCount", "must be at least 1"));
        }
        if let Some(e) = &self.executor {
            if e.name.trim().is_empty() {
                return Err(Rejection::new(
                    "/document/executor/name",
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }

    /// The `docOutgoing` for this card.
    pub fn to_message(
        &self,
        metadata: MetadataSystem,
        file_ids: Vec<String>,
        second_sign: Option<&[u8]>,
    ) -> EsedoMessage {
        let mut m = EsedoMessage::new(NS_DOCUMENT, "docOutgoing", metadata);
        m.attachments = file_ids;
        m.set("appendCount", self.append_count.map(|c| c.to_string()));
        if !self.authors.is_empty() {
            m.set("authorNameRu", Some(self.authors.join(", ")));
        }
        m.set("carrierType", Some(self.carrier_type.to_string()));
        m.set("character", self.character.map(|c| c.to_string()));
        m.set("description", Some(self.description.clone()));
        m.set("docDate", date_to_datetime(&self.doc_date));
        m.set("docKind", Some(self.doc_kind.to_string()));
        m.set("docLang", Some(self.doc_lang.clone()));
        m.set("docNo", Some(self.doc_no.clone()));
        m.set("docToNumber", self.in_reply_to.clone());
        if let Some(e) = &self.executor {
            m.set("employeePhone", e.phone.clone());
        }
        m.set(
            "executionDate",
            self.execution_date.as_deref().and_then(date_to_datetime),
        );
        m.set("executor", self.executor.as_ref().map(|e| e.name.clone()));
        if let Some(cms) = second_sign {
            m.set(
                "secondSignData",
                Some(base64::engine::general_purpose::STANDARD.encode(cms)),
            );
            m.set("secondSignEnabled", Some("true".into()));
        }
        m.set("sheetCount", Some(self.sheet_count.to_string()));
        m.set("signerNameRu", Some(self.signers.join(", ")));
        m
    }
}

/// The JSON pointer serde's message points at, as far as it says (`unknown field`, `missing
/// field` name the field; otherwise the document itself).
pub(crate) fn pointer_of_serde_error(e: &serde_json::Error, base: &str) -> String {
    let text = e.to_string();
    for marker in ["missing field `", "unknown field `"] {
        if let Some(at) = text.find(marker) {
            let rest = &text[at + marker.len()..];
            if let Some(end) = rest.find('`') {
                return format!("{base}/{}", &rest[..end]);
            }
        }
    }
    base.to_owned()
}

/// Our decision about an incoming letter (`document` of an `esedo.receipt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReceiptDecision {
    /// The href of the incoming letter.
    pub in_reply_to: String,
    pub state: DecisionState,
    /// When it happened (RFC 3339); now when absent.
    #[serde(default)]
    pub date: Option<String>,
    /// Our registration number (registered).
    #[serde(default)]
    pub reg_no: Option<String>,
    /// Why the letter is not valid: 1 bad link, 2 signature check failed, 3 not per regulations,
    /// or a text (not_valid). `isValidReason` is accepted as the contract's own name.
    #[serde(default, alias = "isValidReason")]
    pub reason: Option<String>,
    /// Responsible executor (execution).
    #[serde(default)]
    pub executive: Option<String>,
    #[serde(default)]
    pub executive_phone: Option<String>,
    /// Deadline `YYYY-MM-DD` or an RFC 3339 time (execution).
    #[serde(default)]
    pub exec_date: Option<String>,
    /// Who finished it (finished).
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub result_code: Option<String>,
    #[serde(default)]
    pub result_text: Option<String>,
    /// IIN of the user who acted, when the EDMS gives it.
    #[serde(default)]
    pub user_uin: Option<String>,
}

/// The states we can report about an incoming letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionState {
    Delivered,
    Registered,
    NotValid,
    Execution,
    Finished,
}

fn datetime_of(text: &str) -> Option<String> {
    date_to_datetime(text)
        .or_else(|| qaqpa_shep::types::parse_datetime(text).map(qaqpa_shep::types::format_datetime))
}

impl ReceiptDecision {
    pub fn parse(document: &serde_json::Value) -> Result<Self, Rejection> {
        serde_json::from_value::<ReceiptDecision>(document.clone())
            .map_err(|e| Rejection::new(pointer_of_serde_error(&e, "/document"), e.to_string()))
    }

    /// Required fields per state.
    pub fn check(&self) -> Result<(), Rejection> {
        if self.in_reply_to.trim().is_empty() {
            return Err(Rejection::new(
                "/document/inReplyTo",
                "name the href of the incoming letter",
            ));
        }
        let need =
            |field: &str, value: &Option<String>, what: &str| match value.as_deref().map(str::trim)
            {
                Some(v) if !v.is_empty() => Ok(()),
                _ => Err(Rejection::new(
                    format!("/document/{field}"),
                    format!("required when state is {what}"),
                )),
            };
        match self.state {
            DecisionState::Delivered => {}
            DecisionState::Registered => need("regNo", &self.reg_no, "registered")?,
            DecisionState::NotValid => need("reason", &self.reason, "not_valid")?,
            DecisionState::Execution => {
                need("executive", &self.executive, "execution")?;
                need("execDate", &self.exec_date, "execution")?;
            }
            DecisionState::Finished => {
                need("resultCode", &self.result_code, "finished")?;
            }
        }
        if let Some(d) = &self.exec_date {
            if datetime_of(d).is_none() {
                return Err(Rejection::new(
                    "/document/execDate",
                    format!("'{d}' is neither YYYY-MM-DD nor an RFC 3339 time"),
                ));
            }
        }
        if let Some(d) = &self.date {
            if qaqpa_shep::types::parse_datetime(d).is_none() {
                return Err(Rejection::new(
                    "/document/date",
                    format!("'{d}' is not an RFC 3339 time"),
                ));
            }
        }
        Ok(())
    }

    /// The notification for this decision.
    pub fn to_message(&self, metadata: MetadataSystem, now: &str) -> EsedoMessage {
        let date = self
            .date
            .as_deref()
            .and_then(datetime_of)
            .unwrap_or_else(|| now.to_owned());
        let name = match self.state {
            DecisionState::Delivered => "stateDelivered",
            DecisionState::Registered => "stateRegistered",
            DecisionState::NotValid => "stateNotValid",
            DecisionState::Execution => "stateExecution",
            DecisionState::Finished => "stateFinished",
        };
        let mut msg = EsedoMessage::new(NS_NOTIFICATION, name, metadata);
        match self.state {
            DecisionState::Finished => msg.set("realDate", Some(date)),
            _ => msg.set("date", Some(date)),
        }
        match self.state {
            DecisionState::Delivered => {}
            DecisionState::Registered => msg.set("regNo", self.reg_no.clone()),
            DecisionState::NotValid => msg.set("isValidReason", self.reason.clone()),
            DecisionState::Execution => {
                msg.set("execDate", self.exec_date.as_deref().and_then(datetime_of));
                msg.set("executive", self.executive.clone());
                msg.set("executivePhone", self.executive_phone.clone());
            }
            DecisionState::Finished => {
                msg.set("author", self.author.clone());
                msg.set("resultCode", self.result_code.clone());
                msg.set("resultText", self.result_text.clone());
            }
        }
        msg.set("userUin", self.user_uin.clone());
        msg
    }
}

/// The file checks of a letter against the route's limits, with exact pointers.
pub fn check_files(attachments: &[AttachmentMeta], s: &EsedoSettings) -> Result<(), Rejection> {
    if attachments.is_empty() {
        return Err(Rejection::new(
            "/attachments",
            "a letter needs its main document as attachment 0",
        ));
    }
    if attachments.len() > s.max_files {
        return Err(Rejection::new(
            "/attachments",
            format!(
                "{} files; an ЕСЭДО letter carries at most {}",
                attachments.len(),
                s.max_files
            ),
        ));
    }
    let mut total: u64 = 0;
    for (i, a) in attachments.iter().enumerate() {
        let chars = a.name.chars().count();
        if chars < s.min_file_name_chars || chars > s.max_file_name_chars {
            return Err(Rejection::new(
                format!("/attachments/{i}/name"),
                format!(
                    "'{}' has {chars} characters; ЕСЭДО file names have {} to {}",
                    a.name, s.min_file_name_chars, s.max_file_name_chars
                ),
            ));
        }
        if a.size > s.max_file_bytes {
            return Err(Rejection::new(
                format!("/attachments/{i}/size"),
                format!(
                    "'{}' is {} bytes; an ЕСЭДО file may have at most {} bytes ({})",
                    a.name,
                    a.size,
                    s.max_file_bytes,
                    human(s.max_file_bytes)
                ),
            ));
        }
        total = total.saturating_add(a.size);
    }
    if total > s.max_total_bytes {
        return Err(Rejection::new(
            "/attachments",
            format!(
                "the files total {total} bytes; an ЕСЭДО letter may carry at most {} bytes ({})",
                s.max_total_bytes,
                human(s.max_total_bytes)
            ),
        ));
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    if bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

/// The `to` of a message as an ЕСЭДО participant id.
pub fn recipient_id(msg: &Outgoing) -> Result<i64, Rejection> {
    msg.to
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            Rejection::new(
                "/to",
                format!(
                    "'{}' is not an ЕСЭДО participant id (a positive integer)",
                    msg.to
                ),
            )
        })
}
