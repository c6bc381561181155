//! Certificate validation at a given instant: a chain to configured trust anchors, validity
//! periods, KeyUsage for signing, revocation (CRL Base + Delta, OCSP answers gathered by the
//! caller), and expectations on the signer (IIN, BIN, role) with the exact reason when unmet.
//! Nothing here touches the network; `revocation` fetches, this module judges.

use std::collections::HashMap;
use std::path::Path;

use crate::cert::{Bin, Certificate, Iin, KeyUsage, Role, SubjectInfo};
use crate::crl::Crl;
use crate::error::PkiError;
use crate::ocsp::{OcspResponse, OcspStatus};
use crate::time::UtcTime;

/// The roots (and optionally intermediates) a chain must end in.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    anchors: Vec<Certificate>,
    intermediates: Vec<Certificate>,
}

impl TrustStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every certificate file (.cer, .crt, .pem, .der; DER or PEM) in `dir`: self-signed ones
    /// become anchors, the others intermediates that a chain may pass through.
    pub fn from_dir(dir: &Path) -> Result<Self, PkiError> {
        let io = |e| PkiError::Io {
            path: dir.display().to_string(),
            source: e,
        };
        let mut store = TrustStore::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            let ext = p
                .extension()
                .and_then(|x| x.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            if !["cer", "crt", "pem", "der"].contains(&ext.as_str()) {
                continue;
            }
            let data = std::fs::read(&p).map_err(|e| PkiError::Io {
                path: p.display().to_string(),
                source: e,
            })?;
            let certs = if crate::pem::looks_like_pem(&data) {
                Certificate::all_from_pem(&String::from_utf8_lossy(&data))?
            } else {
                vec![Certificate::from_der(&data)?]
            };
            for c in certs {
                store.add(c);
            }
        }
        if store.anchors.is_empty() {
            return Err(PkiError::Validation(format!(
                "no self-signed root certificate in {}",
                dir.display()
            )));
        }
        Ok(store)
    }

    /// Adds a certificate: self-signed ones as anchors, others as intermediates.
    pub fn add(&mut self, c: Certificate) {
        if c.is_self_issued() {
            self.add_anchor(c)
        } else {
            self.add_intermediate(c)
        }
    }

    pub fn add_anchor(&mut self, c: Certificate) {
        if !self.anchors.contains(&c) {
            self.anchors.push(c);
        }
    }

    pub fn add_intermediate(&mut self, c: Certificate) {
        if !self.intermediates.contains(&c) {
            self.intermediates.push(c);
        }
    }

    pub fn anchors(&self) -> &[Certificate] {
        &self.anchors
    }

    pub fn intermediates(&self) -> &[Certificate] {
        &self.intermediates
    }
}

/// What the certificate is being checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Signing documents: digitalSignature and nonRepudiation.
    Signing,
    /// Only chain, validity and revocation.
    Any,
}

/// Where a revocation answer came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusSource {
    Crl {
        issuer: String,
        this_update: UtcTime,
        delta: bool,
    },
    Ocsp {
        produced_at: UtcTime,
    },
}

impl std::fmt::Display for StatusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusSource::Crl {
                this_update, delta, ..
            } => write!(
                f,
                "{} CRL of {}",
                if *delta { "Delta" } else { "Base" },
                this_update.to_rfc3339()
            ),
            StatusSource::Ocsp { produced_at } => {
                write!(f, "OCSP response produced {}", produced_at.to_rfc3339())
            }
        }
    }
}

/// The revocation status of a certificate at the instant checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertStatus {
    Good {
        source: StatusSource,
    },
    Revoked {
        at: UtcTime,
        source: StatusSource,
    },
    /// No current CRL or OCSP answer covered the certificate.
    Unknown {
        reason: String,
    },
}

impl std::fmt::Display for CertStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertStatus::Good { source } => write!(f, "good (by {source})"),
            CertStatus::Revoked { at, source } => {
                write!(f, "REVOKED since {} (by {source})", at.to_rfc3339())
            }
            CertStatus::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}

