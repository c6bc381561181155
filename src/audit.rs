//! The gateway's side of the audit journal (crate `qaqpa-audit`): it opens the journal beside
//! the message store (`audit.db` in the SQLite data directory, or the same PostgreSQL), starts
//! the syslog sinks of `[audit]`, and names the services events come from. Handlers, the engine,
//! the push endpoint and the webhook dispatcher record through [`AppState::audit`]; nothing here
//! ever receives a secret, a document's content or personal data from a look-up.
//!
//! What is journalled: authentication (a key's first verification and every failure), refused
//! requests, reads of messages, attachments, inbox items and the journal itself, every exchange
//! with a target (and every push from one), each step of a message's life, API key changes,
//! configuration loaded and changed since the last start ([`crate::config_journal`]), signature
//! verifications, certificates the gateway relies on that expire within 30 days,
//! and a previous run that ended without a clean stop ([`RunMarker`]). An event a request
//! causes names its caller's key id and the request's client IP ([`crate::auth::CausedBy`]);
//! an accepted message's event also gives the operation, from the message's creation to its
//! durable commit.
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use qaqpa_audit::{AuditEvent, AuditFilter, AuditStore, Auditor, ObjectKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, CausedBy, Role};
use crate::config::{Config, StoreConfig};
use crate::problem::Problem;
use crate::state::AppState;

/// Event sources (the tender's "source" field).
pub const API: &str = "qaqpa-api";
pub const ENGINE: &str = "qaqpa-engine";
pub const PUSH: &str = "qaqpa-push";
pub const WEBHOOKS: &str = "qaqpa-webhooks";
pub const CLI: &str = "qaqpa-cli";
pub const GATEWAY: &str = "qaqpa-gateway";

/// Opens the journal store for `cfg`'s message store.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn AuditStore>> {
    Ok(match &cfg.store {
        StoreConfig::Sqlite { data_dir } => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", data_dir.display()))?;
            Arc::new(
                qaqpa_audit::SqliteAuditStore::open(data_dir)
                    .map_err(|e| anyhow::anyhow!("audit journal in {}: {e}", data_dir.display()))?,
            )
        }
        StoreConfig::Postgres { url_env, .. } => {
            let url = std::env::var(url_env)
                .map_err(|_| anyhow::anyhow!("${url_env} (the PostgreSQL URL) is not set"))?;
            Arc::new(
                qaqpa_audit::PgAuditStore::connect(&url, 4)
                    .await
                    .map_err(|e| anyhow::anyhow!("audit journal in PostgreSQL: {e}"))?,
            )
        }
    })
}

/// Where the journal's local files live: the SQLite data directory, or the working
/// directory with PostgreSQL.
pub(crate) fn local_dir(cfg: &Config) -> PathBuf {
    match &cfg.store {
        StoreConfig::Sqlite { data_dir } => data_dir.clone(),
        StoreConfig::Postgres { .. } => PathBuf::from("."),
    }
}

/// The `[audit]` settings with relative spool and archive directories placed where they live:
/// under the SQLite data directory (or the working directory).
pub fn placed_config(cfg: &Config) -> qaqpa_audit::AuditConfig {
    let mut audit_cfg = cfg.audit.clone();
    let base = local_dir(cfg);
    for dir in [&mut audit_cfg.spool_dir, &mut audit_cfg.archive_dir] {
        if dir.is_relative() {
            *dir = base.join(&*dir);
        }
    }
    audit_cfg
}

/// Starts the auditor: the journal plus the configured syslog receivers, with the directories
/// of [`placed_config`].
pub async fn start(cfg: &Config) -> anyhow::Result<Auditor> {
    let audit_cfg = placed_config(cfg);
    let store = open_store(cfg).await?;
    Auditor::new(&audit_cfg, Some(store)).map_err(|e| anyhow::anyhow!("audit: {e}"))
}

/// How an exchange ended, as the journal records it: the target's own code where it gave one
/// (`http:200`, `shep:SCSE002`), else what stood in for an answer. `outcome` is the code of a
/// delivery or a call that succeeded, or the failure.
pub fn exchange_result(
    outcome: Result<Option<&str>, &qaqpa_core::Failure>,
) -> qaqpa_audit::ExchangeResult {
    use qaqpa_audit::ExchangeResult as R;
    use qaqpa_core::Failure;
    let from_code = |code: &str| -> Option<R> {
        if let Some(n) = code
            .strip_prefix("http:")
            .or_else(|| code.strip_prefix("http_"))
        {
            return n.parse().ok().map(R::Http);
        }
        let shep = code.strip_prefix("shep:").unwrap_or(code);
        shep.starts_with("SCS").then(|| R::Shep(shep.to_string()))
    };
    match outcome {
        Ok(code) => code
            .and_then(from_code)
            .unwrap_or_else(|| R::Transport("answered; the adapter gave no result code".into())),
        Err(Failure::Permanent { code, reason }) => {
            from_code(code).unwrap_or_else(|| R::Transport(format!("{code}: {reason}")))
        }
        Err(Failure::Retry { reason, .. }) => R::Transport(reason.clone()),
    }
}

