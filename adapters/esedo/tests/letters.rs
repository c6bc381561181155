//! Outgoing letters: validation with exact field pointers, admission with real CMS signatures
//! from the test PKI (roles, BIN, revocation), and delivery against the ЕСЭДО emulator over real
//! sockets (ХЭД upload, WS-Security, classification of SCSE002/SCSE003/HTTP 5xx).

mod common;

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use common::*;
use qaqpa_adapter_esedo::emulator::{EsedoEmulator, ESEDO_SERVICE, HED_SERVICE};
use qaqpa_adapter_esedo::{
    href_for, CmsVerifier, Directory, EsedoAdapter, Participant, HEAD_SIGNATURE_FILE,
};
use qaqpa_core::{Adapter, ExchangeMeter, Failure};
use qaqpa_pki::testpki::KeyKind;
use qaqpa_pki::Role;
use qaqpa_shep::emulator::{InjectedFault, When};
use serde_json::json;

fn adapter() -> EsedoAdapter {
    EsedoAdapter::new(None, None, Some(pki().cms_verifier()))
}

fn letter_with(names_sizes: &[(&str, u64)]) -> qaqpa_core::Outgoing {
    let mut msg = outgoing("esedo.letter", "2002", card());
    msg.attachments = names_sizes
        .iter()
        .map(|(n, s)| {
            let mut m = meta(n, b"x");
            m.size = *s;
            m
        })
        .collect();
    msg.signatures = vec![vec![1], vec![2]];
    msg
}

#[test]
fn eleven_files_are_refused_before_anything_is_sent() {
    let names: Vec<String> = (0..11).map(|i| format!("file{i:02}.pdf")).collect();
    let list: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 10)).collect();
    let s = settings("http://127.0.0.1:9/", json!({}));
    let r = adapter()
        .validate(&letter_with(&list), &s)
        .expect_err("refused");
    assert_eq!(r.field, "/attachments");
    assert!(
        r.message.contains("11 files") && r.message.contains("at most 10"),
        "{r}"
    );
    // Ten are fine.
    adapter()
        .validate(&letter_with(&list[..10]), &s)
        .expect("ten files pass");
}

#[test]
fn a_twenty_megabyte_file_is_refused_by_its_size() {
    let s = settings("http://127.0.0.1:9/", json!({}));
    let r = adapter()
        .validate(
            &letter_with(&[("letter.pdf", 1000), ("scan.pdf", 20 * 1024 * 1024)]),
            &s,
        )
        .expect_err("refused");
    assert_eq!(r.field, "/attachments/1/size");
    assert!(r.message.contains("19 MiB"), "{r}");
}

#[test]
fn the_total_over_fifty_megabytes_is_refused() {
    let s = settings("http://127.0.0.1:9/", json!({}));
    let big = 18 * 1024 * 1024;
    let r = adapter()
        .validate(
            &letter_with(&[("a1.pdf", big), ("a2.pdf", big), ("a3.pdf", big)]),
            &s,
        )
        .expect_err("refused");
    assert_eq!(r.field, "/attachments");
    assert!(r.message.contains("50 MiB"), "{r}");
}

#[test]
fn file_names_must_have_three_to_thirty_characters() {
    let s = settings("http://127.0.0.1:9/", json!({}));
    let long = format!("{}.pdf", "я".repeat(27)); // 31 characters
    let r = adapter()
        .validate(&letter_with(&[("letter.pdf", 10), (&long, 10)]), &s)
        .expect_err("refused");
    assert_eq!(r.field, "/attachments/1/name");
    assert!(r.message.contains("31 characters"), "{r}");
    let r = adapter()
        .validate(&letter_with(&[("ab", 10)]), &s)
        .expect_err("refused");
    assert_eq!(r.field, "/attachments/0/name");
    let ok = format!("{}.pdf", "я".repeat(26)); // exactly 30
    adapter()
        .validate(&letter_with(&[(&ok, 10)]), &s)
        .expect("30 characters pass");
}

#[test]
fn limits_follow_route_settings() {
    let s = settings("http://127.0.0.1:9/", json!({"max_files": 1}));
    let r = adapter()
        .validate(&letter_with(&[("a.pdf", 1), ("b.pdf", 1)]), &s)
        .expect_err("refused");
    assert!(r.message.contains("at most 1"), "{r}");
}

