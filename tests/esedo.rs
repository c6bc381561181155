//! ЕСЭДО end to end through the gateway over real sockets: the EDMS posts a letter with real CMS
//! signatures from the test PKI (OCSP asked of its loopback responder) → the gateway signs and
//! sends it through ХЭД and ШЭП to the ЕСЭДО emulator → the emulator pushes every receipt back
//! to `/push/{route}` (WS-Security checked against its pinned certificate) → GET shows the card
//! and the EDMS's webhook got every step. And the other way: an incoming signed letter lands in
//! the inbox, the EDMS registers it, the emulator gets stateRegistered with our number.
mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{Gateway, HookSink};
use qaqpa::auth::Role;
use qaqpa::esedo::{EsedoRig, SANDBOX_RECIPIENT};
use qaqpa_adapter_esedo::emulator::{
    EmulatedFile, ReceiptStep, ESEDO_SERVICE, HED_SERVICE, NSI_SERVICE,
};
use qaqpa_adapter_esedo::LetterCard;
use qaqpa_pki::cms::{self, SignOptions};
use qaqpa_pki::testpki::TEST_PASSWORD;
use qaqpa_pki::Keystore;
use qaqpa_shep::emulator::{InjectedFault, When};
use qaqpa_shep::ShepOutcome;
use serde_json::{json, Value};

const ROUTE: &str = "esedo";
const CLIENT: &str = "edms-1";

struct Rig {
    rig: EsedoRig,
    gw: Gateway,
    token: String,
    hooks: HookSink,
    _dir: tempfile::TempDir,
}

/// The EXCHANGE events in `journal` (flushed by the caller), oldest request first, with each
/// record's transaction and account.
async fn journalled_exchanges(
    journal: &dyn qaqpa_audit::AuditStore,
) -> Vec<(qaqpa_audit::Exchange, Option<String>, Option<String>)> {
    let page = journal
        .query(
            &qaqpa_audit::AuditFilter {
                kind: Some("EXCHANGE".into()),
                ..Default::default()
            },
            None,
            1000,
        )
        .await
        .expect("query");
    let mut out: Vec<_> = page
        .records
        .into_iter()
        .map(|rec| match rec.event.kind {
            qaqpa_audit::EventKind::Exchange(x) => (x, rec.event.transaction_id, rec.event.account),
            other => panic!("{other:?}"),
        })
        .collect();
    out.sort_by_key(|(x, _, _)| x.request_out.or(x.request_in));
    out
}

