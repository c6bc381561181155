//! The ЕСЭДО ГО adapter (state bodies' unified e-document exchange, reached through ШЭП).
//!
//! * `esedo.letter`: a letter card, its files and two CMS signatures (the head's over the main
//!   document, the chancellery's registration signature). Checked before the 202 (limits,
//!   fields, signatures with full certificate validation), delivered by uploading the files to
//!   ХЭД and sending a `docOutgoing` to `ESEDO_UNIVERSAL_SERVICE`.
//! * `esedo.receipt`: our decision about an incoming letter, sent back as a notification.
//! * Pushes to our ISyncChannel endpoint: ЕСЭДО's notification-receipts about our letters and
//!   letters addressed to us; answered with a SyncChannel `SendMessageResponse`.
//!
//! The adapter keeps no state about messages between calls; everything it needs is derived
//! from the message (the href is the message id, see [`ids`]).

pub mod directory;
pub mod emulator;
pub mod hed;
pub mod ids;
pub mod letter;
pub mod model;
pub mod receipts;
pub mod settings;
pub mod signatures;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use qaqpa_core::adapter::toml_value::Table;
use qaqpa_core::{
    Adapter, Admitted, AttachmentMeta, Cx, Delivered, Failure, Inbound, Outgoing, PushAnswer,
    PushOutcome, Receipt, Rejection, SignatureVerdict,
};
use qaqpa_shep::server::read_sync_request;
use qaqpa_shep::{
    EnvelopeSigner, EnvelopeVerifier, SenderInfo, SessionId, ShepError, Status, SyncChannelClient,
    SyncClientPool, SyncRequest, SyncResponse, XmlLimits,
};
use serde_json::json;

pub use directory::{Directory, Participant};
pub use ids::{href_for, message_id_from_href};
pub use letter::{LetterCard, ReceiptDecision, KIND_LETTER, KIND_RECEIPT};
pub use model::EsedoMessage;
pub use settings::EsedoSettings;
pub use signatures::{CmsVerifier, SignatureRole, SignerSummary};

use crate::hed::{HedCredentials, HedRequest, HedResponse, UploadFile};
use crate::model::{MetadataSystem, NS_DOCUMENT};

/// File name of the head's CMS when it travels through ХЭД beside the letter's files.
pub const HEAD_SIGNATURE_FILE: &str = "signature.cms";
/// MIME type of that file.
pub const CMS_MIME: &str = "application/pkcs7-signature";

/// The ЕСЭДО adapter. One instance serves every route whose adapter is `esedo`.
pub struct EsedoAdapter {
    signer: Option<Arc<dyn EnvelopeSigner>>,
    verifier: Option<Arc<dyn EnvelopeVerifier>>,
    cms: Option<Arc<CmsVerifier>>,
    directory: Option<Arc<RwLock<Directory>>>,
    /// HTTP clients by (endpoint, timeout): connection pools, not message state.
    clients: SyncClientPool,
}

impl EsedoAdapter {
    /// `signer` signs our envelopes (WS-Security over the Body) and our answers to pushes;
    /// `verifier` checks ЕСЭДО's pushes; `cms` judges the letters' CMS signatures (required for
    /// `esedo.letter` and for incoming letters).
    pub fn new(
        signer: Option<Arc<dyn EnvelopeSigner>>,
        verifier: Option<Arc<dyn EnvelopeVerifier>>,
        cms: Option<Arc<CmsVerifier>>,
    ) -> Self {
        Self {
            clients: SyncClientPool::new(signer.clone(), verifier.clone(), 64),
            signer,
            verifier,
            cms,
            directory: None,
        }
    }

    /// Recipients of letters must then be known participants (route setting
    /// `check_recipient_in_directory`); incoming letters' senders are named from it.
    pub fn with_directory(mut self, directory: Arc<RwLock<Directory>>) -> Self {
        self.directory = Some(directory);
        self
    }

