//! The generic ШЭП adapter against the ШЭП emulator over loopback: configuration only, the right
//! Failure for each fault, the stable messageId across attempts, calls and pushes.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use qaqpa_adapter_shep::ShepAdapter;
use qaqpa_core::adapter::toml_value::Table;
use qaqpa_core::{
    Adapter, AttachmentSource, Call, ClientId, Cx, ExchangeMeter, Failure, Inbound, MessageId,
    Outgoing, PushOutcome,
};
use qaqpa_shep::emulator::{EchoService, InjectedFault, ServiceAnswer, ShepEmulator, When};
use qaqpa_shep::{ErrorInfo, FaultCode, MessageData, Property, SenderInfo, SyncRequest};
use serde_json::json;

struct NoAttachments;

#[async_trait]
impl AttachmentSource for NoAttachments {
    async fn read(&self, index: usize) -> Result<Bytes, Failure> {
        Err(Failure::permanent(
            "no_attachment",
            format!("no attachment {index}"),
        ))
    }
}

fn settings(emu: &ShepEmulator, service: &str, extra: serde_json::Value) -> Table {
    let mut t = json!({
        "endpoint": emu.sync_url(),
        "service_id": service,
        "sender_id": "qaqpa",
        "route_id": "R_TEST",
        "timeout_secs": 5,
        "properties": { "lang": "ru" },
        "require_signed_pushes": false,
    });
    if let (Some(obj), Some(extra)) = (t.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    t.as_object().cloned().unwrap_or_default()
}

/// A meter for the attempts whose sizes a test does not read.
static UNREAD: ExchangeMeter = ExchangeMeter::new();

fn cx<'a>(settings: &'a Table, attachments: &'a NoAttachments, deadline: Duration) -> Cx<'a> {
    metered(settings, attachments, deadline, &UNREAD)
}

fn metered<'a>(
    settings: &'a Table,
    attachments: &'a NoAttachments,
    deadline: Duration,
    meter: &'a ExchangeMeter,
) -> Cx<'a> {
    Cx {
        deadline: Instant::now() + deadline,
        settings,
        attachments,
        transaction_id: "tx-1",
        meter,
    }
}

fn outgoing(document: serde_json::Value) -> Outgoing {
    Outgoing {
        id: MessageId::new(),
        client: ClientId("edms".into()),
        kind: "shep.send".into(),
        to: "target".into(),
        document,
        attachments: Vec::new(),
        signatures: Vec::new(),
        created_at: time::OffsetDateTime::now_utc(),
        attempt: 1,
        transaction_id: "tx-1".into(),
    }
}

async fn emulator() -> ShepEmulator {
    ShepEmulator::builder()
        .service("ECHO", EchoService)
        .service("GbdulInfoByBin_v2", |r: &SyncRequest| {
            let bin = r
                .data
                .as_ref()
                .map(|d| d.as_text().to_owned())
                .unwrap_or_default();
            if bin.contains("<BIN>000000000000</BIN>") {
                ServiceAnswer::BusinessError("БИН не найден".into())
            } else {
                ServiceAnswer::Data(Some(MessageData::text(
                    "<Organization><BIN>123456789012</BIN></Organization>",
                )))
            }
        })
        .start()
        .await
        .expect("emulator")
}

