//! Certificate revocation lists (Base and Delta). Revoked entries are read one at a time into a
//! sorted list of serials with their revocation time, so a CRL of 100,000 entries needs a few
//! megabytes, not gigabytes; the CRL is never trusted before its issuer's signature is checked.

use std::ops::Range;

use crate::asn1::{parse_single, tag};
use crate::cert::{Certificate, Name};
use crate::error::PkiError;
use crate::keys::SignatureAlgorithm;
use crate::oid;
use crate::time::UtcTime;

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial magnitude (no leading zero bytes).
    pub serial: Box<[u8]>,
    pub revoked_at: UtcTime,
    /// CRLReason code, when given.
    pub reason: Option<u8>,
}

/// A parsed CRL.
#[derive(Clone, Debug)]
pub struct Crl {
    der: Vec<u8>,
    tbs: Range<usize>,
    signature_oid: String,
    signature: Vec<u8>,
    issuer: Name,
    this_update: UtcTime,
    next_update: Option<UtcTime>,
    crl_number: Option<Vec<u8>>,
    delta_base: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
    revoked: Vec<RevokedEntry>,
}

/// Serial magnitude without leading zeros.
pub fn normalize_serial(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| *b != 0).unwrap_or(s.len());
    &s[start..]
}

impl Crl {
    /// Parses a DER (or PEM "X509 CRL") CRL.
    pub fn from_der_or_pem(data: &[u8]) -> Result<Crl, PkiError> {
        if crate::pem::looks_like_pem(data) {
            let blocks = crate::pem::parse(&String::from_utf8_lossy(data))?;
            let b = blocks
                .into_iter()
                .find(|b| b.label == "X509 CRL")
                .ok_or_else(|| PkiError::Malformed("no X509 CRL block in PEM".into()))?;
            Self::from_der(b.der)
        } else {
            Self::from_der(data.to_vec())
        }
    }

