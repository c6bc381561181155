//! The gateway's ЕСЭДО pieces that are not one delivery: the participants directory (synced
//! through ШЭП on command and on a schedule, searched at `GET /v1/esedo/participants`), and the
//! sandbox rig — a test PKI with its loopback OCSP/TSA/CRL services plus the ЕСЭДО emulator,
//! wired to the gateway exactly as production is wired to ШЭП (signed envelopes both ways,
//! pushes to `/push/{route}`).
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::Json;
use qaqpa_adapter_esedo::emulator::{EsedoEmulator, ReceiptStep};
use qaqpa_adapter_esedo::{EsedoSettings, Participant};
use qaqpa_pki::testpki::{KeyKind, TEST_PASSWORD};
use qaqpa_pki::testpki_server::TestPkiServer;
use qaqpa_pki::{Bin, Iin, Keystore, Role as PkiRole};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};

use crate::adapters::Registry;
use crate::auth::{Caller, Role};
use crate::config::{Config, SigningConfig};
use crate::problem::Problem;
use crate::routes::RoutesFile;
use crate::state::AppState;

/// Fetches the whole directory through the route named by `[esedo] directory_route`, saves it to
/// `[esedo] directory_file` and swaps it in. Returns how many participants it holds. Each
/// page's ШЭП exchange is itemised on `meter`, whatever the outcome: the caller journals them
/// ([`directory_exchanges`]).
pub async fn sync_directory(
    cfg: &Config,
    registry: &Registry,
    routes: &RoutesFile,
    meter: &qaqpa_core::ExchangeMeter,
    progress: impl FnMut(usize, Option<usize>),
) -> anyhow::Result<usize> {
    let (Some(shared), Some(path)) = (&registry.esedo_directory, &cfg.esedo.directory_file) else {
        anyhow::bail!("set [esedo] directory_file to keep a participants directory");
    };
    let route_name =
        cfg.esedo.directory_route.as_deref().ok_or_else(|| {
            anyhow::anyhow!("set [esedo] directory_route to the ЕСЭДО route's name")
        })?;
    let route = routes
        .by_name(route_name)
        .filter(|r| r.adapter == "esedo")
        .ok_or_else(|| anyhow::anyhow!("esedo.directory_route: no esedo route '{route_name}'"))?;
    let settings = EsedoSettings::from_table(&route.settings_table())
        .map_err(|e| anyhow::anyhow!("route '{route_name}': settings.{e}"))?;
    let client = qaqpa_shep::SyncClientPool::new(
        registry.shep_signer.clone(),
        registry.shep_verifier.clone(),
        1,
    )
    .get(&settings.endpoint, settings.timeout())
    .map_err(|e| anyhow::anyhow!("ШЭП client: {e}"))?;
    let directory =
        qaqpa_adapter_esedo::directory::sync_participants(&client, &settings, meter, progress)
            .await
            .map_err(|e| anyhow::anyhow!("directory sync failed: {e}"))?;
    directory
        .save(path)
        .map_err(|e| anyhow::anyhow!("cannot save {}: {e}", path.display()))?;
    let n = directory.participants.len();
    *shared.write().unwrap_or_else(|p| p.into_inner()) = directory;
    Ok(n)
}

/// The EXCHANGE events of one directory sync (`source` made it): each page's request to ШЭП,
/// to the `[esedo] directory_route`, under one transaction.
pub fn directory_exchanges(
    cfg: &Config,
    source: &str,
    meter: &qaqpa_core::ExchangeMeter,
) -> Vec<qaqpa_audit::AuditEvent> {
    let route = cfg.esedo.directory_route.as_deref().unwrap_or("");
    let transaction = qaqpa_core::MessageId::new().to_string();
    crate::audit::itemised_exchanges(source, route, None, &transaction, meter.take_exchanges())
}