#[test]
fn required_fields_and_recipient_are_named_exactly() {
    let s = settings("http://127.0.0.1:9/", json!({}));
    let a = adapter();
    let mut msg = letter_with(&[("letter.pdf", 10)]);
    if let Some(o) = msg.document.as_object_mut() {
        o.remove("docNo");
    }
    assert_eq!(
        a.validate(&msg, &s).expect_err("no docNo").field,
        "/document/docNo"
    );
    let mut msg = letter_with(&[("letter.pdf", 10)]);
    msg.document["docDate"] = json!("30.11.2026");
    assert_eq!(
        a.validate(&msg, &s).expect_err("bad date").field,
        "/document/docDate"
    );
    let mut msg = letter_with(&[("letter.pdf", 10)]);
    msg.document["carrierType"] = json!(2);
    assert_eq!(
        a.validate(&msg, &s).expect_err("carrier").field,
        "/document/carrierType"
    );
    let mut msg = letter_with(&[("letter.pdf", 10)]);
    msg.document["colour"] = json!("red");
    assert_eq!(
        a.validate(&msg, &s).expect_err("unknown").field,
        "/document/colour"
    );
    let mut msg = letter_with(&[("letter.pdf", 10)]);
    msg.to = "МинЦифры".into();
    assert_eq!(a.validate(&msg, &s).expect_err("to").field, "/to");
    let mut msg = letter_with(&[("letter.pdf", 10)]);
    msg.signatures.pop();
    assert_eq!(a.validate(&msg, &s).expect_err("sigs").field, "/signatures");
}

#[test]
fn a_loaded_directory_refuses_unknown_and_inactive_recipients() {
    let s = settings("http://127.0.0.1:9/", json!({}));
    let p = |id: i64, active: bool| Participant {
        id,
        bin: None,
        name_ru: format!("Ведомство {id}"),
        name_kz: String::new(),
        abbr_ru: String::new(),
        abbr_kz: String::new(),
        code: id.to_string(),
        parent: 0,
        active,
    };
    let dir = Arc::new(RwLock::new(Directory::new(vec![
        p(2002, true),
        p(3003, false),
    ])));
    let a = adapter().with_directory(dir);
    a.validate(&letter_with(&[("letter.pdf", 10)]), &s)
        .expect("2002 is known");
    let mut msg = letter_with(&[("letter.pdf", 10)]);
    msg.to = "4004".into();
    let r = a.validate(&msg, &s).expect_err("unknown");
    assert_eq!(r.field, "/to");
    assert!(r.message.contains("not in the ЕСЭДО directory"));
    msg.to = "3003".into();
    assert!(a
        .validate(&msg, &s)
        .expect_err("inactive")
        .message
        .contains("not active"));
}

async fn admit(msg: &qaqpa_core::Outgoing, files: &Files) -> Result<(), qaqpa_core::Rejection> {
    let s = settings("http://127.0.0.1:9/", json!({}));
    let a = adapter();
    a.validate(msg, &s)?;
    a.admit(msg, &cx(&s, files)).await.map(|_| ())
}

#[tokio::test]
async fn a_letter_signed_by_the_head_and_the_chancellery_is_admitted_rsa_and_gost() {
    let p = pki();
    for kind in [KeyKind::Rsa, KeyKind::Gost2015] {
        let head = p.stored(kind, "head", "valid");
        let chancellery = p.stored(kind, "employee", "valid");
        let (msg, files) = signed_letter(&head, &chancellery);
        admit(&msg, &files)
            .await
            .unwrap_or_else(|r| panic!("{kind:?} letter refused: {r}"));
        // An employee with signing right may sign as well.
        let signright = p.stored(kind, "employee_signright", "valid");
        let (msg, files) = signed_letter(&signright, &chancellery);
        admit(&msg, &files).await.expect("signing right admitted");
    }
}

#[tokio::test]
async fn a_plain_employee_cannot_sign_a_letter() {
    let p = pki();
    let employee = p.stored(KeyKind::Rsa, "employee", "valid");
    let (msg, files) = signed_letter(&employee, &employee);
    let r = admit(&msg, &files).await.expect_err("refused");
    println!("rejection: {r}");
    assert_eq!(r.field, "/signatures/0");
    assert!(
        r.message.contains("is an employee without signing right")
            && r.message
                .contains("first head or an employee with signing right of BIN 123456789021"),
        "{r}"
    );
}

