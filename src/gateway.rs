//! Putting a gateway process together: open the store, load and check the routes, build the
//! shared state, and run the API server, the delivery engine, the webhook dispatcher and the
//! metrics gauges until a shutdown signal; then stop them in order.
use std::sync::Arc;
use std::time::Duration;

use qaqpa_store::{BlobStore, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::adapters::Registry;
use crate::auth::KeyVerifier;
use crate::config::{Config, StoreConfig};
use crate::metrics::Metrics;
use crate::routes::RoutesFile;
use crate::state::{AppState, KeyRates};
use crate::webhooks::WebhookSigner;

/// The store and blob store a config names.
pub async fn open_store(cfg: &Config) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn BlobStore>)> {
    match &cfg.store {
        StoreConfig::Sqlite { data_dir } => {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                anyhow::anyhow!("cannot create data directory {}: {e}", data_dir.display())
            })?;
            let store =
                qaqpa_store::SqliteStore::open(data_dir, qaqpa_store::SqliteOptions::default())
                    .map_err(|e| {
                        anyhow::anyhow!("opening the SQLite store in {}: {e}", data_dir.display())
                    })?;
            let blobs = qaqpa_store::FsBlobStore::open(data_dir)
                .map_err(|e| anyhow::anyhow!("opening the blob store: {e}"))?;
            Ok((Arc::new(store), Arc::new(blobs)))
        }
        StoreConfig::Postgres { url_env, pool_size } => {
            let url = std::env::var(url_env).map_err(|_| {
                anyhow::anyhow!("the store is PostgreSQL but ${url_env} is not set (it holds the connection URL)")
            })?;
            let opts = qaqpa_store::PgOptions {
                max_connections: *pool_size,
                ..Default::default()
            };
            let store = qaqpa_store::PgStore::connect(&url, opts)
                .await
                .map_err(|e| anyhow::anyhow!("connecting to PostgreSQL: {e}"))?;
            let blobs = store.blob_store();
            Ok((Arc::new(store), Arc::new(blobs)))
        }
    }
}

/// Loads routes.toml and checks every route against its adapter.
pub fn load_routes(cfg: &Config, registry: &Registry) -> anyhow::Result<RoutesFile> {
    Ok(load_routes_text(cfg, registry)?.0)
}

/// [`load_routes`], with the text the routes were parsed from (read once, so the
/// configuration journal fingerprints what is in force, not a file changed since).
fn load_routes_text(cfg: &Config, registry: &Registry) -> anyhow::Result<(RoutesFile, String)> {
    let (routes, text) = RoutesFile::load_with_text(&cfg.routes)?;
    registry
        .check_routes(&routes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cfg.routes.display()))?;
    Ok((routes, text))
}

/// The webhook master secret from the environment variable the config names.
pub fn webhook_secret(cfg: &Config) -> anyhow::Result<Vec<u8>> {
    let name = &cfg.webhooks.secret_env;
    let value = std::env::var(name).map_err(|_| {
        anyhow::anyhow!("${name} is not set: it holds the webhook signing master secret (at least 32 characters)")
    })?;
    if value.len() < 32 {
        anyhow::bail!("${name} is shorter than 32 characters");
    }
    Ok(value.into_bytes())
}

/// Builds the shared state of a gateway.
pub async fn build_state(cfg: Config, secret: &[u8]) -> anyhow::Result<AppState> {
    // Every OCSP question and CRL download of a signature check is journalled, once the
    // journal is open: the configuration is checked first.
    let fetcher = Arc::new(crate::pki_exchanges::JournallingFetcher::new(Arc::new(
        qaqpa_pki::HttpFetcher::default(),
    )));
    let pki = Arc::new(crate::pki::PkiService::from_config_with(
        &cfg.pki,
        fetcher.clone(),
    )?);
    let registry = Registry::builtin(&cfg, &pki)?;
    let (routes, routes_text) = load_routes_text(&cfg, &registry)?;
    let (store, blobs) = open_store(&cfg).await?;
    let audit = crate::audit::start(&cfg).await?;
    fetcher.attach(audit.clone());
    crate::config_journal::journal_start(
        &audit,
        crate::audit::GATEWAY,
        &cfg.routes,
        &routes_text,
        (routes.routes.len(), routes.services.len()),
        &crate::config_journal::digest_key(secret),
        &crate::config_journal::fingerprint_path(
            &crate::audit::local_dir(&cfg),
            cfg.engine.worker_id.as_deref(),
        ),
    )
    .await;
    let certificates: Arc<[_]> = relied_on_certificates(&cfg, &pki, &registry).into();
    check_certificate_expiry(&certificates, &audit);
    Ok(AppState {
        keys: Arc::new(KeyVerifier::new(
            store.clone(),
            Duration::from_secs(cfg.api.key_cache_secs),
        )),
        rate: Arc::new(KeyRates::new(cfg.api.rate_per_key, cfg.api.rate_burst)),
        cfg: Arc::new(cfg),
        store,
        blobs,
        routes: Arc::new(routes),
        adapters: Arc::new(registry),
        metrics: Arc::new(Metrics::new()),
        engine_wake: Arc::new(tokio::sync::Notify::new()),
        webhook_wake: Arc::new(tokio::sync::Notify::new()),
        webhook_signer: Arc::new(WebhookSigner::new(secret)),
        pki,
        audit,
        certificates,
    })
}

