//! WS-Security (OASIS WSS 1.0 X.509 token profile) signatures over a SOAP Body, as ШЭП uses
//! them: `wsse:Security` (mustUnderstand="1") holding a `ds:Signature` with exclusive c14n,
//! one Reference to the Body's `wsu:Id` (and optionally one to a `wsu:Timestamp`), and KeyInfo
//! by KeyIdentifier, IssuerSerial or a BinarySecurityToken reference.
//!
//! The verifier resists signature wrapping: the Envelope must have exactly one Body, Ids must
//! be unique in the whole document, every signature must cover that Body, references may name
//! nothing else but a Timestamp in a Security header, and the caller receives the very Body
//! element that was digested. It must never return a Body that a signature did not cover.

use crate::c14n::{element_qname, C14nMethod, Canonicalizer, XML_NAMESPACE};
use crate::cert::CertificateInfo;
use crate::dsig::{
    check_digest, decode_base64, escape, finish_signature, is, parse_signature, position_of,
    reference_octets, start_tag_end, verify_signature_value, write_reference, CertificateTrust,
    ParsedSignature, SignError, Transform, VerifyError, VerifyOptions, XmlSigner, DSIG_NS,
};
use crate::xml::{parse, parse_bytes, Document, Node, XmlLimits};
use base64::Engine;
use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// SOAP 1.1 envelope namespace.
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP 1.2 envelope namespace.
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// WS-Security extension namespace (`wsse`).
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// WS-Security utility namespace (`wsu`).
pub const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// ValueType of an X.509 v3 certificate token.
pub const X509V3: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3";
/// EncodingType Base64Binary.
pub const BASE64_BINARY: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

/// How the signer's certificate is referenced from `ds:KeyInfo`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyInfoForm {
    /// `wsse:KeyIdentifier` ValueType X509v3 holding the base64 certificate (ШЭП's default).
    #[default]
    KeyIdentifier,
    /// `ds:X509IssuerSerial` (what ВШЭП sends); the verifier must know the certificate.
    IssuerSerial,
    /// A `wsse:BinarySecurityToken` in the header and a `wsse:Reference` to it.
    BinarySecurityToken,
}

/// Options for [`sign_envelope`].
#[derive(Clone, Debug, Default)]
pub struct WsSecurityOptions {
    /// How KeyInfo names the certificate.
    pub key_info: KeyInfoForm,
    /// Add and sign a `wsu:Timestamp` valid for this long (`None`: no timestamp).
    pub timestamp_ttl: Option<Duration>,
    /// Parser limits for the envelope to sign.
    pub limits: XmlLimits,
}

/// What [`verify_envelope`] established.
#[derive(Clone, Debug)]
pub struct VerifiedEnvelope {
    /// The certificates (DER) of the signatures that verified, in document order.
    pub signers: Vec<Vec<u8>>,
    /// Byte range of the verified `Body` element in the input.
    pub body_range: Range<usize>,
    /// The verified `Body` element exactly as it appears in the input (namespace declarations
    /// on ancestors are not repeated; use `body_range` with the input to re-parse in context).
    pub body: String,
    /// The Body in exclusive c14n (no InclusiveNamespaces list, no comments): the signed
    /// content in a self-contained form. (A signature made with a PrefixList digested the same
    /// nodes with more namespace declarations.)
    pub body_canonical: Vec<u8>,
    /// Was a `wsu:Timestamp` signed (and within its validity)?
    pub timestamp_signed: bool,
}

/// The envelope's parts.
struct Envelope<'a, 'i> {
    envelope: Node<'a, 'i>,
    header: Option<Node<'a, 'i>>,
    body: Node<'a, 'i>,
}

fn soap_ns(node: &Node) -> Option<&'static str> {
    match node.tag_name().namespace() {
        Some(SOAP11_NS) => Some(SOAP11_NS),
        Some(SOAP12_NS) => Some(SOAP12_NS),
        _ => None,
    }
}

