//! XML-DSig: the signer and trust traits, RSA and GOST signers, and enveloped signatures over
//! a whole document (as ESF's auth ticket and ГБД ЮЛ requests carry them).
//!
//! Verification is strict: only the algorithms listed here, only the transforms a profile
//! allows, every digest and the signature checked before anything is reported as signed, and
//! the certificate handed to [`CertificateTrust`]. It must never report as verified any content
//! that was not covered by the checked digest.

use crate::c14n::{C14nMethod, Canonicalizer};
use crate::cert::{pem_to_der, CertificateInfo, PublicKey};
use crate::xml::{parse_bytes, Document, Node, XmlError, XmlLimits};
use base64::Engine;
#[cfg(feature = "gost")]
use qaqpa_gost::GostAlgorithm;
use std::time::{Duration, SystemTime};

/// The XML-DSig namespace.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// RSA PKCS#1 v1.5 with SHA-256.
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
/// RSA PKCS#1 v1.5 with SHA-512.
pub const RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
/// SHA-256 digest.
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
/// SHA-512 digest.
pub const SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";
/// The enveloped-signature transform.
pub const ENVELOPED_SIGNATURE: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// Namespace of `InclusiveNamespaces` inside an exclusive c14n method or transform.
pub const EXC_C14N_NS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

/// Something that signs XML-DSig `SignedInfo`: a key with its certificate.
pub trait XmlSigner: Send + Sync {
    /// The `SignatureMethod` algorithm URI.
    fn signature_method_uri(&self) -> &str;
    /// The `DigestMethod` algorithm URI used for references.
    fn digest_method_uri(&self) -> &str;
    /// Digest of reference data with the algorithm of [`XmlSigner::digest_method_uri`].
    fn digest(&self, data: &[u8]) -> Vec<u8>;
    /// Signature over the canonical `SignedInfo`, in the bytes that go into `SignatureValue`.
    fn sign(&self, canonical_signed_info: &[u8]) -> Result<Vec<u8>, SignError>;
    /// The signer's certificate, DER.
    fn certificate_der(&self) -> &[u8];
}

/// Decides whether a certificate that produced a valid signature is trusted (chain,
/// validity, revocation). The pki crate provides the real policy.
pub trait CertificateTrust: Send + Sync {
    /// `Ok(())` when `certificate_der` is trusted at `at`; otherwise why not.
    fn check(&self, certificate_der: &[u8], at: SystemTime) -> Result<(), String>;
}

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key or certificate could not be loaded.
    #[error("signing key: {0}")]
    Key(String),
    /// The document to sign is not acceptable XML.
    #[error("document to sign: {0}")]
    Xml(#[from] XmlError),
    /// The document does not have the shape signing needs (e.g. no SOAP Body).
    #[error("document to sign: {0}")]
    Shape(String),
    /// The cryptographic operation failed.
    #[error("signature computation failed: {0}")]
    Crypto(String),
}

/// Why verification failed. Every variant means: do not process the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not acceptable XML.
    #[error("signed document: {0}")]
    Xml(#[from] XmlError),
    /// No signature where one was required.
    #[error("no signature found: {0}")]
    NoSignature(String),
    /// The signature or document structure is not what the profile allows.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// An algorithm or transform outside the accepted set.
    #[error("unsupported or refused algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// A reference points at something other than what must be signed (signature wrapping).
    #[error("refused reference: {0}")]
    Wrapping(String),
    /// The referenced content changed after signing.
    #[error("digest mismatch for reference {0:?}: the signed content was altered")]
    DigestMismatch(String),
    /// The signature value does not verify with the certificate's key.
    #[error("signature value does not verify: {0}")]
    BadSignature(String),
    /// The certificate could not be read or found.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The certificate is not trusted.
    #[error("certificate not trusted: {0}")]
    Untrusted(String),
    /// The WS-Security timestamp is missing, expired or not yet valid.
    #[error("timestamp: {0}")]
    Timestamp(String),
}

/// Options for verification (enveloped and WS-Security alike).
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The time at which certificates and timestamps are judged (`None`: now).
    pub at: Option<SystemTime>,
    /// Parser limits.
    pub limits: XmlLimits,
    /// Certificates (DER) an `X509IssuerSerial` reference may name. A certificate found this
    /// way is still handed to [`CertificateTrust`].
    pub known_certificates: Vec<Vec<u8>>,
    /// WS-Security: require a signed `wsu:Timestamp`.
    pub require_timestamp: bool,
    /// WS-Security: allowed clock skew when checking `wsu:Timestamp`.
    pub clock_skew: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            at: None,
            limits: XmlLimits::default(),
            known_certificates: Vec::new(),
            require_timestamp: false,
            clock_skew: Duration::from_secs(300),
        }
    }
}