/// Every certificate the gateway relies on, with what it is for, as loaded at start-up: its
/// signing certificate and the pinned ШЭП peer certificates (as the adapters loaded them), the
/// CAs its syslog receivers' certificates must chain to (read when the sinks were made, moments
/// before), and the trust anchors and intermediates of `pki.trust_dir`. The daily check judges
/// these, not files replaced on disk since, which take effect only with a restart.
fn relied_on_certificates(
    cfg: &Config,
    pki: &crate::pki::PkiService,
    adapters: &Registry,
) -> Vec<(String, qaqpa_pki::Certificate)> {
    let mut out = adapters.certificates.clone();
    for target in &cfg.audit.syslog {
        let Some(ca_file) = &target.ca_file else {
            continue;
        };
        match std::fs::read(ca_file)
            .map_err(anyhow::Error::from)
            .and_then(|b| {
                Ok(qaqpa_pki::Certificate::all_from_pem(
                    &String::from_utf8_lossy(&b),
                )?)
            }) {
            Ok(certs) => out.extend(certs.into_iter().map(|c| {
                (
                    format!(
                        "CA of the syslog receiver {} ({})",
                        target.url,
                        ca_file.display()
                    ),
                    c,
                )
            })),
            Err(e) => tracing::warn!(path = %ca_file.display(), error = %e,
                "cannot read the syslog receiver's CA file to check its certificates' expiry"),
        }
    }
    let trust = pki.trust();
    for (what, certs) in [
        ("trust anchor", trust.anchors()),
        ("intermediate CA", trust.intermediates()),
    ] {
        out.extend(
            certs
                .iter()
                .map(|c| (format!("{what} of pki.trust_dir"), c.clone())),
        );
    }
    out
}

/// Journals a warning for each certificate the gateway relies on that expires within 30 days
/// or has expired (an error with 7 days or fewer left), saying what the certificate is for.
pub fn check_certificate_expiry(
    certificates: &[(String, qaqpa_pki::Certificate)],
    audit: &qaqpa_audit::Auditor,
) {
    let now = time::OffsetDateTime::now_utc();
    for (purpose, cert) in certificates {
        let not_after = time::OffsetDateTime::from_unix_timestamp(cert.not_after().0)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        if let Some(mut e) = qaqpa_audit::expiry_warning(
            &cert.subject().to_string(),
            &cert.serial_hex(),
            not_after,
            now,
        ) {
            // The log names the certificate by serial only: a subject may hold an IIN.
            tracing::warn!(%purpose, serial = %cert.serial_hex(), not_after = %not_after,
                "a certificate the gateway relies on expires within 30 days or has expired");
            e.description = format!("{purpose}: {}", e.description);
            audit.record(e);
        }
    }
}

/// How often the journal maintenance runs after its first run.
const AUDIT_MAINTENANCE_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// Archives journal records past the online window (and deletes archives past the retention)
/// once right after start, then once a day, and checks the expiry of the certificates loaded at
/// start again each day (start-up checked them already). It runs as a task of its own, so start-up and
/// readiness never wait for it; the first run is not delayed, so a gateway restarted more
/// often than daily still archives.
async fn run_audit_maintenance(state: AppState, shutdown: CancellationToken) {
    if shutdown.is_cancelled() {
        return;
    }
    loop {
        match state.audit.archive(time::OffsetDateTime::now_utc()).await {
            Ok(r) if r.archived > 0 || !r.deleted_files.is_empty() => {
                tracing::info!(archived = r.archived, file = ?r.file,
                    deleted = r.deleted_files.len(), "audit journal archived")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "audit journal archiving failed; will retry in a day")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(AUDIT_MAINTENANCE_PERIOD) => {}
            _ = shutdown.cancelled() => return,
        }
        check_certificate_expiry(&state.certificates, &state.audit);
    }
}

/// This process's name in leases: the configured one, or host name and pid.
pub fn worker_id(cfg: &Config) -> String {
    cfg.engine
        .worker_id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()))
}

/// This machine's name (`/etc/hostname`), or `qaqpa` when it has none.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "qaqpa".into())
}

/// Runs everything until `shutdown` fires.
pub async fn run(
    state: AppState,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let worker = worker_id(&state.cfg);
    let marker = crate::audit::RunMarker::take(&state.cfg, &state.audit).await;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, worker = %worker, "qaqpa gateway listening");
    let engine_stop = CancellationToken::new();
    let mut tasks = Vec::new();
    if state.cfg.engine.deliver {
        let engine = crate::engine::Engine::new(state.clone(), worker.clone());
        tasks.push(tokio::spawn(engine.run(engine_stop.clone())));
        tasks.push(tokio::spawn(crate::webhooks::run_dispatcher(
            state.clone(),
            worker.clone(),
            engine_stop.clone(),
        )));
    } else {
        tracing::info!(
            "delivery is off in this process ([engine] deliver = false): accepting only"
        );
    }
    tasks.push(tokio::spawn(crate::engine::run_gauges(
        state.clone(),
        engine_stop.clone(),
    )));
    tasks.push(tokio::spawn(run_audit_maintenance(
        state.clone(),
        engine_stop.clone(),
    )));
    tasks.push(tokio::spawn(crate::esedo::run_directory_sync(
        state.clone(),
        engine_stop.clone(),
    )));
    let grace = Duration::from_secs(state.cfg.engine.shutdown_grace_secs);
    let audit = state.audit.clone();
    let app = crate::api::router(state);
    crate::api::serve(listener, app, shutdown.clone(), grace).await?;
    // The API no longer accepts; now stop claiming and let attempts in flight finish.
    engine_stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    let flushed = audit.shutdown(Duration::from_secs(5)).await;
    if flushed.stored {
        marker.remove().await;
    }
    if !flushed.stored || !flushed.sent {
        tracing::warn!(
            ?flushed,
            "audit events still pending at shutdown (the syslog spool keeps them)"
        );
    }
    tracing::info!("qaqpa gateway stopped");
    Ok(())
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}
