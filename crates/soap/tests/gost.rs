//! GOST WS-Security and enveloped signatures (34.310-2004 and 34.10-2015-512) with qaqpa-gost
//! keys. The certificates are self-signed ones built here in DER, with NCA's OIDs and
//! encodings (public key OCTET STRING of LE(x)‖LE(y), signature LE(r)‖LE(s)).
#![cfg(feature = "gost")]

mod common;

use qaqpa_gost::{GostAlgorithm, SigningKey};
use qaqpa_soap::{
    sign_envelope, sign_enveloped, verify_envelope, verify_enveloped, GostSigner, KeyInfoForm,
    PinnedCertificates, VerifyError, VerifyOptions, WsSecurityOptions,
};

fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|&b| b == 0)
            .collect();
        let mut out = vec![0x80 | bytes.len() as u8];
        out.extend(bytes);
        out
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted
        .split('.')
        .map(|a| a.parse().expect("oid arc"))
        .collect();
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &arc in &arcs[2..] {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            chunk.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    tlv(0x06, &body)
}

fn name(cn: &str) -> Vec<u8> {
    seq(&[tlv(0x31, &seq(&[oid("2.5.4.3"), tlv(0x0c, cn.as_bytes())]))])
}

/// A self-signed certificate for `key`, with NCA's algorithm identifiers.
fn self_signed(key: &SigningKey, cn: &str) -> Vec<u8> {
    let alg = key.algorithm();
    let sig_alg = seq(&[oid(alg.signature_oid())]);
    let public = tlv(0x04, &key.verifying_key().to_nca_public());
    let mut bits = vec![0u8];
    bits.extend(public);
    let spki = seq(&[
        seq(&[
            oid(alg.key_oid()),
            seq(&[oid(alg.curve_oid()), oid(alg.digest_oid())]),
        ]),
        tlv(0x03, &bits),
    ]);
    let tbs = seq(&[
        tlv(0xa0, &tlv(0x02, &[2])),
        tlv(0x02, &[0x01, 0x23, 0x45]),
        sig_alg.clone(),
        name(cn),
        seq(&[tlv(0x17, b"260101000000Z"), tlv(0x17, b"361231000000Z")]),
        name(cn),
        spki,
    ]);
    let mut signature = vec![0u8];
    signature.extend(key.sign(&tbs));
    seq(&[tbs, sig_alg, tlv(0x03, &signature)])
}

fn gost_signer(alg: GostAlgorithm, cn: &str) -> (GostSigner, Vec<u8>) {
    let key = SigningKey::generate(alg);
    let cert = self_signed(&key, cn);
    (
        GostSigner::new(key, &cert).expect("certificate matches key"),
        cert,
    )
}

#[test]
fn gost_ws_security_verifies_in_each_key_info_form_and_rejects_tampering() {
    for alg in [GostAlgorithm::Gost2015_512, GostAlgorithm::Gost2004] {
        let (signer, cert) = gost_signer(alg, "GOST signer");
        let trust = PinnedCertificates::new(vec![cert.clone()]);
        for form in [
            KeyInfoForm::KeyIdentifier,
            KeyInfoForm::IssuerSerial,
            KeyInfoForm::BinarySecurityToken,
        ] {
            let opts = WsSecurityOptions {
                key_info: form,
                ..WsSecurityOptions::default()
            };
            let signed = sign_envelope(
                common::send_message_envelope(1024).as_bytes(),
                &signer,
                &opts,
            )
            .expect("signs");
            let text = String::from_utf8_lossy(&signed).into_owned();
            assert!(
                text.contains(alg.xmldsig_signature_uri())
                    && text.contains(alg.xmldsig_digest_uri())
            );
            let vo = VerifyOptions {
                known_certificates: vec![cert.clone()],
                ..VerifyOptions::default()
            };
            let v = verify_envelope(&signed, &trust, &vo)
                .unwrap_or_else(|e| panic!("{alg:?} {form:?}: {e}"));
            assert_eq!(v.signers, vec![cert.clone()]);
            let tampered = text.replace("qaqpa", "qaqpb");
            let err = verify_envelope(tampered.as_bytes(), &trust, &vo).err();
            assert!(
                matches!(err, Some(VerifyError::DigestMismatch(_))),
                "{alg:?} {form:?}: {err:?}"
            );
        }
    }
}

#[test]
fn gost_signature_value_is_checked_not_just_digests() {
    let (signer, cert) = gost_signer(GostAlgorithm::Gost2015_512, "GOST signer");
    let trust = PinnedCertificates::new(vec![cert]);
    let signed = String::from_utf8(
        sign_envelope(
            common::send_message_envelope(64).as_bytes(),
            &signer,
            &WsSecurityOptions::default(),
        )
        .expect("signs"),
    )
    .expect("utf-8");
    // Flip one base64 character of the SignatureValue.
    let start = signed.find("<ds:SignatureValue>").expect("value") + "<ds:SignatureValue>".len();
    let mut bytes = signed.into_bytes();
    bytes[start + 5] = if bytes[start + 5] == b'A' { b'B' } else { b'A' };
    let err = verify_envelope(&bytes, &trust, &VerifyOptions::default()).err();
    assert!(matches!(err, Some(VerifyError::BadSignature(_))), "{err:?}");
}

#[test]
fn gost_enveloped_signature_round_trips() {
    let (signer, cert) = gost_signer(GostAlgorithm::Gost2015_512, "ESF ticket signer");
    let trust = PinnedCertificates::new(vec![cert.clone()]);
    let ticket = "<authTicket xmlns=\"urn:esf\"><iin>123456789012</iin><ttl>600</ttl></authTicket>";
    let signed = sign_enveloped(ticket.as_bytes(), &signer, &Default::default()).expect("signs");
    let v = verify_enveloped(&signed, &trust, &VerifyOptions::default()).expect("verifies");
    assert_eq!(v.signers, vec![cert]);
    let tampered = String::from_utf8_lossy(&signed).replace("600", "6000");
    assert!(verify_enveloped(tampered.as_bytes(), &trust, &VerifyOptions::default()).is_err());
}

#[test]
fn gost_uri_with_an_rsa_certificate_is_refused() {
    let fx = common::rsa_fixture("rsa");
    let signed = String::from_utf8(
        sign_envelope(
            common::send_message_envelope(64).as_bytes(),
            &fx.signer(),
            &WsSecurityOptions::default(),
        )
        .expect("signs"),
    )
    .expect("utf-8")
    .replace(
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        GostAlgorithm::Gost2015_512.xmldsig_signature_uri(),
    );
    let err = verify_envelope(signed.as_bytes(), &fx.trust(), &VerifyOptions::default()).err();
    assert!(
        matches!(err, Some(VerifyError::UnsupportedAlgorithm(_))),
        "{err:?}"
    );
}
