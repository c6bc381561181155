//! An ЕСЭДО emulator for tests and the gateway's sandbox, built on the ШЭП emulator (loopback
//! only): `ESEDO_UNIVERSAL_SERVICE` accepts letters and receipts (WS-Security checked when a
//! verifier is set, the body read strictly by the ЕСЭДО schema structure), then plays a
//! configurable sequence of notification-receipts by pushing them to our ISyncChannel endpoint;
//! `EDS_TEMP_FILES` keeps ХЭД files in memory; `ENSI_SeGetDataGetItems` serves a configurable
//! participants list page by page. It can also send us an incoming letter. Fault injection is
//! the ШЭП emulator's (`inject`). Nothing leaves the machine; nothing outlives the emulator.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use qaqpa_shep::emulator::{EmulatorError, InjectedFault, ServiceAnswer, ShepEmulator, When};
use qaqpa_shep::{
    ClientConfig, EnvelopeSigner, EnvelopeVerifier, MessageData, SenderInfo, ShepOutcome,
    SyncChannelClient, SyncRequest, XmlLimits,
};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::directory::{Participant, NS_GETDATA, NS_ITEMS};
use crate::hed::{FileMeta, FileResult, HedRequest, HedResponse, ProcessStatus, UploadFile};
use crate::letter::LetterCard;
use crate::model::{EsedoMessage, MetadataSystem, NS_DOCUMENT, NS_NOTIFICATION};
use crate::{CMS_MIME, HEAD_SIGNATURE_FILE};

/// serviceIds the emulator answers.
pub const ESEDO_SERVICE: &str = "ESEDO_UNIVERSAL_SERVICE";
pub const HED_SERVICE: &str = "EDS_TEMP_FILES";
pub const NSI_SERVICE: &str = "ENSI_SeGetDataGetItems";

/// One notification the emulator plays after accepting a letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptStep {
    /// stateStartProcessResponse.
    TakenIn,
    /// stateDelivered.
    Delivered,
    /// stateRegistered with this number.
    Registered { reg_no: String },
    /// stateExecution: executor, phone, deadline in `days` from now.
    Execution {
        executive: String,
        phone: String,
        days: i64,
    },
    /// stateNewControl with a deadline in `days`.
    NewControl { days: i64 },
    /// stateNewExDate.
    NewDeadline { days: i64 },
    /// stateProlongExDate.
    ProlongDeadline { days: i64 },
    /// stateTakeOfControl.
    TakeOffControl,
    /// stateNotValid with this isValidReason.
    NotValid { reason: String },
    /// stateFinished.
    Finished { code: String, text: String },
}

impl ReceiptStep {
    /// taken in, delivered, registered (ВХ-…), execution, deadline prolonged, finished.
    pub fn default_sequence() -> Vec<ReceiptStep> {
        vec![
            Self::TakenIn,
            Self::Delivered,
            Self::Registered {
                reg_no: "ВХ-01-17/2026".into(),
            },
            Self::Execution {
                executive: "Сейткали А. Б.".into(),
                phone: "+7 7172 74 00 00".into(),
                days: 10,
            },
            Self::ProlongDeadline { days: 20 },
            Self::Finished {
                code: "1".into(),
                text: "Исполнено, ответ направлен".into(),
            },
        ]
    }

