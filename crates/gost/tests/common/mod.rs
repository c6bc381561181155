//! Test helpers: a minimal DER/BER reader (enough to cut certificates and CRLs into the signed
//! bytes, the algorithm OID, the signature and the issuer's key), PEM decoding, and the paths of
//! the public NCA test material under ../shared/specs (read at run time, never copied).
#![allow(dead_code)]

use std::path::PathBuf;

/// The folder with NCA's public test material; a clear failure if it is missing.
pub fn nca_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs/nca");
    assert!(
        dir.is_dir(),
        "NCA test material not found at {} (the tests read the public copies in ../shared/specs; \
         see shared/specs/nca/SOURCES.md)",
        dir.display()
    );
    dir
}

/// Reads a certificate or CRL file, PEM or DER.
pub fn read_der(relative: &str) -> Vec<u8> {
    let path = nca_dir().join(relative);
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    if bytes.starts_with(b"-----BEGIN") {
        let text = String::from_utf8_lossy(&bytes);
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("");
        base64_decode(&body)
    } else {
        bytes
    }
}

pub fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// One TLV: its tag byte, the whole encoding, and its contents.
#[derive(Clone, Copy, Debug)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub whole: &'a [u8],
    pub contents: &'a [u8],
}

/// Reads one TLV from the front of `input` (DER, or BER with indefinite lengths); returns it and
/// the rest.
pub fn tlv(input: &[u8]) -> (Tlv<'_>, &[u8]) {
    assert!(input.len() >= 2, "truncated TLV");
    let tag = input[0];
    assert!(tag & 0x1f != 0x1f, "high tag numbers are not needed here");
    let first = input[1];
    let (header, len) = if first < 0x80 {
        (2, first as usize)
    } else if first == 0x80 {
        // Indefinite length: contents run until the matching end-of-contents.
        let mut rest = &input[2..];
        let mut consumed = 0;
        while !rest.starts_with(&[0, 0]) {
            let (child, after) = tlv(rest);
            consumed += child.whole.len();
            rest = after;
        }
        let contents = &input[2..2 + consumed];
        let whole = &input[..2 + consumed + 2];
        return (
            Tlv {
                tag,
                whole,
                contents,
            },
            &input[whole.len()..],
        );
    } else {
        let n = (first & 0x7f) as usize;
        let mut len = 0usize;
        for b in &input[2..2 + n] {
            len = (len << 8) | *b as usize;
        }
        (2 + n, len)
    };
    let whole = &input[..header + len];
    (
        Tlv {
            tag,
            whole,
            contents: &input[header..header + len],
        },
        &input[header + len..],
    )
}

/// The children of a constructed TLV.
pub fn children(parent: &[u8]) -> Vec<Tlv<'_>> {
    let mut out = Vec::new();
    let mut rest = parent;
    while !rest.is_empty() {
        let (child, after) = tlv(rest);
        out.push(child);
        rest = after;
    }
    out
}

/// Dotted form of an OBJECT IDENTIFIER's contents.
pub fn oid(contents: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut value = 0u64;
    for (i, b) in contents.iter().enumerate() {
        value = (value << 7) | (*b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
        let _ = i;
    }
    arcs.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// A signed object (certificate or CRL) cut into its parts.
pub struct Signed {
    /// The signed bytes (tbsCertificate / tbsCertList, whole TLV).
    pub tbs: Vec<u8>,
    /// The outer signatureAlgorithm OID.
    pub signature_oid: String,
    /// The signature bytes (BIT STRING contents without the unused-bits byte).
    pub signature: Vec<u8>,
    /// For a certificate: its SubjectPublicKeyInfo (algorithm OID, key bytes inside the OCTET STRING).
    pub subject_key: Option<(String, Vec<u8>)>,
    /// For a certificate: its subject and issuer Names (whole TLVs).
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
}

pub fn parse_signed(der: &[u8]) -> Signed {
    let (outer, _) = tlv(der);
    let parts = children(outer.contents);
    assert_eq!(
        parts.len(),
        3,
        "Certificate/CertificateList has three parts"
    );
    let tbs = parts[0];
    let alg = children(parts[1].contents);
    let signature_oid = oid(alg[0].contents);
    assert_eq!(parts[2].tag, 0x03, "signature is a BIT STRING");
    assert_eq!(parts[2].contents[0], 0, "no unused bits");
    let signature = parts[2].contents[1..].to_vec();

    let fields = children(tbs.contents);
    // A certificate starts with [0] version and an INTEGER serial; a CRL with INTEGER version and
    // the signature AlgorithmIdentifier.
    let (subject_key, subject, issuer) = if fields[0].tag == 0xa0 {
        let issuer = fields[3].whole.to_vec();
        let subject = fields[5].whole.to_vec();
        let spki = children(fields[6].contents);
        let key_alg = oid(children(spki[0].contents)[0].contents);
        assert_eq!(spki[1].tag, 0x03);
        let (octets, _) = tlv(&spki[1].contents[1..]);
        assert_eq!(
            octets.tag, 0x04,
            "GOST public key is an OCTET STRING in the BIT STRING"
        );
        (Some((key_alg, octets.contents.to_vec())), subject, issuer)
    } else {
        let issuer_index = if fields[0].tag == 0x02 { 2 } else { 1 };
        (None, Vec::new(), fields[issuer_index].whole.to_vec())
    };
    Signed {
        tbs: tbs.whole.to_vec(),
        signature_oid,
        signature,
        subject_key,
        subject,
        issuer,
    }
}