/// The outcome of validating one certificate.
#[derive(Clone, Debug)]
pub struct CertValidation {
    /// Leaf first, anchor last (as far as it could be built).
    pub chain: Vec<Certificate>,
    pub status: CertStatus,
    /// Everything wrong, in words; empty when valid.
    pub problems: Vec<String>,
}

impl CertValidation {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty() && matches!(self.status, CertStatus::Good { .. })
    }
}

/// Validates certificates against a trust store and the revocation data it was given.
#[derive(Clone, Debug, Default)]
pub struct Validator {
    pub trust: TrustStore,
    crls: Vec<Crl>,
    ocsp: Vec<OcspResponse>,
    /// Accept a certificate when no revocation data covers it (status stays Unknown but no
    /// problem is recorded). Off by default.
    pub allow_unknown_status: bool,
}

impl Validator {
    pub fn new(trust: TrustStore) -> Self {
        Validator {
            trust,
            ..Default::default()
        }
    }

    /// Offers a CRL (its signature is checked when used).
    pub fn add_crl(&mut self, crl: Crl) {
        self.crls.push(crl);
    }

    /// Offers an OCSP response (checked when used).
    pub fn add_ocsp_response(&mut self, r: OcspResponse) {
        self.ocsp.push(r);
    }

    pub fn crls(&self) -> &[Crl] {
        &self.crls
    }

    /// Finds `c`'s issuer among `pool`, the trust store's intermediates and anchors.
    fn find_issuer(&self, c: &Certificate, pool: &[Certificate]) -> Option<Certificate> {
        pool.iter()
            .chain(&self.trust.intermediates)
            .chain(&self.trust.anchors)
            .filter(|i| c.is_issued_by_name(i))
            .find(|i| c.verify_issued_by(i).is_ok())
            .cloned()
    }

    /// Builds and checks the chain of `cert` at `at`; `extra` are untrusted helpers (CMS
    /// certificates, keystore chain).
    pub fn validate(
        &self,
        cert: &Certificate,
        extra: &[Certificate],
        at: UtcTime,
        purpose: KeyPurpose,
    ) -> CertValidation {
        let mut problems = Vec::new();
        let mut chain = vec![cert.clone()];
        let mut current = cert.clone();
        let mut anchored = self.trust.anchors.contains(cert);
        while !anchored {
            if chain.len() > 8 {
                problems.push("certificate chain is too long".to_string());
                break;
            }
            match self.find_issuer(&current, extra) {
                Some(issuer) => {
                    anchored = self.trust.anchors.contains(&issuer);
                    if !issuer.extensions().is_ca && !anchored {
                        problems.push(format!("issuer '{}' is not a CA", issuer.subject()));
                    }
                    if issuer == current {
                        problems.push(format!(
                            "self-signed '{}' is not a trusted root",
                            issuer.subject()
                        ));
                        break;
                    }
                    chain.push(issuer.clone());
                    current = issuer;
                }
                None => {
                    let signed_by_name = extra
                        .iter()
                        .chain(&self.trust.intermediates)
                        .chain(&self.trust.anchors)
                        .any(|i| current.is_issued_by_name(i));
                    problems.push(if signed_by_name {
                        format!(
                            "the signature of '{}' does not verify under its issuer",
                            current.subject()
                        )
                    } else {
                        format!(
                            "no trusted issuer found for '{}' (issuer '{}')",
                            current.subject(),
                            current.issuer()
                        )
                    });
                    break;
                }
            }
        }
        for c in &chain {
            if at < c.not_before() {
                problems.push(format!(
                    "certificate '{}' is not valid before {} (checked at {})",
                    c.subject(),
                    c.not_before().to_astana(),
                    at.to_astana()
                ));
            }
            if at > c.not_after() {
                problems.push(format!(
                    "certificate '{}' expired at {} (checked at {})",
                    c.subject(),
                    c.not_after().to_astana(),
                    at.to_astana()
                ));
            }
            if !c.extensions().unknown_critical.is_empty() {
                problems.push(format!(
                    "certificate '{}' has unknown critical extensions {}",
                    c.subject(),
                    c.extensions().unknown_critical.join(", ")
                ));
            }
        }
        if purpose == KeyPurpose::Signing {
            let ku = cert.extensions().key_usage.unwrap_or_default();
            if !(ku.has(KeyUsage::DIGITAL_SIGNATURE) && ku.has(KeyUsage::NON_REPUDIATION)) {
                problems.push(format!(
                    "certificate key usage ({}) lacks digitalSignature and nonRepudiation needed for signing",
                    ku.names().join(", ")
                ));
            }
        }
        let status = match chain.get(1) {
            Some(issuer) => self.status(cert, issuer, at),
            None if anchored => CertStatus::Good {
                source: StatusSource::Crl {
                    issuer: "trust anchor".into(),
                    this_update: at,
                    delta: false,
                },
            },
            None => CertStatus::Unknown {
                reason: "no issuer to check revocation with".into(),
            },
        };
        match &status {
            CertStatus::Revoked { at: when, source } => problems.push(format!(
                "certificate {} was revoked at {} (by {source})",
                cert.serial_hex(),
                when.to_astana()
            )),
            CertStatus::Unknown { reason } if !self.allow_unknown_status => {
                problems.push(format!("revocation status unknown: {reason}"))
            }
            _ => {}
        }
        CertValidation {
            chain,
            status,
            problems,
        }
    }