#[tokio::test]
async fn a_head_of_another_organisation_cannot_sign_for_the_sender() {
    let p = pki();
    let foreign = p.org(KeyKind::Rsa, OTHER_BIN, Role::FirstHead);
    let chancellery = p.stored(KeyKind::Rsa, "employee", "valid");
    let (msg, files) = signed_letter(&foreign, &chancellery);
    let r = admit(&msg, &files).await.expect_err("refused");
    assert_eq!(r.field, "/signatures/0");
    assert!(
        r.message.contains(&format!("signs for BIN {OTHER_BIN}")),
        "{r}"
    );
    // The same for the registration signature.
    let head = p.stored(KeyKind::Rsa, "head", "valid");
    let foreign_clerk = p.org(KeyKind::Rsa, OTHER_BIN, Role::Employee);
    let (msg, files) = signed_letter(&head, &foreign_clerk);
    let r = admit(&msg, &files).await.expect_err("refused");
    assert_eq!(r.field, "/signatures/1");
}

#[tokio::test]
async fn a_revoked_signer_is_refused() {
    let p = pki();
    for kind in [KeyKind::Rsa, KeyKind::Gost2015] {
        let revoked = p.stored(kind, "head", "revoked");
        let chancellery = p.stored(kind, "employee", "valid");
        let (msg, files) = signed_letter(&revoked, &chancellery);
        let r = admit(&msg, &files).await.expect_err("refused");
        println!("rejection: {r}");
        assert_eq!(r.field, "/signatures/0");
        assert!(r.message.to_lowercase().contains("revoked"), "{r}");
    }
}

#[tokio::test]
async fn a_signature_over_other_content_is_refused() {
    let p = pki();
    let head = p.stored(KeyKind::Rsa, "head", "valid");
    let chancellery = p.stored(KeyKind::Rsa, "employee", "valid");
    let (mut msg, files) = signed_letter(&head, &chancellery);
    msg.signatures[0] = detached(b"another document", &head);
    let r = admit(&msg, &files).await.expect_err("refused");
    assert_eq!(r.field, "/signatures/0");
    assert!(r.message.contains("signature invalid"), "{r}");
}

// ---------------------------------------------------------------- delivery

struct Rig {
    emu: EsedoEmulator,
    adapter: EsedoAdapter,
    ours: Identity,
}

async fn rig() -> Rig {
    let ours = identity(Role::InformationSystem);
    let theirs = identity(Role::Employee);
    let emu = EsedoEmulator::builder()
        .verify_with(ours.verifier())
        .sign_with(theirs.signer.clone())
        .step_delay(std::time::Duration::ZERO)
        .sequence(Vec::new())
        .start()
        .await
        .expect("emulator");
    let adapter = EsedoAdapter::new(
        Some(ours.signer.clone()),
        Some(theirs.verifier()),
        Some(pki().cms_verifier()),
    );
    Rig { emu, adapter, ours }
}

fn good_letter() -> (qaqpa_core::Outgoing, Files) {
    let p = pki();
    signed_letter(
        &p.stored(KeyKind::Rsa, "head", "valid"),
        &p.stored(KeyKind::Rsa, "employee", "valid"),
    )
}

#[tokio::test]
async fn a_letter_goes_to_hed_then_to_esedo_signed_with_our_href() {
    let r = rig().await;
    let s = settings(&r.emu.endpoint(), json!({}));
    let (msg, files) = good_letter();
    r.adapter.validate(&msg, &s).expect("valid");
    let delivered = r
        .adapter
        .deliver(&msg, &cx(&s, &files))
        .await
        .expect("delivered");
    let href = href_for(msg.id);
    assert_eq!(delivered.target_ref.as_deref(), Some(href.as_str()));
    assert_eq!(delivered.receipts[0].kind, "sent");
    assert_eq!(r.emu.hed_requests(), vec!["UPLOAD".to_string()]);
    let letters = r.emu.letters();
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(l.request.info.message_id, href, "messageId is the href");
    assert_eq!(l.request.info.route_id.as_deref(), Some("R_ESEDO"));
    assert_eq!(l.request.info.service_id, ESEDO_SERVICE);
    assert!(l.request.info.session_id.is_some());
    assert_eq!(l.message.metadata.href.as_deref(), Some(href.as_str()));
    assert_eq!(l.message.metadata.from, Some(1001));
    assert_eq!(l.message.metadata.performers, vec![2002]);
    assert_eq!(l.message.get("docNo"), Some("01-12/345"));
    assert_eq!(
        l.message
            .get("secondSignData")
            .map(str::len)
            .map(|n| n > 100),
        Some(true)
    );
    // The files in ХЭД are ours, byte for byte, plus the head's CMS.
    let stored = r.emu.files();
    assert_eq!(l.message.attachments.len(), 3);
    assert_eq!(
        stored[&l.message.attachments[0]].content,
        files.0[0].to_vec()
    );
    assert_eq!(
        stored[&l.message.attachments[1]].content,
        files.0[1].to_vec()
    );
    let cms = &stored[&l.message.attachments[2]];
    assert_eq!(cms.name, HEAD_SIGNATURE_FILE);
    assert_eq!(cms.content, msg.signatures[0]);
    // A retry reuses the href.
    r.adapter
        .deliver(&msg, &cx(&s, &files))
        .await
        .expect("again");
    assert_eq!(r.emu.letters()[1].request.info.message_id, href);
    let _ = &r.ours;
}

