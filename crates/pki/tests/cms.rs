//! CMS SignedData: ours checked by OpenSSL, OpenSSL's checked by ours, the real NCA GOST 2015
//! keystores signing and verifying, co-signatures, and tampering detected.

mod common;

use common::*;
use qaqpa_pki::cms::{self, SignOptions, SignedData};
use qaqpa_pki::{Keystore, Role, SignatureAlgorithm, UtcTime};

fn nca_ks(rel: &str) -> Keystore {
    Keystore::from_pkcs12(&read(&nca(rel)), NCA_PASSWORD).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn rsa_cms_we_sign_verifies_with_openssl_attached_and_detached() {
    let dir = scratch("cms-rsa-ours");
    let (ca, _, _, p12) = openssl_rsa_pki(&dir);
    let ks = Keystore::from_pkcs12(&read(&p12), "pw").expect("open");
    assert_eq!(ks.chain().len(), 1);
    let content = "Приказ №1: утвердить.".as_bytes();
    let data = dir.join("data.txt");
    std::fs::write(&data, content).expect("write");
    for detached in [false, true] {
        let opts = SignOptions {
            detached,
            include_chain: false,
            signing_time: None,
        };
        let der = cms::sign(content, &ks, &opts).expect("sign");
        let f = dir.join(format!("ours-{detached}.cms"));
        std::fs::write(&f, &der).expect("write");
        let mut args = vec![
            "cms".to_string(),
            "-verify".into(),
            "-binary".into(),
            "-inform".into(),
            "DER".into(),
            "-in".into(),
            path_str(&f),
            "-CAfile".into(),
            path_str(&ca),
            "-out".into(),
            path_str(&dir.join("out.bin")),
        ];
        if detached {
            args.push("-content".into());
            args.push(path_str(&data));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = openssl(&refs);
        assert!(
            out.status.success(),
            "openssl rejected our CMS (detached={detached}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(read(&dir.join("out.bin")), content);
        // Tampered content is rejected by OpenSSL as well.
        if detached {
            std::fs::write(dir.join("bad.txt"), b"tampered").expect("write");
            let mut bad = refs.clone();
            let last = bad.len() - 1;
            let bad_path = path_str(&dir.join("bad.txt"));
            bad[last] = &bad_path;
            assert!(
                !openssl(&bad).status.success(),
                "openssl accepted tampered content"
            );
        }
    }
}

#[test]
fn rsa_cms_from_openssl_verifies_with_ours() {
    let dir = scratch("cms-rsa-openssl");
    let (_, key, cert, _) = openssl_rsa_pki(&dir);
    let data = dir.join("data.bin");
    std::fs::write(&data, b"payload from openssl").expect("write");
    let out = dir.join("o.cms");
    openssl_ok(&[
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-md",
        "sha256",
        "-outform",
        "DER",
        "-in",
        &path_str(&data),
        "-signer",
        &path_str(&cert),
        "-inkey",
        &path_str(&key),
        "-out",
        &path_str(&out),
    ]);
    let sd = SignedData::parse(&read(&out)).expect("parse");
    assert_eq!(sd.content.as_deref(), Some(&b"payload from openssl"[..]));
    let checks = sd.check_signatures(None, &[]);
    assert_eq!(checks.len(), 1);
    checks[0]
        .signature
        .clone()
        .expect("OpenSSL's signature verifies");
    let info = checks[0].subject.clone().expect("subject");
    assert_eq!(info.iin.map(|i| i.to_string()), Some("123456789011".into()));
    assert!(info.roles.contains(&Role::FirstHead));
    // Detached, then with the wrong content.
    let det = dir.join("d.cms");
    openssl_ok(&[
        "cms",
        "-sign",
        "-binary",
        "-md",
        "sha256",
        "-outform",
        "DER",
        "-in",
        &path_str(&data),
        "-signer",
        &path_str(&cert),
        "-inkey",
        &path_str(&key),
        "-out",
        &path_str(&det),
    ]);
    let sd = SignedData::parse(&read(&det)).expect("parse");
    assert!(sd.content.is_none());
    sd.check_signatures(Some(b"payload from openssl"), &[])[0]
        .signature
        .clone()
        .expect("detached verifies");
    assert!(sd.check_signatures(Some(b"payload from 0penssl"), &[])[0]
        .signature
        .is_err());
}

#[test]
fn nca_gost2015_keystores_sign_cms_that_verifies() {
    let at = UtcTime::parse_rfc3339("2026-09-01T10:00:00Z").expect("time");
    for rel in [
        "ncanode-go/legal/valid/head.p12",
        "ncanode-go/individual/valid/individual_valid.p12",
    ] {
        let ks = nca_ks(rel);
        let opts = SignOptions {
            detached: false,
            include_chain: true,
            signing_time: Some(at),
        };
        let der = cms::sign(b"GOST document", &ks, &opts).expect("sign");
        let sd = SignedData::parse(&der).expect("parse");
        let c = &sd.check_signatures(None, &[])[0];
        c.signature.clone().unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(c.algorithm, Some(SignatureAlgorithm::Gost2015_512));
        assert_eq!(c.signing_time, Some(at));
        // Kalkan's layout: digestAlgorithm with NULL parameters, signature OID with hash.
        let si = &sd.signers[0];
        assert_eq!(si.digest_oid, "1.2.398.3.10.1.3.3");
        assert_eq!(si.signature_oid, "1.2.398.3.10.1.1.2.3.2");
        assert!(sd.digest_algorithms[0].ends_with(&[0x05, 0x00]));
    }
}

#[test]
fn a_flipped_byte_in_content_signed_attributes_or_signature_is_detected() {
    let ks = nca_ks("ncanode-go/legal/valid/employee_signright.p12");
    let der = cms::sign(b"content to protect", &ks, &SignOptions::default()).expect("sign");
    let sd = SignedData::parse(&der).expect("parse");
    let si = &sd.signers[0];
    let attrs = si.signed_attrs.clone().expect("signed attributes");
    // The [0] IMPLICIT attributes sit in the DER with their own tag; find their content.
    let regions: Vec<(&str, std::ops::Range<usize>)> = vec![
        ("content", find(&der, b"content to protect")),
        ("signed attributes", find(&der, &attrs[2..])),
        ("signature", find(&der, &si.signature)),
    ];
    for (what, range) in regions {
        let mut checked = 0;
        for pos in range.clone() {
            let mut d = der.clone();
            d[pos] ^= 0x01;
            let Ok(sd) = SignedData::parse(&d) else {
                continue;
            };
            let c = &sd.check_signatures(None, &[])[0];
            assert!(c.signature.is_err(), "flip in {what} at {pos} not detected");
            checked += 1;
        }
        assert!(
            checked * 2 > range.len(),
            "{what}: too few flips reached verification"
        );
    }
}

fn find(hay: &[u8], needle: &[u8]) -> std::ops::Range<usize> {
    let start = hay
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("region not found in the CMS"));
    start..start + needle.len()
}

#[test]
fn a_co_signature_leaves_the_first_signer_untouched() {
    let head = nca_ks("ncanode-go/legal/valid/head.p12");
    let employee = nca_ks("ncanode-go/legal/valid/employee_signright.p12");
    for detached in [false, true] {
        let content = b"letter to the ministry";
        let opts = SignOptions {
            detached,
            ..SignOptions::default()
        };
        let first = cms::sign(content, &head, &opts).expect("sign");
        let detached_content = if detached { Some(&content[..]) } else { None };
        let both = cms::add_signer(&first, detached_content, &employee, &opts).expect("co-sign");
        let sd1 = SignedData::parse(&first).expect("parse");
        let sd2 = SignedData::parse(&both).expect("parse");
        assert_eq!(sd2.signers.len(), 2);
        assert!(
            sd2.signers.iter().any(|s| s.raw == sd1.signers[0].raw),
            "first SignerInfo changed"
        );
        let checks = sd2.check_signatures(detached_content, &[]);
        for c in &checks {
            c.signature
                .clone()
                .unwrap_or_else(|e| panic!("signer {}: {e}", c.index));
        }
        let roles: Vec<_> = checks
            .iter()
            .filter_map(|c| c.subject.as_ref()?.main_role().cloned())
            .collect();
        assert!(
            roles.contains(&Role::FirstHead) && roles.contains(&Role::SigningRight),
            "{roles:?}"
        );
        if detached {
            assert!(
                cms::add_signer(&first, None, &employee, &opts).is_err(),
                "co-signing without content"
            );
        }
    }
}

#[test]
fn tampered_content_fails_for_one_signer_with_a_reason() {
    let ks = nca_ks("ncanode-go/legal/valid/head.p12");
    let der = cms::sign(
        b"original",
        &ks,
        &SignOptions {
            detached: true,
            ..SignOptions::default()
        },
    )
    .expect("sign");
    let sd = SignedData::parse(&der).expect("parse");
    let c = &sd.check_signatures(Some(b"0riginal"), &[])[0];
    let why = c.signature.clone().expect_err("tampered content accepted");
    assert!(why.contains("message digest"), "{why}");
    let c = &sd.check_signatures(None, &[])[0];
    assert!(c
        .signature
        .clone()
        .expect_err("no content")
        .contains("detached"));
}
