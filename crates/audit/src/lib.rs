//! Qaqpa's audit journal, fed by every part of the gateway and every adapter.
//!
//! * [`event`]: one event model ([`AuditEvent`], [`EventKind`]), builders with default levels,
//!   IIN masking, the certificate expiry helper.
//! * [`syslog`]: RFC 5424 formatting for the SOC.
//! * [`sink`]: UDP/TCP/TLS syslog transports with a disk spool and at-least-once delivery.
//! * [`store`]: the append-only, hash-chained journal on SQLite or PostgreSQL, with retention.
//! * [`record`]: the journal's record text (the event's syslog MSG) and how it is read back.
//!
//! The [`Auditor`] facade ties them together: [`Auditor::record`] never waits and never panics;
//! it writes the (masked) event's syslog line where it is called, hands the line to every
//! syslog sink and a copy of its MSG, the record text, to the store writer task.
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, Notify};

mod body;
pub mod event;
pub mod record;
pub mod sink;
pub mod store;
pub mod syslog;
#[cfg(test)]
mod testgen;

pub use event::{
    expiry_warning, mask_iin, mask_iins_in, AuditEvent, Category, ChangeOp, Direction, EventKind,
    Exchange, ExchangeResult, Level, LifecycleStage, ObjectKind, RefusalReason,
};
pub use sink::{SinkError, SinkStats, SyslogSink, SyslogTarget};
pub use store::{
    batch, verify_archive, ArchiveReport, AuditFilter, AuditStore, Batch, Entry, NullStore, Page,
    PgAuditStore, PgRunMarkers, Retention, RunInfo, SqliteAuditStore, StoreError, StoredRecord,
    VerifyReport,
};

/// The `[audit]` table of the gateway's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Syslog receivers (`[[audit.syslog]]`); none means the journal only.
    #[serde(default)]
    pub syslog: Vec<SyslogTarget>,
    /// Where undelivered syslog lines wait (one sub-directory per target).
    #[serde(default = "default_spool_dir")]
    pub spool_dir: PathBuf,
    /// Bound of each target's spool, in bytes (default 256 MiB).
    #[serde(default = "default_spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// Syslog APP-NAME (default `qaqpa`).
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// Syslog HOSTNAME (default: the machine's host name).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Syslog facility (default 13, log audit).
    #[serde(default = "default_facility")]
    pub facility: u8,
    /// Mask 12-digit runs (IIN/BIN) in descriptions and free-text fields (default on).
    #[serde(default = "default_true")]
    pub mask_iins: bool,
    #[serde(default)]
    pub retention: Retention,
    /// Where [`Auditor::archive`] writes the gzip JSON-lines archive files.
    #[serde(default = "default_archive_dir")]
    pub archive_dir: PathBuf,
}

fn default_archive_dir() -> PathBuf {
    PathBuf::from("audit-archive")
}

fn default_spool_dir() -> PathBuf {
    PathBuf::from("audit-spool")
}
fn default_spool_max_bytes() -> u64 {
    256 << 20
}
fn default_app_name() -> String {
    "qaqpa".into()
}
fn default_facility() -> u8 {
    syslog::DEFAULT_FACILITY
}
fn default_true() -> bool {
    true
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            syslog: Vec::new(),
            spool_dir: default_spool_dir(),
            spool_max_bytes: default_spool_max_bytes(),
            app_name: default_app_name(),
            hostname: None,
            facility: default_facility(),
            mask_iins: true,
            retention: Retention::default(),
            archive_dir: default_archive_dir(),
        }
    }
}

/// The machine's host name (from /proc), or `-`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// Why an [`Auditor`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("the auditor must be created inside a tokio runtime")]
    NoRuntime,
}

/// Counters of the store writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Events appended to the journal.
    pub appended: u64,
    /// Events not journalled: the writer's queue was full, shutdown came first, or the event
    /// could not be serialised.
    pub dropped: u64,
    /// Failed append attempts (retried).
    pub failures: u64,
}

/// What a flush or shutdown achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushReport {
    /// Everything recorded before is in the store.
    pub stored: bool,
    /// Every sink sent everything recorded before (nothing left in a spool).
    pub sent: bool,
}

/// What the journal's writer is asked besides writing entries.
enum StoreMsg {
    Flush(oneshot::Sender<bool>),
    Shutdown(tokio::time::Instant, oneshot::Sender<bool>),
}

/// Entries recorded and not yet taken by the journal's writer, in recording order: the
/// recording threads push under a short lock, the writer swaps the vector for an empty one.
struct JournalIntake {
    entries: Vec<Entry>,
    /// Shut down: entries recorded now are not journalled.
    closed: bool,
}

