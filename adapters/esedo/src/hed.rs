//! ХЭД temporary storage (`EDS_TEMP_FILES`, `http://egov.bee.kz/eds/tempstorage/v2/`,
//! HedTempStorage.xsd): the `tempStorageRequest` we send through ШЭП (upload, confirm, download,
//! getFileInfo) and the `tempStorageResponse` we read back; the emulator uses the same types the
//! other way round. Elements are qualified (elementFormDefault="qualified").
use base64::Engine as _;
use qaqpa_shep::xml::{self, schema_error, simple_text, XmlLimits, XmlWriter};
use qaqpa_shep::{EnvelopeError, MessageData};
use roxmltree::Node;

/// The ХЭД namespace.
pub const NS_HED: &str = "http://egov.bee.kz/eds/tempstorage/v2/";

/// One file to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFile {
    /// Our id for the file in this request (echoed in the result).
    pub process_id: String,
    pub name: String,
    pub mime: String,
    pub content: Vec<u8>,
}

/// A request to ХЭД.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HedRequest {
    Upload(Vec<UploadFile>),
    Download(Vec<String>),
    Confirm(Vec<String>),
    GetFileInfo(Vec<String>),
}

/// Credentials ХЭД asks in every request (both elements are required by the XSD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HedCredentials {
    pub sender_id: String,
    pub password: String,
}

/// `ProcessStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessStatus {
    pub code: String,
    pub status: String,
    pub message: Option<String>,
}

impl ProcessStatus {
    /// What the emulator answers for success, and what we take for success.
    pub fn ok() -> Self {
        Self {
            code: "0".into(),
            status: "SUCCESS".into(),
            message: None,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            code: "1".into(),
            status: "ERROR".into(),
            message: Some(message.into()),
        }
    }

    /// Success is code `0` or a status reading SUCCESS/OK (the XSD leaves codes undocumented).
    pub fn is_ok(&self) -> bool {
        let s = self.status.trim().to_ascii_uppercase();
        self.code.trim() == "0" || s == "SUCCESS" || s == "OK"
    }

    fn describe(&self) -> String {
        format!(
            "{} {}{}",
            self.code,
            self.status,
            self.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )
    }

    fn write(&self, w: &mut XmlWriter, name: &str) {
        w.start(name);
        w.leaf("ts:code", &self.code);
        w.leaf("ts:status", &self.status);
        w.leaf_opt("ts:message", self.message.as_deref());
        w.end();
    }
}

/// File metadata (`FileInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub name: Option<String>,
    pub mime: Option<String>,
    pub size: u64,
}

/// One file's result in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileResult {
    /// Upload: our process id; the others: the file identifier.
    pub key: String,
    pub status: ProcessStatus,
    pub file_id: Option<String>,
    pub content: Option<Vec<u8>>,
    pub meta: Option<FileMeta>,
}

/// A response from ХЭД.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HedResponse {
    pub kind: &'static str,
    pub results: Vec<FileResult>,
    pub status: ProcessStatus,
}