/// Syncs the directory every `[esedo] sync_interval_secs` until `shutdown`, journalling each
/// page's exchange.
pub async fn run_directory_sync(state: AppState, shutdown: CancellationToken) {
    let every = state.cfg.esedo.sync_interval_secs;
    if every == 0 || state.adapters.esedo_directory.is_none() {
        return;
    }
    loop {
        let meter = qaqpa_core::ExchangeMeter::new();
        let synced = sync_directory(
            &state.cfg,
            &state.adapters,
            &state.routes,
            &meter,
            |_, _| {},
        )
        .await;
        for event in directory_exchanges(&state.cfg, crate::audit::GATEWAY, &meter) {
            state.audit.record(event);
        }
        match synced {
            Ok(n) => tracing::info!(participants = n, "ЕСЭДО participants directory synced"),
            Err(e) => {
                tracing::warn!(error = %e, "ЕСЭДО participants directory sync failed; keeping the last copy")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(every)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ParticipantQuery {
    /// Part of a name (Russian or Kazakh, any case), an exact id or BIN.
    pub q: Option<String>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<usize>,
}

/// One page of the directory.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Participant>,
    /// How many matched in all.
    pub total: usize,
    /// When the directory was last synced (RFC 3339).
    pub synced_at: Option<String>,
}

/// Search the ЕСЭДО participants directory.
#[utoipa::path(get, operation_id = "esedo_participants", path = "/v1/esedo/participants", tag = "esedo",
    params(ParticipantQuery),
    responses((status = 200, body = ParticipantPage), (status = 404, description = "No directory is kept", body = Problem)),
    security(("api_key" = [])))]
pub async fn participants(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ParticipantQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ParticipantPage>, Problem> {
    caller.require(
        &[Role::Client, Role::Operator, Role::Admin, Role::Auditor],
        "search the participants directory",
    )?;
    let Query(q) = query.map_err(crate::api::messages::query_problem)?;
    let shared = state.adapters.esedo_directory.as_ref().ok_or_else(|| {
        Problem::not_found("ЕСЭДО participants directory (set [esedo] directory_file)")
    })?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let dir = shared.read().unwrap_or_else(|p| p.into_inner());
    let found: Vec<&Participant> = match q.q.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => dir.search(text),
        _ => dir.participants.iter().collect(),
    };
    Ok(Json(ParticipantPage {
        total: found.len(),
        items: found.into_iter().take(limit).cloned().collect(),
        synced_at: dir.synced_at.clone(),
    }))
}

/// Our participant id and BIN in the sandbox (the test PKI's organisation keystores carry it).
pub const SANDBOX_PARTICIPANT: i64 = 1001;
pub const SANDBOX_BIN: &str = "123456789021";
/// The state body the sandbox's incoming letters come from, and the one letters go to.
pub const SANDBOX_SENDER: i64 = 9001;
pub const SANDBOX_RECIPIENT: i64 = 2002;

/// The test PKI and the ЕСЭДО emulator, as the sandbox and the end-to-end tests run them.
pub struct EsedoRig {
    pub pki: TestPkiServer,
    pub emulator: EsedoEmulator,
    pub pki_dir: PathBuf,
    /// The keystore the gateway signs its envelopes with, and its password file.
    pub signing: SigningConfig,
    /// The emulator's certificate, pinned by the gateway.
    pub emulator_cert: PathBuf,
    pub directory_file: PathBuf,
}

impl EsedoRig {
    /// Generates a test PKI under `dir/pki` (served on loopback), and starts the ЕСЭДО emulator
    /// on `listen` (port 0: a free one); it plays the default receipt sequence `step` apart.
    pub async fn start(
        dir: &Path,
        listen: std::net::SocketAddr,
        step: Duration,
    ) -> anyhow::Result<EsedoRig> {
        let pki_dir = dir.join("pki");
        let pki = TestPkiServer::start(&pki_dir, "127.0.0.1:0")
            .await
            .map_err(|e| anyhow::anyhow!("test PKI: {e}"))?;
        let ours_path = pki_dir.join("rsa_head_valid.p12");
        let ours = Keystore::from_pkcs12(&std::fs::read(&ours_path)?, TEST_PASSWORD)
            .map_err(|e| anyhow::anyhow!("test keystore: {e}"))?;
        let password_file = dir.join("signing.password");
        crate::sandbox::write_private(&password_file, TEST_PASSWORD)?;
        let theirs = {
            let pki = pki.pki();
            let pki = pki
                .lock()
                .map_err(|_| anyhow::anyhow!("test PKI poisoned"))?;
            pki.issue_organisation(
                KeyKind::Rsa,
                &Iin::new("750101300456").map_err(|e| anyhow::anyhow!("{e}"))?,
                &Bin::new("987654321098").map_err(|e| anyhow::anyhow!("{e}"))?,
                "ЕСЭДО (эмулятор)",
                "ЕСЭДО ЭМУЛЯТОР",
                PkiRole::Organisation,
            )
            .map_err(|e| anyhow::anyhow!("emulator certificate: {e}"))?
        };
        let emulator_cert = pki_dir.join("esedo_emulator.cer");
        std::fs::write(&emulator_cert, theirs.certificate().der())?;
        let signer = |ks: &Keystore| -> anyhow::Result<Arc<qaqpa_shep::SoapSigner>> {
            let p12 = ks
                .to_pkcs12(TEST_PASSWORD)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let xml = qaqpa_soap::signer_from_pkcs12(&p12, TEST_PASSWORD)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Arc::new(qaqpa_shep::SoapSigner::new(
                Arc::from(xml),
                qaqpa_soap::WsSecurityOptions::default(),
            )))
        };
        let emulator = EsedoEmulator::builder()
            .verify_with(Arc::new(qaqpa_shep::SoapVerifier::pinned(vec![ours
                .certificate()
                .der()
                .to_vec()])))
            .sign_with(signer(&theirs)?)
            .participants(sandbox_participants())
            .sequence(ReceiptStep::default_sequence())
            .step_delay(step)
            .incoming_parties(SANDBOX_SENDER, SANDBOX_PARTICIPANT)
            .listen(listen)
            .start()
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the ЕСЭДО emulator on {listen}: {e}"))?;
        Ok(EsedoRig {
            pki,
            emulator,
            signing: SigningConfig {
                keystore: ours_path,
                password_env: None,
                password_file: Some(password_file),
            },
            emulator_cert,
            directory_file: dir.join("esedo-participants.json"),
            pki_dir,
        })
    }

    /// Points the gateway's config at the rig: signing key, trust, pinned emulator, directory.
    pub fn configure(&self, cfg: &mut Config, route: &str) {
        cfg.signing = Some(self.signing.clone());
        cfg.pki.trust_dir = Some(self.pki_dir.clone());
        cfg.shep.peer_certificates = vec![self.emulator_cert.clone()];
        cfg.esedo.directory_file = Some(self.directory_file.clone());
        cfg.esedo.directory_route = Some(route.to_string());
    }

    /// The route for letters and our receipts, pushes going to `client`'s inbox.
    pub fn routes(&self, route: &str, client: &str, callback_url: Option<&str>) -> String {
        let callback = callback_url
            .map(|u| format!("callback_url = \"{u}\"\n"))
            .unwrap_or_default();
        format!(
            r#"
[[route]]
name = "{route}"
adapter = "esedo"
kinds = ["esedo.letter", "esedo.receipt"]
timeout_ms = 60000
max_attempts = 10
backoff_base_ms = 100
backoff_cap_ms = 2000

[route.settings]
endpoint = "{endpoint}"
sender_id = "qaqpa-sandbox"
participant_id = {SANDBOX_PARTICIPANT}
sender_bin = "{SANDBOX_BIN}"

[route.push]
client = "{client}"
{callback}"#,
            endpoint = self.emulator.endpoint(),
        )
    }

    /// Tells the emulator where the gateway takes pushes for `route`.
    pub fn connect(&self, gateway_url: &str, route: &str) {
        self.emulator
            .set_push_url(format!("{gateway_url}/push/{route}"));
    }
}

fn sandbox_participants() -> Vec<Participant> {
    let p = |id: i64, bin: &str, ru: &str, kz: &str| Participant {
        id,
        bin: Some(bin.to_string()),
        name_ru: ru.to_string(),
        name_kz: kz.to_string(),
        abbr_ru: String::new(),
        abbr_kz: String::new(),
        code: bin.to_string(),
        parent: 0,
        active: true,
    };
    vec![
        p(
            SANDBOX_PARTICIPANT,
            SANDBOX_BIN,
            "АО \"Тест\" (песочница Qaqpa)",
            "\"Тест\" АҚ (Qaqpa құмсалғышы)",
        ),
        p(
            SANDBOX_RECIPIENT,
            "000240001234",
            "Министерство цифрового развития (эмулятор)",
            "Цифрлық даму министрлігі (эмулятор)",
        ),
        p(
            SANDBOX_SENDER,
            "000340005678",
            "Акимат города Астаны (эмулятор)",
            "Астана қаласының әкімдігі (эмулятор)",
        ),
    ]
}
