//! The verification report of a CMS, one entry per signer, like ezSigner's: who signed
//! (IIN/BIN/name/role), when (signingTime and the TSA's time), the certificate's status and
//! the source of that answer, whether the signature is valid, and why not. It judges; it never
//! fetches (gather OCSP/CRLs first with `revocation`).

use std::fmt;

use crate::cert::{Certificate, SubjectInfo};
use crate::cms::SignedData;
use crate::crl::Crl;
use crate::error::PkiError;
use crate::keys::SignatureAlgorithm;
use crate::ocsp::OcspResponse;
use crate::time::UtcTime;
use crate::tsp::TimeStampToken;
use crate::validate::{CertStatus, KeyPurpose, SignerExpectation, Validator};

/// What to verify against.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Judge certificates at this instant; otherwise at the TSA's time, else now.
    pub at: Option<UtcTime>,
    /// Requirements every signer must meet (IIN/BIN/role).
    pub expectation: Option<SignerExpectation>,
}

/// The report of one signer.
#[derive(Clone, Debug)]
pub struct SignerReport {
    pub index: usize,
    pub subject: Option<SubjectInfo>,
    pub certificate: Option<Certificate>,
    pub algorithm: Option<SignatureAlgorithm>,
    pub signing_time: Option<UtcTime>,
    /// The TSA's time, when a valid signature time-stamp is attached.
    pub tsa_time: Option<UtcTime>,
    /// The instant the certificate was judged at.
    pub checked_at: UtcTime,
    pub status: Option<CertStatus>,
    /// Everything wrong; empty when the signer is valid.
    pub problems: Vec<String>,
}

impl SignerReport {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The report of a whole CMS.
#[derive(Clone, Debug)]
pub struct CmsReport {
    pub signers: Vec<SignerReport>,
}

impl CmsReport {
    /// Valid when there is at least one signer and every signer is valid.
    pub fn is_valid(&self) -> bool {
        !self.signers.is_empty() && self.signers.iter().all(|s| s.is_valid())
    }
}

/// Verifies every signer of `cms`: signature, time stamp, chain, validity, revocation (from the
/// validator's data plus OCSP/CRLs embedded in the CMS) and expectations.
pub fn verify_cms(
    cms: &[u8],
    detached: Option<&[u8]>,
    validator: &Validator,
    opts: &VerifyOptions,
) -> Result<CmsReport, PkiError> {
    let sd = SignedData::parse(cms)?;
    let mut v = validator.clone();
    let (ocsp, crls) = sd.embedded_revocation();
    for o in ocsp {
        if let Ok(r) = OcspResponse::from_der(&o) {
            v.add_ocsp_response(r);
        }
    }
    for c in crls {
        if let Ok(c) = Crl::from_der(c) {
            v.add_crl(c);
        }
    }
    let checks = sd.check_signatures(detached, &[]);
    let mut signers = Vec::new();
    for (check, si) in checks.into_iter().zip(&sd.signers) {
        let mut problems = Vec::new();
        if let Err(e) = &check.signature {
            problems.push(format!("signature invalid: {e}"));
        }
        let mut tsa_time = None;
        for token in si.timestamp_tokens() {
            match check_timestamp(&token, &si.signature, &v, opts.at) {
                Ok(t) => tsa_time = Some(t),
                Err(e) => problems.push(format!("time stamp invalid: {e}")),
            }
        }
        let checked_at = opts.at.or(tsa_time).unwrap_or_else(UtcTime::now);
        let mut status = None;
        match &check.certificate {
            Some(cert) => {
                let r = v.validate(cert, &sd.certificates, checked_at, KeyPurpose::Signing);
                problems.extend(r.problems.iter().cloned());
                status = Some(r.status);
            }
            None => problems.push("the signer's certificate is missing".into()),
        }
        if let (Some(exp), Some(info)) = (&opts.expectation, &check.subject) {
            if let Err(e) = exp.check(info) {
                problems.push(e);
            }
        }
        signers.push(SignerReport {
            index: check.index,
            subject: check.subject,
            certificate: check.certificate,
            algorithm: check.algorithm,
            signing_time: check.signing_time,
            tsa_time,
            checked_at,
            status,
            problems,
        });
    }
    Ok(CmsReport { signers })
}

fn check_timestamp(
    token: &[u8],
    signature: &[u8],
    v: &Validator,
    at: Option<UtcTime>,
) -> Result<UtcTime, PkiError> {
    let t = TimeStampToken::from_der(token)?;
    t.verify_imprint(signature)?;
    let tsa = t.verify_signature(&[])?;
    let when = at.unwrap_or(t.gen_time());
    let r = v.validate(&tsa, t.certificates(), when, KeyPurpose::Any);
    if !r.problems.is_empty() {
        return Err(PkiError::Validation(format!(
            "TSA certificate: {}",
            r.problems.join("; ")
        )));
    }
    Ok(t.gen_time())
}

impl fmt::Display for CmsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "CMS: {} signer(s), {}",
            self.signers.len(),
            if self.is_valid() {
                "VALID"
            } else {
                "NOT VALID"
            }
        )?;
        for s in &self.signers {
            writeln!(
                f,
                "Signer #{}: {}",
                s.index + 1,
                if s.is_valid() { "valid" } else { "NOT valid" }
            )?;
            if let Some(i) = &s.subject {
                if let Some(cn) = &i.common_name {
                    writeln!(f, "  name:         {cn}")?;
                }
                if let Some(iin) = &i.iin {
                    writeln!(f, "  IIN:          {iin}")?;
                }
                if let Some(bin) = &i.bin {
                    writeln!(f, "  BIN:          {bin}")?;
                }
                if let Some(o) = &i.organisation {
                    writeln!(f, "  organisation: {o}")?;
                }
                if let Some(r) = i.main_role() {
                    writeln!(f, "  role:         {r}")?;
                }
            }
            if let Some(a) = s.algorithm {
                writeln!(f, "  algorithm:    {}", a.name())?;
            }
            if let Some(t) = s.signing_time {
                writeln!(f, "  signing time: {t}")?;
            }
            if let Some(t) = s.tsa_time {
                writeln!(f, "  TSA time:     {t}")?;
            }
            writeln!(f, "  checked at:   {}", s.checked_at)?;
            if let Some(st) = &s.status {
                writeln!(f, "  certificate:  {st}")?;
            }
            for p in &s.problems {
                writeln!(f, "  problem:      {p}")?;
            }
        }
        Ok(())
    }
}