impl VerifyOptions {
    pub(crate) fn time(&self) -> SystemTime {
        self.at.unwrap_or_else(SystemTime::now)
    }
}

/// RSA PKCS#1 v1.5 SHA-256 signing with aws-lc-rs.
pub struct RsaSigner {
    key: aws_lc_rs::rsa::KeyPair,
    certificate: Vec<u8>,
}

impl std::fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaSigner").finish_non_exhaustive()
    }
}

impl RsaSigner {
    /// From a PKCS#8 DER private key and the DER certificate of its public key.
    pub fn from_pkcs8_der(key_der: &[u8], certificate_der: &[u8]) -> Result<Self, SignError> {
        let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(key_der)
            .map_err(|e| SignError::Key(format!("not an RSA PKCS#8 private key: {e}")))?;
        let info = CertificateInfo::from_der(certificate_der)
            .map_err(|e| SignError::Key(e.to_string()))?;
        use aws_lc_rs::signature::KeyPair as _;
        match info.public_key {
            PublicKey::Rsa(ref k) if k.as_slice() == key.public_key().as_ref() => {}
            _ => {
                return Err(SignError::Key(
                    "the certificate is not for this RSA key".into(),
                ))
            }
        }
        Ok(RsaSigner {
            key,
            certificate: certificate_der.to_vec(),
        })
    }

    /// From PEM texts: `-----BEGIN PRIVATE KEY-----` (PKCS#8) and `-----BEGIN CERTIFICATE-----`.
    pub fn from_pem(key_pem: &str, certificate_pem: &str) -> Result<Self, SignError> {
        let key = pem_to_der(key_pem, "PRIVATE KEY")
            .ok_or_else(|| SignError::Key("no PKCS#8 'PRIVATE KEY' PEM block".into()))?;
        let cert = pem_to_der(certificate_pem, "CERTIFICATE")
            .ok_or_else(|| SignError::Key("no 'CERTIFICATE' PEM block".into()))?;
        Self::from_pkcs8_der(&key, &cert)
    }
}

impl XmlSigner for RsaSigner {
    fn signature_method_uri(&self) -> &str {
        RSA_SHA256
    }
    fn digest_method_uri(&self) -> &str {
        SHA256
    }
    fn digest(&self, data: &[u8]) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
            .as_ref()
            .to_vec()
    }
    fn sign(&self, canonical_signed_info: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &rng,
                canonical_signed_info,
                &mut signature,
            )
            .map_err(|e| SignError::Crypto(format!("RSA signing failed: {e}")))?;
        Ok(signature)
    }
    fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }
}

/// GOST signing (2004, 2015-256, 2015-512) with qaqpa-gost; signatures in NCA encoding.
#[cfg(feature = "gost")]
pub struct GostSigner {
    key: qaqpa_gost::SigningKey,
    certificate: Vec<u8>,
}

#[cfg(feature = "gost")]
impl std::fmt::Debug for GostSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GostSigner")
            .field("algorithm", &self.key.algorithm())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "gost")]
impl GostSigner {
    /// From a GOST key and the DER certificate of its public key.
    pub fn new(key: qaqpa_gost::SigningKey, certificate_der: &[u8]) -> Result<Self, SignError> {
        let info = CertificateInfo::from_der(certificate_der)
            .map_err(|e| SignError::Key(e.to_string()))?;
        match info.public_key {
            PublicKey::Gost { ref x_le_y_le, .. }
                if *x_le_y_le == key.verifying_key().to_nca_public() => {}
            _ => {
                return Err(SignError::Key(
                    "the certificate is not for this GOST key".into(),
                ))
            }
        }
        Ok(GostSigner {
            key,
            certificate: certificate_der.to_vec(),
        })
    }
}