/// What the recording threads share with the journal's writer.
struct Journal {
    intake: std::sync::Mutex<JournalIntake>,
    /// Entries arrived in an empty intake (wakes the waiting writer).
    arrived: Notify,
    /// Ends the writer's linger at once (flush, shutdown).
    hurry: Notify,
}

impl Journal {
    fn intake(&self) -> std::sync::MutexGuard<'_, JournalIntake> {
        self.intake.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an entry; false when the intake is full or shut down.
    fn push(&self, entry: Entry) -> bool {
        let mut intake = self.intake();
        if intake.closed || intake.entries.len() >= STORE_QUEUE {
            return false;
        }
        let first = intake.entries.is_empty();
        intake.entries.push(entry);
        drop(intake);
        if first {
            self.arrived.notify_one();
        }
        true
    }

    fn len(&self) -> usize {
        self.intake().entries.len()
    }

    /// Everything in the intake, leaving `spare` (emptied) in its place.
    fn take(&self, mut spare: Vec<Entry>, close: bool) -> Vec<Entry> {
        spare.clear();
        let mut intake = self.intake();
        intake.closed |= close;
        std::mem::replace(&mut intake.entries, spare)
    }
}

/// Entries held for the journal's writer before further ones count as dropped.
pub const STORE_QUEUE: usize = 65_536;
const STORE_BATCH: usize = 1024;
/// How long the writer sleeps after an event arrives before it writes the batch (the events that
/// came meanwhile join it).
const STORE_LINGER: Duration = Duration::from_millis(50);

thread_local! {
    /// The buffers each recording thread formats its syslog lines in.
    static LINE: std::cell::RefCell<syslog::Scratch> = std::cell::RefCell::new(syslog::Scratch::default());
}

struct Inner {
    mask_iins: bool,
    /// The store wants events in its entries ([`AuditStore::keeps_events`]).
    keep_events: bool,
    retention: Retention,
    archive_dir: PathBuf,
    sinks: Vec<SyslogSink>,
    store: Option<Arc<dyn AuditStore>>,
    journal: Option<Arc<Journal>>,
    /// Flushes and the shutdown, to the journal's writer.
    store_tx: Option<mpsc::Sender<StoreMsg>>,
    appended: Arc<AtomicU64>,
    store_dropped: Arc<AtomicU64>,
    store_failures: Arc<AtomicU64>,
}

/// The audit facade: cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    inner: Arc<Inner>,
}

