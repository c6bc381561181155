//! The test PKI generator: its files open, its chains validate (ours and OpenSSL's for RSA), its
//! CRL and in-process OCSP responder find the revoked keystores revoked, and its TSA's tokens
//! verify (ours, and `openssl ts -verify` for RSA).

mod common;

use async_trait::async_trait;
use common::*;
use qaqpa_pki::cms::{self, SignOptions};
use qaqpa_pki::network::{fetch_ocsp, fetch_timestamp, timestamp_cms, Fetcher};
use qaqpa_pki::testpki::{KeyKind, TestPki, TEST_PASSWORD};
use qaqpa_pki::validate::StatusSource;
use qaqpa_pki::{
    verify_cms, Bin, CertStatus, Certificate, Crl, Iin, KeyPurpose, Keystore, PkiError, Role,
    UtcTime, Validator, VerifyOptions,
};

/// Routes requests straight to the test PKI's responders (no sockets).
struct InProcess<'a>(&'a TestPki);

#[async_trait]
impl Fetcher for InProcess<'_> {
    async fn get(&self, url: &str) -> Result<Vec<u8>, PkiError> {
        Err(PkiError::Network(format!("no GET in this test: {url}")))
    }
    async fn post(&self, url: &str, _ct: &str, body: Vec<u8>) -> Result<Vec<u8>, PkiError> {
        let kind = if url.contains("gost") {
            KeyKind::Gost2015
        } else {
            KeyKind::Rsa
        };
        let ca = self.0.ca(kind);
        if url.contains("/ocsp/") {
            ca.ocsp_respond(&body, UtcTime::now())
        } else {
            ca.tsa_respond(&body, UtcTime::now())
        }
    }
}