#[cfg(feature = "gost")]
impl XmlSigner for GostSigner {
    fn signature_method_uri(&self) -> &str {
        self.key.algorithm().xmldsig_signature_uri()
    }
    fn digest_method_uri(&self) -> &str {
        self.key.algorithm().xmldsig_digest_uri()
    }
    fn digest(&self, data: &[u8]) -> Vec<u8> {
        qaqpa_gost::digest(self.key.algorithm(), data)
    }
    fn sign(&self, canonical_signed_info: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.key.sign(canonical_signed_info))
    }
    fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }
}

/// Trusts exactly the listed certificates, within their validity period. For tests and for
/// peers pinned by configuration; the pki crate provides chain validation.
#[derive(Clone, Debug, Default)]
pub struct PinnedCertificates {
    certificates: Vec<Vec<u8>>,
}

impl PinnedCertificates {
    /// Trust these DER certificates.
    pub fn new(certificates: Vec<Vec<u8>>) -> Self {
        PinnedCertificates { certificates }
    }

    /// Trust every certificate (`*.pem`, `*.cer`, `*.crt`, `*.der`) in a directory.
    pub fn from_dir(dir: &std::path::Path) -> std::io::Result<Self> {
        let mut certificates = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            if !["pem", "cer", "crt", "der"].contains(&ext.as_str()) {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            match std::str::from_utf8(&bytes)
                .ok()
                .and_then(|t| pem_to_der(t, "CERTIFICATE"))
            {
                Some(der) => certificates.push(der),
                None => certificates.push(bytes),
            }
        }
        Ok(PinnedCertificates { certificates })
    }

    /// The pinned certificates.
    pub fn certificates(&self) -> &[Vec<u8>] {
        &self.certificates
    }
}