/// The SIG_VERIFY events in the journal (of one transaction when given): valid, signer, reason.
async fn journal_signatures(r: &Rig, transaction: Option<&str>) -> Vec<(bool, String, String)> {
    let journal = r.gw.state.audit.store().expect("journal");
    let page = journal
        .query(
            &qaqpa_audit::AuditFilter {
                kind: Some("SIG_VERIFY".into()),
                transaction_id: transaction.map(str::to_string),
                ..Default::default()
            },
            None,
            100,
        )
        .await
        .expect("query");
    page.records
        .into_iter()
        .filter_map(|rec| match rec.event.kind {
            qaqpa_audit::EventKind::SignatureVerify {
                valid,
                signer,
                reason,
                ..
            } => Some((
                valid,
                signer.unwrap_or_default(),
                reason.unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}

/// The reasons of the journalled signature checks that failed.
async fn refused_signature_reasons(r: &Rig) -> Vec<String> {
    journal_signatures(r, None)
        .await
        .into_iter()
        .filter(|(valid, _, _)| !valid)
        .map(|(_, _, reason)| reason)
        .collect()
}

async fn start() -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let rig = EsedoRig::start(dir.path(), "127.0.0.1:0".parse().unwrap(), Duration::ZERO)
        .await
        .expect("rig");
    let hooks = HookSink::start().await;
    let routes = rig.routes(ROUTE, CLIENT, Some(&hooks.url()));
    let gw = Gateway::start_with(&routes, |cfg| {
        rig.configure(cfg, ROUTE);
        cfg.esedo.sync_interval_secs = 3600;
    })
    .await;
    rig.connect(&gw.url, ROUTE);
    let token = gw.key(CLIENT, Role::Client).await;
    Rig {
        rig,
        gw,
        token,
        hooks,
        _dir: dir,
    }
}

impl Rig {
    fn keystore(&self, name: &str) -> Keystore {
        let bytes = std::fs::read(self.rig.pki_dir.join(name)).expect("keystore");
        Keystore::from_pkcs12(&bytes, TEST_PASSWORD).expect("opens")
    }

    fn cms(&self, keystore: &str, content: &[u8]) -> String {
        let der = cms::sign(
            content,
            &self.keystore(keystore),
            &SignOptions {
                detached: true,
                ..SignOptions::default()
            },
        )
        .expect("signs");
        b64(&der)
    }

    /// A letter to the sandbox recipient: one PDF, signed by `head` and registered by `clerk`.
    fn letter(&self, head: &str, clerk: &str, callback: bool) -> Value {
        let pdf = b"%PDF-1.7 letter to the ministry";
        let mut v = json!({
            "kind": "esedo.letter",
            "to": SANDBOX_RECIPIENT.to_string(),
            "document": {
                "docNo": "01-12/345", "docDate": "2026-11-30", "docKind": 1, "docLang": "RU",
                "carrierType": 1, "description": "О предоставлении информации",
                "executionDate": "2026-12-15",
                "executor": {"name": "Иванова А.", "phone": "+7 7172 11 22 33"},
                "signers": ["Ахметов А."], "sheetCount": 2
            },
            "attachments": [{"name": "letter.pdf", "content_type": "application/pdf",
                             "content": b64(pdf)}],
            "signatures": [self.cms(head, pdf), self.cms(clerk, pdf)],
        });
        if callback {
            v["callback_url"] = json!(self.hooks.url());
        }
        v
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_letter_goes_out_and_every_receipt_reaches_the_card_and_the_webhook() {
    let r = start().await;
    let id =
        r.gw.submit(
            &r.token,
            &r.letter("rsa_head_valid.p12", "rsa_employee_valid.p12", true),
        )
        .await;
    let view =
        r.gw.wait_message(&r.token, &id, Duration::from_secs(60), |v| {
            v["card"]["stage"] == "executed"
        })
        .await;
    assert_eq!(view["status"], "delivered", "{view:#}");
    // Both signatures were checked before the 202 and journalled as valid, with their signers,
    // under the message's transaction.
    assert!(r.gw.state.audit.flush().await.stored);
    let sigs = journal_signatures(&r, Some(&id)).await;
    assert_eq!(sigs.len(), 2, "{sigs:?}");
    for (valid, signer, _) in &sigs {
        assert!(valid, "{sigs:?}");
        assert!(signer.contains("/signatures/"), "{sigs:?}");
    }
    let card = &view["card"];
    assert!(card["sent_at"].is_string(), "{card:#}");
    assert!(card["delivered_at"].is_string(), "{card:#}");
    assert!(card["registered_at"].is_string(), "{card:#}");
    assert_eq!(card["reg_no"], "ВХ-01-17/2026", "{card:#}");
    assert_eq!(card["executor"]["name"], "Сейткали А. Б.", "{card:#}");
    assert_eq!(card["executor"]["phone"], "+7 7172 74 00 00", "{card:#}");
    assert!(card["deadline"].is_string(), "{card:#}");
    assert_eq!(
        card["result"]["text"], "Исполнено, ответ направлен",
        "{card:#}"
    );
    // The delivery was two requests to ШЭП, each journalled as an exchange of its own: the
    // files uploaded to ХЭД, then the letter's SendMessage, with the serviceIds, the envelopes'
    // sizes as the emulator received and answered them, and the answers' codes.
    let delivery: Vec<_> = journalled_exchanges(&**r.gw.state.audit.store().expect("journal"))
        .await
        .into_iter()
        .filter(|(x, _, _)| {
            x.direction == qaqpa_audit::Direction::Outbound
                && x.target == ROUTE
                && x.message_id.as_deref() == Some(id.as_str())
        })
        .collect();
    let wire = r.rig.emulator.shep().wire_sizes();
    let on_wire = |service: &str| {
        let w = wire
            .iter()
            .find(|w| w.service_id.as_deref() == Some(service))
            .unwrap_or_else(|| panic!("no {service} request: {wire:?}"));
        (Some(w.request_bytes), w.response_bytes)
    };
    let seen: Vec<_> = delivery
        .iter()
        .map(|(x, transaction, _)| {
            (
                x.service_id.clone().unwrap_or_default(),
                (x.request_bytes, x.response_bytes),
                x.result.clone(),
                transaction.clone(),
            )
        })
        .collect();
    let scss = qaqpa_audit::ExchangeResult::Shep("SCSS001".into());
    assert_eq!(
        seen,
        [
            (
                HED_SERVICE.to_owned(),
                on_wire(HED_SERVICE),
                scss.clone(),
                Some(id.clone())
            ),
            (
                ESEDO_SERVICE.to_owned(),
                on_wire(ESEDO_SERVICE),
                scss,
                Some(id.clone())
            ),
        ],
        "{delivery:#?}"
    );
    assert!(
        delivery[0].0.response_in <= delivery[1].0.request_out,
        "the upload ended before the letter went: {delivery:#?}"
    );
    // The signature checks before the 202 asked the test PKI's OCSP responder (and fetched
    // what else they needed from it): every request it served is an exchange in the message's
    // transaction, made for the caller's key.
    let pki_host = r.rig.pki.addr().to_string();
    let asked: Vec<_> = journalled_exchanges(&**r.gw.state.audit.store().expect("journal"))
        .await
        .into_iter()
        .filter(|(x, _, _)| x.target == pki_host)
        .collect();
    let counts = r.rig.pki.counts();
    let served = counts.ocsp.load(std::sync::atomic::Ordering::Relaxed)
        + counts.crl.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(asked.len() as u64, served, "{asked:#?}");
    assert!(
        asked
            .iter()
            .any(|(x, _, _)| x.service_id.as_deref() == Some("OCSP")),
        "{asked:#?}"
    );
    for (x, transaction, account) in &asked {
        assert_eq!(transaction.as_deref(), Some(id.as_str()), "{asked:#?}");
        assert_eq!(x.message_id.as_deref(), Some(id.as_str()), "{asked:#?}");
        assert!(account.is_some(), "{asked:#?}");
        assert_eq!(
            x.result,
            qaqpa_audit::ExchangeResult::Http(200),
            "{asked:#?}"
        );
        assert!(x.response_bytes.is_some_and(|n| n > 0), "{asked:#?}");
        if x.service_id.as_deref() == Some("OCSP") {
            assert!(x.request_bytes.is_some_and(|n| n > 0), "{asked:#?}");
        }
    }
    // sent (with the delivery) + the six pushed receipts, in arrival order.
    let receipts = view["receipts"].as_array().expect("receipts");
    assert_eq!(receipts.len(), 7, "{view:#}");
    // The emulator received one schema-checked, WS-Security-verified letter with our href.
    let letters = r.rig.emulator.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].message.metadata.href.as_deref(),
        Some(id.as_str())
    );
    // The EDMS heard of the status change and of every receipt, each signed.
    let hooks = r.hooks.wait_for(8, Duration::from_secs(30)).await;
    let events: Vec<Value> = hooks
        .iter()
        .map(|h| serde_json::from_slice(&h.body).expect("hook json"))
        .filter(|e: &Value| e["message_id"] == id.as_str())
        .collect();
    let receipt_events = events
        .iter()
        .filter(|e| e["event"] == "message.receipt")
        .count();
    assert_eq!(receipt_events, 7, "{events:#?}");
    assert!(hooks.iter().all(|h| h.signature.contains("v1=")));

    // The same receipt pushed again is applied once; the card does not move.
    let last = r.rig.emulator.pushes().last().cloned().expect("a push");
    let again = r.rig.emulator.repush(&last.request).await;
    assert!(matches!(again, ShepOutcome::Success { .. }), "{again:?}");
    let delivered_push = r
        .rig
        .emulator
        .pushes()
        .into_iter()
        .find(|p| p.type_name == "stateDelivered")
        .expect("delivered push");
    r.rig.emulator.repush(&delivered_push.request).await;
    let view = r.gw.get(&r.token, &format!("/v1/messages/{id}")).await;
    let view: Value = view.json().await.expect("json");
    assert_eq!(view["receipts"].as_array().map(Vec::len), Some(7));
    assert_eq!(view["card"]["stage"], "executed");
    r.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_letter_lands_in_the_inbox_and_our_registration_goes_back() {
    let r = start().await;
    let main = b"%PDF-1.7 incoming letter".to_vec();
    let card: LetterCard = serde_json::from_value(json!({
        "docNo": "05-1/77", "docDate": "2026-11-29", "docKind": 1, "docLang": "RU",
        "carrierType": 1, "description": "Запрос", "signers": ["Руководитель"], "sheetCount": 1
    }))
    .expect("card");
    // The sender is the akimat of the directory (BIN 000340005678): its head and its clerk sign.
    let issue = |role: qaqpa_pki::Role, iin: &str| {
        let pki = r.rig.pki.pki();
        let pki = pki.lock().expect("pki");
        pki.issue_organisation(
            qaqpa_pki::testpki::KeyKind::Gost2015,
            &qaqpa_pki::Iin::new(iin).expect("iin"),
            &qaqpa_pki::Bin::new("000340005678").expect("bin"),
            "Акимат города Астаны",
            "ЖУМАБЕКОВ АСХАТ",
            role,
        )
        .expect("issue")
    };
    let head = issue(qaqpa_pki::Role::FirstHead, "700101300111");
    let clerk = issue(qaqpa_pki::Role::Employee, "900101400222");
    let sign = |ks: &Keystore| {
        cms::sign(
            &main,
            ks,
            &SignOptions {
                detached: true,
                ..SignOptions::default()
            },
        )
        .expect("signs")
    };
    // The letter's main file, signed by `first` (as the head) and `second` (registration).
    let send = |first: &Keystore, second: &Keystore| {
        let files = vec![EmulatedFile {
            name: "letter.pdf".into(),
            mime: "application/pdf".into(),
            content: main.clone(),
        }];
        let (first, second) = (sign(first), sign(second));
        let (emulator, card) = (&r.rig.emulator, &card);
        async move {
            emulator
                .send_incoming_letter(card, files, &first, &second)
                .await
        }
    };
    let sent = send(&head, &clerk).await;
    assert!(
        matches!(sent.outcome, ShepOutcome::Success { .. }),
        "{:?}",
        sent.outcome
    );
    // The inbox has it, with its file and the verdict on its signatures; the EDMS was told.
    let inbox: Value =
        r.gw.get(&r.token, "/v1/inbox")
            .await
            .json()
            .await
            .expect("json");
    let item = inbox["items"][0].clone();
    assert_eq!(item["external_id"], sent.href.as_str(), "{inbox:#}");
    assert_eq!(
        item["document"]["signatures"]["head"][0]["valid"], true,
        "{item:#}"
    );
    let file =
        r.gw.get(
            &r.token,
            &format!(
                "/v1/inbox/{}/attachments/0",
                item["id"].as_str().unwrap_or("")
            ),
        )
        .await
        .bytes()
        .await
        .expect("file");
    assert_eq!(file.as_ref(), main.as_slice());
    // Both signatures of the letter were journalled as valid, with their signers, under the
    // push's transaction.
    assert!(r.gw.state.audit.flush().await.stored);
    let sigs = journal_signatures(&r, None).await;
    let mut fields: Vec<&str> = sigs
        .iter()
        .map(|(valid, signer, _)| {
            assert!(valid, "{sigs:?}");
            signer.split(' ').next().unwrap_or("")
        })
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["head", "registration"], "{sigs:?}");
    assert!(
        sigs.iter()
            .all(|(_, s, _)| s.contains("700101******") || s.contains("900101******")),
        "{sigs:?}"
    );
    // The push's exchange names the letter it brought; the files the gateway fetched from
    // ХЭД meanwhile are outbound exchanges of their own under the push's transaction.
    let exchanges = journalled_exchanges(&**r.gw.state.audit.store().expect("journal")).await;
    let letter: Vec<_> = exchanges
        .iter()
        .filter(|(x, _, _)| x.message_id.as_deref() == Some(sent.href.as_str()))
        .collect();
    let pushed = letter
        .iter()
        .find(|(x, _, _)| x.direction == qaqpa_audit::Direction::Inbound)
        .unwrap_or_else(|| panic!("no inbound exchange: {letter:#?}"));
    let fetched: Vec<_> = letter
        .iter()
        .filter(|(x, _, _)| x.direction == qaqpa_audit::Direction::Outbound)
        .collect();
    assert!(!fetched.is_empty(), "{letter:#?}");
    for (x, transaction, _) in &fetched {
        assert_eq!(x.service_id.as_deref(), Some(HED_SERVICE), "{letter:#?}");
        assert_eq!(
            x.result,
            qaqpa_audit::ExchangeResult::Shep("SCSS001".into())
        );
        assert!(x.request_bytes.is_some_and(|n| n > 300), "{letter:#?}");
        assert!(x.response_bytes.is_some_and(|n| n > 0), "{letter:#?}");
        assert_eq!(transaction, &pushed.1, "{letter:#?}");
        assert!(
            x.request_out >= pushed.0.request_in && x.response_in <= pushed.0.response_out,
            "fetched while the push was handled: {letter:#?}"
        );
    }
    // So are the OCSP questions its signature checks asked.
    let pki_host = r.rig.pki.addr().to_string();
    let asked: Vec<_> = exchanges
        .iter()
        .filter(|(x, transaction, _)| x.target == pki_host && *transaction == pushed.1)
        .collect();
    assert!(
        asked
            .iter()
            .any(|(x, _, _)| x.service_id.as_deref() == Some("OCSP")),
        "{exchanges:#?}"
    );
    // A letter whose head signature is a plain employee's is refused (SCSE002) and that
    // signature is journalled as not valid.
    let refused = send(&clerk, &clerk).await;
    assert!(
        matches!(&refused.outcome, ShepOutcome::Permanent { code, .. } if code == "SCSE002"),
        "{:?}",
        refused.outcome
    );
    assert!(r.gw.state.audit.flush().await.stored);
    let invalid = refused_signature_reasons(&r).await;
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert!(
        invalid[0].starts_with("signature check failed (head)"),
        "{invalid:?}"
    );
    let hooks = r.hooks.wait_for(1, Duration::from_secs(30)).await;
    assert!(hooks
        .iter()
        .any(|h| String::from_utf8_lossy(&h.body).contains("inbox.received")));
    // The EDMS registers it; the answer travels back as stateRegistered with our number.
    let reply =
        r.gw.post_json(
            &r.token,
            &format!("/v1/inbox/{}/reply", item["id"].as_str().unwrap_or("")),
            &json!({"kind": "esedo.receipt",
                    "document": {"state": "registered", "regNo": "ВХ-55/2026"}}),
        )
        .await;
    assert_eq!(reply.status(), 202);
    let reply: Value = reply.json().await.expect("json");
    let reply_id = reply["id"].as_str().expect("id").to_string();
    r.gw.wait_message(&r.token, &reply_id, Duration::from_secs(30), |v| {
        v["status"] == "delivered"
    })
    .await;
    let back = r.rig.emulator.received_receipts();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].type_name, "stateRegistered");
    assert_eq!(back[0].get("regNo"), Some("ВХ-55/2026"));
    assert_eq!(back[0].metadata.href.as_deref(), Some(sent.href.as_str()));
    r.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_letters_get_a_precise_422_before_anything_is_sent() {
    let r = start().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "eleven files",
            {
                let mut v = r.letter("rsa_head_valid.p12", "rsa_employee_valid.p12", false);
                let one = v["attachments"][0].clone();
                v["attachments"] = json!(vec![one; 11]);
                v
            },
            "/attachments",
        ),
        (
            "a 20 MB file",
            {
                let mut v = r.letter("rsa_head_valid.p12", "rsa_employee_valid.p12", false);
                let big = vec![b'%'; 20 * 1024 * 1024];
                v["attachments"] = json!([v["attachments"][0].clone(), {
                    "name": "scan.pdf", "content_type": "application/pdf", "content": b64(&big)}]);
                v
            },
            "/attachments/1",
        ),
        (
            "a 31-character file name",
            {
                let mut v = r.letter("rsa_head_valid.p12", "rsa_employee_valid.p12", false);
                v["attachments"][0]["name"] = json!(format!("{}.pdf", "x".repeat(27)));
                v
            },
            "/attachments/0/name",
        ),
        (
            "a plain employee's signature",
            r.letter("rsa_employee_valid.p12", "rsa_employee_valid.p12", false),
            "/signatures/0",
        ),
        (
            "a revoked signer",
            r.letter("gost_head_revoked.p12", "gost_employee_valid.p12", false),
            "/signatures/0",
        ),
        (
            "a recipient not in the directory",
            {
                let mut v = r.letter("rsa_head_valid.p12", "rsa_employee_valid.p12", false);
                v["to"] = json!("4242");
                v
            },
            "/to",
        ),
    ];
    // The directory is synced from the emulator at start-up; wait for it.
    let start = std::time::Instant::now();
    loop {
        let page: Value =
            r.gw.get(&r.token, "/v1/esedo/participants?q=министерство")
                .await
                .json()
                .await
                .expect("json");
        if page["total"] == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "directory not synced: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (what, body, pointer) in cases {
        let resp = r.gw.post_json(&r.token, "/v1/messages", &body).await;
        assert_eq!(resp.status(), 422, "{what}");
        let p: Value = resp.json().await.expect("problem");
        let at = p["errors"][0]["pointer"].as_str().unwrap_or("");
        assert!(at.starts_with(pointer), "{what}: pointer {at}: {p}");
    }
    // The signatures refused were journalled as not valid, with the reason.
    assert!(r.gw.state.audit.flush().await.stored);
    let refused = refused_signature_reasons(&r).await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused.iter().all(|r| r.starts_with("/signatures/0: ")),
        "{refused:?}"
    );
    assert!(
        refused.iter().any(|r| r.to_lowercase().contains("revoked")),
        "{refused:?}"
    );
    // A BIN that is not the sender's: an organisation of another BIN signs as its head.
    let other = {
        let pki = r.rig.pki.pki();
        let pki = pki.lock().expect("pki");
        pki.issue_organisation(
            qaqpa_pki::testpki::KeyKind::Rsa,
            &qaqpa_pki::Iin::new("800101300111").expect("iin"),
            &qaqpa_pki::Bin::new("111111111111").expect("bin"),
            "ТОО \"Другое\"",
            "ДРУГОЙ ДИРЕКТОР",
            qaqpa_pki::Role::FirstHead,
        )
        .expect("issue")
    };
    std::fs::write(
        r.rig.pki_dir.join("other_head.p12"),
        other.to_pkcs12(TEST_PASSWORD).expect("p12"),
    )
    .expect("write");
    let resp =
        r.gw.post_json(
            &r.token,
            "/v1/messages",
            &r.letter("other_head.p12", "rsa_employee_valid.p12", false),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let p: Value = resp.json().await.expect("problem");
    assert!(p.to_string().contains("123456789021"), "{p}");
    assert!(
        r.rig.emulator.letters().is_empty(),
        "nothing may reach ЕСЭДО"
    );
    r.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scse002_fails_with_its_reason_and_scse003_is_retried() {
    let r = start().await;
    r.rig
        .emulator
        .inject(
            InjectedFault::Scse002("Неверный получатель".into()),
            When::Next(1),
        )
        .expect("inject");
    let id =
        r.gw.submit(
            &r.token,
            &r.letter("rsa_head_valid.p12", "rsa_employee_valid.p12", false),
        )
        .await;
    let view =
        r.gw.wait_message(&r.token, &id, Duration::from_secs(30), |v| {
            v["status"] == "failed"
        })
        .await;
    assert!(
        view["last_error"]
            .to_string()
            .contains("Неверный получатель"),
        "{view:#}"
    );

    r.rig.emulator.set_sequence(vec![ReceiptStep::TakenIn]);
    r.rig
        .emulator
        .inject(
            InjectedFault::Scse003("временно недоступно".into()),
            When::Next(1),
        )
        .expect("inject");
    let id =
        r.gw.submit(
            &r.token,
            &r.letter("rsa_head_valid.p12", "rsa_employee_valid.p12", false),
        )
        .await;
    let view =
        r.gw.wait_message(&r.token, &id, Duration::from_secs(30), |v| {
            v["status"] == "delivered"
        })
        .await;
    assert!(view["attempts"].as_u64().unwrap_or(0) >= 2, "{view:#}");
    r.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_syncs_the_participants_directory_with_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rig = EsedoRig::start(dir.path(), "127.0.0.1:0".parse().unwrap(), Duration::ZERO)
        .await
        .expect("rig");
    std::fs::write(
        dir.path().join("routes.toml"),
        rig.routes(ROUTE, CLIENT, None),
    )
    .expect("routes");
    let signing = &rig.signing;
    let config = format!(
        "routes = \"routes.toml\"\n[store]\nkind = \"sqlite\"\ndata_dir = \"data\"\n\
         [signing]\nkeystore = \"{}\"\npassword_file = \"{}\"\n\
         [pki]\ntrust_dir = \"{}\"\n[shep]\npeer_certificates = [\"{}\"]\n\
         [esedo]\ndirectory_file = \"participants.json\"\ndirectory_route = \"{ROUTE}\"\n",
        signing.keystore.display(),
        signing.password_file.as_ref().expect("file").display(),
        rig.pki_dir.display(),
        rig.emulator_cert.display(),
    );
    let config_path = dir.path().join("qaqpa.toml");
    std::fs::write(&config_path, config).expect("config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_qaqpa"))
        .args(["esedo", "sync-participants", "--config"])
        .arg(&config_path)
        .output()
        .await
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("3 participants saved"), "{stdout}");
    assert!(stderr.contains("participants fetched"), "{stderr}");
    let saved = qaqpa_adapter_esedo::Directory::load(&dir.path().join("participants.json"))
        .expect("saved directory");
    assert_eq!(saved.search("акимат").len(), 1);
    // Each page asked of ШЭП is journalled as an exchange, by the OS user who ran the
    // command, all under one transaction, sized as the emulator saw them.
    let journal = qaqpa_audit::SqliteAuditStore::open(&dir.path().join("data")).expect("journal");
    let pages = journalled_exchanges(&journal).await;
    let wire: Vec<_> = rig
        .emulator
        .shep()
        .wire_sizes()
        .into_iter()
        .filter(|w| w.service_id.as_deref() == Some(NSI_SERVICE))
        .map(|w| (Some(w.request_bytes), w.response_bytes))
        .collect();
    assert!(
        wire.len() >= 2,
        "a page and the empty page after it: {wire:?}"
    );
    assert_eq!(
        pages
            .iter()
            .map(|(x, _, _)| (x.request_bytes, x.response_bytes))
            .collect::<Vec<_>>(),
        wire,
        "{pages:#?}"
    );
    assert!(
        pages.iter().all(|(x, transaction, account)| {
            x.target == ROUTE
                && x.service_id.as_deref() == Some(NSI_SERVICE)
                && x.result == qaqpa_audit::ExchangeResult::Shep("SCSS001".into())
                && *transaction == pages[0].1
                && transaction.is_some()
                && account.as_deref().is_some_and(|a| a.starts_with("os:"))
        }),
        "{pages:#?}"
    );
}
