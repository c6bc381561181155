//! Pushes from ЕСЭДО to our ISyncChannel endpoint over real sockets: the emulator's receipt
//! sequences after a letter (parsed, correlated to our message, folded into the card, repeated
//! pushes recognisable), refusals answered SCSE002, incoming letters with files from ХЭД and
//! verified signatures, our receipts about them, and the participants directory.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use qaqpa_adapter_esedo::directory::{directory_client, sync_participants};
use qaqpa_adapter_esedo::emulator::{EmulatedFile, EsedoEmulator, ReceiptStep, ESEDO_SERVICE};
use qaqpa_adapter_esedo::model::MetadataSystem;
use qaqpa_adapter_esedo::{EsedoAdapter, EsedoSettings, LetterCard, Participant};
use qaqpa_core::{Adapter, Failure, PushOutcome, Receipt};
use qaqpa_pki::testpki::KeyKind;
use qaqpa_pki::Role;
use qaqpa_shep::{SenderInfo, ShepOutcome, SyncRequest};
use serde_json::json;

struct Rig {
    emu: EsedoEmulator,
    adapter: Arc<EsedoAdapter>,
    seen: Seen,
    settings: qaqpa_core::adapter::toml_value::Table,
}

async fn rig(sequence: Vec<ReceiptStep>) -> Rig {
    let ours = identity(Role::InformationSystem);
    let theirs = identity(Role::Employee);
    let emu = EsedoEmulator::builder()
        .verify_with(ours.verifier())
        .sign_with(theirs.signer.clone())
        .step_delay(Duration::ZERO)
        .sequence(sequence)
        .start()
        .await
        .expect("emulator");
    let adapter = Arc::new(EsedoAdapter::new(
        Some(ours.signer.clone()),
        Some(theirs.verifier()),
        Some(pki().cms_verifier()),
    ));
    let settings = settings(&emu.endpoint(), json!({ "require_signed_pushes": true }));
    adapter.check_settings(&settings).expect("settings");
    let (url, seen) = push_endpoint(adapter.clone(), settings.clone()).await;
    emu.set_push_url(url);
    Rig {
        emu,
        adapter,
        seen,
        settings,
    }
}

fn good_letter() -> (qaqpa_core::Outgoing, Files) {
    let p = pki();
    signed_letter(
        &p.stored(KeyKind::Rsa, "head", "valid"),
        &p.stored(KeyKind::Rsa, "employee", "valid"),
    )
}

