//! WS-Security with RSA-SHA256: our signatures checked by xmlsec1, xmlsec1's checked by us,
//! every KeyInfo form, several signatures, timestamps, and the signature-wrapping attacks.

mod common;

use common::{rsa_fixture, send_message_envelope, xmlsec1, XMLSEC_ID_ATTRS};
use qaqpa_soap::{
    sign_envelope, verify_envelope, KeyInfoForm, VerifyError, VerifyOptions, WsSecurityOptions,
};
use std::time::Duration;

fn opts(form: KeyInfoForm) -> WsSecurityOptions {
    WsSecurityOptions {
        key_info: form,
        ..WsSecurityOptions::default()
    }
}

fn verify_opts(known: &[u8]) -> VerifyOptions {
    VerifyOptions {
        known_certificates: vec![known.to_vec()],
        ..VerifyOptions::default()
    }
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

fn xmlsec_verify(fx: &common::RsaFixture, file: &std::path::Path) -> std::process::Output {
    let cert = fx.cert_path();
    let cert = cert.to_str().expect("utf-8 path");
    let mut args = vec!["--verify", "--pubkey-cert-pem", cert];
    args.extend_from_slice(&XMLSEC_ID_ATTRS);
    xmlsec1(&args, file)
}

#[test]
fn signed_envelope_verifies_with_ours_in_each_key_info_form() {
    let fx = rsa_fixture("each form");
    let envelope = send_message_envelope(1024);
    for form in [
        KeyInfoForm::KeyIdentifier,
        KeyInfoForm::IssuerSerial,
        KeyInfoForm::BinarySecurityToken,
    ] {
        let signed = sign_envelope(envelope.as_bytes(), &fx.signer(), &opts(form))
            .unwrap_or_else(|e| panic!("{form:?}: signing failed: {e}"));
        let verified = verify_envelope(&signed, &fx.trust(), &verify_opts(&fx.cert_der))
            .unwrap_or_else(|e| panic!("{form:?}: {e}\n{}", String::from_utf8_lossy(&signed)));
        assert_eq!(verified.signers, vec![fx.cert_der.clone()], "{form:?}");
        assert!(verified.body.contains("GbdulInfoByBin_v2"), "{form:?}");
        assert_eq!(
            &String::from_utf8_lossy(&signed)[verified.body_range.clone()],
            verified.body
        );
    }
}

#[test]
fn our_signature_verifies_with_xmlsec1_in_each_key_info_form() {
    let fx = rsa_fixture("xmlsec1 checks us");
    let envelope = send_message_envelope(1024);
    for form in [
        KeyInfoForm::KeyIdentifier,
        KeyInfoForm::IssuerSerial,
        KeyInfoForm::BinarySecurityToken,
    ] {
        let signed = sign_envelope(envelope.as_bytes(), &fx.signer(), &opts(form)).expect("signs");
        let file = write(fx.dir.path(), "signed.xml", &signed);
        let out = xmlsec_verify(&fx, &file);
        assert!(
            out.status.success(),
            "{form:?}: xmlsec1 rejected our signature: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&signed)
        );
    }
}

#[test]
fn tampered_body_is_rejected_by_xmlsec1_and_by_us() {
    let fx = rsa_fixture("tamper");
    let signed = sign_envelope(
        send_message_envelope(512).as_bytes(),
        &fx.signer(),
        &opts(KeyInfoForm::KeyIdentifier),
    )
    .expect("signs");
    let tampered = String::from_utf8(signed)
        .expect("utf-8")
        .replace("GbdulInfoByBin_v2", "GbdulInfoByBin_v3");
    let err = verify_envelope(tampered.as_bytes(), &fx.trust(), &VerifyOptions::default()).err();
    assert!(
        matches!(err, Some(VerifyError::DigestMismatch(_))),
        "{err:?}"
    );
    let file = write(fx.dir.path(), "tampered.xml", tampered.as_bytes());
    let out = xmlsec_verify(&fx, &file);
    assert!(!out.status.success(), "xmlsec1 accepted a tampered body");
}

#[test]
fn signed_timestamp_verifies_and_expired_one_is_rejected() {
    let fx = rsa_fixture("timestamp");
    let o = WsSecurityOptions {
        timestamp_ttl: Some(Duration::from_secs(300)),
        ..opts(KeyInfoForm::KeyIdentifier)
    };
    let signed =
        sign_envelope(send_message_envelope(100).as_bytes(), &fx.signer(), &o).expect("signs");
    let v = verify_envelope(
        &signed,
        &fx.trust(),
        &VerifyOptions {
            require_timestamp: true,
            ..VerifyOptions::default()
        },
    )
    .expect("verifies");
    assert!(v.timestamp_signed);
    let file = write(fx.dir.path(), "ts.xml", &signed);
    let out = xmlsec_verify(&fx, &file);
    assert!(
        out.status.success(),
        "xmlsec1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let later = VerifyOptions {
        at: Some(std::time::SystemTime::now() + Duration::from_secs(3600)),
        ..VerifyOptions::default()
    };
    let err = verify_envelope(&signed, &fx.trust(), &later).err();
    assert!(matches!(err, Some(VerifyError::Timestamp(_))), "{err:?}");
    let unsigned_ts = sign_envelope(
        send_message_envelope(100).as_bytes(),
        &fx.signer(),
        &opts(KeyInfoForm::KeyIdentifier),
    )
    .expect("signs");
    let err = verify_envelope(
        &unsigned_ts,
        &fx.trust(),
        &VerifyOptions {
            require_timestamp: true,
            ..VerifyOptions::default()
        },
    )
    .err();
    assert!(matches!(err, Some(VerifyError::Timestamp(_))), "{err:?}");
}

#[test]
fn two_signers_both_verify_and_both_are_reported() {
    let first = rsa_fixture("first signer");
    let second = rsa_fixture("second signer, longer name");
    let once = sign_envelope(
        send_message_envelope(200).as_bytes(),
        &first.signer(),
        &opts(KeyInfoForm::KeyIdentifier),
    )
    .expect("signs");
    let twice = sign_envelope(
        &once,
        &second.signer(),
        &opts(KeyInfoForm::BinarySecurityToken),
    )
    .expect("signs again");
    let trust =
        qaqpa_soap::PinnedCertificates::new(vec![first.cert_der.clone(), second.cert_der.clone()]);
    let v = verify_envelope(&twice, &trust, &VerifyOptions::default()).expect("both verify");
    assert_eq!(v.signers.len(), 2);
    assert!(v.signers.contains(&first.cert_der) && v.signers.contains(&second.cert_der));
    // Trusting only one of them is not enough.
    let err = verify_envelope(&twice, &first.trust(), &VerifyOptions::default()).err();
    assert!(matches!(err, Some(VerifyError::Untrusted(_))), "{err:?}");
}

#[test]
fn untrusted_certificate_is_rejected() {
    let fx = rsa_fixture("signer");
    let other = rsa_fixture("someone else");
    let signed = sign_envelope(
        send_message_envelope(100).as_bytes(),
        &fx.signer(),
        &opts(KeyInfoForm::KeyIdentifier),
    )
    .expect("signs");
    let err = verify_envelope(&signed, &other.trust(), &VerifyOptions::default()).err();
    assert!(matches!(err, Some(VerifyError::Untrusted(_))), "{err:?}");
}

#[test]
fn certificate_swapped_in_key_identifier_is_rejected() {
    let fx = rsa_fixture("real signer");
    let other = rsa_fixture("impostor");
    let signed = String::from_utf8(
        sign_envelope(
            send_message_envelope(100).as_bytes(),
            &fx.signer(),
            &opts(KeyInfoForm::KeyIdentifier),
        )
        .expect("signs"),
    )
    .expect("utf-8");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let swapped = signed.replace(&b64.encode(&fx.cert_der), &b64.encode(&other.cert_der));
    let both =
        qaqpa_soap::PinnedCertificates::new(vec![fx.cert_der.clone(), other.cert_der.clone()]);
    let err = verify_envelope(swapped.as_bytes(), &both, &VerifyOptions::default()).err();
    assert!(matches!(err, Some(VerifyError::BadSignature(_))), "{err:?}");
}

/// Builds an xmlsec1 template for the given KeyInfo content, signs it with xmlsec1 and
/// returns the signed envelope.
fn xmlsec1_signed(fx: &common::RsaFixture, key_info: &str, header_extra: &str) -> Vec<u8> {
    let template = format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">
  <soapenv:Header>
    <wsse:Security soapenv:mustUnderstand="1">{header_extra}
      <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
        <ds:SignedInfo>
          <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
          <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
          <ds:Reference URI="#id-body-1">
            <ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>
            <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
            <ds:DigestValue/>
          </ds:Reference>
        </ds:SignedInfo>
        <ds:SignatureValue/>
        <ds:KeyInfo>{key_info}</ds:KeyInfo>
      </ds:Signature>
    </wsse:Security>
  </soapenv:Header>
  <soapenv:Body wsu:Id="id-body-1"><m:Ping xmlns:m="urn:ping"><m:text>сәлем</m:text></m:Ping></soapenv:Body>
</soapenv:Envelope>
"##
    );
    let tpl = write(fx.dir.path(), "template.xml", template.as_bytes());
    let key = fx.key_path();
    let cert = fx.cert_path();
    let key_and_cert = format!("{},{}", key.display(), cert.display());
    let mut args = vec!["--sign", "--privkey-pem", key_and_cert.as_str()];
    args.extend_from_slice(&XMLSEC_ID_ATTRS);
    let out = xmlsec1(&args, &tpl);
    assert!(
        out.status.success(),
        "xmlsec1 --sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn envelopes_signed_by_xmlsec1_verify_with_ours_in_each_key_info_form() {
    let fx = rsa_fixture("xmlsec1 signs");
    use base64::Engine;
    let cert_b64 = base64::engine::general_purpose::STANDARD.encode(&fx.cert_der);
    let info = qaqpa_soap::cert::CertificateInfo::from_der(&fx.cert_der).expect("cert");
    let key_identifier = format!(
        r#"<wsse:SecurityTokenReference><wsse:KeyIdentifier EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary" ValueType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3">{cert_b64}</wsse:KeyIdentifier></wsse:SecurityTokenReference>"#
    );
    let issuer_serial = format!(
        r#"<wsse:SecurityTokenReference><ds:X509Data><ds:X509IssuerSerial><ds:X509IssuerName>{}</ds:X509IssuerName><ds:X509SerialNumber>{}</ds:X509SerialNumber></ds:X509IssuerSerial></ds:X509Data></wsse:SecurityTokenReference>"#,
        info.issuer,
        info.serial_decimal()
    );
    let bst = format!(
        r#"<wsse:BinarySecurityToken EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary" ValueType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3" wsu:Id="X509-1">{cert_b64}</wsse:BinarySecurityToken>"#
    );
    let bst_ref = r##"<wsse:SecurityTokenReference><wsse:Reference URI="#X509-1" ValueType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"/></wsse:SecurityTokenReference>"##;
    for (name, key_info, extra) in [
        ("KeyIdentifier", key_identifier.as_str(), ""),
        ("IssuerSerial", issuer_serial.as_str(), ""),
        ("BinarySecurityToken", bst_ref, bst.as_str()),
    ] {
        let signed = xmlsec1_signed(&fx, key_info, extra);
        let v = verify_envelope(&signed, &fx.trust(), &verify_opts(&fx.cert_der))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", String::from_utf8_lossy(&signed)));
        assert_eq!(v.signers, vec![fx.cert_der.clone()]);
        assert!(v.body.contains("сәлем"));
        let tampered = String::from_utf8_lossy(&signed).replace("сәлем", "салем");
        let err =
            verify_envelope(tampered.as_bytes(), &fx.trust(), &verify_opts(&fx.cert_der)).err();
        assert!(
            matches!(err, Some(VerifyError::DigestMismatch(_))),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn xmlsec1_signature_with_default_namespace_in_prefix_list_verifies_with_ours() {
    // The InclusiveNamespaces PrefixList "#default" makes exclusive c14n render the in-scope
    // default namespace on the Body although nothing in it uses that namespace: if our
    // canonical form differed from libxml2's here, the digest would not match.
    let fx = rsa_fixture("prefix list");
    let template = r##"<soapenv:Envelope xmlns="urn:default-ns" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" xmlns:unused="urn:unused"><soapenv:Header><wsse:Security soapenv:mustUnderstand="1"><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="#default unused"/></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#id-b"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="#default unused"/></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature></wsse:Security></soapenv:Header><soapenv:Body wsu:Id="id-b"><m:Ping xmlns:m="urn:m"><m:text>x</m:text></m:Ping></soapenv:Body></soapenv:Envelope>"##;
    let tpl = write(fx.dir.path(), "prefix-list.xml", template.as_bytes());
    let key_and_cert = format!("{},{}", fx.key_path().display(), fx.cert_path().display());
    let mut args = vec!["--sign", "--privkey-pem", key_and_cert.as_str()];
    args.extend_from_slice(&XMLSEC_ID_ATTRS);
    let out = xmlsec1(&args, &tpl);
    assert!(
        out.status.success(),
        "xmlsec1 --sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = verify_envelope(&out.stdout, &fx.trust(), &VerifyOptions::default())
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&out.stdout)));
    let canonical = String::from_utf8_lossy(&v.body_canonical).into_owned();
    assert!(canonical.starts_with("<soapenv:Body"), "{canonical}");
    // The Body we return is the plain exclusive form; the signed form had the default namespace.
    let with_list = qaqpa_soap::Canonicalizer::new(qaqpa_soap::C14nMethod::Exclusive)
        .with_inclusive_prefixes(["#default", "unused"]);
    let doc = qaqpa_soap::xml::parse_bytes(&out.stdout, &Default::default()).expect("parses");
    let body = doc
        .descendants()
        .find(|n| n.tag_name().name() == "Body")
        .expect("Body");
    let signed_form = String::from_utf8(with_list.subtree(body)).expect("utf-8");
    assert!(
        signed_form.contains("xmlns=\"urn:default-ns\"") && signed_form.contains("xmlns:unused"),
        "{signed_form}"
    );
}

#[test]
fn other_envelope_shapes_sign_and_verify() {
    let fx = rsa_fixture("shapes");
    let shapes = [
        // No Header at all.
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:Op xmlns:m="urn:m">1</m:Op></s:Body></s:Envelope>"#,
        // SOAP namespace as the default namespace, non-empty Header.
        r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Header><h:Trace xmlns:h="urn:h">t</h:Trace></Header><Body><m:Op xmlns:m="urn:m">2</m:Op></Body></Envelope>"#,
        // SOAP 1.2.
        r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header/><env:Body><m:Op xmlns:m="urn:m">3</m:Op></env:Body></env:Envelope>"#,
    ];
    for (i, shape) in shapes.iter().enumerate() {
        let signed = sign_envelope(
            shape.as_bytes(),
            &fx.signer(),
            &opts(KeyInfoForm::KeyIdentifier),
        )
        .unwrap_or_else(|e| panic!("shape {i}: {e}"));
        let v = verify_envelope(&signed, &fx.trust(), &VerifyOptions::default())
            .unwrap_or_else(|e| panic!("shape {i}: {e}\n{}", String::from_utf8_lossy(&signed)));
        assert!(v.body.contains(&format!(">{}<", i + 1)), "shape {i}");
        if i < 2 {
            let file = write(fx.dir.path(), "shape.xml", &signed);
            let out = xmlsec_verify(&fx, &file);
            assert!(
                out.status.success(),
                "shape {i}: xmlsec1: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let not_soap = sign_envelope(b"<a/>", &fx.signer(), &opts(KeyInfoForm::KeyIdentifier));
    assert!(not_soap.is_err());
}
