//! `/v1/pki/*` over real sockets: a CMS signed with the test PKI's keystores is judged with the
//! chain to the configured roots and revocation asked from the test PKI's loopback OCSP
//! responder; expectations on the signer, tampering and bad input give precise answers.
mod common;

use base64::Engine as _;
use common::Gateway;
use qaqpa::auth::Role;
use qaqpa_pki::cms::{self, SignOptions};
use qaqpa_pki::testpki::TEST_PASSWORD;
use qaqpa_pki::testpki_server::TestPkiServer;
use qaqpa_pki::Keystore;
use serde_json::{json, Value};

const ROUTES: &str = "";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn keystore(dir: &std::path::Path, name: &str) -> Keystore {
    Keystore::from_pkcs12(&std::fs::read(dir.join(name)).expect("p12"), TEST_PASSWORD)
        .expect("opens")
}

async fn setup() -> (TestPkiServer, tempfile::TempDir, Gateway, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPkiServer::start(dir.path(), "127.0.0.1:0")
        .await
        .expect("test PKI");
    let trust = dir.path().to_path_buf();
    let gw = Gateway::start_with(ROUTES, |cfg| cfg.pki.trust_dir = Some(trust)).await;
    let token = gw.key("edms-1", Role::Client).await;
    (pki, dir, gw, token)
}