impl CertificateTrust for PinnedCertificates {
    fn check(&self, certificate_der: &[u8], at: SystemTime) -> Result<(), String> {
        if !self
            .certificates
            .iter()
            .any(|c| c.as_slice() == certificate_der)
        {
            return Err("certificate is not among the pinned certificates".into());
        }
        let info = CertificateInfo::from_der(certificate_der).map_err(|e| e.to_string())?;
        if at < info.not_before || at > info.not_after {
            return Err(format!(
                "certificate of {} is outside its validity period",
                info.subject
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Shared machinery: parsing and checking a ds:Signature.

/// One transform of a reference.
#[derive(Clone, Debug)]
pub(crate) enum Transform {
    Enveloped,
    C14n(Canonicalizer),
}

/// A parsed `ds:Reference`.
#[derive(Clone, Debug)]
pub(crate) struct ParsedReference {
    pub uri: String,
    pub transforms: Vec<Transform>,
    pub digest_method: String,
    pub digest_value: Vec<u8>,
}

/// A parsed `ds:Signature`.
pub(crate) struct ParsedSignature<'a, 'i> {
    pub signed_info: Node<'a, 'i>,
    pub canonicalizer: Canonicalizer,
    pub signature_method: String,
    pub references: Vec<ParsedReference>,
    pub signature_value: Vec<u8>,
    pub key_info: Option<Node<'a, 'i>>,
}

pub(crate) fn is(node: &Node, ns: &str, local: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(ns) && node.tag_name().name() == local
}

fn element_children<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(|c| c.is_element())
}

/// Only whitespace text, elements (and comments) are allowed between signature elements.
fn no_stray_text(node: Node) -> Result<(), VerifyError> {
    if node
        .children()
        .any(|c| c.is_text() && c.text().is_some_and(|t| !t.trim().is_empty()))
    {
        return Err(VerifyError::Malformed(format!(
            "unexpected text inside ds:{}",
            node.tag_name().name()
        )));
    }
    Ok(())
}

pub(crate) fn decode_base64(text: &str, what: &str) -> Result<Vec<u8>, VerifyError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| VerifyError::Malformed(format!("{what} is not base64: {e}")))
}

fn algorithm<'a>(node: Node<'a, '_>) -> Result<&'a str, VerifyError> {
    node.attribute("Algorithm").ok_or_else(|| {
        VerifyError::Malformed(format!("ds:{} without Algorithm", node.tag_name().name()))
    })
}

/// Reads a c14n method element (CanonicalizationMethod or Transform) with its optional
/// InclusiveNamespaces PrefixList.
fn canonicalizer_of(node: Node, uri: &str) -> Result<Canonicalizer, VerifyError> {
    let method = C14nMethod::from_uri(uri)
        .ok_or_else(|| VerifyError::UnsupportedAlgorithm(format!("canonicalization {uri}")))?;
    let mut canonicalizer = Canonicalizer::new(method);
    for child in element_children(node) {
        if method.is_exclusive() && is(&child, EXC_C14N_NS, "InclusiveNamespaces") {
            let list = child.attribute("PrefixList").unwrap_or("");
            canonicalizer = canonicalizer.with_inclusive_prefixes(list.split_ascii_whitespace());
        } else {
            return Err(VerifyError::Malformed(format!(
                "unexpected {} inside canonicalization method",
                child.tag_name().name()
            )));
        }
    }
    Ok(canonicalizer)
}

pub(crate) fn parse_signature<'a, 'i>(
    signature: Node<'a, 'i>,
) -> Result<ParsedSignature<'a, 'i>, VerifyError> {
    no_stray_text(signature)?;
    let mut children = element_children(signature);
    let signed_info = children
        .next()
        .filter(|n| is(n, DSIG_NS, "SignedInfo"))
        .ok_or_else(|| {
            VerifyError::Malformed("ds:Signature must start with ds:SignedInfo".into())
        })?;
    let value_node = children
        .next()
        .filter(|n| is(n, DSIG_NS, "SignatureValue"))
        .ok_or_else(|| VerifyError::Malformed("ds:SignatureValue missing".into()))?;
    let key_info = children.next();
    if let Some(k) = key_info {
        if !is(&k, DSIG_NS, "KeyInfo") {
            return Err(VerifyError::Malformed(format!(
                "unexpected {} in ds:Signature",
                k.tag_name().name()
            )));
        }
    }
    if let Some(extra) = children.next() {
        return Err(VerifyError::Malformed(format!(
            "unexpected {} in ds:Signature (ds:Object is not accepted)",
            extra.tag_name().name()
        )));
    }
    if element_children(value_node).next().is_some() {
        return Err(VerifyError::Malformed(
            "ds:SignatureValue has element content".into(),
        ));
    }
    let signature_value = decode_base64(
        &value_node
            .children()
            .filter_map(|c| c.text())
            .collect::<String>(),
        "SignatureValue",
    )?;

    no_stray_text(signed_info)?;
    let mut si = element_children(signed_info);
    let c14n_node = si
        .next()
        .filter(|n| is(n, DSIG_NS, "CanonicalizationMethod"))
        .ok_or_else(|| VerifyError::Malformed("ds:CanonicalizationMethod missing".into()))?;
    let canonicalizer = canonicalizer_of(c14n_node, algorithm(c14n_node)?)?;
    let method_node = si
        .next()
        .filter(|n| is(n, DSIG_NS, "SignatureMethod"))
        .ok_or_else(|| VerifyError::Malformed("ds:SignatureMethod missing".into()))?;
    if element_children(method_node).next().is_some() {
        return Err(VerifyError::Malformed(
            "ds:SignatureMethod has parameters".into(),
        ));
    }
    let signature_method = algorithm(method_node)?.to_string();
    let mut references = Vec::new();
    for reference in si {
        if !is(&reference, DSIG_NS, "Reference") {
            return Err(VerifyError::Malformed(format!(
                "unexpected {} in ds:SignedInfo",
                reference.tag_name().name()
            )));
        }
        references.push(parse_reference(reference)?);
    }
    if references.is_empty() {
        return Err(VerifyError::Malformed(
            "ds:SignedInfo has no ds:Reference".into(),
        ));
    }
    Ok(ParsedSignature {
        signed_info,
        canonicalizer,
        signature_method,
        references,
        signature_value,
        key_info,
    })
}

fn parse_reference(reference: Node) -> Result<ParsedReference, VerifyError> {
    no_stray_text(reference)?;
    let uri = reference
        .attribute("URI")
        .ok_or_else(|| VerifyError::Malformed("ds:Reference without URI".into()))?
        .to_string();
    let mut children = element_children(reference).peekable();
    let mut transforms = Vec::new();
    if let Some(t) = children
        .peek()
        .copied()
        .filter(|n| is(n, DSIG_NS, "Transforms"))
    {
        children.next();
        no_stray_text(t)?;
        for transform in element_children(t) {
            if !is(&transform, DSIG_NS, "Transform") {
                return Err(VerifyError::Malformed(
                    "unexpected element in ds:Transforms".into(),
                ));
            }
            let alg = algorithm(transform)?;
            if alg == ENVELOPED_SIGNATURE {
                if element_children(transform).next().is_some() {
                    return Err(VerifyError::Malformed(
                        "enveloped-signature with parameters".into(),
                    ));
                }
                transforms.push(Transform::Enveloped);
            } else if C14nMethod::from_uri(alg).is_some() {
                transforms.push(Transform::C14n(canonicalizer_of(transform, alg)?));
            } else {
                return Err(VerifyError::UnsupportedAlgorithm(format!(
                    "transform {alg}"
                )));
            }
        }
    }
    let digest_method_node = children
        .next()
        .filter(|n| is(n, DSIG_NS, "DigestMethod"))
        .ok_or_else(|| VerifyError::Malformed("ds:DigestMethod missing".into()))?;
    let digest_method = algorithm(digest_method_node)?.to_string();
    let digest_value_node = children
        .next()
        .filter(|n| is(n, DSIG_NS, "DigestValue"))
        .ok_or_else(|| VerifyError::Malformed("ds:DigestValue missing".into()))?;
    if children.next().is_some() {
        return Err(VerifyError::Malformed(
            "unexpected element in ds:Reference".into(),
        ));
    }
    let digest_value = decode_base64(
        &digest_value_node
            .children()
            .filter_map(|c| c.text())
            .collect::<String>(),
        "DigestValue",
    )?;
    Ok(ParsedReference {
        uri,
        transforms,
        digest_method,
        digest_value,
    })
}

/// Digest with an accepted DigestMethod.
pub(crate) fn digest(uri: &str, data: &[u8]) -> Result<Vec<u8>, VerifyError> {
    use aws_lc_rs::digest;
    match uri {
        SHA256 => Ok(digest::digest(&digest::SHA256, data).as_ref().to_vec()),
        SHA512 => Ok(digest::digest(&digest::SHA512, data).as_ref().to_vec()),
        #[cfg(feature = "gost")]
        _ => match GostAlgorithm::from_xmldsig_digest_uri(uri) {
            Some(alg) => Ok(qaqpa_gost::digest(alg, data)),
            None => Err(VerifyError::UnsupportedAlgorithm(format!("digest {uri}"))),
        },
        #[cfg(not(feature = "gost"))]
        _ => Err(VerifyError::UnsupportedAlgorithm(format!("digest {uri}"))),
    }
}

/// Canonical bytes a reference covers: `target` is the referenced element (or the document
/// root node for `URI=""`); `signature` is the enclosing ds:Signature (for the enveloped
/// transform). Only `[enveloped?] [c14n?]` is accepted; a bare-name or empty URI drops
/// comments, as XML-DSig requires.
pub(crate) fn reference_octets(
    reference: &ParsedReference,
    target: Node,
    signature: Node,
) -> Result<Vec<u8>, VerifyError> {
    let mut excluded = None;
    let mut canonicalizer = None;
    for (i, transform) in reference.transforms.iter().enumerate() {
        match transform {
            Transform::Enveloped if i == 0 && canonicalizer.is_none() => {
                excluded = Some(signature);
            }
            Transform::C14n(c) if i + 1 == reference.transforms.len() => {
                canonicalizer = Some(c.clone());
            }
            _ => {
                return Err(VerifyError::UnsupportedAlgorithm(
                    "transform sequence other than [enveloped-signature] [c14n]".into(),
                ))
            }
        }
    }
    let canonicalizer = canonicalizer
        .unwrap_or_else(|| Canonicalizer::new(C14nMethod::Inclusive))
        .without_comments();
    if let Some(sig) = excluded {
        if !sig.ancestors().any(|a| a == target) {
            return Err(VerifyError::Wrapping(
                "enveloped-signature transform on a reference that does not contain the signature"
                    .into(),
            ));
        }
    }
    Ok(canonicalizer.subtree_excluding(target, excluded))
}

/// Checks the signature value over the canonical SignedInfo with the certificate's key.
pub(crate) fn verify_signature_value(
    parsed: &ParsedSignature,
    certificate: &CertificateInfo,
) -> Result<(), VerifyError> {
    let signed_info = parsed.canonicalizer.subtree(parsed.signed_info);
    let method = parsed.signature_method.as_str();
    match (&certificate.public_key, method) {
        (PublicKey::Rsa(key), RSA_SHA256 | RSA_SHA512) => {
            let alg = if method == RSA_SHA256 {
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA512
            };
            aws_lc_rs::signature::UnparsedPublicKey::new(alg, key)
                .verify(&signed_info, &parsed.signature_value)
                .map_err(|_| {
                    VerifyError::BadSignature(format!("{method} with {}", certificate.subject))
                })
        }
        #[cfg(not(feature = "gost"))]
        (PublicKey::Gost { .. }, _) => Err(VerifyError::UnsupportedAlgorithm(format!(
            "signature {method}: built without the 'gost' feature"
        ))),
        #[cfg(feature = "gost")]
        (PublicKey::Gost { key_oid, x_le_y_le }, _) => {
            let alg = GostAlgorithm::from_xmldsig_signature_uri(method)
                .ok_or_else(|| VerifyError::UnsupportedAlgorithm(format!("signature {method}")))?;
            if GostAlgorithm::from_key_oid(key_oid) != Some(alg) {
                return Err(VerifyError::BadSignature(format!(
                    "{method} does not match the certificate's key ({key_oid})"
                )));
            }
            let key = qaqpa_gost::VerifyingKey::from_nca_public(alg, x_le_y_le)
                .map_err(|e| VerifyError::Certificate(format!("GOST public key: {e}")))?;
            key.verify(&signed_info, &parsed.signature_value)
                .map_err(|e| VerifyError::BadSignature(format!("{method}: {e}")))
        }
        (PublicKey::Other(oid), _) => Err(VerifyError::UnsupportedAlgorithm(format!(
            "public key algorithm {oid}"
        ))),
        (PublicKey::Rsa(_), _) => Err(VerifyError::UnsupportedAlgorithm(format!(
            "signature {method} with an RSA key"
        ))),
    }
}

/// Checks each reference's digest against its octets (computed by `octets`).
pub(crate) fn check_digest(reference: &ParsedReference, octets: &[u8]) -> Result<(), VerifyError> {
    let actual = digest(&reference.digest_method, octets)?;
    if actual != reference.digest_value {
        return Err(VerifyError::DigestMismatch(reference.uri.clone()));
    }
    Ok(())
}

/// Writes a `ds:Reference` element.
pub(crate) fn write_reference(
    out: &mut String,
    uri: &str,
    transforms: &[&str],
    inclusive_prefixes: Option<&str>,
    digest_method: &str,
    digest_value: &[u8],
) {
    out.push_str(&format!("<ds:Reference URI=\"{}\">", escape(uri)));
    if !transforms.is_empty() {
        out.push_str("<ds:Transforms>");
        for t in transforms {
            match inclusive_prefixes.filter(|_| *t == C14nMethod::Exclusive.uri()) {
                Some(list) => out.push_str(&format!(
                    "<ds:Transform Algorithm=\"{t}\"><ec:InclusiveNamespaces xmlns:ec=\"{EXC_C14N_NS}\" PrefixList=\"{}\"/></ds:Transform>",
                    escape(list)
                )),
                None => out.push_str(&format!("<ds:Transform Algorithm=\"{t}\"/>")),
            }
        }
        out.push_str("</ds:Transforms>");
    }
    out.push_str(&format!(
        "<ds:DigestMethod Algorithm=\"{}\"/><ds:DigestValue>{}</ds:DigestValue></ds:Reference>",
        escape(digest_method),
        base64::engine::general_purpose::STANDARD.encode(digest_value)
    ));
}

/// Escapes text for element content or a double-quoted attribute.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Finds `needle` in a freshly built document text and returns its byte position.
pub(crate) fn position_of(text: &str, needle: &str, from: usize) -> Result<usize, SignError> {
    text.get(from..)
        .and_then(|t| t.find(needle))
        .map(|p| p + from)
        .ok_or_else(|| SignError::Shape(format!("internal: {needle} not found after insertion")))
}

/// Byte position just after the start tag of `node` (its `>`); `None` if self-closing.
pub(crate) fn start_tag_end(node: Node) -> Result<(usize, bool), SignError> {
    let text = node.document().input_text();
    let range = node.range();
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = range.start + 1;
    while i < range.end {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => {
                let self_closing = i > 0 && bytes[i - 1] == b'/';
                return Ok((i + 1, self_closing));
            }
            None => {}
        }
        i += 1;
    }
    Err(SignError::Shape("unterminated start tag".into()))
}

// ---------------------------------------------------------------------------------------------
// Enveloped signatures.

/// Options for [`sign_enveloped`].
#[derive(Clone, Debug)]
pub struct EnvelopedOptions {
    /// Canonicalization for SignedInfo and the reference transform. Default: inclusive c14n
    /// with comments (what ШЭП business data and NCA's tools use; comments are still dropped
    /// from the signed content, as `URI=""` requires).
    pub c14n: C14nMethod,
    /// Parser limits for the document to sign.
    pub limits: XmlLimits,
}

impl Default for EnvelopedOptions {
    fn default() -> Self {
        EnvelopedOptions {
            c14n: C14nMethod::InclusiveWithComments,
            limits: XmlLimits::default(),
        }
    }
}

/// Result of a successful enveloped verification.
#[derive(Clone, Debug)]
pub struct VerifiedDocument {
    /// The signers' certificates (DER), one per verified signature, in document order.
    pub signers: Vec<Vec<u8>>,
    /// The canonical form of what the signature covers (the document without the signature,
    /// without comments): the only bytes a caller should act upon.
    pub signed_content: Vec<u8>,
}

/// Signs a whole document with an enveloped signature appended to its root element
/// (Reference URI="", transforms enveloped-signature + `opts.c14n`, KeyInfo X509Certificate).
pub fn sign_enveloped(
    xml: &[u8],
    signer: &dyn XmlSigner,
    opts: &EnvelopedOptions,
) -> Result<Vec<u8>, SignError> {
    let doc = parse_bytes(xml, &opts.limits)?;
    let text = doc.input_text();
    let root = doc.root_element();
    let content = Canonicalizer::new(opts.c14n.without_comments()).document(&doc);
    let digest_value = signer.digest(&content);

    let mut signature = String::with_capacity(2048);
    signature.push_str(&format!(
        "<ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:SignedInfo>"
    ));
    signature.push_str(&format!(
        "<ds:CanonicalizationMethod Algorithm=\"{}\"/><ds:SignatureMethod Algorithm=\"{}\"/>",
        opts.c14n.uri(),
        escape(signer.signature_method_uri())
    ));
    write_reference(
        &mut signature,
        "",
        &[ENVELOPED_SIGNATURE, opts.c14n.uri()],
        None,
        signer.digest_method_uri(),
        &digest_value,
    );
    signature.push_str("</ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>");
    signature.push_str(&base64::engine::general_purpose::STANDARD.encode(signer.certificate_der()));
    signature.push_str("</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>");

    let (tag_end, self_closing) = start_tag_end(root)?;
    let mut out = String::with_capacity(text.len() + signature.len() + 512);
    if self_closing {
        let qname_end = tag_end - 2;
        out.push_str(&text[..qname_end]);
        out.push('>');
        out.push_str(&signature);
        out.push_str(&format!("</{}>", crate::c14n::element_qname(root)));
        out.push_str(&text[tag_end..]);
    } else {
        let end_tag_start = root.range().end - (crate::c14n::element_qname(root).len() + 3);
        out.push_str(&text[..end_tag_start]);
        out.push_str(&signature);
        out.push_str(&text[end_tag_start..]);
    }
    finish_signature(out, signer, &opts.limits, 0)
}

/// Computes and inserts the SignatureValue of the first `ds:SignatureValue` placeholder at or
/// after byte `from` of `text`.
pub(crate) fn finish_signature(
    text: String,
    signer: &dyn XmlSigner,
    limits: &XmlLimits,
    from: usize,
) -> Result<Vec<u8>, SignError> {
    let placeholder = "<ds:SignatureValue></ds:SignatureValue>";
    let at = position_of(&text, placeholder, from)?;
    let signature_value = {
        let doc = crate::xml::parse(&text, limits)?;
        let signed_info = doc
            .descendants()
            .find(|n| {
                is(n, DSIG_NS, "SignedInfo")
                    && n.next_sibling_element()
                        .is_some_and(|v| v.range().start == at)
            })
            .ok_or_else(|| SignError::Shape("internal: SignedInfo not found".into()))?;
        let method = doc
            .descendants()
            .find(|n| is(n, DSIG_NS, "CanonicalizationMethod") && n.parent() == Some(signed_info))
            .and_then(|n| n.attribute("Algorithm"))
            .and_then(C14nMethod::from_uri)
            .ok_or_else(|| SignError::Shape("internal: CanonicalizationMethod".into()))?;
        let canonical = Canonicalizer::new(method).subtree(signed_info);
        signer.sign(&canonical)?
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(signature_value);
    let mut out = String::with_capacity(text.len() + encoded.len());
    let value_start = at + "<ds:SignatureValue>".len();
    out.push_str(&text[..value_start]);
    out.push_str(&encoded);
    out.push_str(&text[value_start..]);
    Ok(out.into_bytes())
}

/// Verifies the enveloped signature(s) that are children of the root element. Each must
/// reference the whole document (`URI=""`, or `#id` of the root element) with the
/// enveloped-signature transform; exactly one reference per signature.
pub fn verify_enveloped(
    xml: &[u8],
    trust: &dyn CertificateTrust,
    opts: &VerifyOptions,
) -> Result<VerifiedDocument, VerifyError> {
    let doc = parse_bytes(xml, &opts.limits)?;
    let root = doc.root_element();
    let signatures: Vec<Node> = element_children(root)
        .filter(|n| is(n, DSIG_NS, "Signature"))
        .collect();
    if signatures.is_empty() {
        return Err(VerifyError::NoSignature(
            "no ds:Signature under the root element".into(),
        ));
    }
    let mut signers = Vec::new();
    let mut signed_content: Option<Vec<u8>> = None;
    for signature in signatures {
        let parsed = parse_signature(signature)?;
        if parsed.references.len() != 1 {
            return Err(VerifyError::Wrapping(format!(
                "an enveloped signature must have exactly one reference, found {}",
                parsed.references.len()
            )));
        }
        let reference = &parsed.references[0];
        let target = resolve_document_reference(&doc, &reference.uri)?;
        if !matches!(reference.transforms.first(), Some(Transform::Enveloped)) {
            return Err(VerifyError::Wrapping(
                "the whole-document reference lacks the enveloped-signature transform".into(),
            ));
        }
        let octets = reference_octets(reference, target, signature)?;
        check_digest(reference, &octets)?;
        let certificate = x509_certificate(&parsed)?;
        verify_signature_value(&parsed, &certificate)?;
        trust
            .check(&certificate.der, opts.time())
            .map_err(VerifyError::Untrusted)?;
        signers.push(certificate.der);
        // What is signed is the document without *this* signature; with several signatures,
        // the caller gets the content without any of them.
        signed_content = Some(octets);
    }
    let signed_content = signed_content.unwrap_or_default();
    Ok(VerifiedDocument {
        signers,
        signed_content,
    })
}

fn resolve_document_reference<'a, 'i>(
    doc: &'a Document<'i>,
    uri: &str,
) -> Result<Node<'a, 'i>, VerifyError> {
    if uri.is_empty() {
        return Ok(doc.root());
    }
    let id = uri.strip_prefix('#').ok_or_else(|| {
        VerifyError::Wrapping(format!(
            "reference {uri:?} is not a same-document reference"
        ))
    })?;
    let matches = crate::wssec::elements_with_id(doc, id);
    match matches.as_slice() {
        [only] if *only == doc.root_element() => Ok(*only),
        [] => Err(VerifyError::Wrapping(format!("no element has Id {id:?}"))),
        [_] => Err(VerifyError::Wrapping(format!(
            "reference #{id} is not the root element; an enveloped signature must cover the document"
        ))),
        _ => Err(VerifyError::Wrapping(format!("Id {id:?} is used by several elements"))),
    }
}

/// The certificate in `KeyInfo/X509Data/X509Certificate`.
fn x509_certificate(parsed: &ParsedSignature) -> Result<CertificateInfo, VerifyError> {
    let key_info = parsed
        .key_info
        .ok_or_else(|| VerifyError::Certificate("ds:KeyInfo missing".into()))?;
    let certs: Vec<Node> = key_info
        .descendants()
        .filter(|n| is(n, DSIG_NS, "X509Certificate"))
        .filter(|n| n.parent().is_some_and(|p| is(&p, DSIG_NS, "X509Data")))
        .collect();
    let [cert] = certs.as_slice() else {
        return Err(VerifyError::Certificate(format!(
            "expected exactly one ds:X509Certificate in ds:KeyInfo, found {}",
            certs.len()
        )));
    };
    let der = decode_base64(
        &cert.children().filter_map(|c| c.text()).collect::<String>(),
        "X509Certificate",
    )?;
    CertificateInfo::from_der(&der).map_err(|e| VerifyError::Certificate(e.to_string()))
}