impl HedRequest {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Upload(_) => "UPLOAD",
            Self::Download(_) => "DOWNLOAD",
            Self::Confirm(_) => "CONFIRM",
            Self::GetFileInfo(_) => "GET_FILE_INFO",
        }
    }

    /// The `tempStorageRequest` element.
    pub fn to_xml(&self, credentials: &HedCredentials) -> String {
        let mut w = XmlWriter::new();
        w.start("ts:tempStorageRequest");
        w.attr("xmlns:ts", NS_HED);
        w.leaf("ts:type", self.kind());
        let ids = |w: &mut XmlWriter, wrapper: &str, ids: &[String]| {
            w.start(wrapper);
            for id in ids {
                w.leaf("ts:fileIdentifiers", id);
            }
            w.end();
        };
        match self {
            Self::Upload(files) => {
                w.start("ts:uploadRequest");
                for f in files {
                    w.start("ts:fileUploadRequests");
                    w.leaf("ts:fileProcessIdentifier", &f.process_id);
                    w.leaf(
                        "ts:content",
                        &base64::engine::general_purpose::STANDARD.encode(&f.content),
                    );
                    w.leaf("ts:name", &f.name);
                    w.leaf("ts:mime", &f.mime);
                    w.leaf("ts:needToBeConfirmed", "true");
                    w.end();
                }
                w.end();
            }
            Self::Download(v) => ids(&mut w, "ts:downloadRequest", v),
            Self::Confirm(v) => ids(&mut w, "ts:confirmRequest", v),
            Self::GetFileInfo(v) => ids(&mut w, "ts:getFileInfoRequest", v),
        }
        w.start("ts:credentials");
        w.leaf("ts:senderId", &credentials.sender_id);
        w.leaf("ts:password", &credentials.password);
        w.end();
        w.end();
        w.finish()
    }

    pub fn to_data(&self, credentials: &HedCredentials) -> Result<MessageData, EnvelopeError> {
        MessageData::xml(self.to_xml(credentials), None)
    }

    /// Reads a `tempStorageRequest` from ШЭП `data` (the emulator's side).
    pub fn from_data(
        data: &MessageData,
        limits: &XmlLimits,
    ) -> Result<(Self, HedCredentials), EnvelopeError> {
        let doc = xml::parse(data.as_text(), limits)?;
        let root = doc.root_element();
        if !root.has_tag_name((NS_HED, "tempStorageRequest")) {
            return Err(schema_error(root, "data", "expected ts:tempStorageRequest"));
        }
        let mut q = QSeq::new(root, "tempStorageRequest")?;
        let kind = text(q.required("type")?)?;
        let body = q.optional("uploadRequest");
        let download = q.optional("downloadRequest");
        let confirm = q.optional("confirmRequest");
        let info = q.optional("getFileInfoRequest");
        let cred = q.required("credentials")?;
        q.finish()?;
        let mut c = QSeq::new(cred, "credentials")?;
        let credentials = HedCredentials {
            sender_id: text(c.required("senderId")?)?,
            password: text(c.required("password")?)?,
        };
        c.finish()?;
        let ids = |node: Option<Node<'_, '_>>, what: &str| -> Result<Vec<String>, EnvelopeError> {
            let node = node.ok_or_else(|| schema_error(root, "tempStorageRequest", what))?;
            let mut s = QSeq::new(node, what)?;
            let v = s
                .many("fileIdentifiers")
                .into_iter()
                .map(text)
                .collect::<Result<Vec<_>, _>>()?;
            s.finish()?;
            if v.is_empty() {
                return Err(schema_error(node, what, "at least one fileIdentifiers"));
            }
            Ok(v)
        };
        let request = match kind.as_str() {
            "UPLOAD" => {
                let node = body.ok_or_else(|| {
                    schema_error(root, "tempStorageRequest", "UPLOAD needs uploadRequest")
                })?;
                let mut s = QSeq::new(node, "uploadRequest")?;
                let mut files = Vec::new();
                for f in s.many("fileUploadRequests") {
                    let mut fs = QSeq::new(f, "fileUploadRequests")?;
                    let process_id = text(fs.required("fileProcessIdentifier")?)?;
                    let content_node = fs.required("content")?;
                    let content = base64::engine::general_purpose::STANDARD
                        .decode(text(content_node)?.split_whitespace().collect::<String>())
                        .map_err(|e| schema_error(content_node, "content", &e.to_string()))?;
                    let name = fs
                        .optional("name")
                        .map(text)
                        .transpose()?
                        .unwrap_or_default();
                    let mime = fs
                        .optional("mime")
                        .map(text)
                        .transpose()?
                        .unwrap_or_default();
                    let _ = fs.optional("lifeTime");
                    let _ = fs.optional("needToBeConfirmed");
                    fs.finish()?;
                    files.push(UploadFile {
                        process_id,
                        name,
                        mime,
                        content,
                    });
                }
                s.finish()?;
                if files.is_empty() {
                    return Err(schema_error(node, "uploadRequest", "no fileUploadRequests"));
                }
                Self::Upload(files)
            }
            "DOWNLOAD" => Self::Download(ids(download, "downloadRequest")?),
            "CONFIRM" => Self::Confirm(ids(confirm, "confirmRequest")?),
            "GET_FILE_INFO" => Self::GetFileInfo(ids(info, "getFileInfoRequest")?),
            other => {
                return Err(schema_error(
                    root,
                    "tempStorageRequest/type",
                    &format!("unknown type '{other}'"),
                ))
            }
        };
        Ok((request, credentials))
    }
}