/// The sums of the bodies the emulator received and answered for each service, counted on its
/// side, from exchange `from` on.
fn wire_sums(r: &Rig, from: usize) -> Vec<(String, u64, u64)> {
    let mut sums: Vec<(String, u64, u64)> = Vec::new();
    for w in &r.emu.shep().wire_sizes()[from..] {
        let service = w.service_id.clone().unwrap_or_default();
        let answer = w.response_bytes.expect("a whole answer");
        match sums.iter_mut().find(|(s, _, _)| *s == service) {
            Some(sum) => {
                sum.1 += w.request_bytes;
                sum.2 += answer;
            }
            None => sums.push((service, w.request_bytes, answer)),
        }
    }
    sums
}

#[tokio::test]
async fn a_letters_meter_sums_the_hed_upload_and_the_send_message() {
    let r = rig().await;
    let s = settings(&r.emu.endpoint(), json!({}));
    let (msg, files) = good_letter();
    let meter = ExchangeMeter::new();
    r.adapter
        .deliver(&msg, &metered(&s, &files, &meter))
        .await
        .expect("delivered");
    let sums = wire_sums(&r, 0);
    let [(first, up_sent, up_read), (second, send_sent, send_read)] = sums.as_slice() else {
        panic!("two services expected: {sums:?}");
    };
    assert_eq!(
        (first.as_str(), second.as_str()),
        (HED_SERVICE, ESEDO_SERVICE)
    );
    // One exchange each: the upload carries the files (base64), far more than the letter.
    assert_eq!(r.emu.shep().wire_sizes().len(), 2);
    let file_bytes: u64 = files.0.iter().map(|f| f.len() as u64).sum();
    assert!(*up_sent > file_bytes, "{sums:?}");
    assert_eq!(
        meter.sizes(),
        (Some(up_sent + send_sent), Some(up_read + send_read)),
        "{sums:?}"
    );

    // A SendMessage refused after the upload: both exchanges are still in the meter.
    r.emu
        .inject(
            InjectedFault::Scse002("Получатель 2002 не подключён к ЕСЭДО".into()),
            When::Next(1),
        )
        .expect("inject");
    let meter = ExchangeMeter::new();
    r.adapter
        .deliver(&msg, &metered(&s, &files, &meter))
        .await
        .expect_err("refused");
    let sums = wire_sums(&r, 2);
    let total = sums
        .iter()
        .fold((0, 0), |(a, b), (_, sent, read)| (a + sent, b + read));
    assert_eq!(sums.len(), 2, "{sums:?}");
    assert_eq!(meter.sizes(), (Some(total.0), Some(total.1)), "{sums:?}");
}

#[tokio::test]
async fn a_receipts_meter_holds_its_one_send_message() {
    let r = rig().await;
    let s = settings(&r.emu.endpoint(), json!({}));
    let receipt = outgoing(
        "esedo.receipt",
        "2002",
        json!({ "state": "registered", "inReplyTo": "ВХ-href-7", "regNo": "ВХ-1/2026" }),
    );
    r.adapter.validate(&receipt, &s).expect("valid");
    let meter = ExchangeMeter::new();
    r.adapter
        .deliver(&receipt, &metered(&s, &Files::default(), &meter))
        .await
        .expect("receipt delivered");
    let sums = wire_sums(&r, 0);
    assert_eq!(sums.len(), 1, "{sums:?}");
    assert_eq!(sums[0].0, ESEDO_SERVICE);
    assert_eq!(
        meter.sizes(),
        (Some(sums[0].1), Some(sums[0].2)),
        "{sums:?}"
    );
}

