//! RFC 3161 time stamps: requests (with the TSA policy NCA wants per algorithm and a nonce) and
//! tokens (parsed, the TSA's signature checked, the imprint compared with the data). A token is
//! never trusted for its time before its signature and imprint are checked.

use crate::asn1::{der, parse_single, tag};
use crate::cert::Certificate;
use crate::cms::SignedData;
use crate::error::PkiError;
use crate::keys::{DigestAlgorithm, SignatureAlgorithm};
use crate::oid;
use crate::time::UtcTime;

/// The TSA policy OID NCA expects for a signature algorithm (FACTS.md): 1.2.398.3.3.2.6.4 for
/// GOST 2015, 1.2.398.3.3.2.6.1 for GOST 2004; none for RSA (the TSA's default).
pub fn policy_for(alg: SignatureAlgorithm) -> Option<&'static str> {
    match alg {
        SignatureAlgorithm::Gost2015_256 | SignatureAlgorithm::Gost2015_512 => {
            Some(oid::TSA_POLICY_GOST2015)
        }
        SignatureAlgorithm::Gost2004 => Some(oid::TSA_POLICY_GOST2004),
        SignatureAlgorithm::RsaSha256 => None,
    }
}

/// The digest a time-stamp request uses for an algorithm's signatures.
pub fn digest_for(alg: SignatureAlgorithm) -> DigestAlgorithm {
    match alg.gost() {
        Some(g) => DigestAlgorithm::Gost(g),
        None => DigestAlgorithm::Sha256,
    }
}

/// A TimeStampReq for `data` (hashed with `digest`), asking for the TSA certificate; returns
/// the DER and the nonce.
pub fn build_request(
    digest: DigestAlgorithm,
    data: &[u8],
    policy: Option<&str>,
) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut nonce = vec![0u8; 8];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| PkiError::Key("no randomness for the TSP nonce".into()))?;
    nonce[0] &= 0x7f;
    let imprint = der::seq(&[
        &der::alg(digest.oid(), Some(&der::null())),
        &der::octets(&digest.digest(data)),
    ]);
    let mut parts = vec![der::small_uint(1), imprint];
    if let Some(p) = policy {
        parts.push(der::oid(p));
    }
    parts.push(der::uint(&nonce));
    parts.push(der::bool(true));
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    Ok((
        der::seq(&refs),
        crate::crl::normalize_serial(&nonce).to_vec(),
    ))
}

/// The TSTInfo of a token.
#[derive(Clone, Debug)]
pub struct TstInfo {
    pub policy: String,
    pub hash_oid: String,
    pub imprint: Vec<u8>,
    pub serial: Vec<u8>,
    pub gen_time: UtcTime,
    pub nonce: Option<Vec<u8>>,
}

/// A time-stamp token (a SignedData over TSTInfo).
#[derive(Clone, Debug)]
pub struct TimeStampToken {
    der: Vec<u8>,
    signed: SignedData,
    info: TstInfo,
}

impl TimeStampToken {
    /// Parses a token (ContentInfo).
    pub fn from_der(data: &[u8]) -> Result<TimeStampToken, PkiError> {
        let signed = SignedData::parse(data)?;
        if signed.content_type != oid::TST_INFO {
            return Err(PkiError::Malformed(format!(
                "time-stamp token content type {} is not TSTInfo",
                signed.content_type
            )));
        }
        let content = signed
            .content
            .as_deref()
            .ok_or_else(|| PkiError::Malformed("time-stamp token without TSTInfo".into()))?;
        let t = parse_single(content, "TSTInfo")?;
        let mut r = t.reader();
        r.expect(tag::INTEGER, "TSTInfo version")?;
        let policy = r.expect(tag::OID, "policy")?.oid()?;
        let mi = r.expect(tag::SEQUENCE, "messageImprint")?;
        let mut m = mi.reader();
        let hash_oid = m
            .expect(tag::SEQUENCE, "hashAlgorithm")?
            .reader()
            .expect(tag::OID, "hashAlgorithm")?
            .oid()?;
        let imprint = m
            .expect(tag::OCTET_STRING, "hashedMessage")?
            .content
            .to_vec();
        let serial = r.expect(tag::INTEGER, "serialNumber")?.content.to_vec();
        let gen_time = r.expect(tag::GENERALIZED_TIME, "genTime")?.time()?;
        r.optional(tag::SEQUENCE)?; // accuracy
        r.optional(tag::BOOLEAN)?; // ordering
        let nonce = r
            .optional(tag::INTEGER)?
            .map(|n| crate::crl::normalize_serial(n.content).to_vec());
        Ok(TimeStampToken {
            der: data.to_vec(),
            signed,
            info: TstInfo {
                policy,
                hash_oid,
                imprint,
                serial,
                gen_time,
                nonce,
            },
        })
    }

    /// Takes the token out of a TimeStampResp, failing with the TSA's status when not granted.
    pub fn from_response(data: &[u8]) -> Result<TimeStampToken, PkiError> {
        let top = parse_single(data, "TimeStampResp")?;
        top.check(tag::SEQUENCE, "TimeStampResp")?;
        let mut r = top.reader();
        let status = r.expect(tag::SEQUENCE, "PKIStatusInfo")?;
        let mut s = status.reader();
        let code = s.expect(tag::INTEGER, "status")?.small_uint()?;
        if code > 1 {
            let mut text = String::new();
            if let Some(free) = s.optional(tag::SEQUENCE)? {
                let mut fr = free.reader();
                while !fr.is_empty() {
                    text.push_str(&fr.read()?.text()?);
                }
            }
            return Err(PkiError::Validation(format!(
                "the TSA refused the request (status {code}) {text}"
            )));
        }
        let token = r.expect(tag::SEQUENCE, "timeStampToken")?;
        Self::from_der(token.raw)
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn info(&self) -> &TstInfo {
        &self.info
    }

    pub fn gen_time(&self) -> UtcTime {
        self.info.gen_time
    }

    pub fn certificates(&self) -> &[Certificate] {
        &self.signed.certificates
    }

    /// Checks the TSA's signature (its certificate from the token or `extra`); returns the TSA
    /// certificate. Chain and revocation of that certificate are the caller's `Validator`'s.
    pub fn verify_signature(&self, extra: &[Certificate]) -> Result<Certificate, PkiError> {
        let checks = self.signed.check_signatures(None, extra);
        let c = checks
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Malformed("time-stamp token without a signer".into()))?;
        c.signature
            .map_err(|e| PkiError::BadSignature(format!("time-stamp token: {e}")))?;
        let cert = c
            .certificate
            .ok_or_else(|| PkiError::Validation("the TSA certificate is not available".into()))?;
        if !cert
            .extensions()
            .extended_key_usage
            .iter()
            .any(|e| e == oid::EKU_TIME_STAMPING)
        {
            return Err(PkiError::Validation(
                "the TSA certificate lacks the timeStamping purpose".into(),
            ));
        }
        Ok(cert)
    }

    /// Checks that the token stamps `data`.
    pub fn verify_imprint(&self, data: &[u8]) -> Result<(), PkiError> {
        let d = DigestAlgorithm::from_oid(&self.info.hash_oid)?;
        if d.digest(data) == self.info.imprint {
            Ok(())
        } else {
            Err(PkiError::BadSignature(
                "the time stamp does not cover this data".into(),
            ))
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "Time-stamp token\n  time:   {}\n  policy: {}\n  hash:   {}\n  serial: {}\n",
            self.info.gen_time,
            self.info.policy,
            self.info.hash_oid,
            crate::cert::hex(&self.info.serial)
        )
    }
}