impl HedResponse {
    /// The `tempStorageResponse` element (the emulator's side).
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.start("ts:tempStorageResponse");
        w.attr("xmlns:ts", NS_HED);
        w.leaf("ts:type", self.kind);
        let (wrapper, item) = match self.kind {
            "UPLOAD" => ("ts:uploadResponse", "ts:uploadFileResults"),
            "DOWNLOAD" => ("ts:downloadResponse", "ts:fileDownloadResults"),
            "CONFIRM" => ("ts:confirmResponse", "ts:fileConfirmResults"),
            _ => ("ts:getFileInfoResponse", "ts:fileInfoResults"),
        };
        w.start(wrapper);
        for r in &self.results {
            w.start(item);
            if self.kind == "UPLOAD" {
                w.leaf("ts:fileProcessIdentifier", &r.key);
                r.status.write(&mut w, "ts:status");
                w.leaf_opt("ts:fileIdentifier", r.file_id.as_deref());
            } else {
                r.status.write(&mut w, "ts:status");
                w.leaf("ts:fileIdentifier", &r.key);
                if let Some(c) = &r.content {
                    w.leaf(
                        "ts:content",
                        &base64::engine::general_purpose::STANDARD.encode(c),
                    );
                }
                if let Some(m) = &r.meta {
                    w.start("ts:meta");
                    w.leaf_opt("ts:name", m.name.as_deref());
                    w.leaf_opt("ts:mime", m.mime.as_deref());
                    let now = qaqpa_shep::types::format_datetime(qaqpa_shep::types::now());
                    w.leaf("ts:uploadDate", &now);
                    w.start("ts:uploaderSystem");
                    w.leaf("ts:id", "esedo");
                    w.end();
                    w.leaf("ts:expirationTime", &now);
                    w.leaf("ts:size", &m.size.to_string());
                    w.leaf("ts:deleted", "false");
                    w.leaf("ts:confirmed", "false");
                    w.end();
                }
            }
            w.end();
        }
        self.status.write(&mut w, "ts:status");
        w.end();
        w.end();
        w.finish()
    }

    /// Reads a `tempStorageResponse` from ШЭП `data`.
    pub fn from_data(data: &MessageData, limits: &XmlLimits) -> Result<Self, EnvelopeError> {
        let doc = xml::parse(data.as_text(), limits)?;
        let root = doc.root_element();
        if !root.has_tag_name((NS_HED, "tempStorageResponse")) {
            return Err(schema_error(
                root,
                "data",
                "expected ts:tempStorageResponse",
            ));
        }
        let mut q = QSeq::new(root, "tempStorageResponse")?;
        let kind_text = text(q.required("type")?)?;
        let kind = match kind_text.as_str() {
            "UPLOAD" => "UPLOAD",
            "DOWNLOAD" => "DOWNLOAD",
            "CONFIRM" => "CONFIRM",
            "GET_FILE_INFO" => "GET_FILE_INFO",
            other => {
                return Err(schema_error(
                    root,
                    "type",
                    &format!("unknown type '{other}'"),
                ))
            }
        };
        let (wrapper, item) = match kind {
            "UPLOAD" => ("uploadResponse", "uploadFileResults"),
            "DOWNLOAD" => ("downloadResponse", "fileDownloadResults"),
            "CONFIRM" => ("confirmResponse", "fileConfirmResults"),
            _ => ("getFileInfoResponse", "fileInfoResults"),
        };
        let mut found = None;
        for name in [
            "uploadResponse",
            "downloadResponse",
            "confirmResponse",
            "getFileInfoResponse",
        ] {
            if let Some(n) = q.optional(name) {
                if name == wrapper {
                    found = Some(n);
                }
            }
        }
        q.finish()?;
        let node = found.ok_or_else(|| {
            schema_error(
                root,
                "tempStorageResponse",
                &format!("{kind} needs {wrapper}"),
            )
        })?;
        let mut s = QSeq::new(node, wrapper)?;
        let mut results = Vec::new();
        for r in s.many(item) {
            let mut rs = QSeq::new(r, item)?;
            let result = if kind == "UPLOAD" {
                let key = text(rs.required("fileProcessIdentifier")?)?;
                let status = read_status(rs.required("status")?)?;
                let file_id = rs.optional("fileIdentifier").map(text).transpose()?;
                let _ = rs.optional("lifeTime");
                FileResult {
                    key,
                    status,
                    file_id,
                    content: None,
                    meta: None,
                }
            } else {
                let status = read_status(rs.required("status")?)?;
                let key = text(rs.required("fileIdentifier")?)?;
                let content = match rs.optional("content") {
                    Some(n) => Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(text(n)?.split_whitespace().collect::<String>())
                            .map_err(|e| schema_error(n, "content", &e.to_string()))?,
                    ),
                    None => None,
                };
                let meta = rs.optional("meta").map(read_meta).transpose()?;
                FileResult {
                    key: key.clone(),
                    status,
                    file_id: Some(key),
                    content,
                    meta,
                }
            };
            rs.finish()?;
            results.push(result);
        }
        let status = read_status(s.required("status")?)?;
        s.finish()?;
        Ok(Self {
            kind,
            results,
            status,
        })
    }

    /// Fails with ХЭД's words unless the whole request and every file succeeded.
    pub fn check_ok(&self) -> Result<(), String> {
        if !self.status.is_ok() {
            return Err(format!("ХЭД {}: {}", self.kind, self.status.describe()));
        }
        for r in &self.results {
            if !r.status.is_ok() {
                return Err(format!(
                    "ХЭД {} of {}: {}",
                    self.kind,
                    r.key,
                    r.status.describe()
                ));
            }
        }
        Ok(())
    }
}

