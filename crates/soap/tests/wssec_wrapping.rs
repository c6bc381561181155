//! Signature wrapping and other tampering of WS-Security envelopes: every variant must be
//! refused, so that what a caller processes is exactly what was signed.

mod common;

use common::{rsa_fixture, send_message_envelope};
use qaqpa_soap::{sign_envelope, verify_envelope, VerifyError, VerifyOptions};
use std::sync::OnceLock;

struct Signed {
    fx: common::RsaFixture,
    xml: String,
    body_id: String,
}

/// One signed envelope shared by the tests (signing is not what is tested here).
fn signed() -> &'static Signed {
    static SIGNED: OnceLock<Signed> = OnceLock::new();
    SIGNED.get_or_init(|| {
        let fx = rsa_fixture("wrapping");
        let xml = String::from_utf8(
            sign_envelope(
                send_message_envelope(300).as_bytes(),
                &fx.signer(),
                &Default::default(),
            )
            .expect("signs"),
        )
        .expect("utf-8");
        let start = xml.find("wsu:Id=\"").expect("Body has wsu:Id") + 8;
        let end = start + xml[start..].find('"').expect("closing quote");
        let body_id = xml[start..end].to_string();
        Signed { fx, xml, body_id }
    })
}

fn verify(xml: &str) -> Result<qaqpa_soap::VerifiedEnvelope, VerifyError> {
    let s = signed();
    verify_envelope(xml.as_bytes(), &s.fx.trust(), &VerifyOptions::default())
}

fn body_of(xml: &str) -> (usize, usize) {
    let start = xml.find("<soapenv:Body").expect("Body start");
    let end = xml.find("</soapenv:Body>").expect("Body end") + "</soapenv:Body>".len();
    (start, end)
}

#[test]
fn untouched_envelope_verifies() {
    let v = verify(&signed().xml).expect("the reference envelope verifies");
    assert!(v.body.contains("SendMessage"));
}

#[test]
fn body_moved_into_header_with_a_new_body_is_rejected() {
    let s = signed();
    let (start, end) = body_of(&s.xml);
    let original = &s.xml[start..end];
    let evil_body = "<soapenv:Body><ns2:SendMessage xmlns:ns2=\"http://bip.bee.kz/SyncChannel/v10/Types\">evil</ns2:SendMessage></soapenv:Body>";
    let wrapped_original = original.replace("soapenv:Body", "soapenv:Wrapper");
    let mut xml = s.xml.replacen(original, evil_body, 1);
    xml = xml.replacen(
        "<soapenv:Header>",
        &format!("<soapenv:Header>{wrapped_original}"),
        1,
    );
    let err = verify(&xml).err();
    assert!(matches!(err, Some(VerifyError::Wrapping(_))), "{err:?}");
}

#[test]
fn original_body_kept_in_header_as_a_second_body_is_rejected() {
    let s = signed();
    let (start, end) = body_of(&s.xml);
    let original = &s.xml[start..end];
    let evil_body = original
        .replace(&format!("wsu:Id=\"{}\"", s.body_id), "")
        .replace("GbdulInfoByBin_v2", "Evil");
    let mut xml = s.xml.replacen(original, &evil_body, 1);
    xml = xml.replacen(
        "<soapenv:Header>",
        &format!("<soapenv:Header>{original}"),
        1,
    );
    let err = verify(&xml).err();
    assert!(matches!(err, Some(VerifyError::Wrapping(_))), "{err:?}");
}

#[test]
fn duplicate_id_is_rejected() {
    let s = signed();
    let decoy = format!("<x:Decoy xmlns:x=\"urn:x\" xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\" wsu:Id=\"{}\"/>", s.body_id);
    let xml = s
        .xml
        .replacen("<soapenv:Header>", &format!("<soapenv:Header>{decoy}"), 1);
    let err = verify(&xml).err();
    assert!(
        matches!(err, Some(VerifyError::Wrapping(m)) if m.contains("more than once")),
        "{:?}",
        verify(&xml).err()
    );
}