    /// taken in, then not valid (signature check failed).
    pub fn not_valid_sequence() -> Vec<ReceiptStep> {
        vec![Self::TakenIn, Self::NotValid { reason: "2".into() }]
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::TakenIn => "stateStartProcessResponse",
            Self::Delivered => "stateDelivered",
            Self::Registered { .. } => "stateRegistered",
            Self::Execution { .. } => "stateExecution",
            Self::NewControl { .. } => "stateNewControl",
            Self::NewDeadline { .. } => "stateNewExDate",
            Self::ProlongDeadline { .. } => "stateProlongExDate",
            Self::TakeOffControl => "stateTakeOfControl",
            Self::NotValid { .. } => "stateNotValid",
            Self::Finished { .. } => "stateFinished",
        }
    }

    /// The notification about `letter` (from its recipient back to its sender).
    pub fn notification(&self, letter: &MetadataSystem, now: OffsetDateTime) -> EsedoMessage {
        let recipient = letter.performers.first().copied();
        let meta = MetadataSystem {
            activity_id: letter.activity_id.clone(),
            from: recipient,
            href: letter.href.clone(),
            performers: letter.from.into_iter().collect(),
            sender_org: recipient,
        };
        let mut m = EsedoMessage::new(NS_NOTIFICATION, self.type_name(), meta);
        let at = |days: i64| {
            Some(qaqpa_shep::types::format_datetime(
                now + time::Duration::days(days),
            ))
        };
        let date = Some(qaqpa_shep::types::format_datetime(now));
        match self {
            Self::TakenIn | Self::Delivered => m.set("date", date),
            Self::Registered { reg_no } => {
                m.set("date", date);
                m.set("regNo", Some(reg_no.clone()));
            }
            Self::Execution {
                executive,
                phone,
                days,
            } => {
                m.set("date", date);
                m.set("execDate", at(*days));
                m.set("executive", Some(executive.clone()));
                m.set("executivePhone", Some(phone.clone()));
            }
            Self::NewControl { days }
            | Self::NewDeadline { days }
            | Self::ProlongDeadline { days } => {
                m.set("controlTypeCode", Some("1".into()));
                m.set("controlTypeNameRu", Some("Контроль".into()));
                m.set("execDate", at(*days));
            }
            Self::TakeOffControl => m.set("execDate", date),
            Self::NotValid { reason } => {
                m.set("date", date);
                m.set("isValidReason", Some(reason.clone()));
            }
            Self::Finished { code, text } => {
                m.set("author", Some("Сейткали А. Б.".into()));
                m.set("realDate", date);
                m.set("resultCode", Some(code.clone()));
                m.set("resultText", Some(text.clone()));
            }
        }
        m
    }
}

/// A letter the emulator accepted.
#[derive(Debug, Clone)]
pub struct ReceivedLetter {
    pub request: SyncRequest,
    pub message: EsedoMessage,
}

/// A notification the emulator pushed, and what our endpoint answered.
#[derive(Debug, Clone)]
pub struct PushRecord {
    pub type_name: String,
    pub href: Option<String>,
    /// The ШЭП messageId of the push.
    pub message_id: String,
    /// The request as pushed (to push it again in tests).
    pub request: SyncRequest,
    /// `Ok(status code)` of our answer, or the failure.
    pub outcome: Result<String, String>,
}

/// A file held in the emulated ХЭД.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub name: String,
    pub mime: String,
    pub content: Vec<u8>,
    pub confirmed: bool,
}

/// A file of an incoming letter.
#[derive(Debug, Clone)]
pub struct EmulatedFile {
    pub name: String,
    pub mime: String,
    pub content: Vec<u8>,
}

/// What [`EsedoEmulator::send_incoming_letter`] did.
#[derive(Debug, Clone)]
pub struct IncomingSent {
    pub href: String,
    pub file_ids: Vec<String>,
    /// Our endpoint's answer, classified.
    pub outcome: ShepOutcome,
}

#[derive(Default)]
struct State {
    letters: Vec<ReceivedLetter>,
    receipts: Vec<EsedoMessage>,
    files: HashMap<String, StoredFile>,
    hed_requests: Vec<String>,
    pushes: Vec<PushRecord>,
    sequence: Vec<ReceiptStep>,
    push_url: Option<String>,
    step_delay: Duration,
}

struct Inner {
    state: Mutex<State>,
    signer: Option<Arc<dyn EnvelopeSigner>>,
    participants: Vec<Participant>,
    page_size: usize,
    pushed: Notify,
    limits: XmlLimits,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn client(&self, url: &str) -> Result<SyncChannelClient, String> {
        let mut config = ClientConfig::new(url).with_timeout(Duration::from_secs(30));
        if let Some(s) = &self.signer {
            config = config.with_signer(s.clone());
        }
        SyncChannelClient::new(config).map_err(|e| e.to_string())
    }
}

/// Builds an [`EsedoEmulator`].
pub struct EsedoEmulatorBuilder {
    verifier: Option<Arc<dyn EnvelopeVerifier>>,
    signer: Option<Arc<dyn EnvelopeSigner>>,
    push_url: Option<String>,
    participants: Vec<Participant>,
    page_size: usize,
    sequence: Vec<ReceiptStep>,
    step_delay: Duration,
    sender_participant: i64,
    our_participant: i64,
    listen: Option<std::net::SocketAddr>,
}