#[tokio::test]
async fn an_unsigned_envelope_is_refused_by_the_verifying_emulator() {
    let r = rig().await;
    let s = settings(&r.emu.endpoint(), json!({}));
    let (msg, files) = good_letter();
    let unsigned = EsedoAdapter::new(None, None, Some(pki().cms_verifier()));
    let f = unsigned
        .deliver(&msg, &cx(&s, &files))
        .await
        .expect_err("refused");
    assert!(
        matches!(f, Failure::Permanent { ref code, .. } if code == "SIGNATURE_INVALID"),
        "{f:?}"
    );
    assert!(r.emu.letters().is_empty());
}

#[tokio::test]
async fn scse002_is_permanent_with_the_reason_scse003_and_http_500_are_retried() {
    let r = rig().await;
    let s = settings(&r.emu.endpoint(), json!({}));
    let (msg, files) = good_letter();
    r.emu
        .inject(
            InjectedFault::Scse002("Получатель 2002 не подключён к ЕСЭДО".into()),
            When::Next(1),
        )
        .expect("inject");
    let f = r
        .adapter
        .deliver(&msg, &cx(&s, &files))
        .await
        .expect_err("fails");
    assert_eq!(
        f,
        Failure::permanent("SCSE002", "Получатель 2002 не подключён к ЕСЭДО")
    );
    r.emu
        .inject(
            InjectedFault::Scse003("NullPointerException".into()),
            When::Next(1),
        )
        .expect("inject");
    let f = r
        .adapter
        .deliver(&msg, &cx(&s, &files))
        .await
        .expect_err("fails");
    assert!(f.is_retry(), "{f:?}");
    r.emu
        .inject(InjectedFault::Http(500), When::Next(1))
        .expect("inject");
    let f = r
        .adapter
        .deliver(&msg, &cx(&s, &files))
        .await
        .expect_err("fails");
    assert!(f.is_retry(), "{f:?}");
    // ХЭД failing is retried too, and nothing reaches ЕСЭДО.
    r.emu
        .shep()
        .inject(HED_SERVICE, InjectedFault::Http(503), When::Next(1))
        .expect("inject");
    let before = r.emu.shep().request_count(ESEDO_SERVICE);
    let f = r
        .adapter
        .deliver(&msg, &cx(&s, &files))
        .await
        .expect_err("fails");
    assert!(f.is_retry(), "{f:?}");
    assert_eq!(r.emu.shep().request_count(ESEDO_SERVICE), before);
    // After the faults, it goes through.
    r.adapter
        .deliver(&msg, &cx(&s, &files))
        .await
        .expect("delivered");
}

#[tokio::test]
async fn attachment_bytes_unavailable_is_not_sent() {
    let r = rig().await;
    let s = settings(&r.emu.endpoint(), json!({}));
    let (msg, _) = good_letter();
    let f = r
        .adapter
        .deliver(&msg, &cx(&s, &Files(vec![Bytes::from_static(b"only one")])))
        .await
        .expect_err("fails");
    assert!(matches!(f, Failure::Permanent { .. }));
    assert_eq!(r.emu.shep().request_count(HED_SERVICE), 0);
}

/// OCSP answered in-process by the test PKI's responders (the URLs in the certificates).
struct TestOcsp;

