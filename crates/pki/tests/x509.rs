//! Certificates and CRLs of the real NCA test material: parsed, subject fields extracted, and
//! every signature checked (GOST 2015, GOST 2004, RSA); one flipped byte is rejected.

mod common;

use common::*;
use qaqpa_pki::{Certificate, Crl, Iin, KeyUsage, Keystore, Role, SignatureAlgorithm, UtcTime};

fn cert(rel: &str) -> Certificate {
    Certificate::from_der_or_pem(&read(&nca(rel))).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn crl(rel: &str) -> Crl {
    Crl::from_der_or_pem(&read(&nca(rel))).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn every_nca_certificate_verifies_under_its_issuer() {
    let root = cert("ncanode-go/root_test_gost_2022.cer");
    let inter = cert("ncanode-go/nca_gost2022_test.cer");
    root.verify_issued_by(&root)
        .expect("GOST 2015 root is self-signed");
    inter
        .verify_issued_by(&root)
        .expect("GOST 2015 intermediate");
    cert("ncanode-java/ca/nca_gost2015_test.cer")
        .verify_issued_by(&root)
        .expect("java copy of intermediate");
    cert("gokalkan/gost1.cer")
        .verify_issued_by(&inter)
        .expect("gokalkan");
    for (name, path) in nca_keystores() {
        let ks = Keystore::from_pkcs12(&read(&path), NCA_PASSWORD).expect("open");
        assert_eq!(
            ks.certificate().signature_algorithm().ok(),
            Some(SignatureAlgorithm::Gost2015_512)
        );
        ks.certificate()
            .verify_issued_by(&inter)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let gost2004_ca = cert("ncanode-java/ca/nca_gost_test.crt");
    let ceo = cert("ncanode-java/certs/ceo_valid_sign_2004_gost.cer");
    assert_eq!(
        ceo.signature_algorithm().ok(),
        Some(SignatureAlgorithm::Gost2004)
    );
    ceo.verify_issued_by(&gost2004_ca)
        .expect("GOST 2004 certificate");
    let rsa_ca = cert("ncanode-java/ca/nca_rsa_test.crt");
    for rel in [
        "ncanode-java/certs/individual_valid_sign_2004_rsa.cer",
        "ncanode-java/certs/individual_valid_sign_2004_rsa_auth.cer",
    ] {
        let c = cert(rel);
        assert_eq!(
            c.signature_algorithm().ok(),
            Some(SignatureAlgorithm::RsaSha256)
        );
        c.verify_issued_by(&rsa_ca)
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
    }
}

#[test]
fn every_nca_crl_verifies_under_its_issuer() {
    let inter = cert("ncanode-go/nca_gost2022_test.cer");
    for rel in [
        "ncanode-go/nca_gost2022_test.crl",
        "ncanode-java/crl/nca_gost2022_test.crl",
    ] {
        let c = crl(rel);
        assert!(c.is_issued_by_name(&inter), "{rel}");
        c.verify_signature(&inter)
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
    }
    let c = crl("ncanode-java/crl/nca_gost_test.crl");
    c.verify_signature(&cert("ncanode-java/ca/nca_gost_test.crt"))
        .expect("GOST 2004 CRL");
    let c = crl("ncanode-java/crl/nca_rsa_test.crl");
    c.verify_signature(&cert("ncanode-java/ca/nca_rsa_test.crt"))
        .expect("RSA CRL");
}

#[test]
fn a_flipped_byte_in_a_certificate_or_crl_is_rejected() {
    let root = cert("ncanode-go/root_test_gost_2022.cer");
    let inter_der = read(&nca("ncanode-go/nca_gost2022_test.cer"));
    let mut flipped = 0;
    for pos in (0..inter_der.len()).step_by(7) {
        let mut d = inter_der.clone();
        d[pos] ^= 0x20;
        if let Ok(c) = Certificate::from_der(&d) {
            assert!(c.verify_issued_by(&root).is_err(), "flip at {pos} accepted");
            flipped += 1;
        }
    }
    assert!(
        flipped > 50,
        "too few parseable variants ({flipped}) to mean anything"
    );
    let rsa_ca = cert("ncanode-java/ca/nca_rsa_test.crt");
    let rsa = read(&nca(
        "ncanode-java/certs/individual_valid_sign_2004_rsa.cer",
    ));
    for pos in (0..rsa.len()).step_by(11) {
        let mut d = rsa.clone();
        d[pos] ^= 0x01;
        if let Ok(c) = Certificate::from_der(&d) {
            assert!(
                c.verify_issued_by(&rsa_ca).is_err(),
                "RSA flip at {pos} accepted"
            );
        }
    }
    let inter = cert("ncanode-go/nca_gost2022_test.cer");
    let crl_der = read(&nca("ncanode-go/nca_gost2022_test.crl"));
    for pos in (0..crl_der.len())
        .step_by(23)
        .chain(crl_der.len() - 160..crl_der.len())
    {
        let mut d = crl_der.clone();
        d[pos] ^= 0x04;
        if let Ok(c) = Crl::from_der(d) {
            assert!(
                c.verify_signature(&inter).is_err(),
                "CRL flip at {pos} accepted"
            );
        }
    }
}

#[test]
fn subject_fields_and_validity_are_extracted() {
    let ceo = cert("ncanode-java/certs/ceo_valid_sign_2004_gost.cer");
    let info = ceo.subject_info();
    assert_eq!(info.iin, Some(Iin::new("123456789011").expect("iin")));
    assert_eq!(info.bin.as_ref().map(|b| b.as_str()), Some("123456789021"));
    assert_eq!(info.organisation.as_deref(), Some("АО \"ТЕСТ\""));
    assert_eq!(info.common_name.as_deref(), Some("ТЕСТОВ ТЕСТ"));
    assert_eq!(info.roles, vec![Role::Organisation, Role::FirstHead]);
    assert_eq!(ceo.not_before().to_rfc3339(), "2022-01-18T04:45:35Z");
    assert_eq!(
        ceo.not_before().to_astana(),
        "2022-01-18 09:45:35 (Astana, UTC+5)"
    );
    assert!(ceo
        .extensions()
        .policies
        .iter()
        .any(|p| p.starts_with("1.2.398.3.3.2")));
    assert!(ceo
        .extensions()
        .ocsp_urls
        .iter()
        .any(|u| u.contains("ocsp")));
    let ks = Keystore::from_pkcs12(&read(&nca("ncanode-go/legal/valid/head.p12")), NCA_PASSWORD)
        .expect("open");
    let ku = ks.certificate().extensions().key_usage.expect("key usage");
    assert!(ku.has(KeyUsage::DIGITAL_SIGNATURE) && ku.has(KeyUsage::NON_REPUDIATION));
    assert!(ks.certificate().describe().contains("first head"));
    let _ = UtcTime::now();
}

#[test]
fn the_gost2022_crl_lists_the_revoked_keystores() {
    let c = crl("ncanode-go/nca_gost2022_test.crl");
    assert_eq!(c.this_update().to_rfc3339()[..10], *"2026-08-11");
    let mut listed_valid = Vec::new();
    for (name, path) in nca_keystores() {
        let ks = Keystore::from_pkcs12(&read(&path), NCA_PASSWORD).expect("open");
        let listed = c.find(ks.certificate().serial()).is_some();
        if name.contains("revoked") {
            assert!(listed, "{name} is not on the CRL");
        } else if listed {
            listed_valid.push(name);
        }
    }
    // The published CRL (2026-08-11) also revokes two keystores shipped under valid/:
    // legal/valid/employee (serial 130D7A4B…, revoked 2026-06-02) and legal/valid/infosystem
    // (60954F23…): a fact of the material (checked with `openssl crl -text`), not of our code.
    assert_eq!(
        listed_valid,
        vec![
            "legal/valid/employee".to_string(),
            "legal/valid/infosystem".to_string()
        ]
    );
}