impl Default for EsedoEmulatorBuilder {
    fn default() -> Self {
        Self {
            verifier: None,
            signer: None,
            push_url: None,
            participants: Vec::new(),
            page_size: 100,
            sequence: ReceiptStep::default_sequence(),
            step_delay: Duration::from_millis(200),
            sender_participant: 9001,
            our_participant: 1001,
            listen: None,
        }
    }
}

impl EsedoEmulatorBuilder {
    /// Requires our envelopes to carry WS-Security that `verifier` accepts.
    pub fn verify_with(mut self, verifier: Arc<dyn EnvelopeVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }
    /// Signs the emulator's answers and pushes.
    pub fn sign_with(mut self, signer: Arc<dyn EnvelopeSigner>) -> Self {
        self.signer = Some(signer);
        self
    }
    /// Our ISyncChannel endpoint, where receipts and incoming letters are pushed.
    pub fn push_url(mut self, url: impl Into<String>) -> Self {
        self.push_url = Some(url.into());
        self
    }
    pub fn participants(mut self, participants: Vec<Participant>) -> Self {
        self.participants = participants;
        self
    }
    /// Participants per directory page.
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }
    /// Notifications played after each accepted letter.
    pub fn sequence(mut self, steps: Vec<ReceiptStep>) -> Self {
        self.sequence = steps;
        self
    }
    /// Pause before each notification (default 200 ms; tests use zero).
    pub fn step_delay(mut self, d: Duration) -> Self {
        self.step_delay = d;
        self
    }
    /// Who incoming letters come from (default 9001) and whom they address (us, default 1001).
    pub fn incoming_parties(mut self, sender: i64, us: i64) -> Self {
        self.sender_participant = sender;
        self.our_participant = us;
        self
    }

    /// Serves on `addr` instead of a free port of 127.0.0.1 (a port 0 still picks a free one).
    pub fn listen(mut self, addr: std::net::SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Binds its address (by default 127.0.0.1 on a free port) and starts serving.
    pub async fn start(self) -> std::io::Result<EsedoEmulator> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                sequence: self.sequence,
                push_url: self.push_url,
                step_delay: self.step_delay,
                ..State::default()
            }),
            signer: self.signer.clone(),
            participants: self.participants,
            page_size: self.page_size,
            pushed: Notify::new(),
            limits: XmlLimits::default(),
        });
        let mut builder = ShepEmulator::builder();
        if let Some(addr) = self.listen {
            builder = builder.listen(addr);
        }
        if let Some(v) = self.verifier {
            builder = builder.verify_with(v);
        }
        if let Some(s) = self.signer {
            builder = builder.sign_with(s);
        }
        let esedo = inner.clone();
        let hed = inner.clone();
        let nsi = inner.clone();
        let shep = builder
            .service(ESEDO_SERVICE, move |r: &SyncRequest| {
                esedo_service(&esedo, r)
            })
            .service(HED_SERVICE, move |r: &SyncRequest| hed_service(&hed, r))
            .service(NSI_SERVICE, move |r: &SyncRequest| nsi_service(&nsi, r))
            .start()
            .await?;
        Ok(EsedoEmulator {
            shep,
            inner,
            sender_participant: self.sender_participant,
            our_participant: self.our_participant,
        })
    }
}

/// A running ЕСЭДО emulator. Dropping it stops the server.
pub struct EsedoEmulator {
    shep: ShepEmulator,
    inner: Arc<Inner>,
    sender_participant: i64,
    our_participant: i64,
}

impl EsedoEmulator {
    pub fn builder() -> EsedoEmulatorBuilder {
        EsedoEmulatorBuilder::default()
    }

    /// The ШЭП SyncChannel URL to put in the route's `endpoint`.
    pub fn endpoint(&self) -> String {
        self.shep.sync_url()
    }

    /// The underlying ШЭП emulator (request counts, raw received requests).
    pub fn shep(&self) -> &ShepEmulator {
        &self.shep
    }

    /// Sets where notifications and incoming letters are pushed.
    pub fn set_push_url(&self, url: impl Into<String>) {
        self.inner.state().push_url = Some(url.into());
    }

    /// Replaces the notification sequence played for the next letters.
    pub fn set_sequence(&self, steps: Vec<ReceiptStep>) {
        self.inner.state().sequence = steps;
    }