#[tokio::test]
async fn deliver_sends_our_message_id_and_route_settings() {
    let emu = emulator().await;
    let s = settings(&emu, "ECHO", json!({}));
    let adapter = ShepAdapter::default();
    let a = NoAttachments;
    let msg =
        outgoing(json!({ "data": "<letter>Привет</letter>", "properties": { "docKind": "01" } }));
    adapter.validate(&msg, &s).expect("valid");
    let meter = ExchangeMeter::new();
    let delivered = adapter
        .deliver(&msg, &metered(&s, &a, Duration::from_secs(10), &meter))
        .await
        .expect("delivered");
    assert!(delivered.target_ref.is_some());
    // The exchange's sizes on the wire, as the emulator received and answered them: whole
    // envelopes, each carrying the letter.
    let letter = "<letter>Привет</letter>".len() as u64;
    let wire = emu.wire_sizes();
    assert_eq!(wire.len(), 1, "{wire:?}");
    assert_eq!(
        meter.sizes(),
        (Some(wire[0].request_bytes), wire[0].response_bytes)
    );
    assert!(wire[0].request_bytes > letter + 200, "{wire:?}");
    assert!(
        wire[0].response_bytes.is_some_and(|n| n > letter + 200),
        "{wire:?}"
    );
    assert_eq!(delivered.receipts[0].data["status_code"], "SCSS001");
    assert_eq!(
        delivered.receipts[0].data["data"],
        "<letter>Привет</letter>"
    );
    let got = emu.received("ECHO");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].info.message_id,
        msg.id.to_string(),
        "messageId is our stable id"
    );
    assert_eq!(got[0].info.route_id.as_deref(), Some("R_TEST"));
    assert_eq!(got[0].info.sender, SenderInfo::new("qaqpa", None));
    assert_eq!(
        got[0].info.properties,
        vec![
            Property::new("docKind", "01").expect("p"),
            Property::new("lang", "ru").expect("p")
        ]
    );
    // A second attempt carries the same messageId.
    adapter
        .deliver(&msg, &cx(&s, &a, Duration::from_secs(10)))
        .await
        .expect("again");
    assert_eq!(emu.received("ECHO")[1].info.message_id, msg.id.to_string());
}

#[tokio::test]
async fn scse002_fails_permanently_and_scse003_is_retried() {
    let emu = emulator().await;
    emu.inject(
        "ECHO",
        InjectedFault::Scse002("Неверный номер".into()),
        When::Nth(1),
    )
    .expect("inject");
    emu.inject("ECHO", InjectedFault::Scse003("NPE".into()), When::Nth(2))
        .expect("inject");
    let s = settings(&emu, "ECHO", json!({}));
    let adapter = ShepAdapter::default();
    let a = NoAttachments;
    let msg = outgoing(json!({ "data": "x" }));
    let first = adapter
        .deliver(&msg, &cx(&s, &a, Duration::from_secs(10)))
        .await
        .expect_err("fails");
    assert_eq!(first, Failure::permanent("SCSE002", "Неверный номер"));
    let second = adapter
        .deliver(&msg, &cx(&s, &a, Duration::from_secs(10)))
        .await
        .expect_err("fails");
    assert!(second.is_retry(), "{second:?}");
    assert!(adapter
        .deliver(&msg, &cx(&s, &a, Duration::from_secs(10)))
        .await
        .is_ok());
}

#[tokio::test]
async fn failed_exchanges_are_measured_a_fault_and_an_error_answer_included() {
    let emu = emulator().await;
    emu.inject(
        "ECHO",
        InjectedFault::SoapFault {
            code: FaultCode::Server,
            error_info: Some(ErrorInfo::new("SCSE003", "Внутренняя ошибка сервиса")),
        },
        When::Nth(1),
    )
    .expect("inject");
    emu.inject("ECHO", InjectedFault::Http(503), When::Nth(2))
        .expect("inject");
    emu.inject(
        "ECHO",
        InjectedFault::Scse002("Неверный номер".into()),
        When::Nth(3),
    )
    .expect("inject");
    let s = settings(&emu, "ECHO", json!({}));
    let adapter = ShepAdapter::default();
    let a = NoAttachments;
    let msg = outgoing(json!({ "data": "<letter>Привет</letter>" }));
    for n in 0..3 {
        let meter = ExchangeMeter::new();
        let f = adapter
            .deliver(&msg, &metered(&s, &a, Duration::from_secs(10), &meter))
            .await
            .expect_err("fails");
        // What the emulator received and answered, counted on its side.
        let wire = emu.wire_sizes();
        assert_eq!(wire.len(), n + 1, "{wire:?}");
        let seen = &wire[n];
        assert!(
            seen.response_bytes.is_some_and(|b| b > 0),
            "the answer has a body: {seen:?}"
        );
        assert_eq!(
            meter.sizes(),
            (Some(seen.request_bytes), seen.response_bytes),
            "exchange {n} ({f:?})"
        );
    }
}

