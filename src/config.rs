//! The gateway's own configuration (`qaqpa serve --config FILE`): where it listens, which store,
//! the API limits, the engine's pace, webhooks and logging. Unknown keys are refused with their
//! line. Secrets are never written here: they come from environment variables named here.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the REST API.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Path of routes.toml (relative to this file's directory).
    #[serde(default = "default_routes")]
    pub routes: PathBuf,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub webhooks: WebhookConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// The gateway's own signing key for ШЭП WS-Security (an NCA .p12 keystore).
    #[serde(default)]
    pub signing: Option<SigningConfig>,
    /// Trust anchors and revocation checking for signatures the gateway verifies.
    #[serde(default)]
    pub pki: PkiConfig,
    #[serde(default)]
    pub shep: ShepConfig,
    #[serde(default)]
    pub esedo: EsedoConfig,
    /// The audit journal and the SIEM's syslog receivers.
    #[serde(default)]
    pub audit: qaqpa_audit::AuditConfig,
}

/// How the gateway judges certificates (CMS from the EDMS, signatures from targets).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PkiConfig {
    /// Directory of trusted root (and intermediate) certificates, DER or PEM: NCA's production
    /// and test roots, RSA and GOST. Relative to the config file. Without it nothing is trusted.
    pub trust_dir: Option<PathBuf>,
    /// Ask this OCSP responder instead of the one each certificate names.
    pub ocsp_url: Option<String>,
    /// Use only revocation data embedded in what is verified; never fetch.
    pub offline: bool,
}

/// Where the signing keystore is and which environment variable holds its password.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// PKCS#12 keystore (NCA format or OpenSSL 3 default), GOST or RSA.
    pub keystore: PathBuf,
    /// Environment variable holding the keystore password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Or a file holding it (a mounted secret; relative to the config file). One of the two.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

impl SigningConfig {
    /// The keystore password from the environment variable or file named; never logged.
    pub fn password(&self) -> anyhow::Result<String> {
        match (&self.password_env, &self.password_file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|_| anyhow::anyhow!("${var} (the keystore password) is not set")),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read the keystore password from {}: {e}",
                        file.display()
                    )
                }),
            _ => Err(anyhow::anyhow!(
                "[signing] needs exactly one of password_env and password_file"
            )),
        }
    }
}

/// ШЭП peers (ШЭП itself, ЕСЭДО) whose WS-Security signatures we accept on their answers and
/// pushes: their certificates, pinned.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShepConfig {
    /// Certificate files (DER or PEM; relative to the config file).
    pub peer_certificates: Vec<PathBuf>,
}

/// ЕСЭДО settings that are the gateway's rather than one route's.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EsedoConfig {
    /// Where the participants directory is kept (JSON; relative to the config file). Without
    /// it recipients are not checked against the directory.
    pub directory_file: Option<PathBuf>,
    /// The route whose settings reach ЕСЭДО for the directory (`qaqpa esedo sync-participants`
    /// and the scheduled sync).
    pub directory_route: Option<String>,
    /// Sync the directory this often (seconds); 0 = only on command.
    pub sync_interval_secs: u64,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_routes() -> PathBuf {
    PathBuf::from("routes.toml")
}

/// Which store keeps the outbox.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// Embedded SQLite (WAL) and file blobs under `data_dir`.
    Sqlite {
        #[serde(default = "default_data_dir")]
        data_dir: PathBuf,
    },
    /// PostgreSQL shared by several replicas; the URL comes from the environment variable
    /// named by `url_env` (it holds a password).
    Postgres {
        #[serde(default = "default_pg_env")]
        url_env: String,
        #[serde(default = "default_pool")]
        pool_size: usize,
    },
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("qaqpa-data")
}
fn default_pg_env() -> String {
    "QAQPA_DATABASE_URL".into()
}
fn default_pool() -> usize {
    16
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Sqlite {
            data_dir: default_data_dir(),
        }
    }
}