    /// Injects a fault into letters (`ESEDO_UNIVERSAL_SERVICE`): `Scse002(reason)`,
    /// `Scse003(..)`, `Http(500)`… for the requests `when` says.
    pub fn inject(&self, fault: InjectedFault, when: When) -> Result<(), EmulatorError> {
        self.shep.inject(ESEDO_SERVICE, fault, when)
    }

    /// Injects a fault into ХЭД.
    pub fn inject_hed(&self, fault: InjectedFault, when: When) -> Result<(), EmulatorError> {
        self.shep.inject(HED_SERVICE, fault, when)
    }

    /// Letters accepted, in order.
    pub fn letters(&self) -> Vec<ReceivedLetter> {
        self.inner.state().letters.clone()
    }

    /// Our receipts (notifications) about letters the emulator sent us.
    pub fn received_receipts(&self) -> Vec<EsedoMessage> {
        self.inner.state().receipts.clone()
    }

    /// Files in the emulated ХЭД by fileIdentifier.
    pub fn files(&self) -> HashMap<String, StoredFile> {
        self.inner.state().files.clone()
    }

    /// The ХЭД request types received, in order (`UPLOAD`, `DOWNLOAD`, `CONFIRM`…).
    pub fn hed_requests(&self) -> Vec<String> {
        self.inner.state().hed_requests.clone()
    }

    /// Notifications pushed so far with our answers.
    pub fn pushes(&self) -> Vec<PushRecord> {
        self.inner.state().pushes.clone()
    }

    /// Waits until at least `n` notifications have been pushed (and answered), or `timeout`.
    pub async fn wait_for_pushes(&self, n: usize, timeout: Duration) -> Vec<PushRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.pushed.notified();
            {
                let pushes = self.pushes();
                if pushes.len() >= n {
                    return pushes;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.pushes();
            }
        }
    }

    /// Pushes `request` again to our endpoint (a repeated delivery of the same notification).
    pub async fn repush(&self, request: &SyncRequest) -> ShepOutcome {
        let url = self.inner.state().push_url.clone().unwrap_or_default();
        match self.inner.client(&url) {
            Ok(c) => c.exchange(request).await,
            Err(e) => ShepOutcome::Permanent {
                code: "NOT_SENT".into(),
                message: e,
            },
        }
    }

    /// Sends us a letter from the emulated sender: uploads `files` and the head's CMS to its
    /// ХЭД, pushes a docOutgoing (`secondSignData` = `chancellery_cms`) to the push URL, and
    /// returns our answer.
    pub async fn send_incoming_letter(
        &self,
        card: &LetterCard,
        files: Vec<EmulatedFile>,
        head_cms: &[u8],
        chancellery_cms: &[u8],
    ) -> IncomingSent {
        let href = uuid::Uuid::new_v4().to_string();
        let mut ids = Vec::new();
        {
            let mut st = self.inner.state();
            let all = files.into_iter().chain(std::iter::once(EmulatedFile {
                name: HEAD_SIGNATURE_FILE.into(),
                mime: CMS_MIME.into(),
                content: head_cms.to_vec(),
            }));
            for f in all {
                let id = uuid::Uuid::new_v4().to_string();
                st.files.insert(
                    id.clone(),
                    StoredFile {
                        name: f.name,
                        mime: f.mime,
                        content: f.content,
                        confirmed: false,
                    },
                );
                ids.push(id);
            }
        }
        let meta = MetadataSystem {
            activity_id: Some(uuid::Uuid::new_v4().to_string()),
            from: Some(self.sender_participant),
            href: Some(href.clone()),
            performers: vec![self.our_participant],
            sender_org: Some(self.sender_participant),
        };
        let message = card.to_message(meta, ids.clone(), Some(chancellery_cms));
        let outcome = match message.to_data() {
            Ok(data) => {
                let request =
                    SyncRequest::new(ESEDO_SERVICE, SenderInfo::new("esedo", None), Some(data))
                        .with_message_id(href.clone())
                        .with_route_id("R_ESEDO");
                self.repush(&request).await
            }
            Err(e) => ShepOutcome::Permanent {
                code: "NOT_SENT".into(),
                message: e.to_string(),
            },
        };
        IncomingSent {
            href,
            file_ids: ids,
            outcome,
        }
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        self.shep.shutdown().await;
    }
}