#[tokio::test]
async fn a_request_left_unanswered_is_measured_as_sent_with_no_answer() {
    let emu = emulator().await;
    emu.inject(
        "ECHO",
        InjectedFault::Slow(Duration::from_secs(3)),
        When::Always,
    )
    .expect("inject");
    let s = settings(&emu, "ECHO", json!({}));
    let adapter = ShepAdapter::default();
    let a = NoAttachments;
    let msg = outgoing(json!({ "data": "<letter>Привет</letter>" }));
    let meter = ExchangeMeter::new();
    let f = adapter
        .deliver(&msg, &metered(&s, &a, Duration::from_millis(300), &meter))
        .await
        .expect_err("slow");
    assert!(f.is_retry(), "{f:?}");
    assert_eq!(emu.request_count("ECHO"), 1, "the request arrived");
    let (sent, received) = meter.sizes();
    let letter = "<letter>Привет</letter>".len() as u64;
    assert!(sent.is_some_and(|n| n > letter + 200), "{sent:?}");
    assert_eq!(received, None);
}

#[tokio::test]
async fn timeout_at_a_target_without_dedup_is_not_resent() {
    let emu = emulator().await;
    emu.inject(
        "ECHO",
        InjectedFault::Slow(Duration::from_secs(3)),
        When::Always,
    )
    .expect("inject");
    let adapter = ShepAdapter::default();
    let a = NoAttachments;
    let msg = outgoing(json!({ "data": "x" }));
    // The deadline (300 ms) is shorter than the route's timeout: it wins.
    let dedup = settings(&emu, "ECHO", json!({}));
    let f = adapter
        .deliver(&msg, &cx(&dedup, &a, Duration::from_millis(300)))
        .await
        .expect_err("slow");
    assert!(
        f.is_retry(),
        "a deduplicating target may get it again: {f:?}"
    );
    let no_dedup = settings(&emu, "ECHO", json!({ "target_dedups": false }));
    let f = adapter
        .deliver(&msg, &cx(&no_dedup, &a, Duration::from_millis(300)))
        .await
        .expect_err("slow");
    assert!(
        matches!(f, Failure::Permanent { ref code, .. } if code == "SHEP_OUTCOME_UNKNOWN"),
        "{f:?}"
    );
}

#[tokio::test]
async fn call_returns_the_services_answer_and_its_refusal() {
    let emu = emulator().await;
    let s = settings(&emu, "GbdulInfoByBin_v2", json!({}));
    let adapter = ShepAdapter::default();
    let a = NoAttachments;
    let answer = adapter
        .call(
            Call {
                service: "company".into(),
                params: json!({ "data": "<BIN>123456789012</BIN>" }),
            },
            &cx(&s, &a, Duration::from_secs(10)),
        )
        .await
        .expect("answer");
    assert_eq!(answer.body["status"]["code"], "SCSS001");
    assert_eq!(
        answer.body["data"],
        "<Organization><BIN>123456789012</BIN></Organization>"
    );
    let refused = adapter
        .call(
            Call {
                service: "company".into(),
                params: json!({ "data": "<BIN>000000000000</BIN>" }),
            },
            &cx(&s, &a, Duration::from_secs(10)),
        )
        .await
        .expect_err("refused");
    assert_eq!(refused, Failure::permanent("SCSE002", "БИН не найден"));
}