#[async_trait::async_trait]
impl qaqpa_pki::Fetcher for TestOcsp {
    async fn get(&self, url: &str) -> Result<Vec<u8>, qaqpa_pki::PkiError> {
        Err(qaqpa_pki::PkiError::Network(format!(
            "no GET in this test: {url}"
        )))
    }
    async fn post(
        &self,
        url: &str,
        _content_type: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, qaqpa_pki::PkiError> {
        let p = &pki().pki;
        for kind in [KeyKind::Rsa, KeyKind::Gost2015] {
            if p.ca(kind).ocsp_url == url {
                return p.ca(kind).ocsp_respond(&body, qaqpa_pki::UtcTime::now());
            }
        }
        Err(qaqpa_pki::PkiError::Network(format!(
            "unknown responder {url}"
        )))
    }
}

#[tokio::test]
async fn revocation_is_also_learnt_from_ocsp_when_no_crl_is_held() {
    let p = pki();
    // A validator with the trust store only: without OCSP nothing covers the signers.
    let bare = qaqpa_pki::Validator::new(p.pki.trust_store());
    let s = settings("http://127.0.0.1:9/", json!({}));
    let head = p.stored(KeyKind::Rsa, "head", "valid");
    let clerk = p.stored(KeyKind::Rsa, "employee", "valid");
    let (msg, files) = signed_letter(&head, &clerk);
    let no_ocsp = EsedoAdapter::new(None, None, Some(Arc::new(CmsVerifier::new(bare.clone()))));
    let r = no_ocsp
        .admit(&msg, &cx(&s, &files))
        .await
        .expect_err("status unknown without revocation data");
    assert_eq!(r.field, "/signatures/0");
    let with_ocsp = EsedoAdapter::new(
        None,
        None,
        Some(Arc::new(
            CmsVerifier::new(bare).with_ocsp_fetcher(Arc::new(TestOcsp)),
        )),
    );
    with_ocsp
        .admit(&msg, &cx(&s, &files))
        .await
        .expect("good by OCSP");
    let revoked = p.stored(KeyKind::Rsa, "head", "revoked");
    let (msg, files) = signed_letter(&revoked, &clerk);
    let r = with_ocsp
        .admit(&msg, &cx(&s, &files))
        .await
        .expect_err("revoked by OCSP");
    assert_eq!(r.field, "/signatures/0");
    assert!(r.message.to_lowercase().contains("revoked"), "{r}");
}

#[test]
fn route_settings_are_checked_at_start_up_naming_the_key() {
    let with_verifier = EsedoAdapter::new(
        None,
        Some(identity(Role::Employee).verifier()),
        Some(pki().cms_verifier()),
    );
    let ok = settings(
        "http://127.0.0.1:9/",
        json!({"require_signed_pushes": true}),
    );
    with_verifier.check_settings(&ok).expect("valid settings");
    let bad_bin = settings("http://127.0.0.1:9/", json!({"sender_bin": "12345"}));
    assert_eq!(
        with_verifier
            .check_settings(&bad_bin)
            .expect_err("bin")
            .field,
        "settings.sender_bin"
    );
    let typo = settings("http://127.0.0.1:9/", json!({"max_file": 3}));
    assert!(with_verifier
        .check_settings(&typo)
        .expect_err("unknown key")
        .message
        .contains("max_file"));
    let no_verifier = EsedoAdapter::new(None, None, Some(pki().cms_verifier()));
    let signed = settings(
        "http://127.0.0.1:9/",
        json!({"require_signed_pushes": true}),
    );
    assert_eq!(
        no_verifier
            .check_settings(&signed)
            .expect_err("verifier")
            .field,
        "settings.require_signed_pushes"
    );
    let no_cms = EsedoAdapter::new(None, None, None);
    assert!(no_cms
        .check_settings(&settings("http://127.0.0.1:9/", json!({})))
        .is_err());
}

#[tokio::test]
async fn the_emulator_refuses_letters_that_break_the_schema_or_name_unknown_files() {
    use qaqpa_shep::{
        ClientConfig, MessageData, SenderInfo, SyncChannelClient, SyncRequest, XsiType,
    };
    let emu = EsedoEmulator::builder()
        .sequence(Vec::new())
        .start()
        .await
        .expect("emulator");
    let client = SyncChannelClient::new(ClientConfig::new(emu.endpoint())).expect("client");
    let send = |fragment: &str| {
        SyncRequest::new(
            ESEDO_SERVICE,
            SenderInfo::new("qaqpa", None),
            Some(MessageData::Xml {
                xsi_type: Some(XsiType {
                    namespace: qaqpa_adapter_esedo::model::NS_DOCUMENT.into(),
                    local: "docOutgoing".into(),
                }),
                fragment: fragment.into(),
            }),
        )
    };
    let meta =
        "<metadataSystem><from>1</from><href>h</href><performers>2</performers></metadataSystem>";
    let cases = [
        (format!("<docNo>1</docNo>{meta}"), "schema"),
        (
            format!("<attachments><fileIdentifier>nope</fileIdentifier></attachments>{meta}<carrierType>1</carrierType><docDate>2026-11-30T00:00:00+05:00</docDate><docKind>1</docKind><docNo>1</docNo>"),
            "not in ХЭД",
        ),
    ];
    for (fragment, expected) in cases {
        match client.send(&send(&fragment)).await {
            Err(qaqpa_shep::ShepError::Permanent { code, message }) => {
                assert_eq!(code, "SCSE002");
                assert!(message.contains(expected), "{message}");
            }
            other => panic!("expected SCSE002, got {other:?}"),
        }
    }
    assert!(emu.letters().is_empty());
}
