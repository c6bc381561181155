//! The command line: the gateway (`serve`), the one-command sandbox, configuration checks and the
//! operator's commands on messages, the dead-letter queue and API keys. Operator commands work
//! on the store directly, so they also work while the gateway is down.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use qaqpa_core::{ClientId, MessageStatus};
use qaqpa_store::MessageFilter;

use crate::auth::{generate_key, Role};
use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "qaqpa",
    version,
    about = "Integration gateway for Kazakhstan's government systems"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct ConfigArg {
    /// Gateway configuration file (TOML).
    #[arg(long, short, env = "QAQPA_CONFIG", default_value = "qaqpa.toml")]
    pub config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway.
    Serve(ConfigArg),
    /// Run a self-contained sandbox: gateway on the embedded store, emulators, routes and keys.
    Sandbox(crate::sandbox::SandboxArgs),
    /// Check the configuration and routes without starting.
    CheckConfig(ConfigArg),
    /// Look at messages.
    #[command(subcommand)]
    Messages(MessagesCommand),
    /// The dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// НУЦ РК signatures: inspect, sign and verify CMS, make a test PKI.
    #[command(subcommand)]
    Pki(qaqpa_pki::cli::PkiCommand),
    /// SOAP: canonicalize, sign and verify WS-Security envelopes.
    #[command(subcommand)]
    Soap(qaqpa_soap::cli::SoapCommand),
    /// ЕСЭДО: the participants directory.
    #[command(subcommand)]
    Esedo(EsedoCommand),
    /// The audit journal: read it, check its hash chain.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// The newest N events (oldest first).
    Tail {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(short, default_value_t = 20)]
        n: usize,
    },
    /// Walk the hash chain, the archive files' part too; exit 0 only when no record was
    /// changed or removed (files retention deleted are listed as such).
    Verify(ConfigArg),
}

#[derive(Subcommand, Debug)]
pub enum EsedoCommand {
    /// Fetch the participants directory through ШЭП into `[esedo] directory_file`, with progress.
    SyncParticipants(ConfigArg),
}

