//! CMS SignedData (RFC 5652) as Kalkan writes it: DER, digestAlgorithm with NULL parameters,
//! signatureAlgorithm = the signature-with-hash OID, signed attributes contentType, signingTime
//! and messageDigest. Signing (attached, detached, co-signing an existing CMS without touching
//! its signers) and checking each signer's signature. Trust, validity and revocation are judged
//! in `validate`, never here.

use crate::asn1::{der, parse_single, tag, Reader, Tlv};
use crate::cert::{read_certificate_set, Certificate, SubjectInfo};
use crate::error::PkiError;
use crate::keys::{DigestAlgorithm, SignatureAlgorithm};
use crate::oid;
use crate::pkcs12::Keystore;
use crate::time::UtcTime;

/// How to sign.
#[derive(Clone, Debug, Default)]
pub struct SignOptions {
    /// Leave the content out of the CMS (the verifier gets it separately).
    pub detached: bool,
    /// signingTime; the current time when `None`.
    pub signing_time: Option<UtcTime>,
    /// Also embed the keystore's chain certificates.
    pub include_chain: bool,
}

/// One SignerInfo, parsed, with its original bytes.
#[derive(Clone, Debug)]
pub struct SignerInfo {
    pub raw: Vec<u8>,
    /// Issuer DN DER and serial content octets (IssuerAndSerialNumber), if that form is used.
    pub issuer_serial: Option<(Vec<u8>, Vec<u8>)>,
    /// SubjectKeyIdentifier, if that form is used.
    pub subject_key_id: Option<Vec<u8>>,
    pub digest_oid: String,
    /// The signed attributes re-encoded as `SET OF` (what the signature covers), if present.
    pub signed_attrs: Option<Vec<u8>>,
    pub signature_oid: String,
    pub signature: Vec<u8>,
    /// Raw unsigned attributes (each `Attribute` DER).
    pub unsigned_attrs: Vec<Vec<u8>>,
    pub content_type_attr: Option<String>,
    pub message_digest_attr: Option<Vec<u8>>,
    pub signing_time: Option<UtcTime>,
}

/// A parsed SignedData.
#[derive(Clone, Debug)]
pub struct SignedData {
    pub digest_algorithms: Vec<Vec<u8>>,
    pub content_type: String,
    /// The encapsulated content; `None` for a detached signature.
    pub content: Option<Vec<u8>>,
    pub certificates: Vec<Certificate>,
    /// Raw CRL/other revocation choices ([1]), kept as is.
    pub crls_raw: Option<Vec<u8>>,
    pub signers: Vec<SignerInfo>,
}

/// Outcome of checking one signer's signature.
#[derive(Clone, Debug)]
pub struct SignerCheck {
    pub index: usize,
    pub certificate: Option<Certificate>,
    pub subject: Option<SubjectInfo>,
    pub algorithm: Option<SignatureAlgorithm>,
    pub signing_time: Option<UtcTime>,
    /// `Ok` when the signature and the message digest match; otherwise why not.
    pub signature: Result<(), String>,
}

pub(crate) fn attribute(oid_str: &str, value: &[u8]) -> Vec<u8> {
    der::seq(&[&der::oid(oid_str), &der::set_of(&[value])])
}

/// The digest AlgorithmIdentifier Kalkan writes: OID with NULL parameters.
pub(crate) fn digest_alg_der(alg: SignatureAlgorithm) -> Vec<u8> {
    der::alg(alg.digest_oid(), Some(&der::null()))
}

fn signer_info_for(
    keystore: &Keystore,
    content: &[u8],
    opts: &SignOptions,
) -> Result<Vec<u8>, PkiError> {
    signer_info_typed(keystore, content, oid::DATA, opts, &[])
}

