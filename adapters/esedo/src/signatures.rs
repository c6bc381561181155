//! The CMS signatures of a letter, judged with qaqpa-pki: the head's signature over the main
//! document (first head or an employee with signing right of the sender's BIN) and the
//! chancellery's registration signature (`secondSignData`, any of the five organisation roles of
//! the same BIN). Full certificate validation: chain to the configured trust store, validity,
//! KeyUsage, revocation from the validator's CRLs, OCSP answers embedded in the CMS, and (when a
//! fetcher is configured) OCSP asked online. The messages say exactly who signed and what was
//! required.
use std::sync::Arc;

use qaqpa_pki::cms::SignedData;
use qaqpa_pki::network::{Fetcher, OcspCache};
use qaqpa_pki::{Certificate, Role, SignerReport, UtcTime, Validator, VerifyOptions};
use serde::Serialize;

/// Which of a letter's two signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureRole {
    /// The head's signature over the main document.
    Head,
    /// The chancellery's registration signature.
    Registration,
}

impl SignatureRole {
    fn allowed(self) -> &'static [Role] {
        match self {
            Self::Head => &[Role::FirstHead, Role::SigningRight],
            Self::Registration => &[
                Role::FirstHead,
                Role::SigningRight,
                Role::FinancialSigningRight,
                Role::Hr,
                Role::Employee,
            ],
        }
    }

    fn requirement(self, bin: &str) -> String {
        match self {
            Self::Head => format!(
                "a letter needs the first head or an employee with signing right of BIN {bin}"
            ),
            Self::Registration => format!(
                "a registration signature needs an employee (any organisation role) of BIN {bin}"
            ),
        }
    }
}

/// One signer, as the inbox card and the logs show it (the IIN masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignerSummary {
    pub name: Option<String>,
    /// First six digits of the IIN (the birth date), the rest masked.
    pub iin: Option<String>,
    pub bin: Option<String>,
    pub organisation: Option<String>,
    pub role: Option<String>,
    pub algorithm: Option<String>,
    pub signed_at: Option<String>,
    pub valid: bool,
    /// Why not valid; `None` when valid.
    pub reason: Option<String>,
}

impl SignerSummary {
    /// One line for the audit journal: name, masked IIN, BIN, organisation and role.
    pub fn describe(&self) -> String {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        format!(
            "{} IIN {} BIN {} ({}) role {}",
            or_dash(&self.name),
            or_dash(&self.iin),
            or_dash(&self.bin),
            or_dash(&self.organisation),
            or_dash(&self.role)
        )
    }
}

/// Verifies letters' CMS signatures. Built once by the gateway and shared.
pub struct CmsVerifier {
    validator: Validator,
    fetcher: Option<Arc<dyn Fetcher>>,
    ocsp: OcspCache,
}

impl CmsVerifier {
    /// Validation against `validator`'s trust store and the CRLs/OCSP answers it holds.
    pub fn new(validator: Validator) -> Self {
        Self {
            validator,
            fetcher: None,
            ocsp: OcspCache::new(),
        }
    }

