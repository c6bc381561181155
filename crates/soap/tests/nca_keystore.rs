//! WS-Security with a real NCA RK GOST 34.10-2015 (512) test keystore, read by qaqpa-pki:
//! signed by us, verified by us; tampering and another certificate are refused. The keystore
//! is the public test material in ../shared/specs (never copied into the project).
#![cfg(feature = "gost")]

mod common;

use qaqpa_pki::{Keystore, PrivateKey};
use qaqpa_soap::{
    sign_envelope, verify_envelope, GostSigner, KeyInfoForm, PinnedCertificates, VerifyError,
    VerifyOptions, WsSecurityOptions,
};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn specs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs")
}

fn keystore(relative: &str) -> Keystore {
    let path = specs().join(relative);
    let data = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "NCA test keystore {} is missing ({e}); it is public test material expected in \
             ../shared/specs beside the project",
            path.display()
        )
    });
    Keystore::from_pkcs12(&data, "Qwerty12").expect("the NCA test keystore opens with Qwerty12")
}

fn gost_signer(ks: &Keystore) -> GostSigner {
    let PrivateKey::Gost(key) = ks.signing_key() else {
        panic!("head.p12 should hold a GOST key");
    };
    let copy = qaqpa_gost::SigningKey::from_nca_private(key.algorithm(), &key.to_nca_private())
        .expect("key copies");
    GostSigner::new(copy, ks.certificate().der()).expect("certificate matches key")
}

/// 2026-11-01T00:00:00Z: inside the test certificates' validity (2026-05-08 … 2027-05-08).
fn inside_validity() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_793_491_200)
}

#[test]
fn nca_gost_2015_keystore_signs_ws_security_that_verifies() {
    let ks = keystore("nca/ncanode-go/legal/valid/head.p12");
    let signer = gost_signer(&ks);
    let cert = ks.certificate().der().to_vec();
    let trust = PinnedCertificates::new(vec![cert.clone()]);
    let opts = VerifyOptions {
        at: Some(inside_validity()),
        known_certificates: vec![cert.clone()],
        ..VerifyOptions::default()
    };
    for form in [
        KeyInfoForm::KeyIdentifier,
        KeyInfoForm::IssuerSerial,
        KeyInfoForm::BinarySecurityToken,
    ] {
        let wo = WsSecurityOptions {
            key_info: form,
            ..WsSecurityOptions::default()
        };
        let signed = sign_envelope(common::send_message_envelope(1024).as_bytes(), &signer, &wo)
            .expect("signs");
        let text = String::from_utf8_lossy(&signed).into_owned();
        assert!(text.contains(
            "urn:ietf:params:xml:ns:pkigovkz:xmlsec:algorithms:gostr34102015-gostr34112015-512"
        ));
        let v = verify_envelope(&signed, &trust, &opts).unwrap_or_else(|e| panic!("{form:?}: {e}"));
        assert_eq!(v.signers, vec![cert.clone()]);
        let tampered = text.replace("GbdulInfoByBin_v2", "GbdulInfoByBin_v9");
        let err = verify_envelope(tampered.as_bytes(), &trust, &opts).err();
        assert!(
            matches!(err, Some(VerifyError::DigestMismatch(_))),
            "{form:?}: {err:?}"
        );
    }
    // The employee's certificate is not the signer's.
    let other = keystore("nca/ncanode-go/legal/valid/employee.p12");
    let signed = sign_envelope(
        common::send_message_envelope(64).as_bytes(),
        &signer,
        &Default::default(),
    )
    .expect("signs");
    let only_other = PinnedCertificates::new(vec![other.certificate().der().to_vec()]);
    let err = verify_envelope(&signed, &only_other, &opts).err();
    assert!(matches!(err, Some(VerifyError::Untrusted(_))), "{err:?}");
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn der_oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().expect("arc")).collect();
    let mut body = Vec::new();
    for arc in std::iter::once(arcs[0] * 40 + arcs[1]).chain(arcs[2..].iter().copied()) {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            chunk.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        body.extend(chunk.iter().rev());
    }
    der(0x06, &body)
}