/// One outbound EXCHANGE event per request an adapter itemised on its meter
/// ([`qaqpa_core::ExchangeMeter::take_exchanges`]): each with its own service (as the other
/// system names it), times, bodies and result, about `message_id`, to `target` (the route or
/// service name), in `transaction`. Empty when the adapter itemised none; the caller then
/// journals the attempt or call as one exchange.
pub fn itemised_exchanges(
    source: &str,
    target: &str,
    message_id: Option<&str>,
    transaction: &str,
    items: Vec<qaqpa_core::WireExchange>,
) -> Vec<qaqpa_audit::AuditEvent> {
    use qaqpa_audit::ExchangeResult as R;
    use qaqpa_core::WireResult as W;
    items
        .into_iter()
        .map(|x| {
            qaqpa_audit::AuditEvent::exchange(
                source,
                qaqpa_audit::Exchange {
                    direction: qaqpa_audit::Direction::Outbound,
                    target: target.to_owned(),
                    service_id: Some(x.service_id),
                    message_id: message_id.map(str::to_owned),
                    request_out: Some(x.request_out),
                    response_in: x.response_in,
                    request_in: None,
                    response_out: None,
                    request_bytes: x.sent,
                    response_bytes: x.received,
                    result: match x.result {
                        W::Shep(code) => R::Shep(code),
                        W::Http(status) => R::Http(status),
                        W::Transport(reason) => R::Transport(reason),
                    },
                },
            )
            .operation(x.request_out, x.ended)
            .transaction(transaction.to_owned())
        })
        .collect()
}

/// The client's IP, when the request carried one.
pub fn client_ip(parts: &axum::http::Extensions) -> Option<IpAddr> {
    parts.get::<crate::api::ClientAddr>().map(|a| a.0.ip())
}

/// Records that `caller` read an object.
pub fn object_read(
    state: &AppState,
    caller: &Caller,
    object: ObjectKind,
    id: &str,
    transaction: Option<&str>,
) {
    let mut e = AuditEvent::object_access(API, object, id).by(caller);
    if let Some(t) = transaction {
        e = e.transaction(t);
    }
    state.audit.record(e);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// From this time (RFC 3339).
    pub from: Option<String>,
    /// Before this time (RFC 3339).
    pub to: Option<String>,
    /// Only this account (API key id).
    pub account: Option<String>,
    /// Only this kind (syslog MSGID, e.g. EXCHANGE, AUTH_FAIL).
    pub kind: Option<String>,
    /// This level or worse: alert, critical, error, warning, notice, informational, debug.
    pub min_level: Option<String>,
    /// Only events of this transaction (a message's whole path).
    pub transaction_id: Option<String>,
    /// Only events about this target (route).
    pub target: Option<String>,
    /// Continue after this sequence number (from `next`).
    pub cursor: Option<u64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// A page of the journal, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next (older) page.
    pub next: Option<u64>,
}

fn parse_time(s: Option<&str>, field: &str) -> Result<Option<time::OffsetDateTime>, Problem> {
    s.map(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map_err(|e| Problem::invalid(format!("/{field}"), format!("not RFC 3339: {e}")))
    })
    .transpose()
}

/// Read the audit journal (administrators and auditors; every read is itself journalled).
#[utoipa::path(get, operation_id = "admin_audit", path = "/v1/admin/audit", tag = "admin",
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem)),
    security(("api_key" = [])))]
pub async fn query(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, Problem> {
    caller.require(&[Role::Admin, Role::Auditor], "read the audit journal")?;
    let Query(q) = query.map_err(crate::api::messages::query_problem)?;
    let min_level = q
        .min_level
        .as_deref()
        .map(|l| {
            (1u8..=7)
                .filter_map(qaqpa_audit::Level::from_severity)
                .find(|level| level.as_str().eq_ignore_ascii_case(l))
                .ok_or_else(|| Problem::invalid("/min_level", format!("unknown level '{l}'")))
        })
        .transpose()?;
    let filter = AuditFilter {
        from: parse_time(q.from.as_deref(), "from")?,
        to: parse_time(q.to.as_deref(), "to")?,
        account: q.account.clone(),
        kind: q.kind.clone(),
        min_level,
        transaction_id: q.transaction_id.clone(),
        target: q.target.clone(),
    };
    state
        .audit
        .record(AuditEvent::object_access(API, ObjectKind::AuditJournal, "audit").by(&caller));
    let store = state
        .audit
        .store()
        .ok_or_else(|| Problem::unavailable("the audit journal is not open"))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let page = store
        .query(&filter, q.cursor, limit)
        .await
        .map_err(|e| Problem::unavailable(format!("audit journal: {e}")))?;
    Ok(Json(AuditPage {
        records: page
            .records
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                // The syslog MSGID of the event, as the SIEM sees it.
                v["name"] = serde_json::Value::String(r.event.kind.name().to_string());
                v
            })
            .collect(),
        next: page.next_cursor,
    }))
}