#[derive(Subcommand, Debug)]
pub enum MessagesCommand {
    /// List messages (newest last).
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        client: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one message with its attempts and receipts (JSON).
    Show {
        #[command(flatten)]
        config: ConfigArg,
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// Dead-lettered messages.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Queue a dead-lettered (or failed) message again.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key; the token is printed once and never stored.
    Create {
        #[command(flatten)]
        config: ConfigArg,
        /// Client (EDMS) id the key acts for.
        #[arg(long)]
        client: String,
        /// client, operator, admin or auditor.
        #[arg(long, default_value = "client")]
        role: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List keys (ids, clients, roles; never secrets).
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Revoke a key by its id.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        key_id: String,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The pki and soap commands run on their own (they start what they need themselves).
    let cli = match cli.command {
        Command::Pki(cmd) => return qaqpa_pki::cli::run(cmd),
        Command::Soap(cmd) => return qaqpa_soap::cli::run(cmd),
        other => Cli { command: other },
    };
    // Blocking work (SQLite reads, blob files, CMS checks) is short; a small pool keeps a burst
    // of it from starting dozens of threads, each holding its own allocator pages.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(16)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn init_logging(format: &str, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(c) => {
            let cfg = Config::load(&c.config)?;
            init_logging(&cfg.log.format, &cfg.log.filter);
            let secret = crate::gateway::webhook_secret(&cfg)?;
            let listener = tokio::net::TcpListener::bind(cfg.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
            let state = crate::gateway::build_state(cfg, &secret).await?;
            crate::gateway::run(state, listener, crate::gateway::shutdown_on_signals()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sandbox(args) => crate::sandbox::run(args).await,
        Command::CheckConfig(c) => {
            let cfg = Config::load(&c.config)?;
            let pki = crate::pki::PkiService::from_config(&cfg.pki)?;
            let registry = crate::adapters::Registry::builtin(&cfg, &pki)?;
            let routes = crate::gateway::load_routes(&cfg, &registry)?;
            println!(
                "{}: ok ({} routes, {} services; store: {})",
                c.config.display(),
                routes.routes.len(),
                routes.services.len(),
                match &cfg.store {
                    crate::config::StoreConfig::Sqlite { data_dir } =>
                        format!("sqlite in {}", data_dir.display()),
                    crate::config::StoreConfig::Postgres { url_env, .. } =>
                        format!("postgres from ${url_env}"),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Esedo(EsedoCommand::SyncParticipants(c)) => {
            let cfg = Config::load(&c.config)?;
            init_logging(&cfg.log.format, &cfg.log.filter);
            let pki = crate::pki::PkiService::from_config(&cfg.pki)?;
            let registry = crate::adapters::Registry::builtin(&cfg, &pki)?;
            let routes = crate::gateway::load_routes(&cfg, &registry)?;
            // Each page is a request to ШЭП, journalled as an exchange: the journal is opened
            // before the first one goes out.
            let journal = CliJournal::open(&cfg).await?;
            let started = std::time::Instant::now();
            let meter = qaqpa_core::ExchangeMeter::new();
            let synced =
                crate::esedo::sync_directory(&cfg, &registry, &routes, &meter, |done, _| {
                    eprint!("\r{done} participants fetched…");
                })
                .await;
            eprintln!();
            let journalled = journal
                .record_all(crate::esedo::directory_exchanges(
                    &cfg,
                    crate::audit::CLI,
                    &meter,
                ))
                .await;
            let n = match (synced, journalled) {
                (Ok(n), Ok(())) => n,
                (Err(e), Ok(())) => return Err(e),
                (Ok(_), Err(j)) => {
                    return Err(j.context("synced, but its exchanges are not journalled"))
                }
                (Err(e), Err(j)) => {
                    anyhow::bail!("{e:#}; and its exchanges are not journalled: {j:#}")
                }
            };
            println!(
                "{n} participants saved to {} in {:.1} s",
                cfg.esedo
                    .directory_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Messages(m) => messages(m).await,
        Command::Audit(a) => audit_cmd(a).await,
        Command::Dlq(d) => dlq(d).await,
        Command::Keys(k) => keys(k).await,
        Command::Pki(_) | Command::Soap(_) => {
            anyhow::bail!("pki and soap commands run before the runtime starts")
        }
    }
}

async fn store_of(c: &ConfigArg) -> anyhow::Result<std::sync::Arc<dyn qaqpa_store::Store>> {
    let cfg = Config::load(&c.config)?;
    Ok(crate::gateway::open_store(&cfg).await?.0)
}

fn print_summaries(items: &[qaqpa_store::MessageSummary]) {
    println!(
        "{:<36}  {:<12}  {:<16}  {:<20}  {:>8}  created",
        "id", "status", "kind", "to", "attempts"
    );
    for m in items {
        println!(
            "{:<36}  {:<12}  {:<16}  {:<20}  {:>8}  {}",
            m.id,
            m.status.as_str(),
            m.kind,
            m.to,
            m.attempts,
            m.created_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        );
    }
}

async fn messages(cmd: MessagesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        MessagesCommand::List {
            config,
            status,
            kind,
            client,
            limit,
        } => {
            let store = store_of(&config).await?;
            let status = status
                .map(|s| {
                    MessageStatus::parse(&s).ok_or_else(|| anyhow::anyhow!("unknown status '{s}'"))
                })
                .transpose()?;
            let page = store
                .list_messages(&MessageFilter {
                    client: client.map(ClientId),
                    status,
                    kind,
                    limit,
                    ..Default::default()
                })
                .await?;
            print_summaries(&page.items);
            if let Some(n) = page.next {
                println!("(more after {n})");
            }
            Ok(ExitCode::SUCCESS)
        }
        MessagesCommand::Show { config, id } => {
            let cfg = Config::load(&config.config)?;
            let store = crate::gateway::open_store(&cfg).await?.0;
            let id = id
                .parse()
                .map_err(|_| anyhow::anyhow!("'{id}' is not a message id"))?;
            match store.get_message(None, id).await? {
                Some(m) => {
                    // The message (its document too) is an object read, as from the API.
                    journal_read(
                        &cfg,
                        qaqpa_audit::AuditEvent::object_access(
                            crate::audit::CLI,
                            qaqpa_audit::ObjectKind::Message,
                            &m.id.to_string(),
                        )
                        .transaction(m.transaction_id.clone()),
                    )
                    .await?;
                    println!("{}", serde_json::to_string_pretty(&m)?);
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("message {id} not found");
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}

async fn dlq(cmd: DlqCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DlqCommand::List { config, limit } => {
            let store = store_of(&config).await?;
            let page = store
                .list_messages(&MessageFilter {
                    status: Some(MessageStatus::DeadLetter),
                    limit,
                    ..Default::default()
                })
                .await?;
            print_summaries(&page.items);
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Retry { config, id } => {
            let cfg = Config::load(&config.config)?;
            let store = crate::gateway::open_store(&cfg).await?.0;
            let id: qaqpa_core::MessageId = id
                .parse()
                .map_err(|_| anyhow::anyhow!("'{id}' is not a message id"))?;
            let not_retryable = || {
                eprintln!("{id} is not dead-lettered or failed (or does not exist)");
                Ok(ExitCode::from(2))
            };
            let Some(rec) = store.get_message(None, id).await? else {
                return not_retryable();
            };
            if !matches!(
                rec.status,
                MessageStatus::DeadLetter | MessageStatus::Failed
            ) {
                return not_retryable();
            }
            // The record first, then the change, as for a key's creation: a requeue the
            // journal cannot record is not made.
            let id_text = id.to_string();
            CliJournal::open(&cfg)
                .await
                .map_err(|e| anyhow::anyhow!("not queued again: {e}"))?
                .record(
                    qaqpa_audit::AuditEvent::lifecycle(
                        crate::audit::CLI,
                        qaqpa_audit::LifecycleStage::Requeued,
                        &id_text,
                        Some(&rec.route),
                        Some(&format!("was {}", rec.status.as_str())),
                    )
                    .transaction(rec.transaction_id.clone()),
                )
                .await
                .map_err(|e| anyhow::anyhow!("not queued again: {e}"))?;
            if store
                .retry_dead(id, time::OffsetDateTime::now_utc())
                .await?
            {
                println!("{id} queued again");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "{id} was not queued again: its state changed meanwhile (the audit journal \
                     already records the requeue)"
                );
                Ok(ExitCode::from(2))
            }
        }
    }
}

/// The audit journal of a command-line tool, opened before the change it is to record, so
/// that a journal that cannot be opened stops the command before anything changed.
struct CliJournal(qaqpa_audit::Auditor);

impl CliJournal {
    async fn open(cfg: &Config) -> anyhow::Result<Self> {
        crate::audit::start(cfg)
            .await
            .map(Self)
            .map_err(|e| anyhow::anyhow!("cannot open the audit journal: {e}"))
    }

    /// Journals `event`, done by the OS user running the command, and waits until it is
    /// stored (and sent, within 10 s).
    async fn record(self, event: qaqpa_audit::AuditEvent) -> anyhow::Result<()> {
        self.record_all(vec![event]).await
    }

    /// [`CliJournal::record`] for several events.
    async fn record_all(self, events: Vec<qaqpa_audit::AuditEvent>) -> anyhow::Result<()> {
        let by = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        for event in events {
            self.0.record(event.account(format!("os:{by}")));
        }
        let report = self.0.shutdown(std::time::Duration::from_secs(10)).await;
        if !report.stored {
            anyhow::bail!("the audit journal did not store the record in time");
        }
        Ok(())
    }
}

/// Journals a read of the audit journal by `command`, as `GET /v1/admin/audit` journals each
/// of its reads, before anything is read: a journal that cannot record the access shows
/// nothing.
async fn journal_access(cfg: &Config, command: &str) -> anyhow::Result<()> {
    let mut access = qaqpa_audit::AuditEvent::object_access(
        crate::audit::CLI,
        qaqpa_audit::ObjectKind::AuditJournal,
        "audit",
    );
    access.description = format!("audit journal read by `qaqpa {command}`");
    journal_read(cfg, access).await
}

/// Journals a read (`access`) before what was read is shown: nothing is shown when the
/// journal cannot record it.
async fn journal_read(cfg: &Config, access: qaqpa_audit::AuditEvent) -> anyhow::Result<()> {
    let refused = |e: anyhow::Error| anyhow::anyhow!("nothing read: {e}");
    CliJournal::open(cfg)
        .await
        .map_err(refused)?
        .record(access)
        .await
        .map_err(refused)
}

async fn audit_cmd(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Tail { config, n } => {
            let cfg = Config::load(&config.config)?;
            journal_access(&cfg, "audit tail").await?;
            let store = crate::audit::open_store(&cfg).await?;
            let mut records = store
                .tail(n)
                .await
                .map_err(|e| anyhow::anyhow!("audit journal: {e}"))?;
            records.sort_by_key(|r| r.seq);
            for r in records {
                println!(
                    "{:>8}  {}  {:<13}  {:<16}  {}",
                    r.seq,
                    qaqpa_audit::event::rfc3339(r.event.time),
                    r.event.level.as_str(),
                    r.event.kind.name(),
                    printable(&r.event.description)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify(config) => {
            let cfg = Config::load(&config.config)?;
            journal_access(&cfg, "audit verify").await?;
            let store = crate::audit::open_store(&cfg).await?;
            // The archive files are checked where the gateway writes them.
            let archive = qaqpa_audit::store::ArchiveCheck {
                dir: crate::audit::placed_config(&cfg).archive_dir,
                retention: cfg.audit.retention,
                now: time::OffsetDateTime::now_utc(),
            };
            let report = store
                .verify_with(Some(&archive))
                .await
                .map_err(|e| anyhow::anyhow!("audit journal: {e}"))?;
            println!("{report}");
            Ok(if matches!(report, qaqpa_audit::VerifyReport::Ok { .. }) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// `text` with its control characters (C0, DEL and C1) written as `\u{1b}`, so that text
/// from the journal (some of it from target systems) cannot drive the operator's terminal or
/// break a record's line; everything else, Cyrillic and Kazakh letters too, stays as it is.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write as _;
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

async fn keys(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Create {
            config,
            client,
            role,
            label,
        } => {
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!("unknown role '{role}' (client, operator, admin, auditor)")
            })?;
            if client.trim().is_empty() {
                anyhow::bail!("--client must not be empty");
            }
            let cfg = Config::load(&config.config)?;
            let store = crate::gateway::open_store(&cfg).await?.0;
            let key = generate_key(&client, role, &label);
            let key_id = &key.record.key_id;
            // The record first, then the key: the journal is append-only, so a key it missed
            // could never be made good, while a record whose change then fails only says more
            // than happened (and the operator is told). The token is shown only after both.
            let journal = CliJournal::open(&cfg)
                .await
                .map_err(|e| anyhow::anyhow!("no key created: {e}"))?;
            journal
                .record(qaqpa_audit::AuditEvent::account_change(
                    crate::audit::CLI,
                    qaqpa_audit::ChangeOp::Created,
                    key_id,
                    None,
                ))
                .await
                .map_err(|e| anyhow::anyhow!("no key created: {e}"))?;
            store
                .create_api_key(key.record.clone())
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "key {key_id} not created: {e} (the audit journal already records its \
                         creation; its token is not shown, so it cannot be used)"
                    )
                })?;
            println!("key id:  {}", key.record.key_id);
            println!("token:   {}", key.token);
            if let Ok(secret) = crate::gateway::webhook_secret(&cfg) {
                let signer = crate::webhooks::WebhookSigner::new(&secret);
                println!(
                    "webhook secret for client '{client}': {}",
                    signer.client_secret(&ClientId(client.clone()))
                );
            }
            eprintln!("the token is shown once; store it now");
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List { config } => {
            let store = store_of(&config).await?;
            println!(
                "{:<16}  {:<20}  {:<9}  {:<25}  label",
                "key id", "client", "role", "revoked"
            );
            for k in store.list_api_keys().await? {
                println!(
                    "{:<16}  {:<20}  {:<9}  {:<25}  {}",
                    k.key_id,
                    k.client,
                    k.role,
                    k.revoked_at
                        .map(|t| t
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default())
                        .unwrap_or_else(|| "-".into()),
                    k.label
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { config, key_id } => {
            let cfg = Config::load(&config.config)?;
            let store = crate::gateway::open_store(&cfg).await?.0;
            let Some(found) = store.find_api_key(&key_id).await? else {
                eprintln!("no key {key_id}");
                return Ok(ExitCode::from(2));
            };
            if let Some(at) = found.revoked_at {
                // Nothing changes, so nothing is journalled.
                println!(
                    "key {key_id} was revoked already, at {}",
                    qaqpa_audit::event::rfc3339(at)
                );
                return Ok(ExitCode::SUCCESS);
            }
            // The change first, then the record, unlike `keys create`: revoking takes access
            // away, and a key that leaked must be revocable while the journal is down too.
            // A revocation the journal could not take is an error all the same (exit 1).
            store
                .revoke_api_key(&key_id, time::OffsetDateTime::now_utc())
                .await?;
            println!("key {key_id} revoked");
            let journalled = async {
                CliJournal::open(&cfg)
                    .await?
                    .record(qaqpa_audit::AuditEvent::account_change(
                        crate::audit::CLI,
                        qaqpa_audit::ChangeOp::Deleted,
                        &key_id,
                        None,
                    ))
                    .await
            };
            match journalled.await {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("key {key_id} revoked, but the audit journal did not record it: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

#[cfg(test)]
mod printable_tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped_and_other_text_is_kept() {
        assert_eq!(
            printable("a\u{1b}[2Jb\u{7}c\u{0}d\te\nf\rg"),
            "a\\u{1b}[2Jb\\u{7}c\\u{0}d\\u{9}e\\u{a}f\\u{d}g"
        );
        // DEL and the C1 controls (CSI 0x9b would start an escape sequence on its own).
        assert_eq!(
            printable("x\u{7f}y\u{80}\u{9b}31mz\u{9f}"),
            "x\\u{7f}y\\u{80}\\u{9b}31mz\\u{9f}"
        );
        // Just past C1, and the letters of Russian and Kazakh, stay as they are.
        let text = "Письмо № 5 доставлено; құжат қабылданды, Әлия Ғабитқызы ©\u{a0}";
        assert_eq!(printable(text), text);
        assert!(matches!(printable(text), std::borrow::Cow::Borrowed(_)));
    }
}