/// Finds Envelope/Header?/Body, refusing any other shape (and any second Body anywhere).
fn envelope_parts<'a, 'i>(doc: &'a Document<'i>) -> Result<Envelope<'a, 'i>, String> {
    let envelope = doc.root_element();
    let ns = soap_ns(&envelope)
        .filter(|_| envelope.tag_name().name() == "Envelope")
        .ok_or("the root element is not a SOAP 1.1 or 1.2 Envelope")?;
    let children: Vec<Node> = envelope.children().filter(|c| c.is_element()).collect();
    let (header, body) = match children.as_slice() {
        [h, b] if is(h, ns, "Header") && is(b, ns, "Body") => (Some(*h), *b),
        [b] if is(b, ns, "Body") => (None, *b),
        _ => return Err("the Envelope must hold an optional Header and exactly one Body".into()),
    };
    let bodies = doc.descendants().filter(|n| is(n, ns, "Body")).count();
    if bodies != 1 {
        return Err(format!("the document holds {bodies} SOAP Body elements"));
    }
    Ok(Envelope {
        envelope,
        header,
        body,
    })
}

/// The Id-like attribute values of an element (wsu:Id, Id, ID, xml:id).
fn ids_of<'a>(node: Node<'a, '_>) -> impl Iterator<Item = &'a str> {
    node.attributes()
        .filter(|a| {
            matches!(
                (a.namespace(), a.name()),
                (Some(WSU_NS), "Id") | (None, "Id") | (None, "ID") | (Some(XML_NAMESPACE), "id")
            )
        })
        .map(|a| a.value())
}

/// Every element carrying `id` in an Id-like attribute.
pub(crate) fn elements_with_id<'a, 'i>(doc: &'a Document<'i>, id: &str) -> Vec<Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| n.is_element() && ids_of(*n).any(|v| v == id))
        .collect()
}

/// Refuses documents where one Id value appears more than once.
fn ids_are_unique(doc: &Document) -> Result<(), VerifyError> {
    let mut seen: Vec<&str> = Vec::new();
    for node in doc.descendants().filter(|n| n.is_element()) {
        for id in ids_of(node) {
            if seen.contains(&id) {
                return Err(VerifyError::Wrapping(format!(
                    "Id {id:?} appears more than once"
                )));
            }
            seen.push(id);
        }
    }
    Ok(())
}

