//! `qaqpa sandbox`: the whole gateway on one laptop with no government access. It starts the
//! target emulators, writes the default routes pointed at them, makes API keys, and runs the
//! gateway on the embedded store; then prints what to curl. State lives under `--data-dir`, so a
//! restart keeps messages; keys are made fresh each start and written to `DIR/sandbox.env`.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use clap::Args;
use qaqpa_core::ClientId;
use rand::RngCore;

use crate::auth::{generate_key, Role};
use crate::config::{Config, StoreConfig};

#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Address of the gateway's REST API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the sandbox keeps its store, routes and keys.
    #[arg(long, default_value = "qaqpa-sandbox")]
    pub data_dir: PathBuf,
    /// Address of the HTTP target emulator.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub emulator_listen: SocketAddr,
    /// Address of the ЕСЭДО emulator (a fixed one keeps the sandbox's ЕСЭДО route the same
    /// from one start to the next, so a restart journals no configuration change).
    #[arg(long, default_value = "127.0.0.1:8082")]
    pub esedo_listen: SocketAddr,
    /// Stream audit events to a syslog receiver: udp://HOST:PORT, tcp://HOST:PORT or
    /// tls://HOST:PORT (TLS needs --syslog-ca).
    #[arg(long, value_name = "URL")]
    pub syslog: Option<String>,
    /// CA certificate (PEM) the TLS syslog receiver's certificate must chain to.
    #[arg(long, value_name = "FILE")]
    pub syslog_ca: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, default_value = "text")]
    pub log_format: String,
}

const DEFAULT_ROUTES: &str = include_str!("../routes.toml");
pub const SANDBOX_CLIENT: &str = "sandbox-edms";
/// The sandbox's ЕСЭДО route (letters, our receipts, and pushes at `/push/sandbox-esedo`).
pub const ESEDO_ROUTE: &str = "sandbox-esedo";

pub async fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    crate::cli::init_logging(&args.log_format, "info");
    let dir = &args.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;

    let emulator = qaqpa_adapter_http::emulator::Emulator::start(args.emulator_listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot start the HTTP emulator on {}: {e}",
                args.emulator_listen
            )
        })?;
    let emu_addr = emulator.addr();

    // ЕСЭДО: a fresh test PKI (OCSP, TSA and CRLs on loopback) and the emulator of the state
    // bodies, which answers each letter with a receipt every two seconds.
    let esedo =
        crate::esedo::EsedoRig::start(dir, args.esedo_listen, std::time::Duration::from_secs(2))
            .await?;
    let mut routes = DEFAULT_ROUTES.replace("127.0.0.1:8081", &emu_addr.to_string());
    routes.push_str(&esedo.routes(ESEDO_ROUTE, SANDBOX_CLIENT, None));
    let routes_path = dir.join("routes.toml");
    std::fs::write(&routes_path, routes)?;

    let secret = master_secret(dir)?;
    let mut cfg = Config {
        listen: args.listen,
        routes: routes_path,
        store: StoreConfig::Sqlite {
            data_dir: dir.clone(),
        },
        ..Config::default()
    };
    esedo.configure(&mut cfg, ESEDO_ROUTE);
    if let Some(url) = &args.syslog {
        let mut target: qaqpa_audit::SyslogTarget = toml::from_str(&format!("url = {url:?}"))
            .map_err(|e| anyhow::anyhow!("--syslog {url}: {e}"))?;
        target.ca_file = args.syslog_ca.clone();
        cfg.audit.syslog.push(target);
    }
    cfg.esedo.sync_interval_secs = 3600;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    let local = listener.local_addr()?;
    let state = crate::gateway::build_state(cfg, &secret).await?;

    let client_key = generate_key(SANDBOX_CLIENT, Role::Client, "sandbox");
    let operator_key = generate_key("sandbox-ops", Role::Operator, "sandbox");
    state
        .store
        .create_api_key(client_key.record.clone())
        .await?;
    state
        .store
        .create_api_key(operator_key.record.clone())
        .await?;
    let client_secret = state
        .webhook_signer
        .client_secret(&ClientId(SANDBOX_CLIENT.into()));
    let url = format!("http://{local}");
    esedo.connect(&url, ESEDO_ROUTE);
    let env_path = dir.join("sandbox.env");
    write_private(
        &env_path,
        &format!(
            "QAQPA_URL={url}\nQAQPA_API_KEY={}\nQAQPA_OPERATOR_KEY={}\nQAQPA_WEBHOOK_CLIENT_SECRET={client_secret}\nQAQPA_EMULATOR_URL=http://{emu_addr}\nQAQPA_PKI_DIR={}\nQAQPA_TEST_KEY_PASSWORD={}\nQAQPA_ESEDO_RECIPIENT={}\n",
            client_key.token,
            operator_key.token,
            esedo.pki_dir.display(),
            qaqpa_pki::testpki::TEST_PASSWORD,
            crate::esedo::SANDBOX_RECIPIENT,
        ),
    )?;
    println!(
        "\nQaqpa sandbox is up.\n  gateway   {url}  (OpenAPI: {url}/openapi.json)\n  emulator  http://{emu_addr}  (what it received: http://{emu_addr}/_control/received)\n  keys      {}\n\nTry:\n  . {}\n  curl -s -X POST $QAQPA_URL/v1/messages -H \"Authorization: Bearer $QAQPA_API_KEY\" \\\n       -H 'Content-Type: application/json' \\\n       -d '{{\"kind\":\"http.post\",\"to\":\"sandbox-echo\",\"document\":{{\"title\":\"Hello\"}}}}'\n  curl -s $QAQPA_URL/v1/messages/<id> -H \"Authorization: Bearer $QAQPA_API_KEY\"\n",
        env_path.display(),
        env_path.display()
    );
    println!(
        "ЕСЭДО: emulator at {} (receipts every 2 s), test PKI in {} (OCSP/TSA/CRL at {}).\n  A letter to participant {} needs CMS signatures from the test PKI: see README, \"An ЕСЭДО letter\".\n",
        esedo.emulator.endpoint(),
        esedo.pki_dir.display(),
        esedo.pki.base_url(),
        crate::esedo::SANDBOX_RECIPIENT,
    );
    crate::gateway::run(state, listener, crate::gateway::shutdown_on_signals()).await?;
    emulator.shutdown().await;
    esedo.emulator.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The sandbox's webhook master secret, made once and kept in the data directory (mode 0600).
fn master_secret(dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let path = dir.join("webhook-master.secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        if s.trim().len() >= 32 {
            return Ok(s.trim().as_bytes().to_vec());
        }
    }
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    write_private(&path, &s)?;
    Ok(s.into_bytes())
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
