//! Keystores: the real NCA test keystores, OpenSSL 3's default PKCS#12, wrong passwords and
//! damaged files.

mod common;

use common::*;
use qaqpa_pki::{Keystore, PkiError, PrivateKey, Role, SignatureAlgorithm};

#[test]
fn all_twelve_nca_keystores_open_with_their_password() {
    for (name, path) in nca_keystores() {
        let ks = Keystore::from_pkcs12(&read(&path), NCA_PASSWORD)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            ks.signing_key().signature_algorithm(),
            SignatureAlgorithm::Gost2015_512,
            "{name}"
        );
        let info = ks.certificate().subject_info();
        // Everyone but an information system carries an IIN.
        assert!(
            info.iin.is_some() || info.roles.contains(&Role::InformationSystem),
            "{name}: no IIN in {}",
            ks.certificate().subject()
        );
        // The key signs and its own certificate verifies the signature.
        let sig = ks.signing_key().sign(b"keystore self-test").expect("sign");
        ks.certificate()
            .verify_signature(
                b"keystore self-test",
                &sig,
                SignatureAlgorithm::Gost2015_512,
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.starts_with("legal") {
            assert!(info.bin.is_some(), "{name}: no BIN");
            assert!(
                info.roles.contains(&Role::Organisation),
                "{name}: {:?}",
                info.roles
            );
        } else {
            assert_eq!(info.roles, vec![Role::Individual], "{name}");
        }
    }
}

#[test]
fn nca_roles_come_from_the_extended_key_usage() {
    let role = |rel: &str| {
        let ks = Keystore::from_pkcs12(&read(&nca(rel)), NCA_PASSWORD).expect("open");
        ks.certificate().subject_info().main_role().cloned()
    };
    assert_eq!(
        role("ncanode-go/legal/valid/head.p12"),
        Some(Role::FirstHead)
    );
    assert_eq!(
        role("ncanode-go/legal/valid/employee.p12"),
        Some(Role::Employee)
    );
    assert_eq!(
        role("ncanode-go/legal/valid/employee_signright.p12"),
        Some(Role::SigningRight)
    );
    // In the published material the two file names are swapped: treasury_client.p12 holds the
    // information system's key (no IIN), infosystem.p12 a treasury client (IIN, organisation).
    assert_eq!(
        role("ncanode-go/legal/valid/treasury_client.p12"),
        Some(Role::InformationSystem)
    );
    assert_eq!(
        role("ncanode-go/legal/valid/infosystem.p12"),
        Some(Role::Organisation)
    );
}

#[test]
fn gokalkan_keystore_opens() {
    let ks = Keystore::from_pkcs12(&read(&nca("gokalkan/gost1.p12")), NCA_PASSWORD).expect("open");
    let cer =
        qaqpa_pki::Certificate::from_der_or_pem(&read(&nca("gokalkan/gost1.cer"))).expect("cer");
    assert_eq!(ks.certificate(), &cer);
    assert_eq!(
        ks.certificate().subject_info().iin.map(|i| i.to_string()),
        Some("123456789011".into())
    );
}

#[test]
fn wrong_password_is_reported_as_such() {
    let data = read(&nca("ncanode-go/legal/valid/head.p12"));
    match Keystore::from_pkcs12(&data, "Qwerty13") {
        Err(PkiError::WrongPassword) => {}
        other => panic!("expected WrongPassword, got {other:?}"),
    }
}

#[test]
fn damaged_keystores_give_errors_not_panics() {
    let data = read(&nca("ncanode-go/legal/valid/head.p12"));
    // Truncations at many points.
    for cut in (0..data.len()).step_by(97) {
        assert!(
            Keystore::from_pkcs12(&data[..cut], NCA_PASSWORD).is_err(),
            "cut at {cut}"
        );
    }
    // A flipped byte anywhere is caught (MAC, structure or decryption).
    for pos in (0..data.len()).step_by(53) {
        let mut d = data.clone();
        d[pos] ^= 0x01;
        assert!(
            Keystore::from_pkcs12(&d, NCA_PASSWORD).is_err(),
            "flip at {pos}"
        );
    }
}