    fn client(&self, s: &EsedoSettings, timeout: Duration) -> Result<SyncChannelClient, Failure> {
        self.clients
            .get(&s.endpoint, timeout)
            .map_err(|e| Failure::permanent("ESEDO_CONFIG", e.to_string()))
    }

    /// One ШЭП exchange. Its bodies on the wire go to [`Cx::meter`] whatever the outcome, so
    /// the exchanges of one attempt add up there: a letter's ХЭД upload and its SendMessage.
    async fn exchange(
        &self,
        s: &EsedoSettings,
        request: &SyncRequest,
        cx: &Cx<'_>,
    ) -> Result<SyncResponse, Failure> {
        let timeout = s.timeout().min(cx.remaining());
        if timeout.is_zero() {
            return Err(Failure::retry(
                "the deadline passed before the request was sent",
            ));
        }
        self.client(s, timeout)?
            .send_metered(request, cx.meter)
            .await
            .map_err(shep_failure)
    }

    fn sender(s: &EsedoSettings) -> Result<SenderInfo, Failure> {
        Ok(SenderInfo::new(s.sender_id.clone(), s.password()?))
    }

    /// One ХЭД exchange, its answer checked.
    async fn hed(
        &self,
        s: &EsedoSettings,
        request: HedRequest,
        cx: &Cx<'_>,
    ) -> Result<HedResponse, Failure> {
        let credentials = HedCredentials {
            sender_id: s.sender_id.clone(),
            password: s.password()?.unwrap_or_default(),
        };
        let data = request
            .to_data(&credentials)
            .map_err(|e| Failure::permanent("ESEDO_HED", e.to_string()))?;
        let req = SyncRequest::new(s.hed_service_id.clone(), Self::sender(s)?, Some(data));
        let response = self.exchange(s, &req, cx).await?;
        let data = response.data.ok_or_else(|| {
            Failure::retry(format!("ХЭД answered {} without data", request.kind()))
        })?;
        let parsed = HedResponse::from_data(&data, &XmlLimits::default())
            .map_err(|e| Failure::retry(format!("ХЭД's answer is unreadable: {e}")))?;
        if parsed.kind != request.kind() {
            return Err(Failure::retry(format!(
                "ХЭД answered {} to {}",
                parsed.kind,
                request.kind()
            )));
        }
        parsed.check_ok().map_err(Failure::retry)?;
        Ok(parsed)
    }