fn open(pki: &TestPki, file: &str) -> Keystore {
    Keystore::from_pkcs12(&read(&pki.dir.join(file)), TEST_PASSWORD)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_pki_validates_and_finds_revoked_keystores_by_crl_and_ocsp() {
    let dir = scratch("testpki");
    let pki = TestPki::generate(&dir).expect("generate");
    let now = UtcTime::now();
    let fetcher = InProcess(&pki);
    for kind in [KeyKind::Rsa, KeyKind::Gost2015] {
        let n = if kind == KeyKind::Rsa { "rsa" } else { "gost" };
        let crl = Crl::from_der(read(&dir.join(format!("qaqpa_{n}_test.crl")))).expect("crl");
        let mut by_crl = Validator::new(pki.trust_store());
        by_crl.add_crl(crl);
        for label in ["individual", "head", "employee_signright", "employee"] {
            for state in ["valid", "revoked"] {
                let ks = open(&pki, &format!("{n}_{label}_{state}.p12"));
                let r = by_crl.validate(ks.certificate(), ks.chain(), now, KeyPurpose::Signing);
                assert_eq!(
                    r.is_valid(),
                    state == "valid",
                    "{n} {label} {state}: {:?}",
                    r.problems
                );
                assert_eq!(
                    matches!(r.status, CertStatus::Revoked { .. }),
                    state == "revoked"
                );
                // The same answer from the OCSP responder, through the network client.
                let issuer = &pki.ca(kind).intermediate;
                let url = ks.certificate().extensions().ocsp_urls[0].clone();
                let resp = fetch_ocsp(&fetcher, &url, ks.certificate(), issuer, now)
                    .await
                    .expect("ocsp");
                let mut by_ocsp = Validator::new(pki.trust_store());
                by_ocsp.add_ocsp_response(resp);
                let r = by_ocsp.validate(ks.certificate(), ks.chain(), now, KeyPurpose::Signing);
                assert_eq!(
                    r.is_valid(),
                    state == "valid",
                    "{n} {label} {state} by OCSP: {:?}",
                    r.problems
                );
                let by_ocsp_source = match &r.status {
                    CertStatus::Good { source } | CertStatus::Revoked { source, .. } => {
                        source.clone()
                    }
                    CertStatus::Unknown { reason } => panic!("{reason}"),
                };
                assert!(matches!(by_ocsp_source, StatusSource::Ocsp { .. }));
            }
        }
    }
}

#[test]
fn generated_rsa_chain_verifies_with_openssl() {
    let dir = scratch("testpki-openssl");
    let _pki = TestPki::generate(&dir).expect("generate");
    let out = dir.join("out.pem");
    openssl_ok(&[
        "pkcs12",
        "-in",
        &path_str(&dir.join("rsa_head_valid.p12")),
        "-passin",
        &format!("pass:{TEST_PASSWORD}"),
        "-nokeys",
        "-clcerts",
        "-out",
        &path_str(&out),
    ]);
    for f in ["rsa_root.cer", "rsa_ca.cer"] {
        openssl_ok(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            &path_str(&dir.join(f)),
            "-out",
            &path_str(&dir.join(format!("{f}.pem"))),
        ]);
    }
    let text = openssl_ok(&[
        "verify",
        "-CAfile",
        &path_str(&dir.join("rsa_root.cer.pem")),
        "-untrusted",
        &path_str(&dir.join("rsa_ca.cer.pem")),
        &path_str(&out),
    ]);
    assert!(text.contains(": OK"), "{text}");
    let crl_text = openssl_ok(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &path_str(&dir.join("qaqpa_rsa_test.crl")),
        "-noout",
        "-text",
    ]);
    assert_eq!(crl_text.matches("Serial Number:").count(), 4, "{crl_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_certificates_carry_iin_bin_role_and_cades_t_verifies() {
    let dir = scratch("testpki-issue");
    let pki = TestPki::generate(&dir).expect("generate");
    let iin = Iin::new("880101300999").expect("iin");
    let bin = Bin::new("990240000111").expect("bin");
    for kind in [KeyKind::Rsa, KeyKind::Gost2015] {
        let ks = pki
            .issue_organisation(
                kind,
                &iin,
                &bin,
                "ТОО \"Қақпа\"",
                "АХМЕТОВ АЛИ",
                Role::FirstHead,
            )
            .expect("issue");
        let info = ks.certificate().subject_info();
        assert_eq!(info.iin.as_ref(), Some(&iin));
        assert_eq!(info.bin.as_ref(), Some(&bin));
        assert_eq!(info.main_role(), Some(&Role::FirstHead));
        assert_eq!(
            ks.signing_key().signature_algorithm(),
            TestPki::algorithm(kind)
        );
        let person = pki.issue_person(kind, &iin, "АХМЕТОВ АЛИ").expect("person");
        assert_eq!(
            person.certificate().subject_info().roles,
            vec![Role::Individual]
        );
        // Sign, time-stamp through the in-process TSA, verify the whole report.
        let fetcher = InProcess(&pki);
        let signed = cms::sign(b"document", &ks, &SignOptions::default()).expect("sign");
        let url = format!(
            "http://127.0.0.1:8480/tsp/{}",
            if kind == KeyKind::Rsa { "rsa" } else { "gost" }
        );
        let stamped = timestamp_cms(&fetcher, &url, &signed)
            .await
            .expect("CAdES-T");
        let mut v = Validator::new(pki.trust_store());
        v.add_crl(Crl::from_der(pki.ca(kind).crl(UtcTime::now(), 1).expect("crl")).expect("parse"));
        let report = verify_cms(&stamped, None, &v, &VerifyOptions::default()).expect("report");
        assert!(report.is_valid(), "{report}");
        assert!(report.signers[0].tsa_time.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_tsa_tokens_verify_with_openssl() {
    let dir = scratch("testpki-tsa");
    let pki = TestPki::generate(&dir).expect("generate");
    let fetcher = InProcess(&pki);
    let token = fetch_timestamp(
        &fetcher,
        "http://x/tsp/rsa",
        b"data",
        qaqpa_pki::SignatureAlgorithm::RsaSha256,
        None,
    )
    .await
    .expect("token");
    std::fs::write(dir.join("t.der"), token.der()).expect("write");
    std::fs::write(dir.join("d.bin"), b"data").expect("write");
    let pem = |c: &Certificate| c.to_pem();
    std::fs::write(
        dir.join("chain.pem"),
        pem(&pki.rsa.root) + &pem(&pki.rsa.intermediate),
    )
    .expect("write");
    openssl_ok(&[
        "ts",
        "-verify",
        "-token_in",
        "-in",
        &path_str(&dir.join("t.der")),
        "-data",
        &path_str(&dir.join("d.bin")),
        "-CAfile",
        &path_str(&dir.join("chain.pem")),
    ]);
    // GOST 2015 tokens carry NCA's policy and verify with ours.
    let token = fetch_timestamp(
        &fetcher,
        "http://x/tsp/gost",
        b"data",
        qaqpa_pki::SignatureAlgorithm::Gost2015_512,
        None,
    )
    .await
    .expect("token");
    assert_eq!(token.info().policy, "1.2.398.3.3.2.6.4");
}

#[test]
fn a_delta_crl_revokes_on_top_of_its_base() {
    let dir = scratch("testpki-delta");
    let pki = TestPki::generate(&dir).expect("generate");
    let ca = pki.ca(KeyKind::Gost2015);
    let ks = pki
        .issue_person(
            KeyKind::Gost2015,
            &Iin::new("900101300123").expect("iin"),
            "ДЕЛЬТА",
        )
        .expect("issue");
    let now = UtcTime::now();
    let base_der = ca.crl(now, 7).expect("base");
    let base = Crl::from_der(base_der).expect("parse");
    assert!(!base.is_delta());
    let number = base
        .number()
        .expect("number")
        .iter()
        .fold(0u64, |a, b| (a << 8) | *b as u64);
    let serial = qaqpa_pki::crl::normalize_serial(ks.certificate().serial()).to_vec();
    let delta = Crl::from_der(
        ca.delta_crl(now, 1, number, &[(serial, UtcTime(now.0 - 10))])
            .expect("delta"),
    )
    .expect("parse");
    assert!(delta.is_delta());
    let mut v = Validator::new(pki.trust_store());
    v.add_crl(base.clone());
    let r = v.validate(ks.certificate(), ks.chain(), now, KeyPurpose::Signing);
    assert!(r.is_valid(), "{:?}", r.problems);
    v.add_crl(delta);
    let r = v.validate(ks.certificate(), ks.chain(), now, KeyPurpose::Signing);
    assert!(
        matches!(
            r.status,
            CertStatus::Revoked {
                source: StatusSource::Crl { delta: true, .. },
                ..
            }
        ),
        "{}",
        r.status
    );
    // A delta for a newer base than ours does not apply.
    let mut v = Validator::new(pki.trust_store());
    v.add_crl(base);
    let serial = qaqpa_pki::crl::normalize_serial(ks.certificate().serial()).to_vec();
    v.add_crl(
        Crl::from_der(
            ca.delta_crl(now, 1, number + 5, &[(serial, UtcTime(now.0 - 10))])
                .expect("d"),
        )
        .expect("p"),
    );
    assert!(v
        .validate(ks.certificate(), ks.chain(), now, KeyPurpose::Signing)
        .is_valid());
}

/// A CRL issued in the second after the instant checked (fetched just now, or from a CA whose
/// clock runs ahead) is current within the allowed clock skew, and not beyond it.
#[test]
fn a_crl_issued_just_after_the_instant_checked_is_current_within_the_clock_skew() {
    use qaqpa_pki::time::CLOCK_SKEW_SECS;
    let dir = scratch("testpki-skew");
    let pki = TestPki::generate(&dir).expect("generate");
    let issued = UtcTime::now();
    let crl = Crl::from_der(pki.ca(KeyKind::Gost2015).crl(issued, 7).expect("crl")).expect("parse");
    assert!(crl.is_current_at(issued));
    assert!(crl.is_current_at(UtcTime(issued.0 - 1)));
    assert!(crl.is_current_at(UtcTime(issued.0 - CLOCK_SKEW_SECS)));
    assert!(!crl.is_current_at(UtcTime(issued.0 - CLOCK_SKEW_SECS - 1)));
    assert!(!crl.is_current_at(UtcTime(issued.0 + 7 * 86_400)));
}