pub(crate) fn signer_info_typed(
    keystore: &Keystore,
    content: &[u8],
    content_type: &str,
    opts: &SignOptions,
    extra_attrs: &[Vec<u8>],
) -> Result<Vec<u8>, PkiError> {
    let key = keystore.signing_key();
    let alg = key.signature_algorithm();
    let cert = keystore.certificate();
    let digest = alg.digest(content);
    let time = opts.signing_time.unwrap_or_else(UtcTime::now);
    let mut attrs = vec![
        attribute(oid::CONTENT_TYPE, &der::oid(content_type)),
        attribute(oid::SIGNING_TIME, &time.to_der()),
        attribute(oid::MESSAGE_DIGEST, &der::octets(&digest)),
    ];
    attrs.extend(extra_attrs.iter().cloned());
    let refs: Vec<&[u8]> = attrs.iter().map(|a| a.as_slice()).collect();
    let set = der::set_of(&refs);
    let signature = key.sign(&set)?;
    // signedAttrs are [0] IMPLICIT: same content, context tag.
    let signed_attrs = der::ctx(0, &set[header_len(&set)..]);
    let sid = der::seq(&[&cert.issuer().der, &der::tlv(tag::INTEGER, cert.serial())]);
    Ok(der::seq(&[
        &der::small_uint(1),
        &sid,
        &digest_alg_der(alg),
        &signed_attrs,
        &alg.to_der(),
        &der::octets(&signature),
    ]))
}

fn header_len(enc: &[u8]) -> usize {
    match enc.get(1) {
        Some(b) if b & 0x80 != 0 => 2 + (b & 0x7f) as usize,
        _ => 2,
    }
}

pub(crate) fn encode_signed_data(
    digest_algs: &[Vec<u8>],
    content: Option<&[u8]>,
    certs: &[Vec<u8>],
    crls_raw: Option<&[u8]>,
    signer_infos: &[Vec<u8>],
) -> Vec<u8> {
    encode_signed_data_typed(
        digest_algs,
        oid::DATA,
        content,
        certs,
        crls_raw,
        signer_infos,
    )
}

pub(crate) fn encode_signed_data_typed(
    digest_algs: &[Vec<u8>],
    content_type: &str,
    content: Option<&[u8]>,
    certs: &[Vec<u8>],
    crls_raw: Option<&[u8]>,
    signer_infos: &[Vec<u8>],
) -> Vec<u8> {
    let mut seen: Vec<&[u8]> = Vec::new();
    for d in digest_algs {
        if !seen.contains(&d.as_slice()) {
            seen.push(d);
        }
    }
    let encap = match content {
        Some(c) => der::seq(&[&der::oid(content_type), &der::ctx(0, &der::octets(c))]),
        None => der::seq(&[&der::oid(content_type)]),
    };
    let mut cert_refs: Vec<&[u8]> = Vec::new();
    for c in certs {
        if !cert_refs.contains(&c.as_slice()) {
            cert_refs.push(c);
        }
    }
    let certs_enc = der::ctx(0, &cert_refs.concat());
    let si: Vec<&[u8]> = signer_infos.iter().map(|s| s.as_slice()).collect();
    let mut body = vec![der::small_uint(1), der::set_of(&seen), encap, certs_enc];
    if let Some(c) = crls_raw {
        body.push(c.to_vec());
    }
    body.push(der::tlv(tag::SET, &si.concat()));
    let sd = der::tlv(tag::SEQUENCE, &body.concat());
    der::seq(&[&der::oid(oid::SIGNED_DATA), &der::ctx(0, &sd)])
}

/// Signs `content` with the keystore's key: a CAdES-BES SignedData in Kalkan's layout (DER).
pub fn sign(content: &[u8], keystore: &Keystore, opts: &SignOptions) -> Result<Vec<u8>, PkiError> {
    let si = signer_info_for(keystore, content, opts)?;
    let alg = keystore.signing_key().signature_algorithm();
    let mut certs = vec![keystore.certificate().der().to_vec()];
    if opts.include_chain {
        certs.extend(keystore.chain().iter().map(|c| c.der().to_vec()));
    }
    Ok(encode_signed_data(
        &[digest_alg_der(alg)],
        if opts.detached { None } else { Some(content) },
        &certs,
        None,
        &[si],
    ))
}