#[tokio::test]
async fn settings_and_documents_are_checked_with_the_offending_key() {
    let emu = emulator().await;
    let adapter = ShepAdapter::default();
    let unknown = settings(&emu, "ECHO", json!({ "servce_id": "typo" }));
    let e = adapter.check_settings(&unknown).expect_err("unknown key");
    assert!(e.message.contains("servce_id"), "{e}");
    let long_prop = settings(
        &emu,
        "ECHO",
        json!({ "properties": { "k": "v".repeat(501) } }),
    );
    let e = adapter.check_settings(&long_prop).expect_err("too long");
    assert_eq!(e.field, "settings.properties.k");
    let signed = settings(&emu, "ECHO", json!({ "require_signed_pushes": true }));
    assert!(
        adapter.check_settings(&signed).is_err(),
        "no verifier, signed pushes required"
    );
    let missing_env = settings(
        &emu,
        "ECHO",
        json!({ "sender_password_env": "QAQPA_TEST_NO_SUCH_VAR" }),
    );
    assert!(adapter.check_settings(&missing_env).is_err());
    assert!(adapter
        .check_settings(&settings(&emu, "ECHO", json!({})))
        .is_ok());

    let s = settings(&emu, "ECHO", json!({ "data_type": "xml" }));
    let e = adapter
        .validate(&outgoing(json!({ "data": "<a><b></a>" })), &s)
        .expect_err("not xml");
    assert_eq!(e.field, "/document/data");
    let e = adapter
        .validate(&outgoing(json!({ "text": "x" })), &s)
        .expect_err("no data");
    assert_eq!(e.field, "/document");
    assert!(adapter
        .validate(&outgoing(json!({ "data": "<a>1</a>" })), &s)
        .is_ok());
}

#[tokio::test]
async fn push_becomes_an_inbox_document() {
    let emu = emulator().await;
    let s = settings(&emu, "ECHO", json!({}));
    let adapter = ShepAdapter::default();
    let a = NoAttachments;
    let push = SyncRequest::new(
        "ESEDO_UNIVERSAL_SERVICE",
        SenderInfo::new("esedo", None),
        Some(MessageData::text("<doc/>")),
    )
    .with_message_id("doc-guid-1")
    .with_property(Property::new("activityId", "42").expect("p"))
    .to_envelope()
    .expect("builds");
    let outcome = adapter
        .on_push(
            Inbound {
                content_type: "text/xml".into(),
                body: Bytes::from(push),
                received_at: time::OffsetDateTime::now_utc(),
            },
            &cx(&s, &a, Duration::from_secs(5)),
        )
        .await
        .expect("parsed");
    match outcome {
        PushOutcome::Document {
            external_id,
            kind,
            from,
            document,
            ..
        } => {
            assert_eq!(external_id, "doc-guid-1");
            assert_eq!(kind, "ESEDO_UNIVERSAL_SERVICE");
            assert_eq!(from, "esedo");
            assert_eq!(document["data"], "<doc/>");
            assert_eq!(document["properties"]["activityId"], "42");
        }
        other => panic!("expected a document, got {other:?}"),
    }
    // Signed pushes required and no verifier: refused, never accepted unchecked.
    let strict = settings(&emu, "ECHO", json!({ "require_signed_pushes": true }));
    let f = adapter
        .on_push(
            Inbound {
                content_type: "text/xml".into(),
                body: Bytes::from_static(b"<x/>"),
                received_at: time::OffsetDateTime::now_utc(),
            },
            &cx(&strict, &a, Duration::from_secs(5)),
        )
        .await
        .expect_err("refused");
    assert!(matches!(f, Failure::Permanent { ref code, .. } if code == "SIGNATURE_UNCHECKED"));
}

