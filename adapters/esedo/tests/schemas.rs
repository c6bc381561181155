//! What we put on the wire validates (`xmllint --schema`) against the public ЕСЭДО contract: the
//! schemas embedded in wsdl_consumer.wsdl (SendMessage with the docOutgoing or the notification
//! in `data` by xsi:type) and HedTempStorage.xsd (the ХЭД requests). The specs are read at run
//! time from ../shared/specs/esedo; a missing folder fails the tests saying so.

mod common;

use common::*;
use qaqpa_adapter_esedo::emulator::{EsedoEmulator, ReceiptStep, ESEDO_SERVICE, HED_SERVICE};
use qaqpa_adapter_esedo::hed::{HedCredentials, HedRequest, UploadFile};
use qaqpa_adapter_esedo::model::MetadataSystem;
use qaqpa_adapter_esedo::{EsedoAdapter, ReceiptDecision};
use qaqpa_core::Adapter;
use qaqpa_shep::{SenderInfo, SessionId, SyncRequest};
use serde_json::json;

fn metadata() -> MetadataSystem {
    MetadataSystem {
        activity_id: Some("3f2c6a52-8d4e-4a8e-9d55-2d6f0f1b7c11".into()),
        from: Some(1001),
        href: Some("0190c5a2-1b7e-7f3a-9c2d-4e5f6a7b8c9d".into()),
        performers: vec![2002, 2003],
        sender_org: Some(1001),
    }
}

fn envelope_for(m: &qaqpa_adapter_esedo::EsedoMessage) -> String {
    SyncRequest::new(
        ESEDO_SERVICE,
        SenderInfo::new("qaqpa", None),
        Some(m.to_data().expect("data")),
    )
    .with_message_id("0190c5a2-1b7e-7f3a-9c2d-4e5f6a7b8c9d")
    .with_route_id("R_ESEDO")
    .with_session_id(SessionId::parse("{3f2c6a52-8d4e-4a8e-9d55-2d6f0f1b7c11}").expect("guid"))
    .to_envelope()
    .expect("envelope")
}

fn assert_valid(schema: &std::path::Path, xml: &str) {
    if let Err(e) = xmllint(schema, xml) {
        panic!("fails the public ЕСЭДО XSD:\n{e}\n---\n{xml}");
    }
}

#[tokio::test]
async fn the_letter_we_send_and_its_hed_upload_validate_against_the_public_xsd() {
    let schemas = EsedoSchemas::new();
    let emu = EsedoEmulator::builder()
        .sequence(Vec::new())
        .start()
        .await
        .expect("emulator");
    let s = settings(&emu.endpoint(), json!({}));
    let adapter = EsedoAdapter::new(None, None, Some(pki().cms_verifier()));
    let p = pki();
    let (msg, files) = signed_letter(
        &p.stored(qaqpa_pki::testpki::KeyKind::Rsa, "head", "valid"),
        &p.stored(qaqpa_pki::testpki::KeyKind::Rsa, "employee", "valid"),
    );
    adapter
        .deliver(&msg, &cx(&s, &files))
        .await
        .expect("delivered");
    // What the emulator read from our request, written again by the same ШЭП writer.
    let letter = emu.shep().received(ESEDO_SERVICE);
    assert_eq!(letter.len(), 1);
    let envelope = letter[0].to_envelope().expect("envelope");
    assert_valid(&schemas.sync, &payload_of(&envelope));
    let hed = emu.shep().received(HED_SERVICE);
    assert_eq!(hed.len(), 1);
    let upload = hed[0].data.as_ref().expect("data").as_text().to_owned();
    assert!(upload.contains("UPLOAD"));
    assert_valid(&schemas.hed, &upload);
    // The ХЭД request also passes as content of SendMessage/data against the WSDL's copy.
    assert_valid(
        &schemas.sync,
        &payload_of(&hed[0].to_envelope().expect("env")),
    );
}