/// Adds a signer to an existing CMS. Existing SignerInfos, certificates and content are kept
/// byte for byte. For a detached CMS pass the content.
pub fn add_signer(
    cms: &[u8],
    detached_content: Option<&[u8]>,
    keystore: &Keystore,
    opts: &SignOptions,
) -> Result<Vec<u8>, PkiError> {
    let sd = SignedData::parse(cms)?;
    let content: &[u8] = match (&sd.content, detached_content) {
        (Some(c), _) => c,
        (None, Some(c)) => c,
        (None, None) => {
            return Err(PkiError::Malformed(
                "the CMS is detached: give the signed content to co-sign it".into(),
            ))
        }
    };
    let si = signer_info_for(keystore, content, opts)?;
    let alg = keystore.signing_key().signature_algorithm();
    let mut digest_algs = sd.digest_algorithms.clone();
    digest_algs.push(digest_alg_der(alg));
    let mut certs: Vec<Vec<u8>> = sd.certificates.iter().map(|c| c.der().to_vec()).collect();
    certs.push(keystore.certificate().der().to_vec());
    if opts.include_chain {
        certs.extend(keystore.chain().iter().map(|c| c.der().to_vec()));
    }
    let mut infos: Vec<Vec<u8>> = sd.signers.iter().map(|s| s.raw.clone()).collect();
    infos.push(si);
    Ok(encode_signed_data(
        &digest_algs,
        sd.content.as_deref(),
        &certs,
        sd.crls_raw.as_deref(),
        &infos,
    ))
}

/// Replaces the unsigned attributes of signer `index` (CAdES-T, embedded OCSP), keeping the
/// rest of the CMS as it was.
pub fn set_unsigned_attributes(
    cms: &[u8],
    index: usize,
    unsigned: &[Vec<u8>],
) -> Result<Vec<u8>, PkiError> {
    let sd = SignedData::parse(cms)?;
    let mut infos: Vec<Vec<u8>> = sd.signers.iter().map(|s| s.raw.clone()).collect();
    let target = infos
        .get(index)
        .ok_or_else(|| PkiError::Malformed(format!("no signer #{index}")))?;
    let t = parse_single(target, "SignerInfo")?;
    let mut r = t.reader();
    let mut parts: Vec<Vec<u8>> = Vec::new();
    while !r.is_empty() {
        let x = r.read()?;
        if x.tag != (tag::CONTEXT | tag::CONSTRUCTED | 1) {
            parts.push(x.raw.to_vec());
        }
    }
    if !unsigned.is_empty() {
        let refs: Vec<&[u8]> = unsigned.iter().map(|a| a.as_slice()).collect();
        let set = der::set_of(&refs);
        parts.push(der::ctx(1, &set[header_len(&set)..]));
    }
    infos[index] = der::tlv(tag::SEQUENCE, &parts.concat());
    let certs: Vec<Vec<u8>> = sd.certificates.iter().map(|c| c.der().to_vec()).collect();
    Ok(encode_signed_data(
        &sd.digest_algorithms,
        sd.content.as_deref(),
        &certs,
        sd.crls_raw.as_deref(),
        &infos,
    ))
}

