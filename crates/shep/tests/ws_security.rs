//! WS-Security end to end over loopback with real RSA keys (made by openssl at run time) and the
//! soap crate: the emulator verifies signed requests and refuses others, a tampered signed answer
//! is classified as retry, our endpoint hands the verified signer to the handler, and xmlsec1
//! independently verifies a SendMessage we signed.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{assert_valid, own_schemas, PublicSchemas};
use qaqpa_shep::classify::RetryReason;
use qaqpa_shep::emulator::{EchoService, InjectedFault, ShepEmulator, When};
use qaqpa_shep::server::{
    sync_channel_router, EndpointConfig, HandlerError, SignaturePolicy, SyncChannelHandler,
};
use qaqpa_shep::ws_security::KeyInfoForm;
use qaqpa_shep::*;

struct Identity {
    _dir: tempfile::TempDir,
    cert_path: PathBuf,
    cert_der: Vec<u8>,
    signer: SoapSigner,
}

fn identity(common_name: &str) -> Identity {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/C=KZ/O=Qaqpa ShEP Test/CN={common_name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make test keys (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_pem = std::fs::read_to_string(&key).expect("key");
    let cert_pem = std::fs::read_to_string(&cert).expect("cert");
    let cert_der = qaqpa_soap::cert::pem_to_der(&cert_pem, "CERTIFICATE").expect("cert DER");
    let signer = SoapSigner::rsa_from_pem(&key_pem, &cert_pem).expect("signer");
    Identity {
        _dir: dir,
        cert_path: cert,
        cert_der,
        signer,
    }
}

fn request() -> SyncRequest {
    SyncRequest::new(
        "ECHO",
        SenderInfo::new("qaqpa", None),
        Some(MessageData::text("<ping>Сәлем</ping>")),
    )
    .with_property(Property::new("k", "v").expect("p"))
}

#[tokio::test]
async fn signed_request_verifies_at_the_emulator_and_still_validates_against_the_xsds() {
    let us = identity("qaqpa-client");
    let emu = ShepEmulator::builder()
        .service("ECHO", EchoService)
        .verify_with(Arc::new(SoapVerifier::pinned(vec![us.cert_der.clone()])))
        .start()
        .await
        .expect("emulator");
    for form in [
        KeyInfoForm::KeyIdentifier,
        KeyInfoForm::BinarySecurityToken,
        KeyInfoForm::IssuerSerial,
    ] {
        let signer = us.signer.clone().with_key_info(form);
        let client =
            SyncChannelClient::new(ClientConfig::new(emu.sync_url()).with_signer(Arc::new(signer)))
                .expect("client");
        let response = client
            .send(&request())
            .await
            .unwrap_or_else(|e| panic!("{form:?}: {e}"));
        assert_eq!(response.info.status.code, "SCSS001");
    }
    assert_eq!(emu.request_count("ECHO"), 3);
    // Signing adds a header and leaves the payload valid.
    let signed = us
        .signer
        .sign(&request().to_envelope().expect("builds"))
        .expect("signs");
    assert!(signed.contains("wsse:Security") || signed.contains(":Security"));
    let public = PublicSchemas::new();
    assert_valid(&signed, &public.sync, &own_schemas().sync);
}

#[tokio::test]
async fn unsigned_and_untrusted_requests_are_refused_by_a_verifying_emulator() {
    let trusted = identity("trusted");
    let stranger = identity("stranger");
    let emu = ShepEmulator::builder()
        .service("ECHO", EchoService)
        .verify_with(Arc::new(SoapVerifier::pinned(vec![trusted
            .cert_der
            .clone()])))
        .start()
        .await
        .expect("emulator");
    let unsigned = SyncChannelClient::new(ClientConfig::new(emu.sync_url())).expect("client");
    let outcome = unsigned.exchange(&request()).await;
    assert!(
        matches!(outcome, ShepOutcome::Permanent { ref code, .. } if code == "SIGNATURE_INVALID"),
        "{outcome:?}"
    );
    let untrusted = SyncChannelClient::new(
        ClientConfig::new(emu.sync_url()).with_signer(Arc::new(stranger.signer.clone())),
    )
    .expect("client");
    let outcome = untrusted.exchange(&request()).await;
    assert!(
        matches!(outcome, ShepOutcome::Permanent { ref code, .. } if code == "SIGNATURE_INVALID"),
        "{outcome:?}"
    );
    assert_eq!(
        emu.request_count("ECHO"),
        0,
        "nothing unverified reached a service"
    );
}

#[tokio::test]
async fn bad_response_signature_is_retried_and_a_good_one_accepted() {
    let shep = identity("shep");
    let emu = ShepEmulator::builder()
        .service("ECHO", EchoService)
        .sign_with(Arc::new(shep.signer.clone()))
        .start()
        .await
        .expect("emulator");
    emu.inject("ECHO", InjectedFault::BadResponseSignature, When::Nth(2))
        .expect("inject");
    let client = SyncChannelClient::new(
        ClientConfig::new(emu.sync_url())
            .with_verifier(Arc::new(SoapVerifier::pinned(vec![shep.cert_der.clone()]))),
    )
    .expect("client");
    let first = client
        .send(&request())
        .await
        .expect("signed answer verifies");
    assert_eq!(first.info.status.code, "SCSS001");
    let second = client.send(&request()).await.expect_err("tampered answer");
    assert!(
        matches!(
            second,
            ShepError::Retry {
                reason: RetryReason::BadSignature(_),
                ..
            }
        ),
        "{second:?}"
    );
    // An answer signed by someone else is refused the same way.
    let other = identity("other");
    let strict = SyncChannelClient::new(
        ClientConfig::new(emu.sync_url())
            .with_verifier(Arc::new(SoapVerifier::pinned(vec![other.cert_der]))),
    )
    .expect("client");
    assert!(matches!(
        strict.send(&request()).await,
        Err(ShepError::Retry {
            reason: RetryReason::BadSignature(_),
            ..
        })
    ));
}

#[derive(Default)]
struct Recorder {
    signers: Mutex<Vec<VerifiedSigner>>,
}

#[async_trait]
impl SyncChannelHandler for Recorder {
    async fn handle(
        &self,
        _request: SyncRequest,
        signer: Option<VerifiedSigner>,
    ) -> Result<SyncResponse, HandlerError> {
        let signer = signer.ok_or_else(|| HandlerError::Internal("no signer".into()))?;
        self.signers.lock().expect("lock").push(signer);
        Ok(SyncResponse::success(None))
    }
}

#[tokio::test]
async fn signed_push_reaches_the_handler_with_its_signer_and_a_tampered_one_does_not() {
    let esedo = identity("esedo");
    let recorder = Arc::new(Recorder::default());
    let config = EndpointConfig::new(SignaturePolicy::Required(Arc::new(SoapVerifier::pinned(
        vec![esedo.cert_der.clone()],
    ))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let router = sync_channel_router(recorder.clone(), config);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let client = SyncChannelClient::new(
        ClientConfig::new(url.clone()).with_signer(Arc::new(esedo.signer.clone())),
    )
    .expect("client");
    client.send(&request()).await.expect("accepted");
    {
        let signers = recorder.signers.lock().expect("lock");
        assert_eq!(signers.len(), 1);
        assert_eq!(signers[0].certificate_der, esedo.cert_der);
        assert!(
            signers[0].subject.contains("esedo"),
            "{}",
            signers[0].subject
        );
    }
    // Sign, then alter the Body: refused before the handler.
    let signed = esedo
        .signer
        .sign(&request().to_envelope().expect("builds"))
        .expect("signs");
    let tampered = signed.replacen(
        "<serviceId>ECHO</serviceId>",
        "<serviceId>ECHO2</serviceId>",
        1,
    );
    assert_ne!(signed, tampered);
    let r = reqwest::Client::new()
        .post(&url)
        .body(tampered)
        .send()
        .await
        .expect("answered");
    let status = r.status().as_u16();
    let body = r.text().await.expect("body");
    let outcome = classify_reply(status, None, &body, &XmlLimits::default());
    assert!(
        matches!(outcome, ShepOutcome::Permanent { ref code, .. } if code == "SIGNATURE_INVALID"),
        "{outcome:?}"
    );
    assert_eq!(
        recorder.signers.lock().expect("lock").len(),
        1,
        "the handler saw only the genuine push"
    );
}

#[test]
fn xmlsec1_verifies_a_send_message_we_signed() {
    let us = identity("qaqpa-xmlsec");
    let signed = us
        .signer
        .sign(&request().to_envelope().expect("builds"))
        .expect("signs");
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("signed.xml");
    std::fs::write(&good, &signed).expect("write");
    let run = |file: &std::path::Path| {
        Command::new("xmlsec1")
            .args(["--verify", "--pubkey-cert-pem"])
            .arg(&us.cert_path)
            .args([
                "--id-attr:Id",
                "http://schemas.xmlsoap.org/soap/envelope/:Body",
            ])
            .arg(file)
            .output()
            .expect("xmlsec1 is needed as the independent verifier (Debian package xmlsec1)")
    };
    let out = run(&good);
    assert!(
        out.status.success(),
        "xmlsec1 rejected our signature: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.path().join("tampered.xml");
    std::fs::write(
        &bad,
        signed.replacen("<senderId>qaqpa</senderId>", "<senderId>evil</senderId>", 1),
    )
    .expect("write");
    assert!(
        !run(&bad).status.success(),
        "xmlsec1 accepted a tampered body"
    );
}

#[tokio::test]
async fn async_channel_bad_response_signature_is_retried() {
    let shep = identity("shep-async");
    let emu = ShepEmulator::builder()
        .sign_with(Arc::new(shep.signer.clone()))
        .start()
        .await
        .expect("emulator");
    emu.inject(
        "ESEDO_ASYNC",
        InjectedFault::BadResponseSignature,
        When::Nth(1),
    )
    .expect("inject");
    let client = AsyncChannelClient::new(
        ClientConfig::new(emu.async_url())
            .with_verifier(Arc::new(SoapVerifier::pinned(vec![shep.cert_der.clone()]))),
    )
    .expect("client");
    let m = AsyncMessage::request(
        "ESEDO_ASYNC",
        SenderInfo::new("qaqpa", None),
        MessageData::text("x"),
    );
    let e = client.send_message(&m).await.expect_err("tampered");
    assert!(
        matches!(
            e,
            ShepError::Retry {
                reason: RetryReason::BadSignature(_),
                ..
            }
        ),
        "{e:?}"
    );
    client
        .send_message(&m)
        .await
        .expect("the next, untampered, verifies");
}

#[tokio::test]
async fn emulator_pushes_signed_documents_to_our_endpoint() {
    let shep = identity("shep-push");
    let emu = ShepEmulator::builder()
        .sign_with(Arc::new(shep.signer.clone()))
        .start()
        .await
        .expect("emulator");
    let recorder = Arc::new(Recorder::default());
    let config = EndpointConfig::new(SignaturePolicy::Required(Arc::new(SoapVerifier::pinned(
        vec![shep.cert_der.clone()],
    ))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let router = sync_channel_router(recorder.clone(), config);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let push = SyncRequest::new(
        "ESEDO_UNIVERSAL_SERVICE",
        SenderInfo::new("esedo", None),
        Some(MessageData::text("<docOutgoing/>")),
    );
    let outcome = emu.push_sync(&url, &push).await;
    assert!(
        matches!(outcome, ShepOutcome::Success { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        recorder.signers.lock().expect("lock")[0].certificate_der,
        shep.cert_der
    );
}
