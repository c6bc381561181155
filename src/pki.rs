//! The gateway's certificate judge: the configured trust anchors and one shared revocation
//! source (OCSP answers and CRLs cached across requests), used by `/v1/pki/*` and by adapters
//! that verify signatures before accepting a message.
use std::sync::Arc;

use qaqpa_pki::network::RevocationSource;
use qaqpa_pki::{
    CmsReport, Fetcher, HttpFetcher, PkiError, TrustStore, UtcTime, Validator, VerifyOptions,
};

use crate::config::PkiConfig;

/// Trust anchors plus revocation data, shared by every request.
pub struct PkiService {
    trust: TrustStore,
    revocation: RevocationSource,
    fetcher: Arc<dyn Fetcher>,
    offline: bool,
}

impl PkiService {
    /// Loads the trust directory (none configured: nothing is trusted, every chain fails).
    /// Revocation data is fetched over plain HTTP, not journalled.
    pub fn from_config(cfg: &PkiConfig) -> anyhow::Result<Self> {
        Self::from_config_with(cfg, Arc::new(HttpFetcher::default()))
    }

    /// [`PkiService::from_config`], fetching through `fetcher` (the gateway's journals each
    /// request: [`crate::pki_exchanges::JournallingFetcher`]).
    pub fn from_config_with(cfg: &PkiConfig, fetcher: Arc<dyn Fetcher>) -> anyhow::Result<Self> {
        let trust = match &cfg.trust_dir {
            Some(dir) => TrustStore::from_dir(dir)
                .map_err(|e| anyhow::anyhow!("pki.trust_dir {}: {e}", dir.display()))?,
            None => TrustStore::new(),
        };
        Ok(Self::new(trust, cfg.ocsp_url.clone(), cfg.offline, fetcher))
    }

    pub fn new(
        trust: TrustStore,
        ocsp_url: Option<String>,
        offline: bool,
        fetcher: Arc<dyn Fetcher>,
    ) -> Self {
        Self {
            trust,
            revocation: RevocationSource::new(fetcher.clone()).with_ocsp_url(ocsp_url),
            fetcher,
            offline,
        }
    }

    /// What revocation data is fetched through; adapters checking signatures use it too.
    pub fn fetcher(&self) -> Arc<dyn Fetcher> {
        self.fetcher.clone()
    }

    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    /// How many trust anchors are configured.
    pub fn anchor_count(&self) -> usize {
        self.trust.anchors().len()
    }

    /// A validator for `cms`, with revocation answers gathered (unless offline); the notes say
    /// what could not be fetched.
    pub async fn validator_for_cms(
        &self,
        cms: &[u8],
        at: UtcTime,
    ) -> Result<(Validator, Vec<String>), PkiError> {
        let mut v = Validator::new(self.trust.clone());
        let notes = if self.offline {
            Vec::new()
        } else {
            self.revocation.gather_for_cms(&mut v, cms, at).await?
        };
        Ok((v, notes))
    }

    /// A validator for one certificate, revocation gathered as for a CMS.
    pub async fn validator_for_cert(
        &self,
        cert: &qaqpa_pki::Certificate,
        at: UtcTime,
    ) -> (Validator, Vec<String>) {
        let mut v = Validator::new(self.trust.clone());
        let notes = if self.offline {
            Vec::new()
        } else {
            self.revocation.gather_for(&mut v, cert, &[], at).await
        };
        (v, notes)
    }

    /// Verifies a CMS completely: signatures, time stamps, chains, validity, revocation and the
    /// expectations in `opts`.
    pub async fn verify_cms(
        &self,
        cms: &[u8],
        content: Option<&[u8]>,
        opts: &VerifyOptions,
    ) -> Result<(CmsReport, Vec<String>), PkiError> {
        let at = opts.at.unwrap_or_else(UtcTime::now);
        let (v, notes) = self.validator_for_cms(cms, at).await?;
        let cms = cms.to_vec();
        let content = content.map(<[u8]>::to_vec);
        let opts = opts.clone();
        // Signature maths and CRL look-ups are CPU work: keep them off the async workers.
        let report = tokio::task::spawn_blocking(move || {
            qaqpa_pki::verify_cms(&cms, content.as_deref(), &v, &opts)
        })
        .await
        .map_err(|e| PkiError::Validation(format!("verification task failed: {e}")))??;
        Ok((report, notes))
    }
}