fn read_status(node: Node<'_, '_>) -> Result<ProcessStatus, EnvelopeError> {
    let mut s = QSeq::new(node, "status")?;
    let code = text(s.required("code")?)?;
    let status = text(s.required("status")?)?;
    let message = s.optional("message").map(text).transpose()?;
    s.finish()?;
    Ok(ProcessStatus {
        code,
        status,
        message,
    })
}

fn read_meta(node: Node<'_, '_>) -> Result<FileMeta, EnvelopeError> {
    let mut name = None;
    let mut mime = None;
    let mut size = 0;
    for c in node.children().filter(|c| c.is_element()) {
        if c.tag_name().namespace() != Some(NS_HED) {
            return Err(schema_error(c, "meta", "element outside the ХЭД namespace"));
        }
        match c.tag_name().name() {
            "name" => name = Some(text(c)?),
            "mime" => mime = Some(text(c)?),
            "size" => {
                size = text(c)?
                    .trim()
                    .parse()
                    .map_err(|_| schema_error(c, "meta/size", "not an xs:long"))?
            }
            _ => {}
        }
    }
    Ok(FileMeta { name, mime, size })
}

fn text(node: Node<'_, '_>) -> Result<String, EnvelopeError> {
    simple_text(node, node.tag_name().name()).map(|t| t.trim().to_owned())
}

