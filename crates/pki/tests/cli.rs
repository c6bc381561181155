//! The `qaqpa pki` commands end to end: testca, inspect, sign-cms, verify (offline with the
//! generated CRL), with passwords from environment variables.

mod common;

use common::*;
use qaqpa_pki::cli::{execute, inspect, PkiCommand};

#[test]
fn testca_sign_and_verify_round_trip() {
    let dir = scratch("cli");
    let ca = dir.join("ca");
    assert!(execute(PkiCommand::Testca {
        dir: ca.clone(),
        serve: None
    })
    .expect("testca"));
    std::env::set_var("QAQPA_TEST_P12_PASSWORD", "Qwerty12");
    let input = dir.join("doc.txt");
    std::fs::write(&input, "Хат".as_bytes()).expect("write");
    for (file, valid) in [
        ("gost_head_valid.p12", true),
        ("rsa_employee_valid.p12", true),
        ("gost_head_revoked.p12", false),
    ] {
        for detached in [false, true] {
            let out = dir.join(format!("{file}-{detached}.cms"));
            assert!(execute(PkiCommand::SignCms {
                key: ca.join(file),
                password_env: "QAQPA_TEST_P12_PASSWORD".into(),
                detached,
                tsa: None,
                input: input.clone(),
                output: out.clone(),
            })
            .expect("sign-cms"));
            let kind = if file.starts_with("gost") {
                "gost"
            } else {
                "rsa"
            };
            let ok = execute(PkiCommand::Verify {
                file: out.clone(),
                content: if detached { Some(input.clone()) } else { None },
                trust: Some(ca.clone()),
                at: None,
                crl: vec![ca.join(format!("qaqpa_{kind}_test.crl"))],
                ocsp: None,
                offline: true,
            })
            .expect("verify");
            assert_eq!(ok, valid, "{file} detached={detached}");
            let text = inspect(&read(&out), None).expect("inspect");
            assert!(text.contains("CMS SignedData: 1 signer(s)"), "{text}");
        }
    }
    // inspect of a keystore needs the password variable, and never prints it.
    let p12 = read(&ca.join("gost_head_valid.p12"));
    assert!(inspect(&p12, None).is_err());
    let text = inspect(&p12, Some("QAQPA_TEST_P12_PASSWORD")).expect("inspect p12");
    assert!(
        text.contains("IIN:        123456789011") && !text.contains("Qwerty12"),
        "{text}"
    );
    let text = inspect(&read(&ca.join("qaqpa_gost_test.crl")), None).expect("inspect crl");
    assert!(text.contains("Entries: 4"), "{text}");
    let text = inspect(
        &read(&nca("ncanode-java/ocsp/ocsp_response_individual_2015.bin")),
        None,
    )
    .expect("ocsp");
    assert!(text.contains("OCSP response"), "{text}");
    let text = inspect(&read(&nca("ncanode-java/tsp/tsp_token.bin")), None).expect("tsp");
    assert!(text.contains("Time-stamp token"), "{text}");
    // A verify without trust is an error, not a pass.
    assert!(execute(PkiCommand::Verify {
        file: dir.join("gost_head_valid.p12-false.cms"),
        content: None,
        trust: None,
        at: None,
        crl: vec![],
        ocsp: None,
        offline: true,
    })
    .is_err());
}