/// Longest a start or a stop waits for PostgreSQL to take or clear the marker.
const MARKER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The run marker: written when the gateway starts, removed once a stop has journalled
/// everything. Found at start, it means the run before ended without that (killed, crashed,
/// power lost), so events it had not yet journalled (those of its last moments, which the
/// journal writer batches for 50 ms) may be missing; the new run journals that as
/// `UNCLEAN_STOP`, with the old run's pid and start time.
///
/// * SQLite: the file `qaqpa.running` in the data directory (one gateway per directory).
/// * PostgreSQL: a row per `[engine] worker_id` in the journal's database
///   ([`qaqpa_audit::PgRunMarkers`]). Replicas share the database and, often, a working
///   directory, so the configured worker id is what tells one replica's previous run from
///   another's. Without a configured worker id (the default is host name and pid, new on
///   every start) no marker is kept, and the gateway says so at start.
pub enum RunMarker {
    /// No marker is kept for this run.
    None,
    /// The SQLite data directory's `qaqpa.running`.
    File(PathBuf),
    /// This run's row in `audit_run`.
    Postgres {
        markers: qaqpa_audit::PgRunMarkers,
        worker: String,
        run: qaqpa_audit::RunInfo,
    },
}

impl RunMarker {
    /// Reports an unclean end of the previous run, if the marker says so, and writes this
    /// run's marker.
    pub async fn take(cfg: &Config, audit: &Auditor) -> RunMarker {
        match &cfg.store {
            StoreConfig::Sqlite { data_dir } => {
                Self::take_file(data_dir.join("qaqpa.running"), audit)
            }
            StoreConfig::Postgres { url_env, .. } => Self::take_postgres(cfg, url_env, audit).await,
        }
    }

    async fn take_postgres(cfg: &Config, url_env: &str, audit: &Auditor) -> RunMarker {
        let Some(worker) = cfg.engine.worker_id.clone() else {
            tracing::info!(
                "no [engine] worker_id: the next run cannot tell whether this one stopped cleanly (set one per replica to have unclean stops journalled)"
            );
            return RunMarker::None;
        };
        let Ok(url) = std::env::var(url_env) else {
            return RunMarker::None;
        };
        let markers = qaqpa_audit::PgRunMarkers::new(&url);
        let run = qaqpa_audit::RunInfo {
            pid: std::process::id(),
            host: crate::gateway::host_name(),
            started: time::OffsetDateTime::now_utc(),
        };
        let begun = tokio::time::timeout(MARKER_TIMEOUT, markers.begin(&worker, &run)).await;
        match begun.unwrap_or_else(|_| Err(qaqpa_audit::StoreError::Other("timed out".into()))) {
            Ok(previous) => {
                if let Some(p) = previous {
                    tracing::warn!(
                        worker = %worker,
                        previous_pid = p.pid,
                        previous_host = %p.host,
                        "the previous run of this worker id ended without a clean stop; audit events it had not yet journalled may be missing"
                    );
                    audit.record(AuditEvent::unclean_stop(
                        GATEWAY,
                        Some(p.pid),
                        Some(p.started),
                    ));
                }
                RunMarker::Postgres {
                    markers,
                    worker,
                    run,
                }
            }
            Err(e) => {
                tracing::warn!(worker = %worker, error = %e,
                    "cannot write the run marker: an unclean stop of this run will not be reported");
                RunMarker::None
            }
        }
    }

    fn take_file(path: PathBuf, audit: &Auditor) -> RunMarker {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let field = |name: &str| {
                text.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .map(str::to_owned)
            };
            let pid = field("pid").and_then(|p| p.parse().ok());
            let started = field("started").and_then(|t| {
                time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
            });
            tracing::warn!(
                marker = %path.display(),
                previous_pid = ?pid,
                "the previous run ended without a clean stop; audit events it had not yet journalled may be missing"
            );
            audit.record(AuditEvent::unclean_stop(GATEWAY, pid, started));
        }
        let text = format!(
            "pid={} started={}\n",
            std::process::id(),
            qaqpa_audit::event::rfc3339(time::OffsetDateTime::now_utc())
        );
        let written = std::fs::File::create(&path).and_then(|mut f| {
            use std::io::Write as _;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
        if let Err(e) = written {
            tracing::warn!(marker = %path.display(), error = %e,
                "cannot write the run marker: an unclean stop of this run will not be reported");
        }
        RunMarker::File(path)
    }

    /// The stop journalled everything: the next run starts clean.
    pub async fn remove(self) {
        match self {
            RunMarker::None => {}
            RunMarker::File(path) => {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(marker = %path.display(), error = %e, "cannot remove the run marker");
                }
            }
            RunMarker::Postgres {
                markers,
                worker,
                run,
            } => match tokio::time::timeout(MARKER_TIMEOUT, markers.end(&worker, &run))
                .await
                .unwrap_or_else(|_| Err(qaqpa_audit::StoreError::Other("timed out".into())))
            {
                Ok(true) => {}
                Ok(false) => tracing::warn!(worker = %worker,
                    "this run's marker was gone at stop: another process runs with the same worker id"),
                Err(e) => tracing::warn!(worker = %worker, error = %e,
                    "cannot remove the run marker: the next run will report an unclean stop"),
            },
        }
    }
}