/// A strict in-order reader of qualified ХЭД children.
struct QSeq<'a, 'i> {
    items: Vec<Node<'a, 'i>>,
    at: usize,
    parent: Node<'a, 'i>,
    path: String,
}

impl<'a, 'i> QSeq<'a, 'i> {
    fn new(parent: Node<'a, 'i>, path: &str) -> Result<Self, EnvelopeError> {
        let mut items = Vec::new();
        for c in parent.children() {
            if c.is_element() {
                items.push(c);
            } else if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
                return Err(schema_error(c, path, "unexpected text between elements"));
            }
        }
        Ok(Self {
            items,
            at: 0,
            parent,
            path: path.to_owned(),
        })
    }

    fn optional(&mut self, name: &str) -> Option<Node<'a, 'i>> {
        let n = self.items.get(self.at).copied()?;
        if n.has_tag_name((NS_HED, name)) {
            self.at += 1;
            Some(n)
        } else {
            None
        }
    }

    fn required(&mut self, name: &str) -> Result<Node<'a, 'i>, EnvelopeError> {
        self.optional(name).ok_or_else(|| {
            let at = self.items.get(self.at).copied().unwrap_or(self.parent);
            schema_error(at, &self.path, &format!("expected ts:{name}"))
        })
    }

    fn many(&mut self, name: &str) -> Vec<Node<'a, 'i>> {
        let mut v = Vec::new();
        while let Some(n) = self.optional(name) {
            v.push(n);
        }
        v
    }

    fn finish(self) -> Result<(), EnvelopeError> {
        match self.items.get(self.at) {
            None => Ok(()),
            Some(n) => Err(schema_error(
                *n,
                &self.path,
                &format!("unexpected element <{}>", n.tag_name().name()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> HedCredentials {
        HedCredentials {
            sender_id: "qaqpa".into(),
            password: "p".into(),
        }
    }

    #[test]
    fn requests_round_trip() {
        for r in [
            HedRequest::Upload(vec![UploadFile {
                process_id: "0".into(),
                name: "письмо.pdf".into(),
                mime: "application/pdf".into(),
                content: b"%PDF-1.7".to_vec(),
            }]),
            HedRequest::Confirm(vec!["a".into(), "b".into()]),
            HedRequest::Download(vec!["a".into()]),
            HedRequest::GetFileInfo(vec!["a".into()]),
        ] {
            let data = r.to_data(&creds()).expect("data");
            let (back, c) = HedRequest::from_data(&data, &XmlLimits::default()).expect("reads");
            assert_eq!(back, r);
            assert_eq!(c, creds());
        }
    }

    #[test]
    fn responses_round_trip_and_failures_are_named() {
        let resp = HedResponse {
            kind: "DOWNLOAD",
            results: vec![FileResult {
                key: "f1".into(),
                status: ProcessStatus::ok(),
                file_id: Some("f1".into()),
                content: Some(b"abc".to_vec()),
                meta: Some(FileMeta {
                    name: Some("a.pdf".into()),
                    mime: Some("application/pdf".into()),
                    size: 3,
                }),
            }],
            status: ProcessStatus::ok(),
        };
        let data = MessageData::xml(resp.to_xml(), None).expect("xml");
        let back = HedResponse::from_data(&data, &XmlLimits::default()).expect("reads");
        assert_eq!(back, resp);
        assert!(back.check_ok().is_ok());
        let bad = HedResponse {
            kind: "UPLOAD",
            results: vec![FileResult {
                key: "0".into(),
                status: ProcessStatus::error("quota"),
                file_id: None,
                content: None,
                meta: None,
            }],
            status: ProcessStatus::ok(),
        };
        let data = MessageData::xml(bad.to_xml(), None).expect("xml");
        let back = HedResponse::from_data(&data, &XmlLimits::default()).expect("reads");
        assert!(back.check_ok().expect_err("fails").contains("quota"));
    }
}
