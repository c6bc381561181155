//! Test support: a test PKI (NCA-like, RSA and GOST 2015) with a validator holding its CRLs,
//! CMS signers, WS-Security identities, route settings, an in-memory attachment source, a push
//! endpoint that runs the adapter's on_push/answer_push, and schema validation with `xmllint`
//! against the public ЕСЭДО WSDL/XSD read at run time from ../shared/specs (never copied).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use qaqpa_adapter_esedo::{CmsVerifier, EsedoAdapter};
use qaqpa_core::adapter::toml_value::Table;
use qaqpa_core::{
    Adapter, AttachmentMeta, AttachmentSource, ClientId, Cx, ExchangeMeter, Failure, Inbound,
    MessageId, Outgoing, PushOutcome,
};
use qaqpa_pki::cms::{sign, SignOptions};
use qaqpa_pki::testpki::{KeyKind, TestPki, TEST_PASSWORD};
use qaqpa_pki::{Bin, Crl, Iin, Keystore, Role, UtcTime, Validator};
use qaqpa_shep::{SoapSigner, SoapVerifier};
use serde_json::json;

/// Our organisation's BIN (the test PKI's organisation keystores carry it).
pub const OUR_BIN: &str = "123456789021";
pub const OTHER_BIN: &str = "987654321098";

pub struct Pki {
    _dir: tempfile::TempDir,
    pub pki: TestPki,
    pub validator: Validator,
}

/// One test PKI per test binary (generating keys is the slow part).
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = TestPki::generate(dir.path()).expect("test PKI");
        let mut validator = Validator::new(pki.trust_store());
        let now = UtcTime::now();
        for kind in [KeyKind::Rsa, KeyKind::Gost2015] {
            let crl = pki.ca(kind).crl(now, 7).expect("CRL");
            validator.add_crl(Crl::from_der(crl).expect("CRL parses"));
        }
        Pki {
            _dir: dir,
            pki,
            validator,
        }
    })
}

impl Pki {
    /// A keystore TestPki::generate wrote: `label` is head, employee_signright, employee,
    /// individual; `state` valid or revoked (revoked ones are on the CRL).
    pub fn stored(&self, kind: KeyKind, label: &str, state: &str) -> Keystore {
        let n = match kind {
            KeyKind::Rsa => "rsa",
            KeyKind::Gost2015 => "gost",
        };
        let bytes = std::fs::read(self.pki.dir.join(format!("{n}_{label}_{state}.p12")))
            .expect("keystore file");
        Keystore::from_pkcs12(&bytes, TEST_PASSWORD).expect("keystore opens")
    }

    pub fn org(&self, kind: KeyKind, bin: &str, role: Role) -> Keystore {
        self.pki
            .issue_organisation(
                kind,
                &Iin::new("880101300123").expect("iin"),
                &Bin::new(bin).expect("bin"),
                "ГУ \"Тестовое ведомство\"",
                "АХМЕТОВ АЙДАР",
                role,
            )
            .expect("issue")
    }

    pub fn cms_verifier(&self) -> Arc<CmsVerifier> {
        Arc::new(CmsVerifier::new(self.validator.clone()))
    }
}

pub fn detached(content: &[u8], ks: &Keystore) -> Vec<u8> {
    sign(
        content,
        ks,
        &SignOptions {
            detached: true,
            ..SignOptions::default()
        },
    )
    .expect("CMS signs")
}

/// A WS-Security identity (RSA key of a test-PKI certificate).
pub struct Identity {
    pub signer: Arc<SoapSigner>,
    pub cert_der: Vec<u8>,
}

impl Identity {
    pub fn verifier(&self) -> Arc<SoapVerifier> {
        Arc::new(SoapVerifier::pinned(vec![self.cert_der.clone()]))
    }
}

pub fn identity(role: Role) -> Identity {
    let ks = pki().org(KeyKind::Rsa, OUR_BIN, role);
    let key = ks.signing_key().to_pkcs8_der();
    let cert = ks.certificate().der().to_vec();
    let rsa = qaqpa_soap::RsaSigner::from_pkcs8_der(&key, &cert).expect("RSA signer");
    Identity {
        signer: Arc::new(SoapSigner::new(
            Arc::new(rsa),
            qaqpa_soap::WsSecurityOptions::default(),
        )),
        cert_der: cert,
    }
}