    fn validate_letter(&self, msg: &Outgoing, s: &EsedoSettings) -> Result<LetterCard, Rejection> {
        let to = letter::recipient_id(msg)?;
        let card = LetterCard::parse(&msg.document)?;
        card.check()?;
        letter::check_files(&msg.attachments, s)?;
        if msg.signatures.len() != 2 {
            return Err(Rejection::new(
                "/signatures",
                format!(
                    "{} signatures; a letter needs 2: the head's over the main document (0) and \
                     the chancellery's registration signature (1)",
                    msg.signatures.len()
                ),
            ));
        }
        for (i, sig) in msg.signatures.iter().enumerate() {
            if sig.is_empty() {
                return Err(Rejection::new(format!("/signatures/{i}"), "is empty"));
            }
        }
        if s.check_recipient_in_directory {
            if let Some(dir) = &self.directory {
                let dir = dir.read().unwrap_or_else(|p| p.into_inner());
                if !dir.participants.is_empty() {
                    match dir.get(to) {
                        None => {
                            return Err(Rejection::new(
                                "/to",
                                format!("participant {to} is not in the ЕСЭДО directory"),
                            ))
                        }
                        Some(p) if !p.active => {
                            return Err(Rejection::new(
                                "/to",
                                format!("participant {to} ({}) is not active in ЕСЭДО", p.name_ru),
                            ))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        Ok(card)
    }

    fn validate_receipt(&self, msg: &Outgoing) -> Result<ReceiptDecision, Rejection> {
        letter::recipient_id(msg)?;
        let d = ReceiptDecision::parse(&msg.document)?;
        d.check()?;
        if !msg.attachments.is_empty() {
            return Err(Rejection::new(
                "/attachments",
                "an ЕСЭДО receipt carries no files",
            ));
        }
        Ok(d)
    }

    async fn deliver_letter(&self, msg: &Outgoing, cx: &Cx<'_>) -> Result<Delivered, Failure> {
        let s = EsedoSettings::for_delivery(cx.settings)?;
        let card = self
            .validate_letter(msg, &s)
            .map_err(|r| Failure::permanent("INVALID_DOCUMENT", r.to_string()))?;
        let to = letter::recipient_id(msg)
            .map_err(|r| Failure::permanent("INVALID_DOCUMENT", r.to_string()))?;
        let mut files = Vec::with_capacity(msg.attachments.len() + 1);
        for (i, meta) in msg.attachments.iter().enumerate() {
            let content = cx.attachments.read(i).await?;
            files.push(UploadFile {
                process_id: i.to_string(),
                name: meta.name.clone(),
                mime: meta.content_type.clone(),
                content: content.to_vec(),
            });
        }
        files.push(UploadFile {
            process_id: msg.attachments.len().to_string(),
            name: HEAD_SIGNATURE_FILE.into(),
            mime: CMS_MIME.into(),
            content: msg.signatures[0].clone(),
        });
        let count = files.len();
        // Two exchanges, both measured into cx.meter: the ХЭД upload, then the SendMessage.
        let uploaded = self.hed(&s, HedRequest::Upload(files), cx).await?;
        let mut file_ids = Vec::with_capacity(count);
        for i in 0..count {
            let key = i.to_string();
            let id = uploaded
                .results
                .iter()
                .find(|r| r.key == key)
                .and_then(|r| r.file_id.clone())
                .ok_or_else(|| {
                    Failure::retry(format!("ХЭД returned no fileIdentifier for file {i}"))
                })?;
            file_ids.push(id);
        }
        let href = href_for(msg.id);
        let activity = ids::activity_id_for(msg.id);
        let metadata = MetadataSystem {
            activity_id: Some(activity.clone()),
            from: Some(s.participant_id),
            href: Some(href.clone()),
            performers: vec![to],
            sender_org: Some(s.participant_id),
        };
        let message = card.to_message(metadata, file_ids, Some(&msg.signatures[1]));
        let response = self.send_esedo(&s, &message, &href, &activity, cx).await?;
        Ok(Delivered {
            result_code: Some(format!("shep:{}", response.info.status.code)),
            target_ref: Some(href.clone()),
            receipts: vec![receipts::sent_receipt(
                &href,
                qaqpa_shep::types::now(),
                Some(ids::session_for(&activity)),
            )],
        })
    }

    async fn deliver_receipt(&self, msg: &Outgoing, cx: &Cx<'_>) -> Result<Delivered, Failure> {
        let s = EsedoSettings::for_delivery(cx.settings)?;
        let decision = self
            .validate_receipt(msg)
            .map_err(|r| Failure::permanent("INVALID_DOCUMENT", r.to_string()))?;
        let to = letter::recipient_id(msg)
            .map_err(|r| Failure::permanent("INVALID_DOCUMENT", r.to_string()))?;
        let activity = ids::activity_id_for(msg.id);
        let metadata = MetadataSystem {
            activity_id: Some(activity.clone()),
            from: Some(s.participant_id),
            href: Some(decision.in_reply_to.clone()),
            performers: vec![to],
            sender_org: Some(s.participant_id),
        };
        let now = qaqpa_shep::types::format_datetime(qaqpa_shep::types::now());
        let message = decision.to_message(metadata, &now);
        // The ШЭП messageId is ours (one per receipt); the href names the letter.
        let id = msg.id.to_string();
        let response = self.send_esedo(&s, &message, &id, &activity, cx).await?;
        Ok(Delivered {
            result_code: Some(format!("shep:{}", response.info.status.code)),
            target_ref: Some(id.clone()),
            receipts: vec![receipts::sent_receipt(
                &id,
                qaqpa_shep::types::now(),
                Some(ids::session_for(&activity)),
            )],
        })
    }

    async fn send_esedo(
        &self,
        s: &EsedoSettings,
        message: &EsedoMessage,
        message_id: &str,
        activity: &str,
        cx: &Cx<'_>,
    ) -> Result<SyncResponse, Failure> {
        let data = message
            .to_data()
            .map_err(|e| Failure::permanent("INVALID_DOCUMENT", e.to_string()))?;
        let session = SessionId::parse(&ids::session_for(activity))
            .map_err(|e| Failure::permanent("INVALID_DOCUMENT", e.to_string()))?;
        let request = SyncRequest::new(s.service_id.clone(), Self::sender(s)?, Some(data))
            .with_message_id(message_id)
            .with_route_id(s.route_id.clone())
            .with_session_id(session);
        self.exchange(s, &request, cx).await
    }

    /// A letter pushed to us: files from ХЭД, signatures verified, the inbox document.
    async fn incoming_letter(
        &self,
        s: &EsedoSettings,
        m: EsedoMessage,
        cx: &Cx<'_>,
    ) -> Result<PushOutcome, Failure> {
        let cms = self.cms.as_ref().ok_or_else(|| {
            Failure::permanent(
                "ESEDO_CONFIG",
                "incoming letters need a CMS verifier (trust store) and none is configured",
            )
        })?;
        let href = m
            .metadata
            .href
            .clone()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                Failure::permanent("SCSE002", "the letter has no metadataSystem/href")
            })?;
        let from =
            m.metadata.from.or(m.metadata.sender_org).ok_or_else(|| {
                Failure::permanent("SCSE002", "the letter names no sender (from)")
            })?;
        if !m.metadata.performers.is_empty() && !m.metadata.performers.contains(&s.participant_id) {
            return Err(Failure::permanent(
                "SCSE002",
                format!(
                    "the letter is addressed to {:?}, not to participant {}",
                    m.metadata.performers, s.participant_id
                ),
            ));
        }
        if m.attachments.is_empty() {
            return Err(Failure::permanent("SCSE002", "the letter carries no files"));
        }
        let downloaded = self
            .hed(&s.clone(), HedRequest::Download(m.attachments.clone()), cx)
            .await?;
        let mut files: Vec<(AttachmentMeta, Bytes)> = Vec::new();
        let mut head_cms = None;
        let mut main = None;
        for id in &m.attachments {
            let r = downloaded
                .results
                .iter()
                .find(|r| &r.key == id)
                .ok_or_else(|| Failure::retry(format!("ХЭД returned nothing for file {id}")))?;
            let content = r
                .content
                .clone()
                .ok_or_else(|| Failure::retry(format!("ХЭД returned no content for file {id}")))?;
            let meta = r.meta.clone();
            let name = meta
                .as_ref()
                .and_then(|m| m.name.clone())
                .unwrap_or_else(|| id.clone());
            let mime = meta
                .as_ref()
                .and_then(|m| m.mime.clone())
                .unwrap_or_else(|| "application/octet-stream".into());
            let bytes = Bytes::from(content);
            // The head's CMS travels as a file of its own; the first other file is the main one.
            if is_cms_file(&name, &mime) {
                if head_cms.is_none() {
                    head_cms = Some(bytes.clone());
                }
            } else if main.is_none() {
                main = Some(bytes.clone());
            }
            files.push((
                AttachmentMeta {
                    name,
                    content_type: mime,
                    size: bytes.len() as u64,
                    sha256: sha256_hex(&bytes),
                },
                bytes,
            ));
        }
        let main =
            main.ok_or_else(|| Failure::permanent("SCSE002", "the letter has no main document"))?;
        let head = head_cms.ok_or_else(|| {
            Failure::bad_signature(
                "SCSE002",
                "head",
                "the letter carries no signature of the main document",
            )
        })?;
        let second = m
            .get("secondSignData")
            .map(|t| {
                base64::engine::general_purpose::STANDARD
                    .decode(t.split_whitespace().collect::<String>())
                    .map_err(|e| {
                        Failure::permanent("SCSE002", format!("secondSignData is not base64: {e}"))
                    })
            })
            .transpose()?
            .ok_or_else(|| {
                Failure::bad_signature(
                    "SCSE002",
                    "registration",
                    "the letter carries no registration signature (secondSignData)",
                )
            })?;
        // The sender's BIN: the directory's, else the head's certificate's.
        let known_bin = self.directory.as_ref().and_then(|d| {
            d.read()
                .unwrap_or_else(|p| p.into_inner())
                .get(from)
                .and_then(|p| p.bin.clone())
        });
        let bin = match known_bin {
            Some(b) => b,
            None => signer_bin(&head).ok_or_else(|| {
                Failure::bad_signature("SCSE002", "head", "the head's certificate names no BIN")
            })?,
        };
        let head_report = cms
            .verify(&head, Some(&main), true, SignatureRole::Head, &bin)
            .await
            .map_err(|e| Failure::bad_signature("SCSE002", "head", e))?;
        let second_report = cms
            .verify(
                &second,
                Some(&main),
                false,
                SignatureRole::Registration,
                &bin,
            )
            .await
            .map_err(|e| Failure::bad_signature("SCSE002", "registration", e))?;
        let mut document = incoming_card(&m);
        if let Some(obj) = document.as_object_mut() {
            obj.insert("href".into(), json!(href));
            obj.insert("from".into(), json!(from));
            obj.insert("senderBin".into(), json!(bin));
            obj.insert(
                "signatures".into(),
                json!({ "head": head_report, "registration": second_report }),
            );
        }
        // Confirm the download to ХЭД; a failure here does not lose the letter.
        if let Err(e) = self
            .hed(s, HedRequest::Confirm(m.attachments.clone()), cx)
            .await
        {
            tracing::warn!(href = %href, error = %e, "ХЭД confirm failed");
        }
        let signatures = [("head", &head_report), ("registration", &second_report)]
            .into_iter()
            .flat_map(|(field, signers)| {
                signers.iter().map(move |v| SignatureVerdict {
                    field: field.to_owned(),
                    signer: Some(v.describe()),
                })
            })
            .collect();
        Ok(PushOutcome::Document {
            external_id: href,
            kind: KIND_LETTER.into(),
            from: from.to_string(),
            document,
            attachments: files,
            signatures,
        })
    }
}

/// Is this file a CMS signature (by MIME type or extension)?
fn is_cms_file(name: &str, mime: &str) -> bool {
    let lower = name.to_lowercase();
    mime == CMS_MIME
        || mime == "application/pkcs7-mime"
        || [".cms", ".p7s", ".sig"].iter().any(|e| lower.ends_with(e))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn signer_bin(cms: &[u8]) -> Option<String> {
    let sd = qaqpa_pki::cms::SignedData::parse(cms).ok()?;
    let si = sd.signers.first()?;
    let cert = sd.signer_certificate(si, &[])?;
    cert.subject_info().bin.map(|b| b.to_string())
}

/// The inbox card of an incoming `docOutgoing` (camelCase, like the letter card).
fn incoming_card(m: &EsedoMessage) -> serde_json::Value {
    let f = |n: &str| m.get(n).map(|v| v.trim().to_owned());
    json!({
        "docNo": f("docNo"),
        "docDate": f("docDate"),
        "docKind": f("docKind"),
        "docLang": f("docLang"),
        "carrierType": f("carrierType"),
        "character": f("character"),
        "description": f("description"),
        "executionDate": f("executionDate"),
        "executor": { "name": f("executor"), "phone": f("employeePhone") },
        "signers": f("signerNameRu").or(f("signerNameKz")),
        "authors": f("authorNameRu").or(f("authorNameKz")),
        "inReplyTo": f("docToNumber"),
        "sheetCount": f("sheetCount"),
        "appendCount": f("appendCount"),
        "activityId": m.metadata.activity_id,
        "performers": m.metadata.performers,
    })
}

/// The engine's view of a ШЭП error.
fn shep_failure(e: ShepError) -> Failure {
    match e {
        ShepError::Permanent { code, message } => Failure::permanent(code, message),
        ShepError::Retry { reason, after } => Failure::Retry {
            reason: reason.to_string(),
            after,
        },
        other => Failure::permanent("SHEP_NOT_SENT", other.to_string()),
    }
}

/// The request's messageId, read again from a push (without any checks).
fn request_message_id(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    SyncRequest::from_envelope(text, &XmlLimits::default())
        .ok()
        .map(|r| r.info.message_id)
}

#[async_trait]
impl Adapter for EsedoAdapter {
    fn name(&self) -> &'static str {
        "esedo"
    }

    fn meters_exchanges(&self) -> bool {
        true
    }

    fn check_settings(&self, settings: &Table) -> Result<(), Rejection> {
        let s = EsedoSettings::from_table(settings)?;
        s.password()
            .map_err(|e| Rejection::new("settings.sender_password_env", e.to_string()))?;
        if s.require_signed_pushes && self.verifier.is_none() {
            return Err(Rejection::new(
                "settings.require_signed_pushes",
                "signed pushes are required but no WS-Security verifier is configured",
            ));
        }
        if self.cms.is_none() {
            return Err(Rejection::new(
                "settings",
                "the ЕСЭДО adapter was built without a CMS verifier (trust store): letters' \
                 signatures could not be checked",
            ));
        }
        Ok(())
    }

    fn validate(&self, msg: &Outgoing, settings: &Table) -> Result<(), Rejection> {
        let s = EsedoSettings::from_table(settings)?;
        match msg.kind.as_str() {
            KIND_LETTER => self.validate_letter(msg, &s).map(|_| ()),
            KIND_RECEIPT => self.validate_receipt(msg).map(|_| ()),
            other => Err(Rejection::new(
                "/kind",
                format!("the ЕСЭДО adapter sends {KIND_LETTER} and {KIND_RECEIPT}, not {other}"),
            )),
        }
    }

    async fn admit(&self, msg: &Outgoing, cx: &Cx<'_>) -> Result<Admitted, Rejection> {
        if msg.kind != KIND_LETTER {
            return Ok(Admitted::default());
        }
        let s = EsedoSettings::from_table(cx.settings)?;
        self.validate_letter(msg, &s)?;
        let cms = self.cms.as_ref().ok_or_else(|| {
            Rejection::new(
                "/signatures",
                "signatures cannot be checked: no trust store is configured for ЕСЭДО",
            )
        })?;
        let main = cx
            .attachments
            .read(0)
            .await
            .map_err(|e| Rejection::new("/attachments/0", e.to_string()))?;
        let mut admitted = Admitted::default();
        for (n, must_cover, role) in [
            (0, true, SignatureRole::Head),
            (1, false, SignatureRole::Registration),
        ] {
            let field = format!("/signatures/{n}");
            let signers = cms
                .verify(
                    &msg.signatures[n],
                    Some(&main),
                    must_cover,
                    role,
                    &s.sender_bin,
                )
                .await
                .map_err(|e| Rejection::new(&field, e))?;
            admitted
                .valid_signatures
                .extend(signers.iter().map(|v| SignatureVerdict {
                    field: field.clone(),
                    signer: Some(v.describe()),
                }));
        }
        Ok(admitted)
    }

    async fn deliver(&self, msg: &Outgoing, cx: &Cx<'_>) -> Result<Delivered, Failure> {
        match msg.kind.as_str() {
            KIND_LETTER => self.deliver_letter(msg, cx).await,
            KIND_RECEIPT => self.deliver_receipt(msg, cx).await,
            other => Err(Failure::permanent(
                "INVALID_KIND",
                format!("the ЕСЭДО adapter cannot send {other}"),
            )),
        }
    }

    async fn on_push(&self, inbound: Inbound, cx: &Cx<'_>) -> Result<PushOutcome, Failure> {
        let s = EsedoSettings::for_delivery(cx.settings)?;
        let text = std::str::from_utf8(&inbound.body)
            .map_err(|_| Failure::permanent("SCSE002", "the push is not UTF-8"))?;
        let signer = match (&self.verifier, s.require_signed_pushes) {
            (Some(v), _) => Some(
                v.verify(text)
                    .map_err(|e| Failure::permanent("SCSE002", e.to_string()))?,
            ),
            (None, true) => {
                return Err(Failure::permanent(
                    "SCSE002",
                    "signed pushes are required but no WS-Security verifier is configured",
                ))
            }
            (None, false) => None,
        };
        let limits = XmlLimits::default();
        let request = read_sync_request(text, &limits, signer.as_ref())
            .map_err(|e| Failure::permanent("SCSE002", format!("invalid envelope: {e}")))?;
        let data = request
            .data
            .as_ref()
            .ok_or_else(|| Failure::permanent("SCSE002", "the push carries no data"))?;
        let m = EsedoMessage::from_data(data, &limits)
            .map_err(|e| Failure::permanent("SCSE002", format!("invalid ЕСЭДО message: {e}")))?;
        if m.is_notification() {
            let href = m.metadata.href.clone().unwrap_or_default();
            let message = message_id_from_href(&href).ok_or_else(|| {
                Failure::permanent(
                    "SCSE002",
                    format!("unknown document: href '{href}' is not a letter we sent"),
                )
            })?;
            let receipt: Receipt =
                receipts::to_receipt(&m, &request.info.message_id, inbound.received_at)
                    .ok_or_else(|| {
                        Failure::permanent(
                            "SCSE002",
                            format!("unsupported notification {}", m.type_name),
                        )
                    })?;
            return Ok(PushOutcome::Receipt { message, receipt });
        }
        if m.namespace == NS_DOCUMENT && m.type_name == "docOutgoing" {
            return self.incoming_letter(&s, m, cx).await;
        }
        Err(Failure::permanent(
            "SCSE002",
            format!("unsupported ЕСЭДО message type {}", m.type_name),
        ))
    }

    fn answer_push(&self, inbound: &Inbound, result: &Result<(), Failure>) -> PushAnswer {
        let status = match result {
            Ok(()) => Status::success("Сообщение успешно обработано"),
            Err(Failure::Permanent { reason, .. }) => Status::new("SCSE002", reason.clone()),
            Err(Failure::Retry { reason, .. }) => Status::new("SCSE003", reason.clone()),
        };
        let mut response = SyncResponse::new(status, None);
        if let Some(id) = request_message_id(&inbound.body) {
            response.info.correlation_id = Some(id.clone());
            response.info.message_id = id;
        }
        let envelope = match response.to_envelope() {
            Ok(e) => e,
            Err(e) => {
                let fallback = SyncResponse::new(Status::new("SCSE003", e.to_string()), None);
                fallback.to_envelope().unwrap_or_default()
            }
        };
        let body = match &self.signer {
            Some(signer) => match signer.sign(&envelope) {
                Ok(signed) => signed,
                Err(e) => {
                    tracing::error!(error = %e, "could not sign the answer to a push");
                    envelope
                }
            },
            None => envelope,
        };
        PushAnswer {
            status: 200,
            content_type: "text/xml; charset=utf-8".into(),
            body: Bytes::from(body),
        }
    }

    fn card(&self, receipts: &[Receipt]) -> Option<serde_json::Value> {
        Some(receipts::fold_card(receipts))
    }
}