    /// Also asks each signer certificate's OCSP responder (its AIA URL) through `fetcher`.
    pub fn with_ocsp_fetcher(mut self, fetcher: Arc<dyn Fetcher>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// Verifies `cms` over `content` (the main document; ignored when the CMS carries its own
    /// content, which must then equal it if `must_cover` is set) and checks every signer
    /// against `role` and `bin`. `Ok` carries the summaries; `Err` the first exact reason.
    pub async fn verify(
        &self,
        cms: &[u8],
        content: Option<&[u8]>,
        must_cover: bool,
        role: SignatureRole,
        bin: &str,
    ) -> Result<Vec<SignerSummary>, String> {
        let summaries = self.summarise(cms, content, must_cover, role, bin).await?;
        match summaries.iter().find(|s| !s.valid) {
            Some(bad) => Err(bad.reason.clone().unwrap_or_else(|| "not valid".into())),
            None => Ok(summaries),
        }
    }

    /// Like [`CmsVerifier::verify`] but returns every signer's summary, valid or not.
    pub async fn summarise(
        &self,
        cms: &[u8],
        content: Option<&[u8]>,
        must_cover: bool,
        role: SignatureRole,
        bin: &str,
    ) -> Result<Vec<SignerSummary>, String> {
        let sd = SignedData::parse(cms).map_err(|e| format!("not a CMS SignedData: {e}"))?;
        if sd.signers.is_empty() {
            return Err("the CMS has no signer".into());
        }
        if must_cover {
            if let (Some(inner), Some(expected)) = (&sd.content, content) {
                if inner.as_slice() != expected {
                    return Err(
                        "the CMS signs a content different from the main document (attachment 0)"
                            .into(),
                    );
                }
            }
        }
        let mut validator = self.validator.clone();
        if let Some(fetcher) = &self.fetcher {
            self.fetch_ocsp(fetcher.as_ref(), &sd, &mut validator).await;
        }
        let report = qaqpa_pki::verify_cms(cms, content, &validator, &VerifyOptions::default())
            .map_err(|e| format!("the CMS cannot be verified: {e}"))?;
        Ok(report
            .signers
            .iter()
            .map(|s| summary(s, role, bin))
            .collect())
    }

    async fn fetch_ocsp(&self, fetcher: &dyn Fetcher, sd: &SignedData, v: &mut Validator) {
        let now = UtcTime::now();
        for si in &sd.signers {
            let Some(cert) = sd.signer_certificate(si, &[]) else {
                continue;
            };
            let Some(issuer) = find_issuer(&cert, &sd.certificates, &self.validator) else {
                continue;
            };
            for url in cert.extensions().ocsp_urls.clone() {
                match self
                    .ocsp
                    .get_or_fetch(fetcher, &url, &cert, &issuer, now)
                    .await
                {
                    Ok(r) => {
                        v.add_ocsp_response(r);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(url = %url, error = %e, "OCSP request failed");
                    }
                }
            }
        }
    }
}

fn find_issuer(cert: &Certificate, pool: &[Certificate], v: &Validator) -> Option<Certificate> {
    pool.iter()
        .chain(v.trust.intermediates())
        .chain(v.trust.anchors())
        .filter(|i| cert.is_issued_by_name(i))
        .find(|i| cert.verify_issued_by(i).is_ok())
        .cloned()
}

fn mask_iin(iin: &str) -> String {
    let keep: String = iin.chars().take(6).collect();
    format!(
        "{keep}{}",
        "*".repeat(iin.chars().count().saturating_sub(6))
    )
}

fn summary(s: &SignerReport, role: SignatureRole, bin: &str) -> SignerSummary {
    let info = s.subject.as_ref();
    let name = info.and_then(|i| i.common_name.clone());
    let iin = info.and_then(|i| i.iin.as_ref().map(|x| x.to_string()));
    let signer_bin = info.and_then(|i| i.bin.as_ref().map(|x| x.to_string()));
    let main_role = info.and_then(|i| i.main_role().cloned());
    let who = format!(
        "signer {}{}",
        name.as_deref().unwrap_or("(no name)"),
        iin.as_deref()
            .map(|i| format!(" (IIN {})", mask_iin(i)))
            .unwrap_or_default()
    );
    let mut reason = None;
    if !s.problems.is_empty() {
        reason = Some(format!("{who}: {}", s.problems.join("; ")));
    } else if signer_bin.as_deref() != Some(bin) {
        reason = Some(format!(
            "{who} signs for BIN {}; {}",
            signer_bin
                .as_deref()
                .unwrap_or("(none: a personal certificate)"),
            role.requirement(bin)
        ));
    } else if !info.is_some_and(|i| i.roles.iter().any(|r| role.allowed().contains(r))) {
        let is = match &main_role {
            Some(Role::Employee) => "is an employee without signing right".to_owned(),
            Some(r) => format!("is {} {}", article(r.describe()), r.describe()),
            None => "has no organisation role".to_owned(),
        };
        reason = Some(format!("{who} {is}; {}", role.requirement(bin)));
    }
    SignerSummary {
        name,
        iin: iin.as_deref().map(mask_iin),
        bin: signer_bin,
        organisation: info.and_then(|i| i.organisation.clone()),
        role: main_role.map(|r| r.describe().to_owned()),
        algorithm: s.algorithm.map(|a| a.name().to_owned()),
        signed_at: s.signing_time.map(|t| t.to_rfc3339()),
        valid: reason.is_none(),
        reason,
    }
}

fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}
