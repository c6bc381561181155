//! The `cli` feature end to end: sign with a PEM key, verify with and without a trust
//! directory, tamper, and canonicalize (compared with xmllint).
#![cfg(feature = "cli")]

mod common;

use qaqpa_soap::cli::{run, KeyInfoArg, SoapCommand};
use std::process::ExitCode;

#[test]
fn sign_then_verify_exits_zero_only_when_valid_and_trusted() {
    let fx = common::rsa_fixture("cli");
    let input = fx.dir.path().join("in.xml");
    let output = fx.dir.path().join("out.xml");
    std::fs::write(&input, common::send_message_envelope(256)).expect("write");
    let code = run(SoapCommand::Sign {
        key: fx.key_path(),
        cert: Some(fx.cert_path()),
        password_env: None,
        key_info: KeyInfoArg::KeyIdentifier,
        timestamp_ttl: Some(60),
        input: input.clone(),
        output: output.clone(),
    });
    assert_eq!(code, ExitCode::SUCCESS);
    let trust = fx.dir.path().join("trust");
    std::fs::create_dir(&trust).expect("mkdir");
    std::fs::copy(fx.cert_path(), trust.join("signer.pem")).expect("copy");
    assert_eq!(
        run(SoapCommand::Verify {
            input: output.clone(),
            trust: Some(trust.clone())
        }),
        ExitCode::SUCCESS
    );
    assert_eq!(
        run(SoapCommand::Verify {
            input: output.clone(),
            trust: None
        }),
        ExitCode::from(3)
    );
    let tampered = std::fs::read_to_string(&output)
        .expect("read")
        .replace("qaqpa", "qaqpb");
    std::fs::write(&output, tampered).expect("write");
    assert_eq!(
        run(SoapCommand::Verify {
            input: output,
            trust: Some(trust)
        }),
        ExitCode::from(2)
    );
    assert_eq!(
        run(SoapCommand::Verify { input, trust: None }),
        ExitCode::from(2)
    );
}

#[test]
fn nca_p12_keystore_signs_from_the_command_line() {
    let p12 = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/specs/nca/ncanode-go/legal/valid/head.p12");
    assert!(
        p12.exists(),
        "NCA test keystore {} is missing (public test material in ../shared/specs)",
        p12.display()
    );
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("in.xml");
    let output = dir.path().join("out.xml");
    std::fs::write(&input, common::send_message_envelope(128)).expect("write");
    std::env::set_var("QAQPA_SOAP_TEST_P12_PASSWORD", "Qwerty12");
    let code = run(SoapCommand::Sign {
        key: p12,
        cert: None,
        password_env: Some("QAQPA_SOAP_TEST_P12_PASSWORD".into()),
        key_info: KeyInfoArg::BinarySecurityToken,
        timestamp_ttl: None,
        input,
        output: output.clone(),
    });
    assert_eq!(code, ExitCode::SUCCESS);
    let signed = std::fs::read_to_string(&output).expect("signed output");
    assert!(signed.contains("gostr34102015-gostr34112015-512"));
    // Signatures valid, certificate not checked (no --trust): exit status 3.
    assert_eq!(
        run(SoapCommand::Verify {
            input: output,
            trust: None
        }),
        ExitCode::from(3)
    );
}