#[test]
fn nca_gost_signature_value_verifies_with_openssl_gost_engine() {
    use base64::Engine;
    let ks = keystore("nca/ncanode-go/legal/valid/head.p12");
    let signer = gost_signer(&ks);
    let signed = sign_envelope(
        common::send_message_envelope(256).as_bytes(),
        &signer,
        &Default::default(),
    )
    .expect("signs");
    let doc = qaqpa_soap::xml::parse_bytes(&signed, &Default::default()).expect("parses");
    let signed_info = doc
        .descendants()
        .find(|n| n.tag_name().name() == "SignedInfo")
        .expect("SignedInfo");
    let canonical =
        qaqpa_soap::Canonicalizer::new(qaqpa_soap::C14nMethod::Exclusive).subtree(signed_info);
    let value = doc
        .descendants()
        .find(|n| n.tag_name().name() == "SignatureValue")
        .and_then(|n| n.text())
        .expect("SignatureValue");
    let signature = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .expect("base64");

    // The certificate's key under the Russian OIDs (TC26 512 paramSetA, Streebog-512), and the
    // signature in RFC 4491 order: what OpenSSL's GOST engine understands.
    let info = qaqpa_soap::cert::CertificateInfo::from_der(ks.certificate().der()).expect("cert");
    let qaqpa_soap::cert::PublicKey::Gost { x_le_y_le, .. } = info.public_key else {
        panic!("GOST key expected");
    };
    let params = der(
        0x30,
        &[der_oid("1.2.643.7.1.2.1.2.1"), der_oid("1.2.643.7.1.1.2.3")].concat(),
    );
    let alg = der(0x30, &[der_oid("1.2.643.7.1.1.1.2"), params].concat());
    let mut bits = vec![0u8];
    bits.extend(der(0x04, &x_le_y_le));
    let spki = der(0x30, &[alg, der(0x03, &bits)].concat());
    let dir = tempfile::tempdir().expect("tmp");
    let (public, data, sig) = (
        dir.path().join("pub.der"),
        dir.path().join("si.bin"),
        dir.path().join("sig.bin"),
    );
    std::fs::write(&public, spki).expect("write");
    std::fs::write(&data, &canonical).expect("write");
    let engine_verifies = |signature: &[u8]| {
        std::fs::write(&sig, qaqpa_gost::nca_signature_to_rfc4491(signature)).expect("write");
        let out = std::process::Command::new("openssl")
            .args([
                "dgst",
                "-engine",
                "gost",
                "-md_gost12_512",
                "-keyform",
                "DER",
                "-verify",
            ])
            .arg(&public)
            .arg("-signature")
            .arg(&sig)
            .arg(&data)
            .output()
            .expect("openssl with libengine-gost-openssl must be installed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("invalid engine"),
            "install libengine-gost-openssl: {stderr}"
        );
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
    };
    assert!(
        engine_verifies(&signature),
        "OpenSSL's GOST engine rejects our XML signature value"
    );
    let mut bad = signature.clone();
    bad[3] ^= 1;
    assert!(
        !engine_verifies(&bad),
        "OpenSSL's GOST engine accepts a corrupted signature"
    );
}

fn pki_trust() -> qaqpa_soap::PkiTrust {
    let read = |relative: &str| {
        let path = specs().join(relative);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{} is missing ({e})", path.display()))
    };
    let mut store = qaqpa_pki::TrustStore::new();
    store.add_anchor(
        qaqpa_pki::Certificate::from_der_or_pem(&read("nca/ncanode-go/root_test_gost_2022.cer"))
            .expect("root"),
    );
    store.add_intermediate(
        qaqpa_pki::Certificate::from_der_or_pem(&read("nca/ncanode-go/nca_gost2022_test.cer"))
            .expect("intermediate"),
    );
    let mut validator = qaqpa_pki::Validator::new(store);
    validator.add_crl(
        qaqpa_pki::Crl::from_der(read("nca/ncanode-go/nca_gost2022_test.crl")).expect("CRL"),
    );
    qaqpa_soap::PkiTrust::new(validator, qaqpa_pki::KeyPurpose::Signing)
}

#[test]
fn nca_chain_and_crl_decide_trust_through_pki() {
    let trust = pki_trust();
    let opts = VerifyOptions {
        at: Some(inside_validity()),
        ..VerifyOptions::default()
    };
    let envelope = common::send_message_envelope(128);

    let valid = keystore("nca/ncanode-go/legal/valid/employee_signright.p12");
    let signed = sign_envelope(
        envelope.as_bytes(),
        &gost_signer(&valid),
        &Default::default(),
    )
    .expect("signs");
    let v = verify_envelope(&signed, &trust, &opts).expect("valid NCA certificate is trusted");
    assert_eq!(v.signers, vec![valid.certificate().der().to_vec()]);

    let revoked = keystore("nca/ncanode-go/legal/revoked/employee_signright.p12");
    let signed = sign_envelope(
        envelope.as_bytes(),
        &gost_signer(&revoked),
        &Default::default(),
    )
    .expect("signs");
    let err = verify_envelope(&signed, &trust, &opts).err();
    assert!(
        matches!(&err, Some(VerifyError::Untrusted(why)) if why.to_lowercase().contains("revoked")),
        "{err:?}"
    );

    // A self-made certificate chains to nothing.
    let fx = common::rsa_fixture("not NCA");
    let signed =
        sign_envelope(envelope.as_bytes(), &fx.signer(), &Default::default()).expect("signs");
    let err = verify_envelope(&signed, &trust, &VerifyOptions::default()).err();
    assert!(matches!(err, Some(VerifyError::Untrusted(_))), "{err:?}");
}
