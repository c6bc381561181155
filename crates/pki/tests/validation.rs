//! Validation at an instant: chains to the NCA GOST 2022 test root, revocation by the real CRL,
//! KeyUsage, validity periods, expectations on the signer, the CRL cache, and the real OCSP
//! responses.

mod common;

use common::*;
use qaqpa_pki::cert::Bin;
use qaqpa_pki::validate::{CrlCache, StatusSource};
use qaqpa_pki::{
    CertStatus, Certificate, Crl, KeyPurpose, Keystore, OcspResponse, Role, SignerExpectation,
    TrustStore, UtcTime, Validator,
};

fn at(s: &str) -> UtcTime {
    UtcTime::parse_rfc3339(s).expect("time")
}

fn gost2022_validator() -> Validator {
    let dir = scratch("trust");
    std::fs::copy(
        nca("ncanode-go/root_test_gost_2022.cer"),
        dir.join("root.cer"),
    )
    .expect("copy");
    let mut v = Validator::new(TrustStore::from_dir(&dir).expect("trust dir"));
    v.trust.add_intermediate(
        Certificate::from_der(&read(&nca("ncanode-go/nca_gost2022_test.cer"))).expect("cert"),
    );
    v.add_crl(Crl::from_der(read(&nca("ncanode-go/nca_gost2022_test.crl"))).expect("crl"));
    v
}

#[test]
fn revoked_keystores_are_found_revoked_and_valid_ones_good() {
    let v = gost2022_validator();
    for when in ["2026-08-12T00:00:00Z", "2027-02-06T00:00:00Z"] {
        for (name, path) in nca_keystores() {
            let ks = Keystore::from_pkcs12(&read(&path), NCA_PASSWORD).expect("open");
            let r = v.validate(ks.certificate(), ks.chain(), at(when), KeyPurpose::Signing);
            assert_eq!(r.chain.len(), 3, "{name}: {:?}", r.problems);
            // Two keystores published under valid/ are on the real CRL too (see x509.rs).
            let expect_revoked = name.contains("revoked")
                || name == "legal/valid/employee"
                || name == "legal/valid/infosystem";
            match (&r.status, expect_revoked) {
                (
                    CertStatus::Revoked {
                        source: StatusSource::Crl { delta: false, .. },
                        ..
                    },
                    true,
                ) => {
                    assert!(!r.is_valid());
                    assert!(
                        r.problems.iter().any(|p| p.contains("revoked")),
                        "{name}: {:?}",
                        r.problems
                    );
                }
                (CertStatus::Good { .. }, false) => {
                    assert!(r.is_valid(), "{name}: {:?}", r.problems)
                }
                (s, _) => panic!("{name} at {when}: unexpected status {s}"),
            }
        }
    }
}

#[test]
fn a_stale_crl_gives_unknown_status_not_good() {
    let v = gost2022_validator();
    let ks = Keystore::from_pkcs12(&read(&nca("ncanode-go/legal/valid/head.p12")), NCA_PASSWORD)
        .expect("open");
    let r = v.validate(
        ks.certificate(),
        ks.chain(),
        at("2027-03-01T00:00:00Z"),
        KeyPurpose::Signing,
    );
    assert!(
        matches!(r.status, CertStatus::Unknown { .. }),
        "{}",
        r.status
    );
    assert!(!r.is_valid());
}

#[test]
fn expired_and_untrusted_certificates_are_rejected_with_reasons() {
    let v = gost2022_validator();
    let ks = Keystore::from_pkcs12(&read(&nca("gokalkan/gost1.p12")), NCA_PASSWORD).expect("open");
    let r = v.validate(
        ks.certificate(),
        &[],
        at("2026-09-01T00:00:00Z"),
        KeyPurpose::Any,
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("expired at 2024-11-08")),
        "{:?}",
        r.problems
    );
    // The GOST 2004 certificate has no path to the 2022 root.
    let ceo = Certificate::from_der_or_pem(&read(&nca(
        "ncanode-java/certs/ceo_valid_sign_2004_gost.cer",
    )))
    .expect("cert");
    let r = v.validate(&ceo, &[], at("2022-06-01T00:00:00Z"), KeyPurpose::Signing);
    assert!(
        r.problems.iter().any(|p| p.contains("no trusted issuer")),
        "{:?}",
        r.problems
    );
    // Before notBefore.
    let ks = Keystore::from_pkcs12(
        &read(&nca("ncanode-go/individual/valid/individual_valid.p12")),
        NCA_PASSWORD,
    )
    .expect("open");
    let r = v.validate(
        ks.certificate(),
        &[],
        at("2026-01-01T00:00:00Z"),
        KeyPurpose::Signing,
    );
    assert!(
        r.problems.iter().any(|p| p.contains("not valid before")),
        "{:?}",
        r.problems
    );
}

#[test]
fn a_certificate_without_non_repudiation_cannot_sign() {
    let dir = scratch("ku");
    let mut trust = TrustStore::new();
    let key = dir.join("k.pem");
    let cert = dir.join("c.pem");
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &path_str(&key),
        "-out",
        &path_str(&cert),
        "-days",
        "30",
        "-subj",
        "/CN=Auth only",
        "-addext",
        "keyUsage=critical,digitalSignature",
    ]);
    let c = Certificate::from_der_or_pem(&read(&cert)).expect("cert");
    trust.add_anchor(c.clone());
    let mut v = Validator::new(trust);
    v.allow_unknown_status = true;
    let r = v.validate(&c, &[], UtcTime::now(), KeyPurpose::Signing);
    assert!(
        r.problems.iter().any(|p| p.contains("nonRepudiation")),
        "{:?}",
        r.problems
    );
    assert!(v
        .validate(&c, &[], UtcTime::now(), KeyPurpose::Any)
        .problems
        .is_empty());
}

