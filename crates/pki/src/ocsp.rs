//! OCSP (RFC 6960): requests with a SHA-256 CertID and a nonce, responses parsed, the
//! responder's signature and authority checked (the CA itself, or a certificate it issued for
//! OCSP signing), and single answers judged at a given instant within a freshness limit.
//! Never accepts an answer whose signature has not been checked.

use crate::asn1::{der, parse_single, tag, Tlv};
use crate::cert::{read_certificate_set, Certificate};
use crate::error::PkiError;
use crate::keys::{sha256, DigestAlgorithm, SignatureAlgorithm};
use crate::oid;
use crate::time::UtcTime;

/// How long an answer without nextUpdate stays usable after its thisUpdate.
pub const DEFAULT_MAX_AGE_SECS: i64 = 24 * 3600;

/// The status in one SingleResponse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OcspStatus {
    Good,
    Revoked { at: UtcTime },
    Unknown,
}

/// One SingleResponse.
#[derive(Clone, Debug)]
pub struct SingleResponse {
    pub hash_oid: String,
    pub issuer_name_hash: Vec<u8>,
    pub issuer_key_hash: Vec<u8>,
    /// Serial magnitude.
    pub serial: Vec<u8>,
    pub status: OcspStatus,
    pub this_update: UtcTime,
    pub next_update: Option<UtcTime>,
}

/// A parsed OCSP response (successful, basic).
#[derive(Clone, Debug)]
pub struct OcspResponse {
    der: Vec<u8>,
    tbs: Vec<u8>,
    signature_oid: String,
    signature: Vec<u8>,
    responder_name: Option<Vec<u8>>,
    responder_key_hash: Option<Vec<u8>>,
    produced_at: UtcTime,
    singles: Vec<SingleResponse>,
    nonce: Option<Vec<u8>>,
    certs: Vec<Certificate>,
    /// Answers without nextUpdate are usable this long after thisUpdate.
    pub max_age_secs: i64,
}

/// The bits of the issuer's public key (what issuerKeyHash hashes).
fn key_bits(issuer: &Certificate) -> Result<Vec<u8>, PkiError> {
    let spki = parse_single(issuer.spki_der(), "SubjectPublicKeyInfo")?;
    let mut r = spki.reader();
    r.read()?;
    Ok(r.expect(tag::BIT_STRING, "subjectPublicKey")?
        .bit_string()?
        .to_vec())
}

/// CertID (SHA-256) of `cert` issued by `issuer`.
pub fn cert_id(cert: &Certificate, issuer: &Certificate) -> Result<Vec<u8>, PkiError> {
    Ok(der::seq(&[
        &der::alg(oid::SHA256, Some(&der::null())),
        &der::octets(&sha256(&issuer.subject().der)),
        &der::octets(&sha256(&key_bits(issuer)?)),
        &der::uint(crate::crl::normalize_serial(cert.serial())),
    ]))
}

/// An OCSP request for `cert` with a 20-byte random nonce; returns the DER and the nonce.
pub fn build_request(
    cert: &Certificate,
    issuer: &Certificate,
) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut nonce = vec![0u8; 20];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| PkiError::Key("no randomness for the OCSP nonce".into()))?;
    let nonce_ext = der::seq(&[
        &der::oid(oid::OCSP_NONCE),
        &der::octets(&der::octets(&nonce)),
    ]);
    let tbs = der::seq(&[
        &der::seq(&[&der::seq(&[&cert_id(cert, issuer)?])]),
        &der::ctx(2, &der::seq(&[&nonce_ext])),
    ]);
    Ok((der::seq(&[&tbs]), nonce))
}

fn parse_single_response(t: &Tlv<'_>) -> Result<SingleResponse, PkiError> {
    let mut r = t.reader();
    let id = r.expect(tag::SEQUENCE, "CertID")?;
    let mut ir = id.reader();
    let alg = ir.expect(tag::SEQUENCE, "CertID hashAlgorithm")?;
    let hash_oid = alg.reader().expect(tag::OID, "hashAlgorithm")?.oid()?;
    let issuer_name_hash = ir
        .expect(tag::OCTET_STRING, "issuerNameHash")?
        .content
        .to_vec();
    let issuer_key_hash = ir
        .expect(tag::OCTET_STRING, "issuerKeyHash")?
        .content
        .to_vec();
    let serial =
        crate::crl::normalize_serial(ir.expect(tag::INTEGER, "serialNumber")?.content).to_vec();
    let st = r.read()?;
    let status = match st.tag {
        t if t == tag::CONTEXT => OcspStatus::Good,
        t if t == tag::CONTEXT | tag::CONSTRUCTED | 1 => OcspStatus::Revoked {
            at: st.reader().read()?.time()?,
        },
        t if t == tag::CONTEXT | 2 => OcspStatus::Unknown,
        _ => return Err(PkiError::Malformed("OCSP certStatus".into())),
    };
    let this_update = r.read()?.time()?;
    let next_update = match r.optional(tag::CONTEXT | tag::CONSTRUCTED)? {
        Some(n) => Some(n.reader().read()?.time()?),
        None => None,
    };
    Ok(SingleResponse {
        hash_oid,
        issuer_name_hash,
        issuer_key_hash,
        serial,
        status,
        this_update,
        next_update,
    })
}