fn parse_signer_info(t: &Tlv<'_>) -> Result<SignerInfo, PkiError> {
    t.check(tag::SEQUENCE, "SignerInfo")?;
    let mut r = t.reader();
    r.expect(tag::INTEGER, "SignerInfo version")?;
    let sid = r.read()?;
    let (issuer_serial, subject_key_id) = match sid.tag {
        tag::SEQUENCE => {
            let mut s = sid.reader();
            let issuer = s.expect(tag::SEQUENCE, "sid issuer")?;
            let serial = s.expect(tag::INTEGER, "sid serial")?;
            (Some((issuer.raw.to_vec(), serial.content.to_vec())), None)
        }
        t if t == tag::CONTEXT => (None, Some(sid.content.to_vec())),
        _ => return Err(PkiError::Malformed("SignerInfo sid".into())),
    };
    let digest_alg = r.expect(tag::SEQUENCE, "digestAlgorithm")?;
    let digest_oid = digest_alg
        .reader()
        .expect(tag::OID, "digestAlgorithm")?
        .oid()?;
    let mut signed_attrs = None;
    let mut content_type_attr = None;
    let mut message_digest_attr = None;
    let mut signing_time = None;
    if let Some(sa) = r.optional(tag::CONTEXT | tag::CONSTRUCTED)? {
        signed_attrs = Some(der::tlv(tag::SET, sa.content));
        let mut ar = sa.reader();
        while !ar.is_empty() {
            let a = ar.expect(tag::SEQUENCE, "signed attribute")?;
            let mut a = a.reader();
            let ty = a.expect(tag::OID, "attribute type")?.oid()?;
            let values = a.expect(tag::SET, "attribute values")?;
            let mut vr = values.reader();
            let v = vr.read()?;
            if !vr.is_empty() {
                return Err(PkiError::Malformed(format!(
                    "attribute {ty} has several values"
                )));
            }
            match ty.as_str() {
                oid::CONTENT_TYPE => content_type_attr = Some(v.oid()?),
                oid::MESSAGE_DIGEST => {
                    v.check(tag::OCTET_STRING, "messageDigest")?;
                    message_digest_attr = Some(v.content.to_vec());
                }
                oid::SIGNING_TIME => signing_time = Some(v.time()?),
                _ => {}
            }
        }
    }
    let sig_alg = r.expect(tag::SEQUENCE, "signatureAlgorithm")?;
    let signature_oid = sig_alg
        .reader()
        .expect(tag::OID, "signatureAlgorithm")?
        .oid()?;
    let signature = r.expect(tag::OCTET_STRING, "signature")?.content.to_vec();
    let mut unsigned_attrs = Vec::new();
    if let Some(ua) = r.optional(tag::CONTEXT | tag::CONSTRUCTED | 1)? {
        let mut ur = ua.reader();
        while !ur.is_empty() {
            unsigned_attrs.push(ur.expect(tag::SEQUENCE, "unsigned attribute")?.raw.to_vec());
        }
    }
    r.finish("SignerInfo")?;
    Ok(SignerInfo {
        raw: t.raw.to_vec(),
        issuer_serial,
        subject_key_id,
        digest_oid,
        signed_attrs,
        signature_oid,
        signature,
        unsigned_attrs,
        content_type_attr,
        message_digest_attr,
        signing_time,
    })
}

impl SignedData {
    /// Parses a ContentInfo holding SignedData (DER, BER or PEM "CMS"/"PKCS7").
    pub fn parse(data: &[u8]) -> Result<SignedData, PkiError> {
        if crate::pem::looks_like_pem(data) {
            let blocks = crate::pem::parse(&String::from_utf8_lossy(data))?;
            let b = blocks
                .into_iter()
                .next()
                .ok_or_else(|| PkiError::Malformed("empty PEM".into()))?;
            return Self::parse(&b.der);
        }
        let ci = parse_single(data, "CMS")?;
        ci.check(tag::SEQUENCE, "ContentInfo")?;
        let mut r = ci.reader();
        let ct = r.expect(tag::OID, "contentType")?.oid()?;
        if ct != oid::SIGNED_DATA {
            return Err(PkiError::Malformed(format!(
                "CMS content type {ct} is not SignedData"
            )));
        }
        let explicit = r.expect(tag::CONTEXT | tag::CONSTRUCTED, "content")?;
        let sd = explicit.reader().expect(tag::SEQUENCE, "SignedData")?;
        Self::parse_inner(&sd)
    }

    pub(crate) fn parse_inner(sd: &Tlv<'_>) -> Result<SignedData, PkiError> {
        let mut s: Reader<'_> = sd.reader();
        s.expect(tag::INTEGER, "SignedData version")?;
        let algs = s.expect(tag::SET, "digestAlgorithms")?;
        let mut digest_algorithms = Vec::new();
        let mut ar = algs.reader();
        while !ar.is_empty() {
            digest_algorithms.push(ar.expect(tag::SEQUENCE, "digestAlgorithm")?.raw.to_vec());
        }
        let encap = s.expect(tag::SEQUENCE, "encapContentInfo")?;
        let mut er = encap.reader();
        let content_type = er.expect(tag::OID, "eContentType")?.oid()?;
        let content = match er.optional(tag::CONTEXT | tag::CONSTRUCTED)? {
            Some(e) => Some(e.reader().read()?.octets()?.into_owned()),
            None => None,
        };
        let mut certificates = Vec::new();
        if let Some(c) = s.optional(tag::CONTEXT | tag::CONSTRUCTED)? {
            certificates = read_certificate_set(&c)?;
        }
        let crls_raw = s
            .optional(tag::CONTEXT | tag::CONSTRUCTED | 1)?
            .map(|c| c.raw.to_vec());
        let infos = s.expect(tag::SET, "signerInfos")?;
        let mut signers = Vec::new();
        let mut ir = infos.reader();
        while !ir.is_empty() {
            signers.push(parse_signer_info(&ir.read()?)?);
        }
        Ok(SignedData {
            digest_algorithms,
            content_type,
            content,
            certificates,
            crls_raw,
            signers,
        })
    }