/// Route settings against `endpoint`, with `extra` merged in.
pub fn settings(endpoint: &str, extra: serde_json::Value) -> Table {
    let mut t = json!({
        "endpoint": endpoint,
        "sender_id": "qaqpa",
        "participant_id": 1001,
        "sender_bin": OUR_BIN,
        "timeout_secs": 10,
        "require_signed_pushes": false,
    });
    if let (Some(obj), Some(extra)) = (t.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    t.as_object().cloned().unwrap_or_default()
}

/// Attachment bytes held in memory.
#[derive(Clone, Default)]
pub struct Files(pub Vec<Bytes>);

#[async_trait]
impl AttachmentSource for Files {
    async fn read(&self, index: usize) -> Result<Bytes, Failure> {
        self.0
            .get(index)
            .cloned()
            .ok_or_else(|| Failure::permanent("no_attachment", format!("no attachment {index}")))
    }
}

/// A meter for the attempts whose sizes a test does not read.
static UNREAD: ExchangeMeter = ExchangeMeter::new();

pub fn cx<'a>(settings: &'a Table, files: &'a Files) -> Cx<'a> {
    metered(settings, files, &UNREAD)
}

/// [`cx`] reporting to `meter`.
pub fn metered<'a>(settings: &'a Table, files: &'a Files, meter: &'a ExchangeMeter) -> Cx<'a> {
    Cx {
        deadline: Instant::now() + Duration::from_secs(30),
        settings,
        attachments: files,
        transaction_id: "tx-esedo",
        meter,
    }
}

pub fn card() -> serde_json::Value {
    json!({
        "docNo": "01-12/345",
        "docDate": "2026-11-30",
        "docKind": 1,
        "docLang": "RU",
        "carrierType": 1,
        "character": 3,
        "description": "О предоставлении информации",
        "executionDate": "2026-12-15",
        "executor": { "name": "Иванова А.", "phone": "+7 7172 11 22 33", "email": "a@gov.kz" },
        "signers": ["Ахметов А."],
        "authors": ["Иванова А."],
        "inReplyTo": "ВХ-9/2026",
        "sheetCount": 2,
        "appendCount": 1
    })
}

pub fn meta(name: &str, bytes: &[u8]) -> AttachmentMeta {
    use sha2::Digest as _;
    AttachmentMeta {
        name: name.into(),
        content_type: "application/pdf".into(),
        size: bytes.len() as u64,
        sha256: sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    }
}

pub fn outgoing(kind: &str, to: &str, document: serde_json::Value) -> Outgoing {
    Outgoing {
        id: MessageId::new(),
        client: ClientId("edms".into()),
        kind: kind.into(),
        to: to.into(),
        document,
        attachments: Vec::new(),
        signatures: Vec::new(),
        created_at: time::OffsetDateTime::now_utc(),
        attempt: 1,
        transaction_id: "tx-esedo".into(),
    }
}

/// A letter with a main document and an appendix, signed by `head` and `chancellery`.
pub fn signed_letter(head: &Keystore, chancellery: &Keystore) -> (Outgoing, Files) {
    let main = b"%PDF-1.7 letter body".to_vec();
    let appendix = b"%PDF-1.7 appendix".to_vec();
    let mut msg = outgoing("esedo.letter", "2002", card());
    msg.attachments = vec![meta("letter.pdf", &main), meta("appendix.pdf", &appendix)];
    msg.signatures = vec![detached(&main, head), detached(&main, chancellery)];
    (msg, Files(vec![Bytes::from(main), Bytes::from(appendix)]))
}

/// What the test push endpoint saw.
#[derive(Clone, Default)]
pub struct Seen(pub Arc<Mutex<Vec<Result<PushOutcome, Failure>>>>);

impl Seen {
    pub fn all(&self) -> Vec<Result<PushOutcome, Failure>> {
        self.0.lock().expect("lock").clone()
    }
}

struct PushState {
    adapter: Arc<EsedoAdapter>,
    settings: Table,
    seen: Seen,
}

async fn push(State(st): State<Arc<PushState>>, body: Bytes) -> Response {
    let inbound = Inbound {
        content_type: "text/xml".into(),
        body: body.clone(),
        received_at: time::OffsetDateTime::now_utc(),
    };
    let files = Files::default();
    let meter = ExchangeMeter::new();
    let cx = Cx {
        deadline: Instant::now() + Duration::from_secs(30),
        settings: &st.settings,
        attachments: &files,
        transaction_id: "push",
        meter: &meter,
    };
    let outcome = st.adapter.on_push(inbound.clone(), &cx).await;
    let result = outcome.as_ref().map(|_| ()).map_err(Clone::clone);
    st.seen.0.lock().expect("lock").push(outcome);
    let answer = st.adapter.answer_push(&inbound, &result);
    Response::builder()
        .status(answer.status)
        .header("content-type", answer.content_type)
        .body(Body::from(answer.body))
        .expect("response")
}

/// Serves our ISyncChannel endpoint on loopback: every push goes through `adapter.on_push` and
/// is answered with `adapter.answer_push` (stored = Ok when on_push succeeded).
pub async fn push_endpoint(adapter: Arc<EsedoAdapter>, settings: Table) -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/", post(push))
        .with_state(Arc::new(PushState {
            adapter,
            settings,
            seen: seen.clone(),
        }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/"), seen)
}

// ---------------------------------------------------------------- schemas

/// The public ЕСЭДО specs folder; a missing one fails with a plain message.
pub fn specs_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs/esedo");
    if !dir.join("wsdl_consumer.wsdl").is_file() {
        println!(
            "the public ЕСЭДО specs are missing: expected {} (shared/specs beside the project \
             root); schema tests cannot run without them",
            dir.display()
        );
        panic!(
            "missing public ЕСЭДО specs at {}: wsdl_consumer.wsdl not found",
            dir.display()
        );
    }
    dir.canonicalize().unwrap_or(dir)
}