async fn verify(gw: &Gateway, token: &str, body: &Value) -> (u16, Value) {
    let r = gw.post_json(token, "/v1/pki/cms/verify", body).await;
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_signature_verifies_with_its_signer_role_bin_and_ocsp_status() {
    let (pki, dir, gw, token) = setup().await;
    for family in ["rsa", "gost"] {
        let ks = keystore(dir.path(), &format!("{family}_head_valid.p12"));
        let content = "Письмо № 1".as_bytes();
        let cms = cms::sign(
            content,
            &ks,
            &SignOptions {
                detached: true,
                ..Default::default()
            },
        )
        .expect("signs");
        let (status, report) = verify(
            &gw,
            &token,
            &json!({"cms": b64(&cms), "content": b64(content),
                    "expect": {"bin": "123456789021", "roles": ["first_head", "signing_right"]}}),
        )
        .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["valid"], true, "{family}: {report}");
        let s = &report["signers"][0];
        assert_eq!(s["subject"]["bin"], "123456789021");
        assert_eq!(s["subject"]["iin"], "123456789011");
        assert_eq!(s["subject"]["role"], "first head");
        assert_eq!(s["status"]["state"], "good");
        assert!(
            s["status"]["source"]
                .as_str()
                .unwrap_or("")
                .contains("OCSP"),
            "{s}"
        );
        assert!(s["certificate"]["not_after_astana"]
            .as_str()
            .unwrap_or("")
            .contains("Astana"));
    }
    let ocsp_served = pki.counts().ocsp.load(std::sync::atomic::Ordering::Relaxed);
    assert!(ocsp_served >= 2);
    // Each OCSP question is journalled as an exchange with the responder, in the transaction
    // of the verdict it served.
    assert!(gw.state.audit.flush().await.stored);
    let journal = gw.state.audit.store().expect("journal");
    let of_kind = |kind: &str| {
        let filter = qaqpa_audit::AuditFilter {
            kind: Some(kind.into()),
            ..Default::default()
        };
        let journal = journal.clone();
        async move {
            journal
                .query(&filter, None, 100)
                .await
                .expect("query")
                .records
        }
    };
    let verdicts = of_kind("SIG_VERIFY").await;
    let asked: Vec<_> = of_kind("EXCHANGE")
        .await
        .into_iter()
        .filter(|rec| {
            matches!(&rec.event.kind, qaqpa_audit::EventKind::Exchange(x)
                if x.service_id.as_deref() == Some("OCSP")
                    && x.target == pki.addr().to_string()
                    && x.result == qaqpa_audit::ExchangeResult::Http(200))
        })
        .collect();
    assert_eq!(asked.len() as u64, ocsp_served, "{asked:#?}");
    assert!(
        asked.iter().all(|rec| verdicts
            .iter()
            .any(|v| v.event.transaction_id == rec.event.transaction_id
                && v.event.transaction_id.is_some())),
        "{asked:#?}\n{verdicts:#?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_wrong_role_and_tampered_signatures_are_invalid_with_the_reason() {
    let (_pki, dir, gw, token) = setup().await;
    let content = b"letter body";
    let sign = |name: &str| {
        cms::sign(
            content,
            &keystore(dir.path(), name),
            &SignOptions::default(),
        )
        .expect("signs")
    };
    // Revoked signer.
    let (_, report) = verify(
        &gw,
        &token,
        &json!({"cms": b64(&sign("rsa_head_revoked.p12"))}),
    )
    .await;
    assert_eq!(report["valid"], false, "{report}");
    assert_eq!(
        report["signers"][0]["status"]["state"], "revoked",
        "{report}"
    );
    // A plain employee where the first head or signing right is required.
    let (_, report) = verify(
        &gw,
        &token,
        &json!({"cms": b64(&sign("gost_employee_valid.p12")),
                "expect": {"roles": ["first_head", "signing_right"]}}),
    )
    .await;
    assert_eq!(report["valid"], false, "{report}");
    let problems = report["signers"][0]["problems"].to_string();
    assert!(problems.contains("first head"), "{problems}");
    // One flipped byte of the attached content.
    let mut cms = sign("rsa_employee_signright_valid.p12");
    let at = cms
        .windows(content.len())
        .position(|w| w == content)
        .expect("content inside");
    cms[at] ^= 1;
    let (_, report) = verify(&gw, &token, &json!({"cms": b64(&cms)})).await;
    assert_eq!(report["valid"], false, "{report}");
    assert!(
        report["signers"][0]["problems"]
            .to_string()
            .contains("signature"),
        "{report}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_info_names_iin_bin_roles_and_judges_it_on_request() {
    let (_pki, dir, gw, token) = setup().await;
    let ks = keystore(dir.path(), "gost_employee_signright_valid.p12");
    let r = gw
        .post_json(
            &token,
            "/v1/pki/x509/info",
            &json!({"certificate": b64(ks.certificate().der()), "validate": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.expect("json");
    assert_eq!(info["subject"]["bin"], "123456789021", "{info}");
    assert!(
        info["subject"]["roles"]
            .to_string()
            .contains("signing_right"),
        "{info}"
    );
    assert_eq!(info["validation"]["valid"], true, "{info}");
    assert_eq!(info["validation"]["status"]["state"], "good", "{info}");
    // PEM works too; without `validate` there is no verdict.
    let r = gw
        .post_json(
            &token,
            "/v1/pki/x509/info",
            &json!({"certificate": ks.certificate().to_pem()}),
        )
        .await;
    let info: Value = r.json().await.expect("json");
    assert!(info["validation"].is_null(), "{info}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_missing_credentials_get_precise_problems() {
    let (_pki, _dir, gw, token) = setup().await;
    let (status, p) = verify(&gw, &token, &json!({"cms": "%%%not base64"})).await;
    assert_eq!(status, 422);
    assert_eq!(p["errors"][0]["pointer"], "/cms", "{p}");
    let (status, p) = verify(&gw, &token, &json!({"cms": b64(b"not a cms at all")})).await;
    assert_eq!(status, 422, "{p}");
    let (status, p) = verify(
        &gw,
        &token,
        &json!({"cms": b64(b"x"), "expect": {"roles": ["boss"]}}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(p["errors"][0]["pointer"], "/expect/roles/0", "{p}");
    let (status, p) = verify(&gw, &token, &json!({"cms": b64(b"x"), "extra": 1})).await;
    assert_eq!(status, 422, "{p}");
    let r = gw
        .http
        .post(format!("{}/v1/pki/x509/info", gw.url))
        .json(&json!({"certificate": "AA=="}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    gw.stop().await;
}