fn business(e: impl std::fmt::Display) -> ServiceAnswer {
    ServiceAnswer::BusinessError(e.to_string())
}

/// Structure checks the ЕСЭДО centre makes of a letter, beyond the schema.
fn check_letter(m: &EsedoMessage, files: &HashMap<String, StoredFile>) -> Result<(), String> {
    let meta = &m.metadata;
    if meta.href.as_deref().is_none_or(str::is_empty) {
        return Err("metadataSystem/href is required".into());
    }
    if meta.from.is_none() {
        return Err("metadataSystem/from is required".into());
    }
    if meta.performers.is_empty() {
        return Err("metadataSystem/performers: name at least one recipient".into());
    }
    if m.attachments.is_empty() {
        return Err("the letter carries no attachments".into());
    }
    for id in &m.attachments {
        if !files.contains_key(id) {
            return Err(format!("file {id} is not in ХЭД"));
        }
    }
    for f in ["docNo", "docDate", "docKind", "carrierType"] {
        if m.get(f).is_none() {
            return Err(format!("{f} is required"));
        }
    }
    Ok(())
}

fn esedo_service(inner: &Arc<Inner>, r: &SyncRequest) -> ServiceAnswer {
    let Some(data) = &r.data else {
        return business("requestData/data is required");
    };
    let m = match EsedoMessage::from_data(data, &inner.limits) {
        Ok(m) => m,
        Err(e) => return business(format!("schema: {e}")),
    };
    if m.is_notification() {
        inner.state().receipts.push(m);
        return ServiceAnswer::Data(None);
    }
    if !(m.namespace == NS_DOCUMENT && m.type_name == "docOutgoing") {
        return business(format!("unsupported type {}", m.type_name));
    }
    let (sequence, url, delay) = {
        let mut st = inner.state();
        if let Err(e) = check_letter(&m, &st.files) {
            return business(e);
        }
        st.letters.push(ReceivedLetter {
            request: r.clone(),
            message: m.clone(),
        });
        (st.sequence.clone(), st.push_url.clone(), st.step_delay)
    };
    if let (Some(url), Ok(handle)) = (url, tokio::runtime::Handle::try_current()) {
        let inner = inner.clone();
        handle.spawn(play(inner, m.metadata.clone(), sequence, url, delay));
    }
    ServiceAnswer::Data(None)
}

async fn play(
    inner: Arc<Inner>,
    letter: MetadataSystem,
    steps: Vec<ReceiptStep>,
    url: String,
    delay: Duration,
) {
    for step in steps {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let m = step.notification(&letter, OffsetDateTime::now_utc());
        let record = match m.to_data() {
            Ok(data) => {
                let request =
                    SyncRequest::new(ESEDO_SERVICE, SenderInfo::new("esedo", None), Some(data))
                        .with_route_id("R_ESEDO");
                let outcome = match inner.client(&url) {
                    Ok(c) => match c.exchange(&request).await {
                        ShepOutcome::Success { response } => Ok(response.info.status.code),
                        ShepOutcome::Permanent { code, message } => {
                            Err(format!("{code}: {message}"))
                        }
                        ShepOutcome::Retry { reason, .. } => Err(reason.to_string()),
                    },
                    Err(e) => Err(e),
                };
                PushRecord {
                    type_name: m.type_name.clone(),
                    href: m.metadata.href.clone(),
                    message_id: request.info.message_id.clone(),
                    request,
                    outcome,
                }
            }
            Err(e) => PushRecord {
                type_name: m.type_name.clone(),
                href: m.metadata.href.clone(),
                message_id: String::new(),
                request: SyncRequest::new(ESEDO_SERVICE, SenderInfo::new("esedo", None), None),
                outcome: Err(e.to_string()),
            },
        };
        inner.state().pushes.push(record);
        inner.pushed.notify_waiters();
    }
}

