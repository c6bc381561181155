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