fn receipts_of(seen: &Seen) -> Vec<(qaqpa_core::MessageId, Receipt)> {
    seen.all()
        .into_iter()
        .filter_map(|o| match o {
            Ok(PushOutcome::Receipt { message, receipt }) => Some((message, receipt)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_default_receipt_sequence_is_parsed_correlated_and_folded_into_the_card() {
    let r = rig(ReceiptStep::default_sequence()).await;
    let (msg, files) = good_letter();
    let delivered = r
        .adapter
        .deliver(&msg, &cx(&r.settings, &files))
        .await
        .expect("delivered");
    let pushes = r.emu.wait_for_pushes(6, Duration::from_secs(20)).await;
    assert_eq!(pushes.len(), 6, "{pushes:?}");
    for p in &pushes {
        assert_eq!(p.outcome.as_deref(), Ok("SCSS001"), "{p:?}");
    }
    let got = receipts_of(&r.seen);
    assert_eq!(got.len(), 6, "{:?}", r.seen.all());
    assert!(
        got.iter().all(|(id, _)| *id == msg.id),
        "correlated to our message"
    );
    let kinds: Vec<&str> = got.iter().map(|(_, r)| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "taken_in",
            "delivered",
            "registered",
            "execution",
            "deadline_prolonged",
            "finished"
        ]
    );
    let reg = &got[2].1;
    assert_eq!(reg.data["reg_no"], "ВХ-01-17/2026");
    let exec = &got[3].1.data;
    assert_eq!(exec["executor"], "Сейткали А. Б.");
    assert_eq!(exec["executor_phone"], "+7 7172 74 00 00");
    assert!(exec["deadline"].is_string());
    assert_eq!(got[5].1.data["result_text"], "Исполнено, ответ направлен");
    let keys: std::collections::HashSet<_> = got.iter().map(|(_, r)| r.dedup_key.clone()).collect();
    assert_eq!(keys.len(), 6, "every notification has its own dedup key");
    // The card.
    let mut all = delivered.receipts.clone();
    all.extend(got.iter().map(|(_, r)| r.clone()));
    let card = r.adapter.card(&all).expect("card");
    assert_eq!(card["stage"], "executed");
    assert_eq!(card["reg_no"], "ВХ-01-17/2026");
    assert_eq!(card["executor"]["phone"], "+7 7172 74 00 00");
    assert_eq!(
        card["deadline"], got[4].1.data["deadline"],
        "the prolonged deadline"
    );
    assert_eq!(card["deadline_history"].as_array().map(Vec::len), Some(2));
    for k in ["sent_at", "delivered_at", "registered_at", "finished_at"] {
        assert!(card[k].is_string(), "{k}: {card}");
    }
    // Arrival in reverse order never moves the stage back and ends the same.
    all.reverse();
    assert_eq!(r.adapter.card(&all).expect("card")["stage"], "executed");
}

#[tokio::test]
async fn the_same_notification_pushed_twice_carries_the_same_dedup_key() {
    let r = rig(vec![ReceiptStep::Registered {
        reg_no: "ВХ-7".into(),
    }])
    .await;
    let (msg, files) = good_letter();
    r.adapter
        .deliver(&msg, &cx(&r.settings, &files))
        .await
        .expect("delivered");
    let pushes = r.emu.wait_for_pushes(1, Duration::from_secs(20)).await;
    assert_eq!(pushes.len(), 1);
    let again = r.emu.repush(&pushes[0].request).await;
    assert!(matches!(again, ShepOutcome::Success { .. }), "{again:?}");
    let got = receipts_of(&r.seen);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1.dedup_key, got[1].1.dedup_key);
    assert!(got[0].1.dedup_key.is_some());
    let card = r
        .adapter
        .card(&[got[0].1.clone(), got[1].1.clone()])
        .expect("card");
    assert_eq!(card["reg_no"], "ВХ-7");
}

#[tokio::test]
async fn a_not_valid_sequence_ends_the_letter_with_the_reason() {
    let r = rig(ReceiptStep::not_valid_sequence()).await;
    let (msg, files) = good_letter();
    let delivered = r
        .adapter
        .deliver(&msg, &cx(&r.settings, &files))
        .await
        .expect("delivered");
    r.emu.wait_for_pushes(2, Duration::from_secs(20)).await;
    let mut all = delivered.receipts;
    all.extend(receipts_of(&r.seen).into_iter().map(|(_, r)| r));
    let card = r.adapter.card(&all).expect("card");
    assert_eq!(card["stage"], "not_valid");
    assert_eq!(card["not_valid_reason"], "signature check failed");
}

#[tokio::test]
async fn a_receipt_about_an_unknown_document_is_answered_scse002() {
    let r = rig(Vec::new()).await;
    let letter = MetadataSystem {
        activity_id: None,
        from: Some(1001),
        href: Some(uuid::Uuid::new_v4().to_string()),
        performers: vec![2002],
        sender_org: Some(1001),
    };
    let m = ReceiptStep::Delivered.notification(&letter, time::OffsetDateTime::now_utc());
    let request = SyncRequest::new(
        ESEDO_SERVICE,
        SenderInfo::new("esedo", None),
        Some(m.to_data().expect("data")),
    );
    match r.emu.repush(&request).await {
        ShepOutcome::Permanent { code, message } => {
            assert_eq!(code, "SCSE002");
            assert!(message.contains("unknown document"), "{message}");
        }
        other => panic!("expected SCSE002, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unsigned_push_is_refused_when_signatures_are_required() {
    let r = rig(Vec::new()).await;
    // An emulator without a signing key pushes the same kind of receipt.
    let unsigned = EsedoEmulator::builder()
        .sequence(Vec::new())
        .start()
        .await
        .expect("emulator");
    let (url, _seen) = push_endpoint(r.adapter.clone(), r.settings.clone()).await;
    unsigned.set_push_url(url);
    let card: LetterCard = serde_json::from_value(card()).expect("card");
    let sent = unsigned
        .send_incoming_letter(
            &card,
            vec![EmulatedFile {
                name: "letter.pdf".into(),
                mime: "application/pdf".into(),
                content: b"%PDF".to_vec(),
            }],
            b"not a cms",
            b"not a cms",
        )
        .await;
    match sent.outcome {
        ShepOutcome::Permanent { code, message } => {
            assert_eq!(code, "SCSE002");
            assert!(message.contains("no WS-Security signature"), "{message}");
        }
        other => panic!("expected SCSE002, got {other:?}"),
    }
}

fn incoming_files() -> (Vec<EmulatedFile>, Vec<u8>) {
    let main = b"%PDF-1.7 incoming letter".to_vec();
    (
        vec![
            EmulatedFile {
                name: "letter.pdf".into(),
                mime: "application/pdf".into(),
                content: main.clone(),
            },
            EmulatedFile {
                name: "appendix.docx".into(),
                mime: "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
                    .into(),
                content: b"PK appendix".to_vec(),
            },
        ],
        main,
    )
}

#[tokio::test]
async fn an_incoming_signed_letter_becomes_a_document_and_our_registration_goes_back() {
    let r = rig(Vec::new()).await;
    let p = pki();
    let head = p.stored(KeyKind::Gost2015, "head", "valid");
    let clerk = p.stored(KeyKind::Gost2015, "employee", "valid");
    let (files, main) = incoming_files();
    let card: LetterCard = serde_json::from_value(card()).expect("card");
    let sent = r
        .emu
        .send_incoming_letter(
            &card,
            files,
            &detached(&main, &head),
            &detached(&main, &clerk),
        )
        .await;
    assert!(
        matches!(sent.outcome, ShepOutcome::Success { .. }),
        "{:?}",
        sent.outcome
    );
    let seen = r.seen.all();
    let Some(Ok(PushOutcome::Document {
        external_id,
        kind,
        from,
        document,
        attachments,
        signatures,
    })) = seen.last().cloned()
    else {
        panic!("expected a document, got {seen:?}");
    };
    assert_eq!(external_id, sent.href);
    assert_eq!(kind, "esedo.letter");
    assert_eq!(from, "9001");
    assert_eq!(document["docNo"], "01-12/345");
    assert_eq!(document["senderBin"], OUR_BIN);
    let head_report = &document["signatures"]["head"][0];
    assert_eq!(head_report["valid"], true, "{document}");
    assert_eq!(head_report["role"], "first head");
    assert_eq!(head_report["iin"], "123456******");
    assert_eq!(document["signatures"]["registration"][0]["valid"], true);
    // The same two signatures, for the journal.
    let fields: Vec<&str> = signatures.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["head", "registration"]);
    assert!(
        signatures[0]
            .signer
            .as_deref()
            .is_some_and(|s| s.contains("123456******")),
        "{signatures:?}"
    );
    assert_eq!(attachments.len(), 3);
    assert_eq!(attachments[0].0.name, "letter.pdf");
    assert_eq!(attachments[0].1.as_ref(), main.as_slice());
    assert_eq!(attachments[0].0.size, main.len() as u64);
    assert_eq!(attachments[2].0.content_type, "application/pkcs7-signature");
    let hed = r.emu.hed_requests();
    assert!(
        hed.contains(&"DOWNLOAD".to_string()) && hed.contains(&"CONFIRM".to_string()),
        "{hed:?}"
    );
    assert!(sent.file_ids.iter().all(|id| r.emu.files()[id].confirmed));

    // Our decision goes back as stateRegistered with our number.
    let decision = outgoing(
        "esedo.receipt",
        &from,
        json!({"inReplyTo": external_id, "state": "registered", "regNo": "ВХ-55/2026"}),
    );
    r.adapter.validate(&decision, &r.settings).expect("valid");
    r.adapter
        .deliver(&decision, &cx(&r.settings, &Files::default()))
        .await
        .expect("delivered");
    let back = r.emu.received_receipts();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].type_name, "stateRegistered");
    assert_eq!(back[0].get("regNo"), Some("ВХ-55/2026"));
    assert_eq!(back[0].metadata.href.as_deref(), Some(sent.href.as_str()));
    assert_eq!(back[0].metadata.performers, vec![9001]);
}

#[tokio::test]
async fn an_incoming_letter_with_a_tampered_signature_is_refused_scse002_and_not_stored() {
    let r = rig(Vec::new()).await;
    let p = pki();
    let head = p.stored(KeyKind::Rsa, "head", "valid");
    let clerk = p.stored(KeyKind::Rsa, "employee", "valid");
    let (files, main) = incoming_files();
    let card: LetterCard = serde_json::from_value(card()).expect("card");
    let mut tampered = detached(&main, &head);
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let sent = r
        .emu
        .send_incoming_letter(&card, files, &tampered, &detached(&main, &clerk))
        .await;
    match sent.outcome {
        ShepOutcome::Permanent { code, message } => {
            assert_eq!(code, "SCSE002");
            assert!(message.contains("signature check failed"), "{message}");
        }
        other => panic!("expected SCSE002, got {other:?}"),
    }
    assert!(matches!(
        r.seen.all().last(),
        Some(Err(Failure::Permanent { .. }))
    ));
    // A plain employee as the head is refused just as well.
    let (files, main) = incoming_files();
    let sent = r
        .emu
        .send_incoming_letter(
            &card,
            files,
            &detached(&main, &clerk),
            &detached(&main, &clerk),
        )
        .await;
    assert!(
        matches!(&sent.outcome, ShepOutcome::Permanent { message, .. } if message.contains("without signing right")),
        "{:?}",
        sent.outcome
    );
}

#[tokio::test]
async fn receipt_decisions_need_their_fields() {
    let adapter = EsedoAdapter::new(None, None, Some(pki().cms_verifier()));
    let s = settings("http://127.0.0.1:9/", json!({}));
    let m = outgoing(
        "esedo.receipt",
        "9001",
        json!({"inReplyTo": "h", "state": "registered"}),
    );
    assert_eq!(
        adapter.validate(&m, &s).expect_err("no regNo").field,
        "/document/regNo"
    );
    let m = outgoing(
        "esedo.receipt",
        "9001",
        json!({"inReplyTo": "h", "state": "execution", "executive": "X"}),
    );
    assert_eq!(
        adapter.validate(&m, &s).expect_err("no execDate").field,
        "/document/execDate"
    );
    let m = outgoing(
        "esedo.receipt",
        "9001",
        json!({"inReplyTo": "h", "state": "opened"}),
    );
    assert_eq!(
        adapter.validate(&m, &s).expect_err("bad state").field,
        "/document"
    );
    let m = outgoing(
        "esedo.receipt",
        "9001",
        json!({"inReplyTo": "h", "state": "not_valid", "isValidReason": "3"}),
    );
    adapter
        .validate(&m, &s)
        .expect("the contract's own name is accepted");
}

#[tokio::test]
async fn the_participants_directory_is_fetched_page_by_page() {
    let participants: Vec<Participant> = (1..=250)
        .map(|i| Participant {
            id: 1000 + i,
            bin: None,
            name_ru: format!("Государственный орган №{i}"),
            name_kz: format!("Мемлекеттік орган №{i}"),
            abbr_ru: format!("ГО{i}"),
            abbr_kz: String::new(),
            code: format!("{:012}", 100_000_000_000i64 + i),
            parent: 0,
            active: i % 50 != 0,
        })
        .collect();
    let emu = EsedoEmulator::builder()
        .participants(participants)
        .page_size(100)
        .start()
        .await
        .expect("emulator");
    let s = EsedoSettings::from_table(&settings(&emu.endpoint(), json!({}))).expect("settings");
    let client = directory_client(&s).expect("client");
    let mut progress = Vec::new();
    let dir = sync_participants(&client, &s, &qaqpa_core::ExchangeMeter::new(), |done, _| {
        progress.push(done)
    })
    .await
    .expect("synced");
    assert_eq!(progress, vec![100, 200, 250]);
    assert_eq!(dir.participants.len(), 250);
    assert_eq!(dir.search("ОРГАН №250").len(), 1);
    assert_eq!(dir.search("1017")[0].id, 1017);
    assert_eq!(dir.search("100000000017")[0].id, 1017);
    assert!(!dir.get(1050).expect("known").active);
    let tmp = tempfile::tempdir().expect("dir");
    let path = tmp.path().join("participants.json");
    dir.save(&path).expect("saved");
    assert_eq!(
        qaqpa_adapter_esedo::Directory::load(&path).expect("loaded"),
        dir
    );
}

#[test]
fn answers_echo_the_request_message_id_with_the_status_of_the_outcome() {
    let adapter = EsedoAdapter::new(None, None, None);
    let request = SyncRequest::new(ESEDO_SERVICE, SenderInfo::new("esedo", None), None)
        .with_message_id("push-42");
    let inbound = qaqpa_core::Inbound {
        content_type: "text/xml".into(),
        body: bytes::Bytes::from(request.to_envelope().expect("envelope")),
        received_at: time::OffsetDateTime::now_utc(),
    };
    for (result, code, text) in [
        (Ok(()), "SCSS001", None),
        (
            Err(Failure::permanent("SCSE002", "подпись не прошла проверку")),
            "SCSE002",
            Some("подпись не прошла проверку"),
        ),
        (
            Err(Failure::retry("store unavailable")),
            "SCSE003",
            Some("store unavailable"),
        ),
    ] {
        let answer = adapter.answer_push(&inbound, &result);
        assert_eq!(answer.status, 200);
        assert!(answer.content_type.starts_with("text/xml"));
        let body = std::str::from_utf8(&answer.body).expect("utf-8");
        let reply = qaqpa_shep::SyncReply::from_envelope(body, &qaqpa_shep::XmlLimits::default())
            .expect("a SendMessageResponse");
        let qaqpa_shep::SyncReply::Response(r) = reply else {
            panic!("not a response: {body}");
        };
        assert_eq!(r.info.message_id, "push-42");
        assert_eq!(r.info.status.code, code);
        if let Some(t) = text {
            assert_eq!(r.info.status.message, t);
        }
    }
}