fn hed_service(inner: &Arc<Inner>, r: &SyncRequest) -> ServiceAnswer {
    let Some(data) = &r.data else {
        return business("requestData/data is required");
    };
    let (request, _credentials) = match HedRequest::from_data(data, &inner.limits) {
        Ok(x) => x,
        Err(e) => return business(format!("schema: {e}")),
    };
    let mut st = inner.state();
    st.hed_requests.push(request.kind().to_owned());
    let kind = request.kind();
    let missing = |id: &str| FileResult {
        key: id.to_owned(),
        status: ProcessStatus::error(format!("file {id} not found")),
        file_id: Some(id.to_owned()),
        content: None,
        meta: None,
    };
    let results: Vec<FileResult> = match request {
        HedRequest::Upload(files) => files
            .into_iter()
            .map(|f: UploadFile| {
                let id = uuid::Uuid::new_v4().to_string();
                st.files.insert(
                    id.clone(),
                    StoredFile {
                        name: f.name,
                        mime: f.mime,
                        content: f.content,
                        confirmed: false,
                    },
                );
                FileResult {
                    key: f.process_id,
                    status: ProcessStatus::ok(),
                    file_id: Some(id),
                    content: None,
                    meta: None,
                }
            })
            .collect(),
        HedRequest::Download(ids) | HedRequest::GetFileInfo(ids) => ids
            .iter()
            .map(|id| match st.files.get(id) {
                Some(f) => FileResult {
                    key: id.clone(),
                    status: ProcessStatus::ok(),
                    file_id: Some(id.clone()),
                    content: (kind == "DOWNLOAD").then(|| f.content.clone()),
                    meta: Some(FileMeta {
                        name: Some(f.name.clone()),
                        mime: Some(f.mime.clone()),
                        size: f.content.len() as u64,
                    }),
                },
                None => missing(id),
            })
            .collect(),
        HedRequest::Confirm(ids) => ids
            .iter()
            .map(|id| match st.files.get_mut(id) {
                Some(f) => {
                    f.confirmed = true;
                    FileResult {
                        key: id.clone(),
                        status: ProcessStatus::ok(),
                        file_id: Some(id.clone()),
                        content: None,
                        meta: None,
                    }
                }
                None => missing(id),
            })
            .collect(),
    };
    let response = HedResponse {
        kind,
        results,
        status: ProcessStatus::ok(),
    };
    match MessageData::xml(response.to_xml(), None) {
        Ok(d) => ServiceAnswer::Data(Some(d)),
        Err(e) => business(e),
    }
}

fn nsi_service(inner: &Arc<Inner>, r: &SyncRequest) -> ServiceAnswer {
    let text = r.data.as_ref().map(|d| d.as_text()).unwrap_or("");
    let after = match qaqpa_shep::xml::parse(text, &inner.limits) {
        Ok(doc) => doc
            .descendants()
            .find(|n| n.has_tag_name((NS_GETDATA, "Filter")))
            .and_then(|n| n.text())
            .and_then(|t| t.trim().strip_prefix("Id >").map(|v| v.trim().to_owned()))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0),
        Err(e) => return business(format!("schema: {e}")),
    };
    let mut list: Vec<&Participant> = inner.participants.iter().filter(|p| p.id > after).collect();
    list.sort_by_key(|p| p.id);
    list.truncate(inner.page_size);
    let mut w = qaqpa_shep::xml::XmlWriter::new();
    w.start("Response");
    w.attr("xmlns", NS_GETDATA);
    w.leaf("SessionId", &uuid::Uuid::new_v4().to_string());
    w.leaf("ProcessingResult", "Success");
    w.start("ResultData");
    w.start("Data");
    w.start("Items");
    w.attr("xmlns", NS_ITEMS);
    for p in list {
        w.start("Item");
        w.leaf("Id", &p.id.to_string());
        w.leaf("Parent", &p.parent.to_string());
        w.leaf("ChildsCount", "0");
        w.leaf("IsMarkedToDelete", "false");
        w.leaf("name_ru", &p.name_ru);
        w.leaf("name_kz", &p.name_kz);
        w.leaf("abbr_ru", &p.abbr_ru);
        w.leaf("abbr_kz", &p.abbr_kz);
        w.leaf("member", "1");
        w.leaf("code", &p.code);
        w.leaf("isEsedo", if p.active { "1" } else { "0" });
        w.leaf("isReady", if p.active { "1" } else { "0" });
        w.leaf("ElementGUID", &p.id.to_string());
        w.end();
    }
    w.end();
    w.end();
    w.start("Schema");
    w.end();
    w.end();
    w.end();
    match MessageData::xml(w.finish(), None) {
        Ok(d) => ServiceAnswer::Data(Some(d)),
        Err(e) => business(e),
    }
}