impl OcspResponse {
    /// Parses an OCSPResponse; anything but "successful" with a basic response is an error
    /// naming the responder's status (e.g. tryLater).
    pub fn from_der(data: &[u8]) -> Result<OcspResponse, PkiError> {
        let top = parse_single(data, "OCSP response")?;
        top.check(tag::SEQUENCE, "OCSPResponse")?;
        let mut r = top.reader();
        let status = r.expect(tag::ENUMERATED, "responseStatus")?;
        let code = status.content.first().copied().unwrap_or(255);
        if code != 0 {
            let name = match code {
                1 => "malformedRequest",
                2 => "internalError",
                3 => "tryLater",
                5 => "sigRequired",
                6 => "unauthorized",
                _ => "unknown status",
            };
            return Err(PkiError::Validation(format!(
                "OCSP responder answered {name} ({code})"
            )));
        }
        let bytes = r.expect(tag::CONTEXT | tag::CONSTRUCTED, "responseBytes")?;
        let rb = bytes.reader().expect(tag::SEQUENCE, "ResponseBytes")?;
        let mut br = rb.reader();
        let ty = br.expect(tag::OID, "responseType")?.oid()?;
        if ty != oid::OCSP_BASIC {
            return Err(PkiError::UnsupportedAlgorithm(format!(
                "OCSP response type {ty}"
            )));
        }
        let basic_der = br.expect(tag::OCTET_STRING, "response")?.content;
        let basic = parse_single(basic_der, "BasicOCSPResponse")?;
        let mut b = basic.reader();
        let tbs = b.expect(tag::SEQUENCE, "tbsResponseData")?;
        let sig_alg = b.expect(tag::SEQUENCE, "signatureAlgorithm")?;
        let signature_oid = sig_alg
            .reader()
            .expect(tag::OID, "signatureAlgorithm")?
            .oid()?;
        let signature = b
            .expect(tag::BIT_STRING, "signature")?
            .bit_string()?
            .to_vec();
        let mut certs = Vec::new();
        if let Some(c) = b.optional(tag::CONTEXT | tag::CONSTRUCTED)? {
            certs = read_certificate_set(&c.reader().expect(tag::SEQUENCE, "certs")?)?;
        }
        let mut t = tbs.reader();
        t.optional(tag::CONTEXT | tag::CONSTRUCTED)?;
        let rid = t.read()?;
        let (responder_name, responder_key_hash) = match rid.tag {
            x if x == tag::CONTEXT | tag::CONSTRUCTED | 1 => {
                (Some(rid.reader().read()?.raw.to_vec()), None)
            }
            x if x == tag::CONTEXT | tag::CONSTRUCTED | 2 => (
                None,
                Some(
                    rid.reader()
                        .expect(tag::OCTET_STRING, "KeyHash")?
                        .content
                        .to_vec(),
                ),
            ),
            _ => return Err(PkiError::Malformed("OCSP responderID".into())),
        };
        let produced_at = t.read()?.time()?;
        let list = t.expect(tag::SEQUENCE, "responses")?;
        let mut singles = Vec::new();
        let mut lr = list.reader();
        while !lr.is_empty() {
            singles.push(parse_single_response(
                &lr.expect(tag::SEQUENCE, "SingleResponse")?,
            )?);
        }
        let mut nonce = None;
        if let Some(exts) = t.optional(tag::CONTEXT | tag::CONSTRUCTED | 1)? {
            let seq = exts.reader().expect(tag::SEQUENCE, "responseExtensions")?;
            let mut xr = seq.reader();
            while !xr.is_empty() {
                let x = xr.expect(tag::SEQUENCE, "extension")?;
                let mut x = x.reader();
                let id = x.expect(tag::OID, "extnID")?.oid()?;
                x.optional(tag::BOOLEAN)?;
                let v = x.expect(tag::OCTET_STRING, "extnValue")?.content;
                if id == oid::OCSP_NONCE {
                    // RFC 8954: an OCTET STRING inside; some responders put the raw bytes.
                    nonce = Some(match parse_single(v, "nonce") {
                        Ok(inner) if inner.tag == tag::OCTET_STRING => inner.content.to_vec(),
                        _ => v.to_vec(),
                    });
                }
            }
        }
        Ok(OcspResponse {
            der: data.to_vec(),
            tbs: tbs.raw.to_vec(),
            signature_oid,
            signature,
            responder_name,
            responder_key_hash,
            produced_at,
            singles,
            nonce,
            certs,
            max_age_secs: DEFAULT_MAX_AGE_SECS,
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn produced_at(&self) -> UtcTime {
        self.produced_at
    }

    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_deref()
    }

    pub fn singles(&self) -> &[SingleResponse] {
        &self.singles
    }

    pub fn certificates(&self) -> &[Certificate] {
        &self.certs
    }

    fn is_responder(&self, c: &Certificate) -> bool {
        if let Some(name) = &self.responder_name {
            return &c.subject().der == name;
        }
        if let Some(h) = &self.responder_key_hash {
            use sha1::Digest as _;
            return key_bits(c)
                .map(|b| sha1::Sha1::digest(&b).to_vec() == *h)
                .unwrap_or(false);
        }
        false
    }

    /// Checks the response signature: by `issuer` itself, or by a responder certificate that
    /// `issuer` signed and marked for OCSP signing. Returns the certificate that signed.
    pub fn verify_signature(&self, issuer: &Certificate) -> Result<Certificate, PkiError> {
        let alg = SignatureAlgorithm::from_oid(&self.signature_oid)?;
        let signer = if self.is_responder(issuer) {
            issuer.clone()
        } else {
            let r = self
                .certs
                .iter()
                .find(|c| self.is_responder(c))
                .ok_or_else(|| {
                    PkiError::Validation(
                        "the OCSP responder's certificate is not in the response".into(),
                    )
                })?;
            r.verify_issued_by(issuer).map_err(|e| {
                PkiError::Validation(format!(
                    "the OCSP responder's certificate is not issued by the CA: {e}"
                ))
            })?;
            if !r
                .extensions()
                .extended_key_usage
                .iter()
                .any(|e| e == oid::EKU_OCSP_SIGNING)
            {
                return Err(PkiError::Validation(
                    "the OCSP responder's certificate lacks the OCSPSigning purpose".into(),
                ));
            }
            r.clone()
        };
        signer
            .verify_signature(&self.tbs, &self.signature, alg)
            .map_err(|e| PkiError::BadSignature(format!("OCSP response: {e}")))?;
        Ok(signer)
    }

    /// The single answer about `cert`, if this response has one.
    pub fn find(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
    ) -> Result<Option<&SingleResponse>, PkiError> {
        let serial = crate::crl::normalize_serial(cert.serial());
        let bits = key_bits(issuer)?;
        for s in &self.singles {
            if s.serial != serial {
                continue;
            }
            let h = DigestAlgorithm::from_oid(&s.hash_oid)?;
            if h.digest(&issuer.subject().der) == s.issuer_name_hash
                && h.digest(&bits) == s.issuer_key_hash
            {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// The status of `cert` at `at`: `Ok(None)` when this response says nothing of it; an
    /// error when it does but cannot be trusted or is not fresh at `at`.
    pub fn status_for(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        at: UtcTime,
    ) -> Result<Option<OcspStatus>, PkiError> {
        let Some(single) = self.find(cert, issuer)? else {
            return Ok(None);
        };
        self.verify_signature(issuer)?;
        if single.this_update.0 > at.0 + crate::time::CLOCK_SKEW_SECS {
            return Err(PkiError::Validation(format!(
                "OCSP answer of {} is later than the instant checked ({})",
                single.this_update.to_rfc3339(),
                at.to_rfc3339()
            )));
        }
        let fresh_until = single
            .next_update
            .unwrap_or(UtcTime(single.this_update.0 + self.max_age_secs));
        if at > fresh_until {
            return Err(PkiError::Validation(format!(
                "OCSP answer of {} is too old for {} (usable until {})",
                single.this_update.to_rfc3339(),
                at.to_rfc3339(),
                fresh_until.to_rfc3339()
            )));
        }
        Ok(Some(single.status))
    }

    /// A description for `inspect`.
    pub fn describe(&self) -> String {
        let mut out = format!("OCSP response produced {}\n", self.produced_at);
        for s in &self.singles {
            out.push_str(&format!(
                "  serial {}: {:?} (this update {})\n",
                crate::cert::hex(&s.serial),
                s.status,
                s.this_update.to_rfc3339()
            ));
        }
        if let Some(n) = &self.nonce {
            out.push_str(&format!("  nonce {}\n", crate::cert::hex(n)));
        }
        out
    }
}