impl Auditor {
    /// Starts the store writer (when `store` is given) and one sink per syslog target. Must be
    /// called inside a tokio runtime.
    pub fn new(
        config: &AuditConfig,
        store: Option<Arc<dyn AuditStore>>,
    ) -> Result<Auditor, AuditError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(AuditError::NoRuntime);
        }
        let hostname = config.hostname.clone().unwrap_or_else(host_name);
        let formatter = syslog::Formatter::new(config.facility, &hostname, &config.app_name);
        let sinks = config
            .syslog
            .iter()
            .map(|t| {
                SyslogSink::start(
                    t,
                    formatter.clone(),
                    &config.app_name,
                    &config.spool_dir,
                    config.spool_max_bytes,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let appended = Arc::new(AtomicU64::new(0));
        let store_dropped = Arc::new(AtomicU64::new(0));
        let store_failures = Arc::new(AtomicU64::new(0));
        let journal = store.as_ref().map(|_| {
            Arc::new(Journal {
                intake: std::sync::Mutex::new(JournalIntake {
                    entries: Vec::with_capacity(STORE_BATCH),
                    closed: false,
                }),
                arrived: Notify::new(),
                hurry: Notify::new(),
            })
        });
        let store_tx = store
            .as_ref()
            .zip(journal.as_ref())
            .map(|(store, journal)| {
                let (tx, rx) = mpsc::channel(16);
                tokio::spawn(store_writer(
                    store.clone(),
                    journal.clone(),
                    rx,
                    appended.clone(),
                    store_dropped.clone(),
                    store_failures.clone(),
                ));
                tx
            });
        Ok(Auditor {
            inner: Arc::new(Inner {
                mask_iins: config.mask_iins,
                keep_events: store.as_ref().is_some_and(|s| s.keeps_events()),
                retention: config.retention,
                archive_dir: config.archive_dir.clone(),
                sinks,
                store,
                journal,
                store_tx,
                appended,
                store_dropped,
                store_failures,
            }),
        })
    }

    /// Records an event: masks and bounds its free text, hands it to the store writer and every
    /// sink. Never waits, never panics.
    ///
    /// The event's syslog line is written here, on the recording thread, once: the sinks take
    /// the line and the journal's writer a copy of its MSG, the record text ([`record`]). Only
    /// they travel; the event is dropped where it was made (unless the store keeps events, see
    /// [`AuditStore::keeps_events`]).
    pub fn record(&self, mut event: AuditEvent) {
        // Masked before the texts are cut: an IIN across the cut would otherwise keep the
        // digits before it, a run too short to be found.
        if self.inner.mask_iins {
            event.mask_iins();
        }
        event.limit_texts();
        let Some(first) = self.inner.sinks.first() else {
            self.journal(event, None);
            return;
        };
        let formatter = first.formatter();
        // The line goes to every sink and its MSG to the journal: the record is a copy of it.
        let hand_over = |event: AuditEvent, [line, msg]: [&str; 2]| {
            for sink in &self.inner.sinks {
                sink.record_parts([line, msg]);
            }
            self.journal(event, Some(msg));
        };
        // The thread's buffers, or fresh ones where they cannot be had (a call from a
        // thread-local destructor): never a panic.
        let mut event = Some(event);
        let _ = LINE.try_with(|scratch| {
            if let (Ok(mut scratch), Some(event)) = (scratch.try_borrow_mut(), event.take()) {
                let parts = formatter.format_parts(&event, &mut scratch);
                hand_over(event, parts);
            }
        });
        if let Some(event) = event {
            let mut scratch = syslog::Scratch::default();
            let parts = formatter.format_parts(&event, &mut scratch);
            hand_over(event, parts);
        }
    }

    /// Hands `event`'s entry to the journal's writer: its record text a copy of `msg` (the
    /// MSG of the event's syslog line) where a line was made, else written here. The event is
    /// freed here, on the thread that made it, unless the store keeps events.
    fn journal(&self, event: AuditEvent, msg: Option<&str>) {
        let Some(journal) = &self.inner.journal else {
            return;
        };
        let id = event.id;
        let entry = |event: &AuditEvent| match msg {
            Some(msg) => Entry::from_msg(event, msg),
            None => Entry::without_event(event),
        };
        let entry = if self.inner.keep_events {
            let event = Arc::new(event);
            entry(&event).map(|e| e.keeping(event))
        } else {
            entry(&event)
        };
        match entry {
            Ok(entry) => {
                if !journal.push(entry) {
                    self.inner.store_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%id, "audit journal queue full or shut down: event not journalled");
                }
            }
            Err(e) => {
                self.inner.store_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%id, error = %e, "audit event cannot be serialised: not journalled");
            }
        }
    }

    /// Waits until everything recorded before is in the store and sent by every sink (or a
    /// sink's send attempt failed and its lines are in its spool).
    pub async fn flush(&self) -> FlushReport {
        let stored = self.flush_journal().await;
        let mut sent = true;
        for sink in &self.inner.sinks {
            sent &= sink.flush().await;
        }
        FlushReport { stored, sent }
    }

    /// Waits until everything recorded before is in the store (not for the syslog sinks, which
    /// may be waiting for a receiver). True without a store.
    pub async fn flush_journal(&self) -> bool {
        match &self.inner.store_tx {
            Some(tx) => {
                let (reply, rx) = oneshot::channel();
                let sent = tx.send(StoreMsg::Flush(reply)).await.is_ok();
                self.hurry_journal();
                sent && rx.await.unwrap_or(false)
            }
            None => true,
        }
    }

    /// Stops: stores and sends what can be within `deadline`, spools the rest of the syslog
    /// lines. Events recorded afterwards go to the spools only.
    pub async fn shutdown(&self, deadline: Duration) -> FlushReport {
        let until = tokio::time::Instant::now() + deadline;
        let store = async {
            match &self.inner.store_tx {
                Some(tx) => {
                    let (reply, rx) = oneshot::channel();
                    let sent =
                        tokio::time::timeout_at(until, tx.send(StoreMsg::Shutdown(until, reply)))
                            .await;
                    self.hurry_journal();
                    match sent {
                        // An append in progress is not cut short (a transaction half done
                        // helps nobody): it gets as long again as the deadline. A store that
                        // hangs does not hold the stop forever.
                        Ok(Ok(())) => match tokio::time::timeout_at(until + deadline, rx).await {
                            Ok(stored) => stored.unwrap_or(false),
                            Err(_) => {
                                tracing::error!(
                                    waiting = self.inner.journal.as_ref().map_or(0, |j| j.len()),
                                    "audit journal did not answer by the shutdown's deadline; events still waiting are not journalled"
                                );
                                false
                            }
                        },
                        _ => false,
                    }
                }
                None => true,
            }
        };
        let sinks = async {
            let mut sent = true;
            for sink in &self.inner.sinks {
                sent &= sink.shutdown(until).await;
            }
            sent
        };
        let (stored, sent) = tokio::join!(store, sinks);
        FlushReport { stored, sent }
    }

    fn hurry_journal(&self) {
        if let Some(journal) = &self.inner.journal {
            journal.hurry.notify_one();
        }
    }

    /// Counters of every sink, in configuration order.
    pub fn sink_stats(&self) -> Vec<SinkStats> {
        self.inner.sinks.iter().map(SyslogSink::stats).collect()
    }

    pub fn store_stats(&self) -> StoreStats {
        StoreStats {
            appended: self.inner.appended.load(Ordering::Relaxed),
            dropped: self.inner.store_dropped.load(Ordering::Relaxed),
            failures: self.inner.store_failures.load(Ordering::Relaxed),
        }
    }

    /// Runs retention on the journal with the configured settings: records older than
    /// `online_months` go to `archive_dir`, archive files older than `keep_years` are deleted.
    /// Meant to run daily; `Ok(default)` without a store.
    pub async fn archive(&self, now: time::OffsetDateTime) -> Result<ArchiveReport, StoreError> {
        match &self.inner.store {
            Some(store) => {
                store
                    .archive(now, &self.inner.archive_dir, self.inner.retention)
                    .await
            }
            None => Ok(ArchiveReport::default()),
        }
    }

    /// The journal, for queries, verification and archiving.
    pub fn store(&self) -> Option<&Arc<dyn AuditStore>> {
        self.inner.store.as_ref()
    }
}