/// The schemas embedded in wsdl_consumer.wsdl, written into a temp dir: one file per inline
/// schema (with the WSDL's namespace declarations it relies on), one hub per namespace that
/// includes them, and every import pointed at its hub. `sync` is the SyncChannel types hub.
pub struct EsedoSchemas {
    _dir: tempfile::TempDir,
    pub sync: PathBuf,
    pub hed: PathBuf,
}

impl EsedoSchemas {
    pub fn new() -> Self {
        let specs = specs_dir();
        let wsdl = std::fs::read_to_string(specs.join("wsdl_consumer.wsdl")).expect("read wsdl");
        let doc = roxmltree::Document::parse(&wsdl).expect("wsdl parses");
        let xs = "http://www.w3.org/2001/XMLSchema";
        let dir = tempfile::tempdir().expect("temp dir");
        let schemas: Vec<roxmltree::Node> = doc
            .descendants()
            .filter(|n| n.has_tag_name((xs, "schema")))
            .collect();
        let mut namespaces: Vec<String> = Vec::new();
        for s in &schemas {
            let t = s.attribute("targetNamespace").unwrap_or("").to_owned();
            if !namespaces.contains(&t) {
                namespaces.push(t);
            }
        }
        let hub_of = |ns: &str| {
            let i = namespaces
                .iter()
                .position(|n| n == ns)
                .unwrap_or(usize::MAX);
            format!("hub-{i}.xsd")
        };
        let mut members: Vec<Vec<String>> = vec![Vec::new(); namespaces.len()];
        for (i, s) in schemas.iter().enumerate() {
            let mut text = wsdl[s.range()].to_owned();
            let open_end = text.find('>').expect("schema tag");
            let open = text[..open_end].to_owned();
            let mut decls = String::new();
            for ns in s.namespaces() {
                let attr = match ns.name() {
                    Some(p) => format!("xmlns:{p}="),
                    None => "xmlns=".to_owned(),
                };
                if !open.contains(&attr) && ns.name() != Some("xml") {
                    decls.push_str(&format!(" {attr}\"{}\"", ns.uri()));
                }
            }
            let insert_at = open.find(char::is_whitespace).unwrap_or(open_end);
            text.insert_str(insert_at, &decls);
            for ns in &namespaces {
                for form in [
                    format!("namespace=\"{ns}\" />"),
                    format!("namespace=\"{ns}\"/>"),
                ] {
                    text = text.replace(
                        &form,
                        &format!("namespace=\"{ns}\" schemaLocation=\"{}\" />", hub_of(ns)),
                    );
                }
            }
            let name = format!("schema-{i}.xsd");
            std::fs::write(dir.path().join(&name), text).expect("write schema");
            let t = s.attribute("targetNamespace").unwrap_or("");
            if let Some(k) = namespaces.iter().position(|n| n == t) {
                members[k].push(name);
            }
        }
        for (k, ns) in namespaces.iter().enumerate() {
            let mut hub = format!("<xs:schema xmlns:xs=\"{xs}\" targetNamespace=\"{ns}\">\n");
            for m in &members[k] {
                hub.push_str(&format!("<xs:include schemaLocation=\"{m}\"/>\n"));
            }
            hub.push_str("</xs:schema>\n");
            std::fs::write(dir.path().join(format!("hub-{k}.xsd")), hub).expect("write hub");
        }
        let sync = dir
            .path()
            .join(hub_of("http://bip.bee.kz/SyncChannel/v10/Types"));
        Self {
            _dir: dir,
            sync,
            hed: specs.join("hed/HedTempStorage.xsd"),
        }
    }
}

/// Validates `xml` against `schema` with `xmllint --schema`; Err carries xmllint's complaints.
pub fn xmllint(schema: &Path, xml: &str) -> Result<(), String> {
    let mut child = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(schema)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("xmllint is needed to validate against the XSDs (Debian package libxml2-utils): {e}")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(xml.as_bytes())
        .expect("write to xmllint");
    let out = child.wait_with_output().expect("xmllint runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("failed to compile"),
        "schema {} did not compile: {stderr}",
        schema.display()
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(stderr
            .lines()
            .filter(|l| !l.contains("Skipping import"))
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// The SendMessage element of an envelope, standalone.
pub fn payload_of(envelope: &str) -> String {
    let doc = qaqpa_shep::xml::parse(envelope, &qaqpa_shep::XmlLimits::default()).expect("parses");
    let payload = qaqpa_shep::envelope::body_payload(&doc).expect("payload");
    qaqpa_shep::xml::serialize_element(payload)
}
