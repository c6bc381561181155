//! Enveloped XML-DSig over whole business documents (ESF auth ticket, ГБД ЮЛ request):
//! ours verified by xmlsec1, xmlsec1's verified by ours, tampering refused.

mod common;

use common::{rsa_fixture, xmlsec1};
use qaqpa_soap::{
    sign_enveloped, verify_enveloped, C14nMethod, EnvelopedOptions, VerifyError, VerifyOptions,
};

const GBDUL_REQUEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment before the root: never signed content -->
<ns2:Request xmlns:ns2="http://gbdulinfobybin_v2.egp.gbdul.tamur.kz" xml:lang="ru">
  <RequestorBIN>123456789012</RequestorBIN>
  <BIN>987654321098</BIN>
  <!-- inner comment -->
  <Note attr="a &amp; b &lt; c">Қазақстан &#x1F600;</Note>
</ns2:Request>
"#;

#[test]
fn enveloped_signature_round_trips_in_each_c14n_method() {
    let fx = rsa_fixture("enveloped");
    for c14n in [
        C14nMethod::InclusiveWithComments,
        C14nMethod::Inclusive,
        C14nMethod::Exclusive,
        C14nMethod::ExclusiveWithComments,
    ] {
        let opts = EnvelopedOptions {
            c14n,
            ..EnvelopedOptions::default()
        };
        let signed = sign_enveloped(GBDUL_REQUEST.as_bytes(), &fx.signer(), &opts).expect("signs");
        let v = verify_enveloped(&signed, &fx.trust(), &VerifyOptions::default())
            .unwrap_or_else(|e| panic!("{c14n:?}: {e}"));
        assert_eq!(v.signers, vec![fx.cert_der.clone()]);
        let content = String::from_utf8(v.signed_content).expect("utf-8");
        assert!(
            content.contains("987654321098") && !content.contains("comment"),
            "{content}"
        );

        let file = fx.dir.path().join("enveloped.xml");
        std::fs::write(&file, &signed).expect("write");
        let cert = fx.cert_path();
        let out = xmlsec1(
            &[
                "--verify",
                "--pubkey-cert-pem",
                cert.to_str().expect("path"),
            ],
            &file,
        );
        assert!(
            out.status.success(),
            "{c14n:?}: xmlsec1 rejected our enveloped signature: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&signed)
        );

        let tampered = String::from_utf8_lossy(&signed).replace("987654321098", "987654321099");
        let err =
            verify_enveloped(tampered.as_bytes(), &fx.trust(), &VerifyOptions::default()).err();
        assert!(
            matches!(err, Some(VerifyError::DigestMismatch(_))),
            "{c14n:?}: {err:?}"
        );
        std::fs::write(&file, tampered.as_bytes()).expect("write");
        let out = xmlsec1(
            &[
                "--verify",
                "--pubkey-cert-pem",
                cert.to_str().expect("path"),
            ],
            &file,
        );
        assert!(
            !out.status.success(),
            "{c14n:?}: xmlsec1 accepted a tampered document"
        );
    }
}

#[test]
fn self_closing_root_can_be_signed() {
    let fx = rsa_fixture("empty root");
    let signed = sign_enveloped(
        b"<ticket xmlns=\"urn:esf\" iin=\"123\"/>",
        &fx.signer(),
        &EnvelopedOptions::default(),
    )
    .expect("signs");
    verify_enveloped(&signed, &fx.trust(), &VerifyOptions::default()).expect("verifies");
}

#[test]
fn enveloped_signature_made_by_xmlsec1_verifies_with_ours() {
    let fx = rsa_fixture("xmlsec1 enveloped");
    let template = GBDUL_REQUEST.replace(
        "</ns2:Request>",
        r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature></ns2:Request>"#,
    );
    let file = fx.dir.path().join("template.xml");
    std::fs::write(&file, template).expect("write");
    let key_and_cert = format!("{},{}", fx.key_path().display(), fx.cert_path().display());
    let out = xmlsec1(&["--sign", "--privkey-pem", &key_and_cert], &file);
    assert!(
        out.status.success(),
        "xmlsec1 --sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = verify_enveloped(&out.stdout, &fx.trust(), &VerifyOptions::default())
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v.signers, vec![fx.cert_der.clone()]);
}

#[test]
fn signature_that_does_not_cover_the_whole_document_is_rejected() {
    let fx = rsa_fixture("partial");
    let signed = String::from_utf8(
        sign_enveloped(
            GBDUL_REQUEST.as_bytes(),
            &fx.signer(),
            &EnvelopedOptions::default(),
        )
        .expect("signs"),
    )
    .expect("utf-8");
    let partial = signed
        .replace("<BIN>", "<BIN Id=\"b\">")
        .replace("URI=\"\"", "URI=\"#b\"");
    let err = verify_enveloped(partial.as_bytes(), &fx.trust(), &VerifyOptions::default()).err();
    assert!(matches!(err, Some(VerifyError::Wrapping(_))), "{err:?}");
    let unsigned = GBDUL_REQUEST;
    let err = verify_enveloped(unsigned.as_bytes(), &fx.trust(), &VerifyOptions::default()).err();
    assert!(matches!(err, Some(VerifyError::NoSignature(_))), "{err:?}");
}