fn random_id(prefix: &str) -> Result<String, SignError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SignError::Crypto("no randomness".into()))?;
    Ok(format!(
        "{prefix}-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Signs the Body (and a new Timestamp, if asked) of a SOAP envelope with WS-Security.
/// An existing `wsse:Security` header receives the new signature; otherwise one is added.
pub fn sign_envelope(
    envelope_xml: &[u8],
    signer: &dyn XmlSigner,
    opts: &WsSecurityOptions,
) -> Result<Vec<u8>, SignError> {
    let doc = parse_bytes(envelope_xml, &opts.limits)?;
    let text = doc.input_text();
    let parts = envelope_parts(&doc).map_err(SignError::Shape)?;
    let ns = soap_ns(&parts.envelope).unwrap_or(SOAP11_NS);
    let env_qname = element_qname(parts.envelope);
    let soap_prefix = env_qname.split_once(':').map(|(p, _)| p).unwrap_or("");
    let marker = format!("<!--{}-->", random_id("qaqpa-signature")?);

    // Edits on the original text: (position, text to insert), or a replacement of a range.
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();

    let body_id = match parts.body.attribute((WSU_NS, "Id")) {
        Some(id) => id.to_string(),
        None => {
            if ids_of(parts.body).next().is_some() {
                return Err(SignError::Shape(
                    "the Body has an Id attribute other than wsu:Id; refusing to add another"
                        .into(),
                ));
            }
            let id = random_id("id")?;
            let at = parts.body.range().start + 1 + element_qname(parts.body).len();
            edits.push((at..at, format!(" xmlns:wsu=\"{WSU_NS}\" wsu:Id=\"{id}\"")));
            id
        }
    };

    let mut tokens = String::new();
    let cert_b64 = base64::engine::general_purpose::STANDARD.encode(signer.certificate_der());
    let bst_id = random_id("X509")?;
    if opts.key_info == KeyInfoForm::BinarySecurityToken {
        tokens.push_str(&format!(
            "<wsse:BinarySecurityToken xmlns:wsse=\"{WSSE_NS}\" xmlns:wsu=\"{WSU_NS}\" EncodingType=\"{BASE64_BINARY}\" ValueType=\"{X509V3}\" wsu:Id=\"{bst_id}\">{cert_b64}</wsse:BinarySecurityToken>"
        ));
    }
    let timestamp_id = random_id("TS")?;
    if let Some(ttl) = opts.timestamp_ttl {
        let now = SystemTime::now();
        tokens.push_str(&format!(
            "<wsu:Timestamp xmlns:wsu=\"{WSU_NS}\" wsu:Id=\"{timestamp_id}\"><wsu:Created>{}</wsu:Created><wsu:Expires>{}</wsu:Expires></wsu:Timestamp>",
            format_utc(now),
            format_utc(now + ttl)
        ));
    }
    tokens.push_str(&marker);

    let existing_security = parts
        .header
        .and_then(|h| h.children().find(|c| is(c, WSSE_NS, "Security")));
    match (parts.header, existing_security) {
        (_, Some(security)) => {
            let (end, self_closing) = start_tag_end(security)?;
            if self_closing {
                let q = element_qname(security);
                edits.push((end - 2..end, format!(">{tokens}</{q}>")));
            } else {
                edits.push((end..end, tokens));
            }
        }
        (header, None) => {
            let (mu_prefix, mu_decl) = if soap_prefix.is_empty() {
                ("soapenv", format!(" xmlns:soapenv=\"{ns}\""))
            } else {
                (soap_prefix, String::new())
            };
            let mu_value = if ns == SOAP12_NS { "true" } else { "1" };
            let security = format!(
                "<wsse:Security xmlns:wsse=\"{WSSE_NS}\" xmlns:wsu=\"{WSU_NS}\"{mu_decl} {mu_prefix}:mustUnderstand=\"{mu_value}\">{tokens}</wsse:Security>"
            );
            match header {
                Some(h) => {
                    let (end, self_closing) = start_tag_end(h)?;
                    if self_closing {
                        let q = element_qname(h);
                        edits.push((end - 2..end, format!(">{security}</{q}>")));
                    } else {
                        edits.push((end..end, security));
                    }
                }
                None => {
                    let q = if soap_prefix.is_empty() {
                        "Header".to_string()
                    } else {
                        format!("{soap_prefix}:Header")
                    };
                    let at = parts.body.range().start;
                    edits.push((at..at, format!("<{q}>{security}</{q}>")));
                }
            }
        }
    }
    let staged = apply_edits(text, edits);

    // Digests are taken from the staged document, as the verifier will see it.
    let doc = parse(&staged, &opts.limits)?;
    let parts = envelope_parts(&doc).map_err(SignError::Shape)?;
    let exc = Canonicalizer::new(C14nMethod::Exclusive);
    let body_digest = signer.digest(&exc.subtree(parts.body));
    let timestamp_digest = match opts.timestamp_ttl {
        Some(_) => {
            let ts = elements_with_id(&doc, &timestamp_id);
            let [ts] = ts.as_slice() else {
                return Err(SignError::Shape("internal: timestamp not found".into()));
            };
            Some(signer.digest(&exc.subtree(*ts)))
        }
        None => None,
    };

    let mut signature = String::with_capacity(4096);
    signature.push_str(&format!(
        "<ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:SignedInfo>"
    ));
    signature.push_str(&format!(
        "<ds:CanonicalizationMethod Algorithm=\"{}\"/><ds:SignatureMethod Algorithm=\"{}\"/>",
        C14nMethod::Exclusive.uri(),
        escape(signer.signature_method_uri())
    ));
    write_reference(
        &mut signature,
        &format!("#{body_id}"),
        &[C14nMethod::Exclusive.uri()],
        None,
        signer.digest_method_uri(),
        &body_digest,
    );
    if let Some(d) = timestamp_digest {
        write_reference(
            &mut signature,
            &format!("#{timestamp_id}"),
            &[C14nMethod::Exclusive.uri()],
            None,
            signer.digest_method_uri(),
            &d,
        );
    }
    signature.push_str("</ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo>");
    signature.push_str(&format!(
        "<wsse:SecurityTokenReference xmlns:wsse=\"{WSSE_NS}\">"
    ));
    match opts.key_info {
        KeyInfoForm::KeyIdentifier => signature.push_str(&format!(
            "<wsse:KeyIdentifier EncodingType=\"{BASE64_BINARY}\" ValueType=\"{X509V3}\">{cert_b64}</wsse:KeyIdentifier>"
        )),
        KeyInfoForm::IssuerSerial => {
            let info = CertificateInfo::from_der(signer.certificate_der())
                .map_err(|e| SignError::Key(e.to_string()))?;
            signature.push_str(&format!(
                "<ds:X509Data><ds:X509IssuerSerial><ds:X509IssuerName>{}</ds:X509IssuerName><ds:X509SerialNumber>{}</ds:X509SerialNumber></ds:X509IssuerSerial></ds:X509Data>",
                escape(&info.issuer),
                info.serial_decimal()
            ));
        }
        KeyInfoForm::BinarySecurityToken => signature.push_str(&format!(
            "<wsse:Reference URI=\"#{bst_id}\" ValueType=\"{X509V3}\"/>"
        )),
    }
    signature.push_str("</wsse:SecurityTokenReference></ds:KeyInfo></ds:Signature>");

    let at = position_of(&staged, &marker, 0)?;
    let mut text = String::with_capacity(staged.len() + signature.len());
    text.push_str(&staged[..at]);
    text.push_str(&signature);
    text.push_str(&staged[at + marker.len()..]);
    finish_signature(text, signer, &opts.limits, at)
}

fn apply_edits(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out =
        String::with_capacity(text.len() + edits.iter().map(|e| e.1.len()).sum::<usize>());
    let mut cursor = 0;
    for (range, insert) in edits {
        out.push_str(&text[cursor..range.start]);
        out.push_str(&insert);
        cursor = range.end;
    }
    out.push_str(&text[cursor..]);
    out
}

/// Verifies every `ds:Signature` in the envelope's `wsse:Security` header(s). All must be
/// valid, all must cover the Body, and each signer's certificate must pass `trust`.
pub fn verify_envelope(
    xml: &[u8],
    trust: &dyn CertificateTrust,
    opts: &VerifyOptions,
) -> Result<VerifiedEnvelope, VerifyError> {
    let doc = parse_bytes(xml, &opts.limits)?;
    let parts = envelope_parts(&doc).map_err(VerifyError::Wrapping)?;
    ids_are_unique(&doc)?;
    let securities: Vec<Node> = parts
        .header
        .map(|h| {
            h.children()
                .filter(|c| is(c, WSSE_NS, "Security"))
                .collect()
        })
        .unwrap_or_default();
    let signatures: Vec<(Node, Node)> = securities
        .iter()
        .flat_map(|s| {
            s.children()
                .filter(|c| is(c, DSIG_NS, "Signature"))
                .map(move |c| (*s, c))
        })
        .collect();
    if signatures.is_empty() {
        return Err(VerifyError::NoSignature(
            "no ds:Signature in a wsse:Security header".into(),
        ));
    }
    let at = opts.time();
    let exc = Canonicalizer::new(C14nMethod::Exclusive);
    let body_canonical = exc.subtree(parts.body);
    let mut signers = Vec::new();
    let mut timestamp_signed = false;
    for (security, signature) in signatures {
        let parsed = parse_signature(signature)?;
        if !parsed.canonicalizer.method().is_exclusive() {
            return Err(VerifyError::UnsupportedAlgorithm(format!(
                "CanonicalizationMethod {} (WS-Security here requires exclusive c14n)",
                parsed.canonicalizer.method().uri()
            )));
        }
        let mut body_covered = false;
        let mut covered: Vec<Node> = Vec::new();
        for reference in &parsed.references {
            let id = reference.uri.strip_prefix('#').ok_or_else(|| {
                VerifyError::Wrapping(format!(
                    "reference {:?} is not a #id reference",
                    reference.uri
                ))
            })?;
            let targets = elements_with_id(&doc, id);
            let [target] = targets.as_slice() else {
                return Err(VerifyError::Wrapping(format!(
                    "reference #{id} does not name one element"
                )));
            };
            let is_body = *target == parts.body;
            let is_timestamp = is(target, WSU_NS, "Timestamp")
                && target.parent().is_some_and(|p| securities.contains(&p));
            if !is_body && !is_timestamp {
                return Err(VerifyError::Wrapping(format!(
                    "reference #{id} names a {} element, not the Body or a Timestamp",
                    target.tag_name().name()
                )));
            }
            if covered.contains(target) {
                return Err(VerifyError::Wrapping(format!(
                    "element #{id} is referenced twice"
                )));
            }
            covered.push(*target);
            match reference.transforms.as_slice() {
                [Transform::C14n(c)] if c.method().is_exclusive() => {}
                _ => {
                    return Err(VerifyError::UnsupportedAlgorithm(format!(
                        "transforms of reference #{id} (exactly one exclusive c14n is accepted)"
                    )))
                }
            }
            let octets = reference_octets(reference, *target, signature)?;
            check_digest(reference, &octets)?;
            if is_body {
                body_covered = true;
            } else {
                check_timestamp(*target, at, opts.clock_skew)?;
                timestamp_signed = true;
            }
        }
        if !body_covered {
            return Err(VerifyError::Wrapping(
                "a signature does not cover the SOAP Body".into(),
            ));
        }
        let certificate = resolve_certificate(&parsed, security, opts)?;
        verify_signature_value(&parsed, &certificate)?;
        trust
            .check(&certificate.der, at)
            .map_err(VerifyError::Untrusted)?;
        signers.push(certificate.der);
    }
    if opts.require_timestamp && !timestamp_signed {
        return Err(VerifyError::Timestamp(
            "a signed wsu:Timestamp is required".into(),
        ));
    }
    let body_range = parts.body.range();
    Ok(VerifiedEnvelope {
        signers,
        body: doc.input_text()[body_range.clone()].to_string(),
        body_range,
        body_canonical,
        timestamp_signed,
    })
}

/// Finds the certificate the signature's KeyInfo names.
fn resolve_certificate(
    parsed: &ParsedSignature,
    security: Node,
    opts: &VerifyOptions,
) -> Result<CertificateInfo, VerifyError> {
    let key_info = parsed
        .key_info
        .ok_or_else(|| VerifyError::Certificate("ds:KeyInfo missing".into()))?;
    let children: Vec<Node> = key_info.children().filter(|c| c.is_element()).collect();
    let [child] = children.as_slice() else {
        return Err(VerifyError::Certificate(
            "ds:KeyInfo must hold exactly one element".into(),
        ));
    };
    let text_of = |n: Node| n.children().filter_map(|c| c.text()).collect::<String>();
    let read = |der: Vec<u8>| {
        CertificateInfo::from_der(&der).map_err(|e| VerifyError::Certificate(e.to_string()))
    };
    let reference = if is(child, WSSE_NS, "SecurityTokenReference") {
        let inner: Vec<Node> = child.children().filter(|c| c.is_element()).collect();
        let [inner] = inner.as_slice() else {
            return Err(VerifyError::Certificate(
                "wsse:SecurityTokenReference must hold exactly one element".into(),
            ));
        };
        *inner
    } else {
        *child
    };
    if is(&reference, WSSE_NS, "KeyIdentifier") {
        if reference
            .attribute("ValueType")
            .is_some_and(|v| v != X509V3)
        {
            return Err(VerifyError::Certificate(
                "wsse:KeyIdentifier ValueType is not X509v3".into(),
            ));
        }
        if reference
            .attribute("EncodingType")
            .is_some_and(|v| v != BASE64_BINARY)
        {
            return Err(VerifyError::Certificate(
                "wsse:KeyIdentifier is not Base64Binary".into(),
            ));
        }
        return read(decode_base64(&text_of(reference), "KeyIdentifier")?);
    }
    if is(&reference, WSSE_NS, "Reference") {
        let uri = reference.attribute("URI").unwrap_or("");
        let id = uri.strip_prefix('#').ok_or_else(|| {
            VerifyError::Certificate(format!("token reference {uri:?} is not a #id reference"))
        })?;
        let tokens: Vec<Node> = security
            .children()
            .filter(|c| is(c, WSSE_NS, "BinarySecurityToken") && ids_of(*c).any(|v| v == id))
            .collect();
        let [token] = tokens.as_slice() else {
            return Err(VerifyError::Certificate(format!(
                "no single BinarySecurityToken #{id} in this Security header"
            )));
        };
        if token.attribute("ValueType") != Some(X509V3) {
            return Err(VerifyError::Certificate(
                "BinarySecurityToken is not X509v3".into(),
            ));
        }
        return read(decode_base64(&text_of(*token), "BinarySecurityToken")?);
    }
    if is(&reference, DSIG_NS, "X509Data") {
        // X509Certificate and/or X509IssuerSerial (zeep and WSS4J send both); nothing else.
        let mut certificate = None;
        let mut issuer_serial = None;
        for item in reference.children().filter(|c| c.is_element()) {
            if is(&item, DSIG_NS, "X509Certificate") && certificate.is_none() {
                certificate = Some(item);
            } else if is(&item, DSIG_NS, "X509IssuerSerial") && issuer_serial.is_none() {
                issuer_serial = Some(item);
            } else {
                return Err(VerifyError::Certificate(format!(
                    "unexpected {} in ds:X509Data",
                    item.tag_name().name()
                )));
            }
        }
        let issuer_serial = match issuer_serial {
            Some(item) => {
                let field = |name: &str| {
                    item.children()
                        .find(|c| is(c, DSIG_NS, name))
                        .map(text_of)
                        .ok_or_else(|| VerifyError::Certificate(format!("ds:{name} missing")))
                };
                Some((field("X509IssuerName")?, field("X509SerialNumber")?))
            }
            None => None,
        };
        if let Some(item) = certificate {
            let info = read(decode_base64(&text_of(item), "X509Certificate")?)?;
            if let Some((issuer, serial)) = &issuer_serial {
                if !info.matches_issuer_serial(issuer, serial) {
                    return Err(VerifyError::Certificate(
                        "ds:X509IssuerSerial does not match ds:X509Certificate".into(),
                    ));
                }
            }
            return Ok(info);
        }
        if let Some((issuer, serial)) = issuer_serial {
            let candidates = opts.known_certificates.iter().cloned().chain(
                security
                    .children()
                    .filter(|c| is(c, WSSE_NS, "BinarySecurityToken"))
                    .filter_map(|c| decode_base64(&text_of(c), "BinarySecurityToken").ok()),
            );
            for der in candidates {
                if let Ok(info) = CertificateInfo::from_der(&der) {
                    if info.matches_issuer_serial(&issuer, &serial) {
                        return Ok(info);
                    }
                }
            }
            return Err(VerifyError::Certificate(format!(
                "no known certificate has issuer {issuer:?} and serial {serial}"
            )));
        }
    }
    Err(VerifyError::Certificate(format!(
        "unsupported KeyInfo content {}",
        reference.tag_name().name()
    )))
}

fn check_timestamp(ts: Node, at: SystemTime, skew: Duration) -> Result<(), VerifyError> {
    let field = |name: &str| {
        ts.children()
            .find(|c| is(c, WSU_NS, name))
            .map(|c| c.children().filter_map(|t| t.text()).collect::<String>())
    };
    let created = field("Created")
        .ok_or_else(|| VerifyError::Timestamp("wsu:Created missing".into()))
        .and_then(|t| {
            parse_utc(&t).ok_or_else(|| VerifyError::Timestamp(format!("bad time {t:?}")))
        })?;
    if created > at + skew {
        return Err(VerifyError::Timestamp(
            "wsu:Created is in the future".into(),
        ));
    }
    if let Some(expires) = field("Expires") {
        let expires = parse_utc(&expires)
            .ok_or_else(|| VerifyError::Timestamp(format!("bad time {expires:?}")))?;
        if expires + skew < at {
            return Err(VerifyError::Timestamp(
                "the message has expired (wsu:Expires)".into(),
            ));
        }
    }
    Ok(())
}

/// `YYYY-MM-DDThh:mm:ssZ` for a system time (UTC).
pub fn format_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses an xsd:dateTime in UTC (`Z`) or with an offset; fractional seconds are ignored.
pub fn parse_utc(text: &str) -> Option<SystemTime> {
    let t = text.trim();
    let (date, time) = t.split_once('T')?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, offset_secs) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0i64)
    } else if let Some(pos) = time.rfind(['+', '-']) {
        let (c, off) = time.split_at(pos);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (
            c,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    } else {
        (time, 0)
    };
    let clock = clock.split('.').next()?;
    let mut c = clock.split(':');
    let hh: i64 = c.next()?.parse().ok()?;
    let mm: i64 = c.next()?.parse().ok()?;
    let ss: i64 = c.next()?.parse().ok()?;
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let secs = days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss - offset_secs;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let text = format_utc(t);
        assert_eq!(parse_utc(&text), Some(t));
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_utc("2026-11-23T22:00:00.123+05:00"),
            parse_utc("2026-11-23T17:00:00Z")
        );
        assert_eq!(parse_utc("2026-13-01T00:00:00Z"), None);
    }
}