/// Limits on what clients may send.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Largest JSON request body.
    pub max_json_bytes: usize,
    /// Largest multipart request (all files together).
    pub max_multipart_bytes: u64,
    /// Largest single attachment.
    pub max_attachment_bytes: u64,
    /// Most attachments in one message.
    pub max_attachments: usize,
    /// Deepest JSON nesting accepted.
    pub max_json_depth: usize,
    /// Requests per second per API key (token bucket), and the burst above it.
    pub rate_per_key: f64,
    pub rate_burst: u32,
    /// Serve `/metrics` without authentication (for a Prometheus on a trusted network).
    pub metrics_public: bool,
    /// How long a verified API key is trusted before the store is asked again (revocation delay).
    pub key_cache_secs: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_json_bytes: 32 * 1024 * 1024,
            max_multipart_bytes: 1024 * 1024 * 1024,
            max_attachment_bytes: 512 * 1024 * 1024,
            max_attachments: 100,
            max_json_depth: 32,
            rate_per_key: 20_000.0,
            rate_burst: 40_000,
            metrics_public: false,
            key_cache_secs: 10,
        }
    }
}

/// The delivery engine's pace.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Name of this process in leases and attempt records (default: host name + pid).
    pub worker_id: Option<String>,
    /// Messages claimed per round.
    pub claim_batch: u32,
    /// Lease on a claimed message; must exceed every route's timeout.
    pub lease_secs: u64,
    /// How often to look for due messages when nothing wakes the engine.
    pub poll_ms: u64,
    /// Attempts running at once in this process, over all targets.
    pub max_in_flight: usize,
    /// On shutdown, how long in-flight attempts may finish before they are released.
    pub shutdown_grace_secs: u64,
    /// Run the delivery engine (and webhook dispatcher) in this process. With PostgreSQL,
    /// replicas that only accept (`false`) and replicas that deliver can be scaled apart.
    pub deliver: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            worker_id: None,
            claim_batch: 512,
            lease_secs: 120,
            poll_ms: 200,
            max_in_flight: 1024,
            shutdown_grace_secs: 20,
            deliver: true,
        }
    }
}

/// Webhooks to the EDMS's `callback_url`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Environment variable holding the master secret; each client's signing secret is derived
    /// from it (`qaqpa keys create` prints the client's).
    pub secret_env: String,
    pub timeout_ms: u64,
    pub max_attempts: u32,
    pub poll_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            secret_env: "QAQPA_WEBHOOK_SECRET".into(),
            timeout_ms: 10_000,
            max_attempts: 15,
            poll_ms: 250,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// tracing filter, e.g. `info,qaqpa=debug` (RUST_LOG overrides).
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            routes: default_routes(),
            store: StoreConfig::default(),
            api: ApiConfig::default(),
            engine: EngineConfig::default(),
            webhooks: WebhookConfig::default(),
            log: LogConfig::default(),
            signing: None,
            pki: PkiConfig::default(),
            shep: ShepConfig::default(),
            esedo: EsedoConfig::default(),
            audit: qaqpa_audit::AuditConfig::default(),
        }
    }
}

impl Config {
    /// Reads a config file; relative paths in it are taken from the file's directory.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut cfg: Config = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if cfg.routes.is_relative() {
            cfg.routes = base.join(&cfg.routes);
        }
        if let Some(signing) = &mut cfg.signing {
            if signing.keystore.is_relative() {
                signing.keystore = base.join(&signing.keystore);
            }
        }
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(signing) = &mut cfg.signing {
            if let Some(f) = &mut signing.password_file {
                rebase(f);
            }
        }
        if let Some(dir) = &mut cfg.pki.trust_dir {
            rebase(dir);
        }
        for c in &mut cfg.shep.peer_certificates {
            rebase(c);
        }
        if let Some(f) = &mut cfg.esedo.directory_file {
            rebase(f);
        }
        for target in &mut cfg.audit.syslog {
            if let Some(ca) = &mut target.ca_file {
                rebase(ca);
            }
        }
        if let StoreConfig::Sqlite { data_dir } = &mut cfg.store {
            if data_dir.is_relative() {
                *data_dir = base.join(&*data_dir);
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_config_key_names_its_line() {
        let err = toml::from_str::<Config>("listen = \"127.0.0.1:1\"\n[api]\nmax_body = 1\n")
            .expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("line 3") && msg.contains("max_body"), "{msg}");
    }

    #[test]
    fn postgres_store_takes_its_url_from_the_environment() {
        let cfg: Config = toml::from_str("[store]\nkind = \"postgres\"\n").expect("parses");
        match cfg.store {
            StoreConfig::Postgres { url_env, .. } => assert_eq!(url_env, "QAQPA_DATABASE_URL"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