#[test]
fn a_letter_with_every_field_validates() {
    let schemas = EsedoSchemas::new();
    let card: qaqpa_adapter_esedo::LetterCard = serde_json::from_value(card()).expect("card");
    let m = card.to_message(metadata(), vec!["f-1".into(), "f-2".into()], Some(b"cms"));
    assert_valid(&schemas.sync, &payload_of(&envelope_for(&m)));
}

#[test]
fn every_notification_we_emit_validates() {
    let schemas = EsedoSchemas::new();
    let decisions = [
        json!({"inReplyTo": "h-1", "state": "delivered"}),
        json!({"inReplyTo": "h-1", "state": "registered", "regNo": "ВХ-12", "userUin": "880101300123"}),
        json!({"inReplyTo": "h-1", "state": "not_valid", "reason": "2"}),
        json!({"inReplyTo": "h-1", "state": "execution", "executive": "Иванов", "executivePhone": "+7 700", "execDate": "2026-12-20"}),
        json!({"inReplyTo": "h-1", "state": "finished", "author": "Иванов", "resultCode": "1", "resultText": "Исполнено", "date": "2026-12-01T10:00:00+05:00"}),
    ];
    for d in decisions {
        let decision = ReceiptDecision::parse(&d).expect("parses");
        decision.check().expect("valid");
        let m = decision.to_message(metadata(), "2026-12-01T10:00:00.000+05:00");
        assert_valid(&schemas.sync, &payload_of(&envelope_for(&m)));
    }
}

#[test]
fn every_notification_the_emulator_pushes_validates() {
    let schemas = EsedoSchemas::new();
    let mut steps = ReceiptStep::default_sequence();
    steps.extend(ReceiptStep::not_valid_sequence());
    steps.extend([
        ReceiptStep::NewControl { days: 5 },
        ReceiptStep::NewDeadline { days: 7 },
        ReceiptStep::TakeOffControl,
    ]);
    for step in steps {
        let m = step.notification(&metadata(), time::OffsetDateTime::now_utc());
        assert_valid(&schemas.sync, &payload_of(&envelope_for(&m)));
    }
}

#[test]
fn every_hed_request_validates_against_hed_temp_storage_xsd() {
    let schemas = EsedoSchemas::new();
    let creds = HedCredentials {
        sender_id: "qaqpa".into(),
        password: String::new(),
    };
    for r in [
        HedRequest::Upload(vec![UploadFile {
            process_id: "0".into(),
            name: "письмо.pdf".into(),
            mime: "application/pdf".into(),
            content: b"%PDF".to_vec(),
        }]),
        HedRequest::Download(vec!["a".into()]),
        HedRequest::Confirm(vec!["a".into(), "b".into()]),
        HedRequest::GetFileInfo(vec!["a".into()]),
    ] {
        assert_valid(&schemas.hed, &r.to_xml(&creds));
    }
}

#[test]
fn the_schema_check_catches_elements_out_of_order() {
    // Proof that the validation bites: docNo before docDate breaks the XSD's sequence.
    let schemas = EsedoSchemas::new();
    let card: qaqpa_adapter_esedo::LetterCard = serde_json::from_value(card()).expect("card");
    let m = card.to_message(metadata(), vec!["f-1".into()], None);
    let good = payload_of(&envelope_for(&m));
    let date_at = good.find("<docDate>").expect("docDate");
    let date_end = good.find("</docDate>").expect("end") + "</docDate>".len();
    let date = good[date_at..date_end].to_owned();
    let mut bad = good.clone();
    bad.replace_range(date_at..date_end, "");
    let no_end = bad.find("</docNo>").expect("docNo") + "</docNo>".len();
    bad.insert_str(no_end, &date);
    assert!(
        xmllint(&schemas.sync, &bad).is_err(),
        "reordered body passed:\n{bad}"
    );
    let unknown = good.replace("<docNo>", "<docNumber>1</docNumber><docNo>");
    assert!(xmllint(&schemas.sync, &unknown).is_err());
}