    /// The certificate a signer names (issuer and serial, or key identifier).
    pub fn signer_certificate(
        &self,
        si: &SignerInfo,
        extra: &[Certificate],
    ) -> Option<Certificate> {
        self.certificates
            .iter()
            .chain(extra)
            .find(|c| match (&si.issuer_serial, &si.subject_key_id) {
                (Some((issuer, serial)), _) => {
                    &c.issuer().der == issuer
                        && crate::crl::normalize_serial(c.serial())
                            == crate::crl::normalize_serial(serial)
                }
                (None, Some(ski)) => c.extensions().subject_key_id.as_ref() == Some(ski),
                _ => false,
            })
            .cloned()
    }

    /// Checks every signer's signature over `content` (the encapsulated one if `None`).
    pub fn check_signatures(
        &self,
        detached: Option<&[u8]>,
        extra_certs: &[Certificate],
    ) -> Vec<SignerCheck> {
        let content: Option<&[u8]> = self.content.as_deref().or(detached);
        self.signers
            .iter()
            .enumerate()
            .map(|(index, si)| {
                let certificate = self.signer_certificate(si, extra_certs);
                let subject = certificate.as_ref().map(|c| c.subject_info());
                let algorithm = SignatureAlgorithm::from_oid(&si.signature_oid).ok();
                let signature = match (&certificate, content) {
                    (None, _) => Err("the signer's certificate is not in the CMS".to_string()),
                    (_, None) => {
                        Err("detached signature: the signed content was not given".to_string())
                    }
                    (Some(cert), Some(content)) => {
                        check_one(self, si, cert, content).map_err(|e| e.to_string())
                    }
                };
                SignerCheck {
                    index,
                    certificate,
                    subject,
                    algorithm,
                    signing_time: si.signing_time,
                    signature,
                }
            })
            .collect()
    }
}

fn check_one(
    sd: &SignedData,
    si: &SignerInfo,
    cert: &Certificate,
    content: &[u8],
) -> Result<(), PkiError> {
    let digest_alg = DigestAlgorithm::from_oid(&si.digest_oid)?;
    let listed = sd.digest_algorithms.iter().any(|a| {
        parse_single(a, "digestAlgorithm")
            .and_then(|t| t.reader().expect(tag::OID, "digestAlgorithm")?.oid())
            .map(|o| o == si.digest_oid)
            .unwrap_or(false)
    });
    if !listed {
        return Err(PkiError::BadSignature(format!(
            "digest algorithm {} is not listed in SignedData.digestAlgorithms",
            si.digest_oid
        )));
    }
    let mut alg = SignatureAlgorithm::from_oid(&si.signature_oid)?;
    // Some writers put the bare key OID; the certificate's key decides.
    if si.signature_oid == oid::RSA_ENCRYPTION || alg.gost().is_some() {
        alg = cert.key_signature_algorithm()?;
    }
    let digest = digest_alg.digest(content);
    match &si.signed_attrs {
        Some(attrs) => {
            match &si.message_digest_attr {
                Some(md) if md == &digest => {}
                Some(_) => {
                    return Err(PkiError::BadSignature(
                        "the content does not match the signed message digest".into(),
                    ))
                }
                None => return Err(PkiError::BadSignature("no messageDigest attribute".into())),
            }
            if si.content_type_attr.as_deref() != Some(sd.content_type.as_str()) {
                return Err(PkiError::BadSignature(
                    "contentType attribute missing or different from the content".into(),
                ));
            }
            if digest_alg != expected_digest(alg) {
                return Err(PkiError::UnsupportedAlgorithm(format!(
                    "digest {} with signature {}",
                    si.digest_oid, si.signature_oid
                )));
            }
            cert.verify_signature(attrs, &si.signature, alg)
        }
        None => cert.verify_signature(content, &si.signature, alg),
    }
}