    /// Revocation status of `cert` issued by `issuer` at `at`: OCSP first, then CRLs.
    pub fn status(&self, cert: &Certificate, issuer: &Certificate, at: UtcTime) -> CertStatus {
        let mut reasons = Vec::new();
        for r in &self.ocsp {
            match r.status_for(cert, issuer, at) {
                Ok(Some(single)) => {
                    let source = StatusSource::Ocsp {
                        produced_at: r.produced_at(),
                    };
                    return match single {
                        OcspStatus::Good => CertStatus::Good { source },
                        OcspStatus::Revoked { at: when } if when <= at => {
                            CertStatus::Revoked { at: when, source }
                        }
                        OcspStatus::Revoked { .. } => CertStatus::Good { source },
                        OcspStatus::Unknown => CertStatus::Unknown {
                            reason: "the OCSP responder does not know the certificate".into(),
                        },
                    };
                }
                Ok(None) => {}
                Err(e) => reasons.push(format!("OCSP response unusable: {e}")),
            }
        }
        self.crl_status(cert, issuer, at, &mut reasons)
    }

    fn crl_status(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        at: UtcTime,
        reasons: &mut Vec<String>,
    ) -> CertStatus {
        let mut base: Option<&Crl> = None;
        let mut deltas: Vec<&Crl> = Vec::new();
        for crl in &self.crls {
            if !crl.is_issued_by_name(issuer) {
                continue;
            }
            if let Err(e) = crl.verify_signature(issuer) {
                reasons.push(e.to_string());
                continue;
            }
            if !crl.is_current_at(at) {
                reasons.push(format!(
                    "CRL of {} is not current at {} (this update {}, next update {})",
                    &crl.this_update().to_rfc3339()[..10],
                    at.to_rfc3339(),
                    crl.this_update().to_rfc3339(),
                    crl.next_update()
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "-".into())
                ));
                continue;
            }
            if crl.is_delta() {
                deltas.push(crl);
            } else if base.is_none_or(|b| b.this_update() < crl.this_update()) {
                base = Some(crl);
            }
        }
        let Some(base) = base else {
            reasons.push(format!("no current CRL of '{}'", issuer.subject()));
            return CertStatus::Unknown {
                reason: reasons.join("; "),
            };
        };
        let source_of = |c: &Crl| StatusSource::Crl {
            issuer: c.issuer().to_string(),
            this_update: c.this_update(),
            delta: c.is_delta(),
        };
        if let Some(e) = base.find(cert.serial()) {
            if e.revoked_at <= at {
                return CertStatus::Revoked {
                    at: e.revoked_at,
                    source: source_of(base),
                };
            }
        }
        for d in deltas {
            // A delta applies to a base whose number is at least its BaseCRLNumber.
            let applies = match (d.delta_base(), base.number()) {
                (Some(db), Some(bn)) => cmp_uint(bn, db) != std::cmp::Ordering::Less,
                _ => false,
            };
            if !applies {
                continue;
            }
            if let Some(e) = d.find(cert.serial()) {
                if e.revoked_at <= at && e.reason != Some(8) {
                    return CertStatus::Revoked {
                        at: e.revoked_at,
                        source: source_of(d),
                    };
                }
            }
        }
        CertStatus::Good {
            source: source_of(base),
        }
    }
}

