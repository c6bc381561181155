//! The adapters this gateway knows, and the check that every route's settings suit its adapter.
use std::collections::BTreeMap;
use std::sync::Arc;

use qaqpa_core::Adapter;

use crate::config::Config;
use crate::routes::RoutesFile;

/// Adapters by the name routes.toml uses.
#[derive(Default)]
pub struct Registry {
    adapters: BTreeMap<&'static str, Arc<dyn Adapter>>,
    /// Our WS-Security signer and the pinned verifier of ШЭП peers, for clients outside delivery
    /// (the directory sync).
    pub shep_signer: Option<Arc<dyn qaqpa_shep::EnvelopeSigner>>,
    pub shep_verifier: Option<Arc<dyn qaqpa_shep::EnvelopeVerifier>>,
    /// The ЕСЭДО participants directory the `esedo` adapter checks recipients against.
    pub esedo_directory: Option<Arc<std::sync::RwLock<qaqpa_adapter_esedo::Directory>>>,
    /// The certificates the adapters loaded (our signing certificate, the pinned ШЭП peers),
    /// each with what it is for: the ones whose expiry is watched.
    pub certificates: Vec<(String, qaqpa_pki::Certificate)>,
}

impl Registry {
    /// Every adapter built into this binary.
    /// - `shep` and `esedo` sign with the configured keystore (`[signing]`); without one they
    ///   send unsigned envelopes, which real ШЭП refuses.
    /// - `esedo` accepts WS-Security from the pinned `[shep] peer_certificates`, judges CMS
    ///   signatures against `pki`'s trust anchors (revocation by OCSP, online), and checks
    ///   recipients against the participants directory when `[esedo] directory_file` is set.
    pub fn builtin(cfg: &Config, pki: &crate::pki::PkiService) -> anyhow::Result<Self> {
        let mut r = Self::default();
        r.add(Arc::new(qaqpa_adapter_http::HttpAdapter::new()?));
        let signer: Option<Arc<dyn qaqpa_shep::EnvelopeSigner>> = match &cfg.signing {
            Some(s) => {
                let p12 = std::fs::read(&s.keystore).map_err(|e| {
                    anyhow::anyhow!("cannot read keystore {}: {e}", s.keystore.display())
                })?;
                let password = s.password()?;
                let xml_signer = qaqpa_soap::signer_from_pkcs12(&p12, &password)
                    .map_err(|e| anyhow::anyhow!("keystore {}: {e}", s.keystore.display()))?;
                let cert = qaqpa_pki::Certificate::from_der(xml_signer.certificate_der())
                    .map_err(|e| anyhow::anyhow!("keystore {}: {e}", s.keystore.display()))?;
                r.certificates
                    .push(("the gateway's signing certificate".to_owned(), cert));
                Some(Arc::new(qaqpa_shep::SoapSigner::new(
                    Arc::from(xml_signer),
                    qaqpa_soap::WsSecurityOptions::default(),
                )))
            }
            None => None,
        };
        let verifier: Option<Arc<dyn qaqpa_shep::EnvelopeVerifier>> =
            if cfg.shep.peer_certificates.is_empty() {
                None
            } else {
                let mut pinned = Vec::new();
                for path in &cfg.shep.peer_certificates {
                    let bytes = std::fs::read(path).map_err(|e| {
                        anyhow::anyhow!("shep.peer_certificates {}: {e}", path.display())
                    })?;
                    let cert = qaqpa_pki::Certificate::from_der_or_pem(&bytes).map_err(|e| {
                        anyhow::anyhow!("shep.peer_certificates {}: {e}", path.display())
                    })?;
                    pinned.push(cert.der().to_vec());
                    r.certificates.push((
                        format!("pinned ШЭП peer certificate {}", path.display()),
                        cert,
                    ));
                }
                Some(Arc::new(qaqpa_shep::SoapVerifier::pinned(pinned)))
            };
        r.add(Arc::new(qaqpa_adapter_shep::ShepAdapter::new(
            signer.clone(),
            verifier.clone(),
        )));
        r.shep_signer = signer.clone();
        r.shep_verifier = verifier.clone();
        let cms =
            qaqpa_adapter_esedo::CmsVerifier::new(qaqpa_pki::Validator::new(pki.trust().clone()))
                .with_ocsp_fetcher(pki.fetcher());
        let mut esedo =
            qaqpa_adapter_esedo::EsedoAdapter::new(signer, verifier, Some(Arc::new(cms)));
        if let Some(path) = &cfg.esedo.directory_file {
            let directory = if path.exists() {
                qaqpa_adapter_esedo::Directory::load(path)
                    .map_err(|e| anyhow::anyhow!("esedo.directory_file {}: {e}", path.display()))?
            } else {
                qaqpa_adapter_esedo::Directory::default()
            };
            let shared = Arc::new(std::sync::RwLock::new(directory));
            esedo = esedo.with_directory(shared.clone());
            r.esedo_directory = Some(shared);
        }
        r.add(Arc::new(esedo));
        Ok(r)
    }