fn expected_digest(alg: SignatureAlgorithm) -> DigestAlgorithm {
    match alg.gost() {
        None => DigestAlgorithm::Sha256,
        Some(g) => DigestAlgorithm::Gost(g),
    }
}

/// The certificates embedded in a CMS (for trust building in callers).
pub fn embedded_certificates(cms: &[u8]) -> Result<Vec<Certificate>, PkiError> {
    Ok(SignedData::parse(cms)?.certificates)
}

/// RFC 5940: an OCSP response as an `other` RevocationInfoChoice.
const OCSP_REVINFO: &str = "1.3.6.1.5.5.7.16.2";

/// Adds a time-stamp token over signer `index`'s signature as the unsigned attribute
/// id-aa-signatureTimeStampToken (CAdES-T). Other signers are untouched.
pub fn add_timestamp(cms: &[u8], index: usize, token_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    let sd = SignedData::parse(cms)?;
    let si = sd
        .signers
        .get(index)
        .ok_or_else(|| PkiError::Malformed(format!("no signer #{index}")))?;
    let mut attrs: Vec<Vec<u8>> = si.unsigned_attrs.clone();
    attrs.push(attribute(oid::TIMESTAMP_TOKEN, token_der));
    set_unsigned_attributes(cms, index, &attrs)
}

/// Embeds an OCSP response in SignedData.crls (RFC 5940 `other` form), keeping what was there.
pub fn embed_ocsp_response(cms: &[u8], ocsp_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    let sd = SignedData::parse(cms)?;
    let other = der::ctx(1, &[der::oid(OCSP_REVINFO), ocsp_der.to_vec()].concat());
    let mut content = match &sd.crls_raw {
        Some(raw) => {
            let t = parse_single(raw, "crls")?;
            t.content.to_vec()
        }
        None => Vec::new(),
    };
    content.extend_from_slice(&other);
    let crls = der::ctx(1, &content);
    let certs: Vec<Vec<u8>> = sd.certificates.iter().map(|c| c.der().to_vec()).collect();
    let infos: Vec<Vec<u8>> = sd.signers.iter().map(|s| s.raw.clone()).collect();
    Ok(encode_signed_data(
        &sd.digest_algorithms,
        sd.content.as_deref(),
        &certs,
        Some(&crls),
        &infos,
    ))
}

impl SignedData {
    /// OCSP responses (RFC 5940) and CRLs embedded in SignedData.crls.
    pub fn embedded_revocation(&self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut ocsp = Vec::new();
        let mut crls = Vec::new();
        let Some(raw) = &self.crls_raw else {
            return (ocsp, crls);
        };
        let Ok(t) = parse_single(raw, "crls") else {
            return (ocsp, crls);
        };
        let mut r = t.reader();
        while let Ok(x) = r.read() {
            if x.tag == tag::SEQUENCE {
                crls.push(x.raw.to_vec());
            } else if x.tag == tag::CONTEXT | tag::CONSTRUCTED | 1 {
                let mut o = x.reader();
                if let (Ok(id), Ok(v)) = (o.read(), o.read()) {
                    if id.oid().map(|s| s == OCSP_REVINFO).unwrap_or(false) {
                        ocsp.push(v.raw.to_vec());
                    }
                }
            }
        }
        (ocsp, crls)
    }
}

impl SignerInfo {
    /// Time-stamp tokens in the unsigned attributes (CAdES-T).
    pub fn timestamp_tokens(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for a in &self.unsigned_attrs {
            let Ok(t) = parse_single(a, "attribute") else {
                continue;
            };
            let mut r = t.reader();
            let Ok(id) = r.read().and_then(|x| x.oid()) else {
                continue;
            };
            if id != oid::TIMESTAMP_TOKEN {
                continue;
            }
            if let Ok(set) = r.read() {
                let mut sr = set.reader();
                while let Ok(v) = sr.read() {
                    out.push(v.raw.to_vec());
                }
            }
        }
        out
    }
}