#[test]
fn openssl3_default_pkcs12_opens() {
    let dir = scratch("openssl-p12");
    let key = dir.join("k.pem");
    let cert = dir.join("c.pem");
    let p12 = dir.join("k.p12");
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap_or(""),
        "-out",
        cert.to_str().unwrap_or(""),
        "-days",
        "30",
        "-subj",
        "/CN=OpenSSL Test/serialNumber=IIN900101300123",
    ]);
    openssl_ok(&[
        "pkcs12",
        "-export",
        "-inkey",
        key.to_str().unwrap_or(""),
        "-in",
        cert.to_str().unwrap_or(""),
        "-out",
        p12.to_str().unwrap_or(""),
        "-passout",
        "pass:секрет-1",
    ]);
    let info = openssl_ok(&[
        "pkcs12",
        "-in",
        p12.to_str().unwrap_or(""),
        "-passin",
        "pass:секрет-1",
        "-info",
        "-noout",
    ]);
    let _ = info;
    let ks = Keystore::from_pkcs12(&read(&p12), "секрет-1").expect("open OpenSSL 3 p12");
    assert!(matches!(ks.signing_key(), PrivateKey::Rsa(_)));
    assert_eq!(
        ks.certificate().subject_info().iin.map(|i| i.to_string()),
        Some("900101300123".into())
    );
    assert!(matches!(
        Keystore::from_pkcs12(&read(&p12), "секрет-2"),
        Err(PkiError::WrongPassword)
    ));
    // PEM key and certificate read too.
    let k = PrivateKey::from_pem(&String::from_utf8_lossy(&read(&key))).expect("pem key");
    let c = qaqpa_pki::Certificate::from_der_or_pem(&read(&cert)).expect("pem cert");
    let sig = k.sign(b"x").expect("sign");
    c.verify_signature(b"x", &sig, SignatureAlgorithm::RsaSha256)
        .expect("verify");
}

#[test]
fn our_pkcs12_opens_in_openssl_and_back() {
    let src = Keystore::from_pkcs12(&read(&nca("gokalkan/gost1.p12")), NCA_PASSWORD).expect("open");
    let dir = scratch("our-p12");
    // RSA keystore from OpenSSL, re-written by us, read by OpenSSL.
    let key = dir.join("k.pem");
    let cert = dir.join("c.pem");
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap_or(""),
        "-out",
        cert.to_str().unwrap_or(""),
        "-days",
        "30",
        "-subj",
        "/CN=Round Trip",
    ]);
    let k = PrivateKey::from_pem(&String::from_utf8_lossy(&read(&key))).expect("key");
    let c = qaqpa_pki::Certificate::from_der_or_pem(&read(&cert)).expect("cert");
    let ks = Keystore::from_parts(k, c, vec![]).expect("parts");
    let p12 = dir.join("ours.p12");
    std::fs::write(&p12, ks.to_pkcs12("pw").expect("write")).expect("write file");
    let out = openssl_ok(&[
        "pkcs12",
        "-in",
        p12.to_str().unwrap_or(""),
        "-passin",
        "pass:pw",
        "-nodes",
    ]);
    assert!(
        out.contains("BEGIN PRIVATE KEY") && out.contains("BEGIN CERTIFICATE"),
        "{out}"
    );
    // GOST keystore written by us opens again with us (OpenSSL lacks the Kazakh OIDs).
    let again =
        Keystore::from_pkcs12(&src.to_pkcs12("pw2").expect("write"), "pw2").expect("reopen");
    assert_eq!(again.certificate(), src.certificate());
    assert_eq!(
        again.signing_key().public_key().expect("pk").to_spki_der(),
        src.signing_key().public_key().expect("pk").to_spki_der()
    );
}