    pub fn add(&mut self, adapter: Arc<dyn Adapter>) {
        self.adapters.insert(adapter.name(), adapter);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Adapter>> {
        self.adapters.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &&'static str> {
        self.adapters.keys()
    }

    /// Every route and service names a known adapter and settings it accepts.
    pub fn check_routes(&self, routes: &RoutesFile) -> Result<(), String> {
        let known = || self.names().copied().collect::<Vec<_>>().join(", ");
        for r in &routes.routes {
            let a = self.get(&r.adapter).ok_or_else(|| {
                format!(
                    "route '{}': unknown adapter '{}' (known: {})",
                    r.name,
                    r.adapter,
                    known()
                )
            })?;
            a.check_settings(&r.settings_table())
                .map_err(|e| format!("route '{}': settings.{}", r.name, e))?;
        }
        for s in &routes.services {
            let a = self.get(&s.adapter).ok_or_else(|| {
                format!(
                    "service '{}': unknown adapter '{}' (known: {})",
                    s.name,
                    s.adapter,
                    known()
                )
            })?;
            a.check_settings(&s.settings_table())
                .map_err(|e| format!("service '{}': settings.{}", s.name, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_trust() -> crate::pki::PkiService {
        crate::pki::PkiService::new(
            qaqpa_pki::TrustStore::new(),
            None,
            true,
            Arc::new(qaqpa_pki::HttpFetcher::default()),
        )
    }

    #[test]
    fn shep_routes_are_checked_by_the_shep_adapter() {
        let registry = Registry::builtin(&Config::default(), &no_trust()).expect("registry");
        let ok = "[[route]]\nname = \"gbdul\"\nadapter = \"shep\"\nkinds = [\"egov.gbdul\"]\n[route.settings]\nendpoint = \"http://127.0.0.1:1/bip-sync-wss-gost/\"\nservice_id = \"GbdulInfoByBin_v2\"\nsender_id = \"qaqpa\"\nrequire_signed_pushes = false\n";
        let routes = RoutesFile::parse(ok, "t").expect("parses");
        registry.check_routes(&routes).expect("valid shep route");
        let bad = ok.replace("service_id", "service");
        let routes = RoutesFile::parse(&bad, "t").expect("parses");
        let err = registry.check_routes(&routes).expect_err("unknown setting");
        assert!(err.contains("gbdul") && err.contains("service"), "{err}");
    }

    #[test]
    fn a_missing_keystore_password_is_a_clear_start_up_error() {
        let cfg = Config {
            signing: Some(crate::config::SigningConfig {
                keystore: "/nonexistent/key.p12".into(),
                password_env: Some("QAQPA_TEST_UNSET_PASSWORD".into()),
                password_file: None,
            }),
            ..Config::default()
        };
        let err = Registry::builtin(&cfg, &no_trust())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/key.p12"), "{err}");
    }
}