/// The journal's writer: waits for entries (or a flush or shutdown), sleeps through a short
/// linger so that one transaction carries many events (each commit rewrites the touched
/// pages) and recording threads never wake it one event at a time, then takes the whole
/// intake and appends it in batches of up to [`STORE_BATCH`], retrying with backoff. A flush
/// or a shutdown cuts the linger short and is answered once everything recorded before it is
/// written; a shutdown closes the intake and gives up at its deadline.
async fn store_writer(
    store: Arc<dyn AuditStore>,
    journal: Arc<Journal>,
    mut rx: mpsc::Receiver<StoreMsg>,
    appended: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
) {
    let mut backoff = sink::Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    let mut spare: Vec<Entry> = Vec::with_capacity(STORE_BATCH);
    loop {
        // `None`: entries to write; else what was asked (or `None` inside: every handle gone).
        let asked: Option<Option<StoreMsg>> = loop {
            if let Ok(msg) = rx.try_recv() {
                break Some(Some(msg));
            }
            if journal.len() > 0 {
                if journal.len() < STORE_BATCH {
                    tokio::select! {
                        _ = tokio::time::sleep(STORE_LINGER) => {}
                        _ = journal.hurry.notified() => {}
                    }
                }
                break None;
            }
            tokio::select! {
                msg = rx.recv() => break Some(msg),
                _ = journal.arrived.notified() => {}
            }
        };
        let (reply, deadline, stop) = match asked {
            None => (None, None, false),
            Some(Some(StoreMsg::Flush(reply))) => (Some(reply), None, false),
            Some(Some(StoreMsg::Shutdown(until, reply))) => {
                rx.close();
                (Some(reply), Some(until), true)
            }
            Some(None) => (None, None, true),
        };
        // Everything recorded before a flush or shutdown is in the intake or written already.
        let mut taken = journal.take(std::mem::take(&mut spare), stop);
        let mut ok = true;
        while !taken.is_empty() {
            let n = taken.len().min(STORE_BATCH);
            let batch: Batch = taken.drain(..n).collect();
            loop {
                match store.append(batch.clone()).await {
                    Ok(_) => {
                        appended.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        backoff.reset();
                        break;
                    }
                    Err(e) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, events = batch.len(), "audit journal append failed; retrying");
                        let pause = backoff.next_delay();
                        if deadline.is_some_and(|d| tokio::time::Instant::now() + pause >= d) {
                            dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            ok = false;
                            break;
                        }
                        tokio::time::sleep(pause).await;
                    }
                }
            }
            if !ok {
                dropped.fetch_add(taken.len() as u64, Ordering::Relaxed);
                taken.clear();
            }
        }
        spare = taken;
        if let Some(reply) = reply {
            let _ = reply.send(ok);
        }
        if stop {
            // What a shutdown answered for is written; anything left on the channel gets no.
            while let Ok(StoreMsg::Flush(reply) | StoreMsg::Shutdown(_, reply)) = rx.try_recv() {
                let _ = reply.send(false);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MAX_TEXT_CHARS;

    #[test]
    fn config_reads_from_toml_with_defaults_and_refuses_unknown_fields() {
        let c: AuditConfig = toml::from_str(
            r#"
            spool_dir = "/var/spool/qaqpa/audit"
            [[syslog]]
            url = "tls://siem.example.kz:6514"
            ca_file = "/etc/qaqpa/siem-ca.pem"
            [[syslog]]
            url = "udp://127.0.0.1:514"
            [retention]
            keep_years = 5
            "#,
        )
        .expect("parses");
        assert_eq!(c.syslog.len(), 2);
        assert_eq!(c.syslog[0].backoff_max_ms, 30_000);
        assert_eq!(c.facility, 13);
        assert!(c.mask_iins);
        assert_eq!(c.spool_max_bytes, 256 << 20);
        assert_eq!(c.retention.keep_years, 5);
        assert_eq!(c.retention.online_months, 3);
        assert!(toml::from_str::<AuditConfig>("spool = \"x\"").is_err());
        assert!(toml::from_str::<AuditConfig>("[[syslog]]\nurl = \"udp://a:1\"\nfoo = 1").is_err());
    }

    /// A journal whose appends never finish (a database that stopped answering).
    struct HangingStore;

    #[async_trait::async_trait]
    impl AuditStore for HangingStore {
        async fn append(&self, _: Batch) -> Result<u64, StoreError> {
            std::future::pending().await
        }
        async fn query(
            &self,
            f: &AuditFilter,
            c: Option<u64>,
            n: usize,
        ) -> Result<Page, StoreError> {
            NullStore::default().query(f, c, n).await
        }
        async fn verify_with(
            &self,
            a: Option<&store::ArchiveCheck>,
        ) -> Result<VerifyReport, StoreError> {
            NullStore::default().verify_with(a).await
        }
        async fn archive(
            &self,
            now: time::OffsetDateTime,
            dir: &std::path::Path,
            r: Retention,
        ) -> Result<ArchiveReport, StoreError> {
            NullStore::default().archive(now, dir, r).await
        }
    }

    #[tokio::test]
    async fn a_journal_that_stops_answering_does_not_hold_the_shutdown_forever() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-hang-{}", uuid::Uuid::now_v7()));
        let config = AuditConfig {
            spool_dir: dir.join("spool"),
            ..AuditConfig::default()
        };
        let auditor = Auditor::new(&config, Some(Arc::new(HangingStore))).expect("auditor");
        auditor.record(AuditEvent::auth_ok("api", "key-1"));
        let report = tokio::time::timeout(
            Duration::from_secs(30),
            auditor.shutdown(Duration::from_millis(200)),
        )
        .await
        .expect("the shutdown ends although the journal never answers");
        assert!(!report.stored, "the event was not journalled: {report:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_iin_across_the_texts_cut_is_masked_before_it_is_cut() {
        let dir = std::env::temp_dir().join(format!("qaqpa-audit-cut-{}", uuid::Uuid::now_v7()));
        let store: Arc<dyn AuditStore> = Arc::new(SqliteAuditStore::open(&dir).expect("journal"));
        let config = AuditConfig {
            spool_dir: dir.join("spool"),
            ..AuditConfig::default()
        };
        let auditor = Auditor::new(&config, Some(store.clone())).expect("auditor");
        // The IIN starts eight characters before the cut, so the cut alone would leave
        // eight of its digits, a run too short to be masked.
        let before = "x".repeat(MAX_TEXT_CHARS - 8);
        let reason = format!("{before}870101300123 and more");
        auditor.record(AuditEvent::signature(
            "api",
            false,
            None,
            Some(&reason),
            None,
        ));
        assert!(auditor.flush().await.stored);
        let recorded = store.tail(1).await.expect("tail").remove(0).event;
        let EventKind::SignatureVerify {
            reason: Some(kept), ..
        } = &recorded.kind
        else {
            panic!("{recorded:?}")
        };
        assert_eq!(kept.chars().count(), MAX_TEXT_CHARS);
        assert_eq!(kept.as_str(), format!("{before}8701****"));
        assert!(
            !recorded.description.contains("87010130"),
            "{}",
            recorded.description
        );
        auditor.shutdown(Duration::from_secs(5)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