fn cmp_uint(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let a = crate::crl::normalize_serial(a);
    let b = crate::crl::normalize_serial(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// What the relying party requires of a signer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignerExpectation {
    pub iin: Option<Iin>,
    pub bin: Option<Bin>,
    /// Any one of these roles will do; empty means any role.
    pub roles_any: Vec<Role>,
}

impl SignerExpectation {
    fn requirement(&self) -> String {
        let mut s = if self.roles_any.is_empty() {
            "a signer".to_string()
        } else {
            self.roles_any
                .iter()
                .map(|r| r.describe())
                .collect::<Vec<_>>()
                .join(" or ")
        };
        if let Some(b) = &self.bin {
            s.push_str(&format!(" of BIN {b}"));
        }
        if let Some(i) = &self.iin {
            s.push_str(&format!(" with IIN {i}"));
        }
        s
    }

    /// `Ok` when `info` meets the expectation, else the exact reason.
    pub fn check(&self, info: &SubjectInfo) -> Result<(), String> {
        let required = self.requirement();
        if let Some(i) = &self.iin {
            if info.iin.as_ref() != Some(i) {
                let is = info
                    .iin
                    .as_ref()
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "absent".into());
                return Err(format!("signer's IIN is {is}; {required} required"));
            }
        }
        if let Some(b) = &self.bin {
            if info.bin.as_ref() != Some(b) {
                let is = info
                    .bin
                    .as_ref()
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "absent".into());
                return Err(format!("signer's BIN is {is}; {required} required"));
            }
        }
        if !self.roles_any.is_empty() && !info.roles.iter().any(|r| self.roles_any.contains(r)) {
            let is = match info.main_role() {
                Some(r) => r.to_string(),
                None => "not stated".to_string(),
            };
            return Err(format!("signer's role is {is}; {required} required"));
        }
        Ok(())
    }
}

/// A cache of CRLs by URL: a download replaces the cached CRL only when it parses, its
/// signature verifies under the issuer, it is newer, and it is not stale. An empty, invalid or
/// stale download never replaces a good one.
#[derive(Clone, Debug, Default)]
pub struct CrlCache {
    by_url: HashMap<String, Crl>,
}

impl CrlCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers freshly downloaded bytes for `url`. Returns whether they were taken, or why not.
    pub fn offer(
        &mut self,
        url: &str,
        bytes: Vec<u8>,
        issuer: &Certificate,
        now: UtcTime,
    ) -> Result<(), PkiError> {
        if bytes.is_empty() {
            return Err(PkiError::Validation(format!(
                "empty CRL download from {url} ignored"
            )));
        }
        let crl = Crl::from_der_or_pem(&bytes)?;
        if !crl.is_issued_by_name(issuer) {
            return Err(PkiError::Validation(format!(
                "CRL from {url} is not issued by '{}'",
                issuer.subject()
            )));
        }
        crl.verify_signature(issuer)?;
        if crl.next_update().is_some_and(|n| n <= now) {
            return Err(PkiError::Validation(format!(
                "stale CRL from {url} (next update {}) ignored",
                crl.next_update()
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            )));
        }
        if let Some(old) = self.by_url.get(url) {
            if old.this_update() > crl.this_update() {
                return Err(PkiError::Validation(format!(
                    "older CRL from {url} ignored"
                )));
            }
        }
        self.by_url.insert(url.to_string(), crl);
        Ok(())
    }

    /// The cached CRL for `url`, whether or not it is still current.
    pub fn get(&self, url: &str) -> Option<&Crl> {
        self.by_url.get(url)
    }

    /// True when the cached CRL for `url` is current at `now` (no download needed).
    pub fn is_fresh(&self, url: &str, now: UtcTime) -> bool {
        self.by_url.get(url).is_some_and(|c| c.is_current_at(now))
    }

    pub fn all(&self) -> impl Iterator<Item = &Crl> {
        self.by_url.values()
    }
}