    /// Parses a DER CRL, taking ownership of the bytes.
    pub fn from_der(der: Vec<u8>) -> Result<Crl, PkiError> {
        if der.is_empty() {
            return Err(PkiError::Malformed("empty CRL".into()));
        }
        let top = parse_single(&der, "CRL")?;
        top.check(tag::SEQUENCE, "CertificateList")?;
        let mut r = top.reader();
        let tbs = r.expect(tag::SEQUENCE, "tbsCertList")?;
        let sig_alg = r.expect(tag::SEQUENCE, "signatureAlgorithm")?;
        let signature_oid = sig_alg
            .reader()
            .expect(tag::OID, "signatureAlgorithm")?
            .oid()?;
        let signature = r
            .expect(tag::BIT_STRING, "signatureValue")?
            .bit_string()?
            .to_vec();
        r.finish("CertificateList")?;

        let mut t = tbs.reader();
        t.optional(tag::INTEGER)?;
        let inner_alg = t.expect(tag::SEQUENCE, "signature")?;
        if !crate::asn1::same_algorithm(&inner_alg, &sig_alg)? {
            return Err(PkiError::Malformed(
                "the signed and the outer signature algorithms differ".into(),
            ));
        }
        let issuer = Name::parse(&t.expect(tag::SEQUENCE, "issuer")?)?;
        let this_update = t.read()?.time()?;
        let next_update = match t.peek_tag() {
            Some(tag::UTC_TIME) | Some(tag::GENERALIZED_TIME) => Some(t.read()?.time()?),
            _ => None,
        };
        let mut revoked = Vec::new();
        if let Some(list) = t.optional(tag::SEQUENCE)? {
            let mut lr = list.reader();
            while !lr.is_empty() {
                let e = lr.expect(tag::SEQUENCE, "revokedCertificate")?;
                let mut er = e.reader();
                let serial = er.expect(tag::INTEGER, "userCertificate")?.content;
                let revoked_at = er.read()?.time()?;
                let mut reason = None;
                if let Some(exts) = er.optional(tag::SEQUENCE)? {
                    let mut xr = exts.reader();
                    while !xr.is_empty() {
                        let x = xr.expect(tag::SEQUENCE, "crlEntryExtension")?;
                        let mut x = x.reader();
                        let id = x.expect(tag::OID, "extnID")?.oid()?;
                        x.optional(tag::BOOLEAN)?;
                        let v = x.expect(tag::OCTET_STRING, "extnValue")?;
                        if id == "2.5.29.21" {
                            reason = parse_single(v.content, "CRLReason")?
                                .content
                                .first()
                                .copied();
                        }
                    }
                }
                revoked.push(RevokedEntry {
                    serial: normalize_serial(serial).into(),
                    revoked_at,
                    reason,
                });
            }
        }
        let mut crl_number = None;
        let mut delta_base = None;
        let mut authority_key_id = None;
        if let Some(exts) = t.optional(tag::CONTEXT | tag::CONSTRUCTED)? {
            let seq = exts.reader().expect(tag::SEQUENCE, "crlExtensions")?;
            let mut xr = seq.reader();
            while !xr.is_empty() {
                let x = xr.expect(tag::SEQUENCE, "crlExtension")?;
                let mut x = x.reader();
                let id = x.expect(tag::OID, "extnID")?.oid()?;
                let critical = match x.optional(tag::BOOLEAN)? {
                    Some(b) => b.content.first().copied().unwrap_or(0) != 0,
                    None => false,
                };
                let v = x.expect(tag::OCTET_STRING, "extnValue")?.content;
                match id.as_str() {
                    oid::EXT_CRL_NUMBER => {
                        crl_number = Some(parse_single(v, "CRLNumber")?.uint_bytes()?.to_vec())
                    }
                    oid::EXT_DELTA_CRL => {
                        delta_base = Some(parse_single(v, "BaseCRLNumber")?.uint_bytes()?.to_vec())
                    }
                    oid::EXT_AUTHORITY_KEY_ID => {
                        let s = parse_single(v, "AuthorityKeyIdentifier")?;
                        if let Some(k) = s.reader().optional(tag::CONTEXT)? {
                            authority_key_id = Some(k.content.to_vec());
                        }
                    }
                    _ if critical && id != "2.5.29.28" => {
                        return Err(PkiError::UnsupportedAlgorithm(format!(
                            "critical CRL extension {id}"
                        )))
                    }
                    _ => {}
                }
            }
        }
        revoked.sort_by(|a, b| a.serial.cmp(&b.serial));
        revoked.shrink_to_fit();
        let tbs_range = {
            let start = tbs.raw.as_ptr() as usize - der.as_ptr() as usize;
            start..start + tbs.raw.len()
        };
        Ok(Crl {
            tbs: tbs_range,
            signature_oid,
            signature,
            issuer,
            this_update,
            next_update,
            crl_number,
            delta_base,
            authority_key_id,
            revoked,
            der,
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn issuer(&self) -> &Name {
        &self.issuer
    }

    pub fn this_update(&self) -> UtcTime {
        self.this_update
    }

    pub fn next_update(&self) -> Option<UtcTime> {
        self.next_update
    }

    /// CRLNumber magnitude.
    pub fn number(&self) -> Option<&[u8]> {
        self.crl_number.as_deref()
    }

    /// True for a Delta CRL (it carries a BaseCRLNumber).
    pub fn is_delta(&self) -> bool {
        self.delta_base.is_some()
    }

    /// The Base CRL number a Delta CRL applies to.
    pub fn delta_base(&self) -> Option<&[u8]> {
        self.delta_base.as_deref()
    }

    pub fn signature_algorithm(&self) -> Result<SignatureAlgorithm, PkiError> {
        SignatureAlgorithm::from_oid(&self.signature_oid)
    }

    /// All entries, sorted by serial.
    pub fn revoked(&self) -> &[RevokedEntry] {
        &self.revoked
    }

    /// The entry for `serial` (INTEGER content octets or magnitude), if revoked.
    pub fn find(&self, serial: &[u8]) -> Option<&RevokedEntry> {
        let s = normalize_serial(serial);
        self.revoked
            .binary_search_by(|e| e.serial.as_ref().cmp(s))
            .ok()
            .map(|i| &self.revoked[i])
    }

    /// True when `issuer` could have issued this CRL (name and key identifier).
    pub fn is_issued_by_name(&self, issuer: &Certificate) -> bool {
        if self.issuer.der != issuer.subject().der {
            return false;
        }
        match (&self.authority_key_id, &issuer.extensions().subject_key_id) {
            (Some(a), Some(s)) => a == s,
            _ => true,
        }
    }

    /// Checks the issuer's signature.
    pub fn verify_signature(&self, issuer: &Certificate) -> Result<(), PkiError> {
        let alg = self.signature_algorithm()?;
        issuer
            .public_key()?
            .verify(&self.der[self.tbs.clone()], &self.signature, alg)
            .map_err(|e| PkiError::BadSignature(format!("CRL of {}: {e}", self.issuer)))
    }

    /// True when the CRL is current at `at`: thisUpdate ≤ at < nextUpdate, with thisUpdate
    /// allowed up to [`CLOCK_SKEW_SECS`](crate::time::CLOCK_SKEW_SECS) after `at` (a CRL
    /// just issued by a CA whose clock runs ahead, or in the second after the one checked).
    pub fn is_current_at(&self, at: UtcTime) -> bool {
        self.this_update.0 <= at.0 + crate::time::CLOCK_SKEW_SECS
            && self.next_update.is_none_or(|n| at < n)
    }

    /// A short description for `inspect`.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "CRL issuer: {}\nThis update: {}\nNext update: {}\nKind: {}\nEntries: {}\n",
            self.issuer,
            self.this_update,
            self.next_update
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            if self.is_delta() { "Delta" } else { "Base" },
            self.revoked.len()
        );
        if let Some(n) = &self.crl_number {
            out.push_str(&format!("Number: {}\n", crate::cert::hex(n)));
        }
        out
    }
}