fn rsa_identity(cn: &str) -> (qaqpa_shep::SoapSigner, Vec<u8>) {
    let dir = tempfile::tempdir().expect("dir");
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make test keys (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_pem = std::fs::read_to_string(&key).expect("key");
    let cert_pem = std::fs::read_to_string(&cert).expect("cert");
    let der = qaqpa_soap::cert::pem_to_der(&cert_pem, "CERTIFICATE").expect("der");
    (
        qaqpa_shep::SoapSigner::rsa_from_pem(&key_pem, &cert_pem).expect("signer"),
        der,
    )
}

#[tokio::test]
async fn signed_delivery_and_verified_pushes() {
    use qaqpa_shep::{EnvelopeSigner, SoapVerifier};
    use std::sync::Arc;
    let (ours, our_cert) = rsa_identity("qaqpa");
    let (theirs, their_cert) = rsa_identity("shep");
    let emu = ShepEmulator::builder()
        .service("ECHO", EchoService)
        .verify_with(Arc::new(SoapVerifier::pinned(vec![our_cert])))
        .sign_with(Arc::new(theirs.clone()))
        .start()
        .await
        .expect("emulator");
    let adapter = ShepAdapter::new(
        Some(Arc::new(ours)),
        Some(Arc::new(SoapVerifier::pinned(vec![their_cert]))),
    );
    let s = settings(&emu, "ECHO", json!({ "require_signed_pushes": true }));
    adapter
        .check_settings(&s)
        .expect("a verifier is configured");
    let a = NoAttachments;
    let msg = outgoing(json!({ "data": "<signed/>" }));
    let meter = ExchangeMeter::new();
    adapter
        .deliver(&msg, &metered(&s, &a, Duration::from_secs(10), &meter))
        .await
        .expect("signed both ways");
    // The sizes are of the bodies as sent and received, signatures included: the smallest
    // certificate alone is longer than 500 bytes of base64.
    let unsigned_request = SyncRequest::new("ECHO", SenderInfo::new("qaqpa", None), None)
        .to_envelope()
        .expect("builds")
        .len() as u64;
    let (sent, received) = meter.sizes();
    assert!(
        sent.is_some_and(|n| n > unsigned_request + 500),
        "{sent:?} against {unsigned_request} unsigned"
    );
    let wire = emu.wire_sizes();
    assert_eq!(
        (sent, received),
        (Some(wire[0].request_bytes), wire[0].response_bytes),
        "{wire:?}"
    );
    assert_eq!(emu.request_count("ECHO"), 1);
    // An unsigned adapter is refused by the verifying ШЭП: permanent.
    let unsigned = ShepAdapter::default();
    let f = unsigned
        .deliver(&msg, &cx(&s, &a, Duration::from_secs(10)))
        .await
        .expect_err("refused");
    assert!(
        matches!(f, Failure::Permanent { ref code, .. } if code == "SIGNATURE_INVALID"),
        "{f:?}"
    );
    // Pushes: signed by ШЭП's key is accepted; altered after signing is refused.
    let push = SyncRequest::new(
        "ESEDO_UNIVERSAL_SERVICE",
        SenderInfo::new("esedo", None),
        Some(MessageData::text("<doc/>")),
    )
    .to_envelope()
    .expect("builds");
    let signed = theirs.sign(&push).expect("signs");
    let inbound = |body: String| Inbound {
        content_type: "text/xml".into(),
        body: Bytes::from(body),
        received_at: time::OffsetDateTime::now_utc(),
    };
    assert!(matches!(
        adapter
            .on_push(inbound(signed.clone()), &cx(&s, &a, Duration::from_secs(5)))
            .await,
        Ok(PushOutcome::Document { .. })
    ));
    let altered = signed.replacen("&lt;doc/&gt;", "&lt;evil/&gt;", 1);
    assert_ne!(altered, signed);
    let f = adapter
        .on_push(inbound(altered), &cx(&s, &a, Duration::from_secs(5)))
        .await
        .expect_err("refused");
    assert!(
        matches!(f, Failure::Permanent { ref code, .. } if code == "SIGNATURE_INVALID"),
        "{f:?}"
    );
}
