//! Every GOST signature on NCA RK's public test certificates and CRLs verifies with this crate,
//! and one flipped byte (in the signature or in the signed bytes) makes it fail.

mod common;

use common::{parse_signed, read_der};
use qaqpa_gost::{GostAlgorithm, GostError, VerifyingKey};

/// Verifies `signed_file` with the key of `issuer_file` and checks tampering is caught.
fn check(signed_file: &str, issuer_file: &str, expected: GostAlgorithm) {
    let signed = parse_signed(&read_der(signed_file));
    let issuer = parse_signed(&read_der(issuer_file));
    assert_eq!(
        signed.issuer, issuer.subject,
        "{issuer_file} is the issuer of {signed_file}"
    );
    let alg = GostAlgorithm::from_signature_oid(&signed.signature_oid).unwrap_or_else(|| {
        panic!(
            "{signed_file}: unknown signature OID {}",
            signed.signature_oid
        )
    });
    assert_eq!(alg, expected, "{signed_file}");
    let (key_oid, key_bytes) = issuer.subject_key.expect("issuer is a certificate");
    assert_eq!(
        GostAlgorithm::from_key_oid(&key_oid),
        Some(alg),
        "{issuer_file} key OID {key_oid}"
    );
    let key = VerifyingKey::from_nca_public(alg, &key_bytes).expect("issuer key is a curve point");
    assert_eq!(key.to_nca_public(), key_bytes);

    assert_eq!(
        key.verify(&signed.tbs, &signed.signature),
        Ok(()),
        "{signed_file} signature"
    );

    for i in [
        0,
        signed.signature.len() / 2 - 1,
        signed.signature.len() - 1,
    ] {
        let mut bad = signed.signature.clone();
        bad[i] ^= 0x80;
        assert_eq!(
            key.verify(&signed.tbs, &bad),
            Err(GostError::BadSignature),
            "{signed_file}: sig byte {i}"
        );
    }
    let mut bad_tbs = signed.tbs.clone();
    let middle = bad_tbs.len() / 2;
    bad_tbs[middle] ^= 0x01;
    assert_eq!(
        key.verify(&bad_tbs, &signed.signature),
        Err(GostError::BadSignature),
        "{signed_file}: tbs"
    );
}

#[test]
fn gost2015_512_root_is_self_signed() {
    check(
        "ncanode-go/root_test_gost_2022.cer",
        "ncanode-go/root_test_gost_2022.cer",
        GostAlgorithm::Gost2015_512,
    );
}

#[test]
fn gost2015_512_intermediate_is_signed_by_root() {
    check(
        "ncanode-go/nca_gost2022_test.cer",
        "ncanode-go/root_test_gost_2022.cer",
        GostAlgorithm::Gost2015_512,
    );
    check(
        "ncanode-java/ca/nca_gost2015_test.cer",
        "ncanode-go/root_test_gost_2022.cer",
        GostAlgorithm::Gost2015_512,
    );
}

#[test]
fn gost2015_512_crls_are_signed_by_intermediate() {
    check(
        "ncanode-go/nca_gost2022_test.crl",
        "ncanode-go/nca_gost2022_test.cer",
        GostAlgorithm::Gost2015_512,
    );
    check(
        "ncanode-java/crl/nca_gost2022_test.crl",
        "ncanode-go/nca_gost2022_test.cer",
        GostAlgorithm::Gost2015_512,
    );
}

#[test]
fn gokalkan_gost2015_certificate_is_signed_by_intermediate() {
    check(
        "gokalkan/gost1.cer",
        "ncanode-go/nca_gost2022_test.cer",
        GostAlgorithm::Gost2015_512,
    );
}

#[test]
fn gost2004_end_entity_certificate_is_signed_by_its_ca() {
    check(
        "ncanode-java/certs/ceo_valid_sign_2004_gost.cer",
        "ncanode-java/ca/nca_gost_test.crt",
        GostAlgorithm::Gost2004,
    );
}

#[test]
fn gost2004_crl_is_signed_by_its_ca() {
    check(
        "ncanode-java/crl/nca_gost_test.crl",
        "ncanode-java/ca/nca_gost_test.crt",
        GostAlgorithm::Gost2004,
    );
}