#[test]
fn signature_over_another_element_is_rejected() {
    // A valid signature whose only reference names a header element, not the Body.
    let s = signed();
    let header_el = "<x:Note xmlns:x=\"urn:x\" xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\" wsu:Id=\"note-1\">hi</x:Note>";
    let xml = s
        .xml
        .replacen(
            "<soapenv:Header>",
            &format!("<soapenv:Header>{header_el}"),
            1,
        )
        .replace(&format!("URI=\"#{}\"", s.body_id), "URI=\"#note-1\"");
    let err = verify(&xml).err();
    assert!(matches!(err, Some(VerifyError::Wrapping(_))), "{err:?}");
}

#[test]
fn reference_to_a_missing_id_is_rejected() {
    let s = signed();
    let xml = s
        .xml
        .replace(&format!("URI=\"#{}\"", s.body_id), "URI=\"#nowhere\"");
    let err = verify(&xml).err();
    assert!(matches!(err, Some(VerifyError::Wrapping(_))), "{err:?}");
}

#[test]
fn extra_reference_is_rejected() {
    let s = signed();
    let start = s.xml.find("<ds:Reference").expect("reference");
    let end = s.xml.find("</ds:Reference>").expect("reference end") + "</ds:Reference>".len();
    let reference = &s.xml[start..end];
    let xml = s
        .xml
        .replacen(reference, &format!("{reference}{reference}"), 1);
    let err = verify(&xml).err();
    assert!(matches!(err, Some(VerifyError::Wrapping(_))), "{err:?}");
}

#[test]
fn unknown_transform_is_rejected() {
    let s = signed();
    let xml = s.xml.replacen(
        "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
        "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"/>",
        1,
    );
    assert_ne!(xml, s.xml);
    let err = verify(&xml).err();
    assert!(
        matches!(err, Some(VerifyError::UnsupportedAlgorithm(_))),
        "{err:?}"
    );
}

#[test]
fn unknown_signature_algorithm_is_rejected() {
    let s = signed();
    let xml = s.xml.replace(
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    );
    let err = verify(&xml).err();
    assert!(
        matches!(err, Some(VerifyError::UnsupportedAlgorithm(_))),
        "{err:?}"
    );
}

#[test]
fn unknown_digest_algorithm_is_rejected() {
    let s = signed();
    let xml = s.xml.replace(
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2000/09/xmldsig#sha1",
    );
    let err = verify(&xml).err();
    assert!(
        matches!(err, Some(VerifyError::UnsupportedAlgorithm(_))),
        "{err:?}"
    );
}

#[test]
fn inclusive_canonicalization_is_refused_for_ws_security() {
    let s = signed();
    let xml = s.xml.replacen(
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"/>",
        1,
    );
    let err = verify(&xml).err();
    assert!(
        matches!(err, Some(VerifyError::UnsupportedAlgorithm(_))),
        "{err:?}"
    );
}

#[test]
fn altered_signed_info_is_rejected() {
    let s = signed();
    // Re-encode the DigestValue text with whitespace changes inside SignedInfo: the digest is
    // the same, but the canonical SignedInfo differs, so the signature must fail.
    let xml = s.xml.replacen("<ds:SignedInfo>", "<ds:SignedInfo> ", 1);
    let err = verify(&xml).err();
    assert!(matches!(err, Some(VerifyError::BadSignature(_))), "{err:?}");
}

#[test]
fn envelope_without_signature_is_rejected() {
    let err = verify(&send_message_envelope(10)).err();
    assert!(matches!(err, Some(VerifyError::NoSignature(_))), "{err:?}");
}

#[test]
fn dtd_in_a_signed_envelope_is_refused() {
    let s = signed();
    let xml = s.xml.replacen(
        "<soapenv:Envelope",
        "<!DOCTYPE x [<!ENTITY e \"x\">]>\n<soapenv:Envelope",
        1,
    );
    let err = verify(&xml).err();
    assert!(
        matches!(
            err,
            Some(VerifyError::Xml(qaqpa_soap::XmlError::DtdRefused { .. }))
        ),
        "{err:?}"
    );
}

#[test]
fn comment_injected_into_body_still_verifies_and_is_not_signed_content() {
    // Comments are outside the signed node set (exclusive c14n without comments): adding one
    // must not break verification, and the canonical body returned never contains it.
    let s = signed();
    let xml = s
        .xml
        .replacen("<requestInfo>", "<requestInfo><!-- injected -->", 1);
    let v = verify(&xml).expect("comments are not signed content");
    assert!(!String::from_utf8_lossy(&v.body_canonical).contains("injected"));
}