#[test]
fn signer_expectations_say_exactly_what_is_wrong() {
    let info = |rel: &str| {
        Keystore::from_pkcs12(&read(&nca(rel)), NCA_PASSWORD)
            .expect("open")
            .certificate()
            .subject_info()
    };
    let want = SignerExpectation {
        iin: None,
        bin: Some(Bin::new("123456789021").expect("bin")),
        roles_any: vec![Role::FirstHead, Role::SigningRight],
    };
    assert_eq!(
        want.check(&info("ncanode-go/legal/valid/employee.p12")),
        Err("signer's role is employee (1.2.398.3.3.4.1.2.5); first head or employee with signing right of BIN 123456789021 required".to_string())
    );
    assert_eq!(want.check(&info("ncanode-go/legal/valid/head.p12")), Ok(()));
    assert_eq!(
        want.check(&info("ncanode-go/legal/valid/employee_signright.p12")),
        Ok(())
    );
    let other_bin = SignerExpectation {
        bin: Some(Bin::new("990000000001").expect("bin")),
        ..want.clone()
    };
    assert_eq!(
        other_bin.check(&info("ncanode-go/legal/valid/head.p12")),
        Err("signer's BIN is 123456789021; first head or employee with signing right of BIN 990000000001 required".to_string())
    );
    assert!(want
        .check(&info("ncanode-go/individual/valid/individual_valid.p12"))
        .expect_err("individual")
        .starts_with("signer's BIN is absent"));
}

#[test]
fn the_crl_cache_keeps_a_good_crl_over_empty_invalid_or_stale_downloads() {
    let inter =
        Certificate::from_der(&read(&nca("ncanode-go/nca_gost2022_test.cer"))).expect("cert");
    let good = read(&nca("ncanode-go/nca_gost2022_test.crl"));
    let url = "http://test.pki.gov.kz/crl/nca_gost2022_test.crl";
    let now = at("2026-09-01T00:00:00Z");
    let mut cache = CrlCache::new();
    cache
        .offer(url, good.clone(), &inter, now)
        .expect("good CRL taken");
    assert!(
        cache.offer(url, Vec::new(), &inter, now).is_err(),
        "empty download taken"
    );
    assert!(
        cache
            .offer(url, b"<html>404</html>".to_vec(), &inter, now)
            .is_err(),
        "garbage taken"
    );
    let mut tampered = good.clone();
    let n = tampered.len();
    tampered[n - 10] ^= 1;
    assert!(
        cache.offer(url, tampered, &inter, now).is_err(),
        "bad signature taken"
    );
    assert!(
        cache
            .offer(url, good.clone(), &inter, at("2027-03-01T00:00:00Z"))
            .is_err(),
        "stale taken"
    );
    assert_eq!(cache.get(url).map(|c| c.der().to_vec()), Some(good));
    assert!(cache.is_fresh(url, now));
    assert!(!cache.is_fresh(url, at("2027-03-01T00:00:00Z")));
}

#[test]
fn the_real_nca_ocsp_responses_parse_and_their_signatures_verify() {
    let ca2015 = Certificate::from_der_or_pem(&read(&nca("ncanode-go/nca_gost2022_test.cer")))
        .expect("cert");
    let ca2004 = Certificate::from_der_or_pem(&read(&nca("ncanode-java/ca/nca_gost_test.crt")))
        .expect("cert");
    let ca_rsa = Certificate::from_der_or_pem(&read(&nca("ncanode-java/ca/nca_rsa_test.crt")))
        .expect("cert");
    for (file, ca, revoked) in [
        ("ocsp_response_ceo_2015_revoked.bin", &ca2015, true),
        ("ocsp_response_individual_2015.bin", &ca2015, true),
        ("ocsp_response_ceo_sign_2004_revoked.bin", &ca2004, true),
        ("ocsp_response_individual_sign_2004.bin", &ca_rsa, false),
    ] {
        let der = read(&nca(&format!("ncanode-java/ocsp/{file}")));
        let r = OcspResponse::from_der(&der).unwrap_or_else(|e| panic!("{file}: {e}"));
        let signer = r
            .verify_signature(ca)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_ne!(&signer, ca, "{file}: signed by a delegated responder");
        assert!(r.nonce().is_some(), "{file}: nonce");
        assert_eq!(r.singles().len(), 1);
        assert_eq!(r.singles()[0].hash_oid, "2.16.840.1.101.3.4.2.1");
        assert_eq!(
            matches!(
                r.singles()[0].status,
                qaqpa_pki::ocsp::OcspStatus::Revoked { .. }
            ),
            revoked,
            "{file}"
        );
        // One flipped byte in the signed part breaks the signature.
        let mut bad = der.clone();
        let pos = der
            .windows(r.singles()[0].serial.len())
            .position(|w| w == r.singles()[0].serial.as_slice())
            .expect("serial");
        bad[pos] ^= 1;
        let r2 = OcspResponse::from_der(&bad).expect("still parses");
        assert!(
            r2.verify_signature(ca).is_err(),
            "{file}: tampered response accepted"
        );
    }
}
