//! Interoperability with Python zeep + xmlsec (PyPI `zeep`, `xmlsec`): our WS-Security verifies
//! with zeep, zeep's (X509Data and BinarySecurityToken forms) verifies with ours, and tampered
//! bodies are rejected by both.

mod common;

use common::{rsa_fixture, send_message_envelope};
use qaqpa_soap::{
    sign_envelope, verify_envelope, KeyInfoForm, VerifyError, VerifyOptions, WsSecurityOptions,
};
use std::path::Path;
use std::process::{Command, Output};

/// Runs the zeep script once over several commands; returns each command's exit status.
fn zeep_batch(commands: &[Vec<&Path>]) -> Vec<i32> {
    use std::io::Write;
    use std::process::Stdio;
    let python = std::env::var("QAQPA_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/zeep_wsse.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg("batch")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with PyPI zeep and xmlsec must be installed");
    let lines: String = commands
        .iter()
        .map(|c| {
            c.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join("\t")
                + "\n"
        })
        .collect();
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(lines.as_bytes()).expect("write commands");
    }
    let out: Output = child.wait_with_output().expect("zeep script runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "zeep script failed (pip install zeep xmlsec): {stderr}"
    );
    let codes: Vec<i32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().expect("status line"))
        .collect();
    assert_eq!(codes.len(), commands.len(), "zeep: {stderr}");
    codes
}

#[test]
fn our_signatures_verify_with_zeep_and_tampering_is_caught() {
    let fx = rsa_fixture("zeep verifies us");
    let forms = [
        KeyInfoForm::KeyIdentifier,
        KeyInfoForm::IssuerSerial,
        KeyInfoForm::BinarySecurityToken,
    ];
    let mut files = Vec::new();
    for (i, form) in forms.iter().enumerate() {
        let opts = WsSecurityOptions {
            key_info: *form,
            ..WsSecurityOptions::default()
        };
        let signed = sign_envelope(send_message_envelope(1024).as_bytes(), &fx.signer(), &opts)
            .expect("signs");
        let good = fx.dir.path().join(format!("ours-{i}.xml"));
        std::fs::write(&good, &signed).expect("write");
        let bad = fx.dir.path().join(format!("tampered-{i}.xml"));
        let tampered = String::from_utf8_lossy(&signed).replace("GbdulInfoByBin_v2", "Tampered");
        std::fs::write(&bad, tampered.as_bytes()).expect("write");
        files.push((good, bad));
    }
    let cert = fx.cert_path();
    let verify = Path::new("verify");
    let commands: Vec<Vec<&Path>> = files
        .iter()
        .flat_map(|(good, bad)| {
            [
                vec![verify, &cert, good.as_path()],
                vec![verify, &cert, bad.as_path()],
            ]
        })
        .collect();
    let codes = zeep_batch(&commands);
    for (i, form) in forms.iter().enumerate() {
        assert_eq!(codes[2 * i], 0, "{form:?}: zeep rejected our signature");
        assert_eq!(
            codes[2 * i + 1],
            1,
            "{form:?}: zeep accepted a tampered body"
        );
    }
}

#[test]
fn zeep_signed_envelopes_verify_with_ours() {
    let fx = rsa_fixture("zeep signs");
    let input = fx.dir.path().join("in.xml");
    std::fs::write(&input, send_message_envelope(1024)).expect("write");
    let (key, cert) = (fx.key_path(), fx.cert_path());
    let outputs: Vec<_> = ["x509", "binary"]
        .iter()
        .map(|f| fx.dir.path().join(format!("zeep-{f}.xml")))
        .collect();
    let commands: Vec<Vec<&Path>> = ["x509", "binary"]
        .iter()
        .zip(&outputs)
        .map(|(f, o)| {
            vec![
                Path::new("sign"),
                &key,
                &cert,
                &input,
                o.as_path(),
                Path::new(f),
            ]
        })
        .collect();
    assert_eq!(zeep_batch(&commands), vec![0, 0], "zeep failed to sign");
    for (form, output) in ["x509", "binary"].iter().zip(&outputs) {
        let signed = std::fs::read(output).expect("zeep output");
        let v = verify_envelope(&signed, &fx.trust(), &VerifyOptions::default())
            .unwrap_or_else(|e| panic!("{form}: {e}\n{}", String::from_utf8_lossy(&signed)));
        assert_eq!(v.signers, vec![fx.cert_der.clone()]);
        assert!(v.body.contains("GbdulInfoByBin_v2"));
        let tampered = String::from_utf8_lossy(&signed).replace("GbdulInfoByBin_v2", "Tampered");
        let err =
            verify_envelope(tampered.as_bytes(), &fx.trust(), &VerifyOptions::default()).err();
        assert!(
            matches!(err, Some(VerifyError::DigestMismatch(_))),
            "{form}: {err:?}"
        );
    }
}
