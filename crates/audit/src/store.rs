//! The audit journal: append-only, hash-chained, with retention; on SQLite or PostgreSQL.
//!
//! Every record has `seq` (1, 2, 3… without gaps), `prev_hash` and
//! `hash = hex(SHA-256(prev_hash as 64 ASCII hex digits ‖ seq as 8 bytes big-endian ‖ body))`,
//! where `body` is the record text exactly as stored: the event's syslog MSG, or its JSON for
//! records written before 2026-12-03 and for events the MSG cannot say exactly
//! ([`crate::record`]). The text is kept, never written again, so the hash stays verifiable
//! whatever the code becomes. The
//! first record's `prev_hash` is 64 zeros. What queries look records up by (time, account,
//! kind, severity, transaction id, target) is derived from the body, and `verify` checks it
//! against the body too: on PostgreSQL these are columns of a row per record (`audit_log`); on
//! SQLite a row holds a whole append of records and `audit_key` names the rows holding each
//! transaction, account, kind, target and severity (see [`SqliteAuditStore`] for why).
//!
//! Append-only in the database: triggers refuse UPDATE of the record tables and DELETE of any
//! record above the archive anchor. `audit_head` (last seq and hash, only moving forward) makes
//! a deletion at the end detectable; `audit_anchor` (last archived seq and hash, only moving
//! forward and never past the head) is written by [`AuditStore::archive`] before it deletes,
//! which is the one path that deletes; `audit_archive` lists archived ranges and cannot be
//! changed. Someone who can disable triggers *and* recompute every hash after a change is not
//! caught by the chain alone: export [`VerifyReport`]'s last hash elsewhere (the SOC) to catch
//! that too.
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use qaqpa_store::pg::describe_error;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::event::{AuditEvent, Level};

mod postgres;
mod sqlite;

pub use postgres::{PgAuditStore, PgRunMarkers, RunInfo};
pub use sqlite::SqliteAuditStore;

/// `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The server's or the client's words ([`describe_error`]).
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("PostgreSQL pool: {0}")]
    Pool(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A journal record's text that does not read as an event ([`crate::record::decode`]).
    #[error("record: {0}")]
    Record(String),
    #[error("{0}")]
    Other(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(describe_error(&e))
    }
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredRecord {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
    pub event: AuditEvent,
}

/// What to look for; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Events at or after this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub from: Option<OffsetDateTime>,
    /// Events before this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub to: Option<OffsetDateTime>,
    pub account: Option<String>,
    /// A kind name (`AUTH_FAIL`, `EXCHANGE`…).
    pub kind: Option<String>,
    /// This level or a more severe one.
    pub min_level: Option<Level>,
    pub transaction_id: Option<String>,
    /// Route name.
    pub target: Option<String>,
}

/// One page of a query, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page {
    pub records: Vec<StoredRecord>,
    /// Pass as `cursor` for the next (older) page; `None` when this was the last.
    pub next_cursor: Option<u64>,
}

/// The outcome of a chain walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyReport {
    /// The chain holds: `count` records from `first_seq` to `last_seq`.
    Ok {
        count: u64,
        first_seq: u64,
        last_seq: u64,
        last_hash: String,
    },
    /// The record at `seq` is not what was appended (hash, link or indexed columns).
    Changed { seq: u64 },
    /// One or more records after `after_seq` are missing.
    Missing { after_seq: u64 },
    /// The archive bookkeeping does not add up.
    Anchor { detail: String },
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        matches!(self, VerifyReport::Ok { .. })
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyReport::Ok {
                count,
                first_seq,
                last_seq,
                ..
            } => write!(f, "OK: {count} records (seq {first_seq}..={last_seq})"),
            VerifyReport::Changed { seq } => write!(f, "changed record at seq {seq}"),
            VerifyReport::Missing { after_seq } => {
                write!(f, "record(s) missing after seq {after_seq}")
            }
            VerifyReport::Anchor { detail } => write!(f, "archive anchor: {detail}"),
        }
    }
}

/// How long the journal is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Archive files are deleted after this many years (default 3).
    #[serde(default = "default_keep_years")]
    pub keep_years: u32,
    /// Records older than this many months leave the database for the archive (default 3).
    #[serde(default = "default_online_months")]
    pub online_months: u32,
}

fn default_keep_years() -> u32 {
    3
}
fn default_online_months() -> u32 {
    3
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_years: default_keep_years(),
            online_months: default_online_months(),
        }
    }
}

/// What an archive run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Records moved out of the database.
    pub archived: u64,
    /// The file they went to.
    pub file: Option<PathBuf>,
    /// Archive files deleted because they were older than `keep_years`.
    pub deleted_files: Vec<PathBuf>,
}

/// An event ready for the journal: the event and its record text ([`crate::record`]: its
/// syslog MSG, or its JSON where the MSG cannot say it exactly), written where the event is
/// recorded. Serialising was a quarter of the journal thread's time in the delivery benchmark;
/// done by the runtime workers that record events, it is shared among them instead of capping
/// the journal's rate on its one thread (docs/BENCHMARKS.md). The text is the stored record, so
/// it is what the chain hashes.
///
/// An entry also carries what the SQLite journal indexes (the record's time and its key
/// codes), and the event itself only where a store asks for it ([`AuditStore::keeps_events`]):
/// the event then never has to leave the thread that recorded it, which frees its memory
/// there while it is still in that core's cache (freeing it on the journal's thread cost the
/// recording threads more than writing its text).
#[derive(Debug, Clone)]
pub struct Entry {
    event: Option<Arc<AuditEvent>>,
    body: String,
    time_us: i64,
    keys: sqlite::KeyCodes,
}

impl Entry {
    /// Writes `event`'s record text and keeps the event; an event that cannot be written (a
    /// time with an offset with seconds or a year beyond 9999, which neither its MSG nor
    /// JSON can say) is refused.
    pub fn new(event: Arc<AuditEvent>) -> Result<Entry, StoreError> {
        Ok(Entry::without_event(&event)?.keeping(event))
    }

    /// [`Entry::new`] without keeping the event.
    pub fn without_event(event: &AuditEvent) -> Result<Entry, StoreError> {
        Ok(Entry::with_body(event, crate::record::write(event)?))
    }

    /// The entry of `event` whose syslog MSG (as [`crate::syslog::Formatter::format_parts`]
    /// wrote it) is `msg`: the record text is a copy of it where it says the event exactly.
    pub(crate) fn from_msg(event: &AuditEvent, msg: &str) -> Result<Entry, StoreError> {
        Ok(Entry::with_body(
            event,
            crate::record::from_msg(event, msg)?,
        ))
    }

    /// The entry with the event it was written from, for a store that keeps events.
    pub(crate) fn keeping(mut self, event: Arc<AuditEvent>) -> Entry {
        self.event = Some(event);
        self
    }

    fn with_body(event: &AuditEvent, body: String) -> Entry {
        Entry {
            event: None,
            body,
            time_us: time_us(event.time),
            keys: sqlite::KeyCodes::of(event),
        }
    }

    /// The event, when it was kept ([`Entry::new`]).
    pub fn event(&self) -> Option<&AuditEvent> {
        self.event.as_deref()
    }

    /// The record text: the event's MSG or JSON ([`crate::record`]).
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The event's time in microseconds since the epoch.
    pub(crate) fn time_us(&self) -> i64 {
        self.time_us
    }

    /// The codes of the event's keys in the SQLite journal's index.
    pub(crate) fn key_codes(&self) -> &[i64] {
        self.keys.as_slice()
    }
}

/// Entries to append, in order, shared: the writer keeps the batch for a retry while a store
/// prepares it on a thread of its own.
pub type Batch = Arc<[Entry]>;

/// A [`Batch`] of `events`; fails on the first that cannot be serialised.
pub fn batch(events: impl IntoIterator<Item = AuditEvent>) -> Result<Batch, StoreError> {
    events
        .into_iter()
        .map(|e| Entry::new(Arc::new(e)))
        .collect()
}

/// An append-only, hash-chained audit journal.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Whether appended entries must keep their events ([`Entry::new`]); otherwise the
    /// [`crate::Auditor`] hands it entries without them ([`Entry::without_event`]).
    fn keeps_events(&self) -> bool {
        false
    }

    /// Appends events in order, as one transaction; returns the last seq.
    async fn append(&self, events: Batch) -> Result<u64, StoreError>;
    /// Records matching `filter`, newest first, older than `cursor` (a seq) when given.
    async fn query(
        &self,
        filter: &AuditFilter,
        cursor: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError>;
    /// The `n` newest records, newest first.
    async fn tail(&self, n: usize) -> Result<Vec<StoredRecord>, StoreError> {
        Ok(self.query(&AuditFilter::default(), None, n).await?.records)
    }
    /// Walks the online chain from the archive anchor to the head.
    async fn verify(&self) -> Result<VerifyReport, StoreError>;
    /// Moves records older than `retention.online_months` before `now` to a gzip JSON-lines
    /// file in `dir`, records the new anchor and deletes them; deletes archive files in `dir`
    /// whose newest record is older than `retention.keep_years`.
    async fn archive(
        &self,
        now: OffsetDateTime,
        dir: &Path,
        retention: Retention,
    ) -> Result<ArchiveReport, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Shared by both back ends

/// The chain hash of one record: SHA-256 over the previous record's hash (64 hex digits), the
/// record's seq (8 bytes, big-endian) and its body, as 64 hex digits.
pub fn chain_hash(prev_hash: &str, seq: u64, body: &str) -> String {
    hex::encode(chain_digest(prev_hash.as_bytes(), seq, body))
}

/// [`chain_hash`] as its 32 bytes, on the stack, for the journal's writer, which chains every
/// record.
pub(crate) fn chain_digest(prev_hash: &[u8], seq: u64, body: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(seq.to_be_bytes());
    h.update(body.as_bytes());
    h.finalize().into()
}

/// A row as stored.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub seq: u64,
    pub id: String,
    pub time_us: i64,
    pub account: Option<String>,
    pub kind: String,
    pub severity: i32,
    pub transaction_id: Option<String>,
    pub target: Option<String>,
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

/// `t` in microseconds since the Unix epoch, cut toward zero (`i64::MAX` when it does not
/// fit): `unix_timestamp_nanos() / 1000` in 64-bit arithmetic, without its 128-bit division.
pub(crate) fn time_us(t: OffsetDateTime) -> i64 {
    let secs = t.unix_timestamp();
    let nanos = t.nanosecond();
    // Before the epoch a part of a microsecond moves the cut toward zero, that is up.
    let part = i64::from(nanos / 1000) + i64::from(secs < 0 && !nanos.is_multiple_of(1000));
    secs.checked_mul(1_000_000)
        .and_then(|us| us.checked_add(part))
        .unwrap_or(i64::MAX)
}

/// A query's time bound ([`AuditFilter::from`], [`AuditFilter::to`]) in microseconds since the
/// Unix epoch: the least whole microsecond not before `t` (rounded up, before the epoch too;
/// `i64::MIN` or `i64::MAX` when it does not fit, which keeps every record on the side it
/// was). Records are timed in whole microseconds, so `time >= from` and `time < to` hold
/// exactly when `time_us >= bound_us(from)` and `time_us < bound_us(to)`; [`time_us`]'s cut
/// would move a bound between two microseconds to the earlier one, which a record at that
/// microsecond passes for `from` and fails for `to`.
pub(crate) fn bound_us(t: OffsetDateTime) -> i64 {
    // Whole seconds rounded down (before the epoch too) and the nanoseconds after them.
    let secs = t.unix_timestamp();
    let nanos = t.nanosecond();
    let part = i64::from(nanos / 1000) + i64::from(!nanos.is_multiple_of(1000));
    match secs
        .checked_mul(1_000_000)
        .and_then(|us| us.checked_add(part))
    {
        Some(us) => us,
        None if secs < 0 => i64::MIN,
        None => i64::MAX,
    }
}

/// The instant [`time_us`] stored (the Unix epoch for a value out of range).
pub(crate) fn from_time_us(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl Row {
    /// The row for `event` whose stored text is `body`, appended after (`seq` − 1,
    /// `prev_hash`).
    fn with_body(event: &AuditEvent, body: String, seq: u64, prev_hash: &str) -> Row {
        let hash = chain_hash(prev_hash, seq, &body);
        Row {
            seq,
            id: event.id.to_string(),
            time_us: time_us(event.time),
            account: event.account.clone(),
            kind: event.kind.name().to_owned(),
            severity: i32::from(event.level.severity()),
            transaction_id: event.transaction_id.clone(),
            target: event.kind.target().map(str::to_owned),
            body,
            prev_hash: prev_hash.to_owned(),
            hash,
        }
    }

    /// Whether the hash and the indexed columns match the body.
    fn intact(&self) -> bool {
        if chain_hash(&self.prev_hash, self.seq, &self.body) != self.hash {
            return false;
        }
        match Row::new_from_body(&self.body, self.seq, &self.prev_hash) {
            Some(expected) => {
                expected.id == self.id
                    && expected.time_us == self.time_us
                    && expected.account == self.account
                    && expected.kind == self.kind
                    && expected.severity == self.severity
                    && expected.transaction_id == self.transaction_id
                    && expected.target == self.target
            }
            None => false,
        }
    }

    /// The row for a body as it was stored: its columns from the parsed event, its hash over
    /// the stored text itself. Never over the event serialised again, so a record written by
    /// an older version (another field order, `null`s, another time format) still verifies and
    /// any change to the stored bytes shows.
    fn new_from_body(body: &str, seq: u64, prev_hash: &str) -> Option<Row> {
        let event = crate::record::decode(body).ok()?;
        Some(Row::with_body(&event, body.to_owned(), seq, prev_hash))
    }

    pub fn record(&self) -> Result<StoredRecord, StoreError> {
        Ok(StoredRecord {
            seq: self.seq,
            prev_hash: self.prev_hash.clone(),
            hash: self.hash.clone(),
            event: crate::record::decode(&self.body)?,
        })
    }
}

/// Walks rows in seq order from the anchor; the state of a verification in progress.
pub(crate) struct ChainWalk {
    anchor_seq: u64,
    expected_seq: u64,
    prev_hash: String,
    count: u64,
    pub problem: Option<VerifyReport>,
}

impl ChainWalk {
    pub fn new(anchor_seq: u64, anchor_hash: &str) -> ChainWalk {
        ChainWalk {
            anchor_seq,
            expected_seq: anchor_seq + 1,
            prev_hash: anchor_hash.to_owned(),
            count: 0,
            problem: None,
        }
    }

    /// Takes the next row; false once a problem is found.
    pub fn step(&mut self, row: &Row) -> bool {
        if self.problem.is_some() {
            return false;
        }
        if row.seq != self.expected_seq {
            self.problem = Some(if row.seq > self.expected_seq {
                VerifyReport::Missing {
                    after_seq: self.expected_seq - 1,
                }
            } else {
                VerifyReport::Changed { seq: row.seq }
            });
            return false;
        }
        if row.prev_hash != self.prev_hash || !row.intact() {
            self.problem = Some(VerifyReport::Changed { seq: row.seq });
            return false;
        }
        self.prev_hash = row.hash.clone();
        self.expected_seq += 1;
        self.count += 1;
        true
    }

    /// The result, given the recorded head.
    pub fn finish(self, head_seq: u64, head_hash: &str) -> VerifyReport {
        if let Some(p) = self.problem {
            return p;
        }
        let last = self.expected_seq - 1;
        if last < head_seq {
            return VerifyReport::Missing { after_seq: last };
        }
        if last > head_seq {
            return VerifyReport::Changed { seq: head_seq + 1 };
        }
        if self.prev_hash != head_hash {
            return VerifyReport::Changed { seq: last };
        }
        VerifyReport::Ok {
            count: self.count,
            first_seq: self.anchor_seq + 1,
            last_seq: last,
            last_hash: self.prev_hash,
        }
    }
}

/// One archived range as listed in `audit_archive`.
#[derive(Debug, Clone)]
pub(crate) struct ArchivedRange {
    pub from_seq: u64,
    pub to_seq: u64,
    pub first_prev_hash: String,
    pub last_hash: String,
}

/// Checks the archive list against the anchor: contiguous from seq 1, linked by hash, ending at
/// the anchor.
pub(crate) fn check_anchor(
    ranges: &[ArchivedRange],
    anchor_seq: u64,
    anchor_hash: &str,
) -> Option<VerifyReport> {
    let mut next = 1u64;
    let mut prev = GENESIS_HASH.to_owned();
    for r in ranges {
        if r.from_seq != next || r.first_prev_hash != prev || r.to_seq < r.from_seq {
            return Some(VerifyReport::Anchor {
                detail: format!(
                    "archived range {}..={} does not follow seq {}",
                    r.from_seq,
                    r.to_seq,
                    next - 1
                ),
            });
        }
        next = r.to_seq + 1;
        prev = r.last_hash.clone();
    }
    if next - 1 != anchor_seq || prev != anchor_hash {
        return Some(VerifyReport::Anchor {
            detail: format!(
                "archived ranges end at seq {} but the anchor is at seq {anchor_seq}",
                next - 1
            ),
        });
    }
    None
}

/// The oldest time still kept online: `now` less `months` calendar months.
pub fn online_cutoff(now: OffsetDateTime, months: u32) -> OffsetDateTime {
    subtract_months(now, months)
}

fn subtract_months(t: OffsetDateTime, months: u32) -> OffsetDateTime {
    let total = t.year() * 12 + i32::from(u8::from(t.month())) - 1 - months as i32;
    let year = total.div_euclid(12);
    let month = time::Month::try_from(u8::try_from(total.rem_euclid(12) + 1).unwrap_or(1))
        .unwrap_or(time::Month::January);
    let last_day = time::util::days_in_month(month, year);
    let day = t.day().min(last_day);
    match time::Date::from_calendar_date(year, month, day) {
        Ok(date) => t.replace_date(date),
        Err(_) => t,
    }
}

/// One line of an archive file.
#[derive(Debug, Serialize, Deserialize)]
struct ArchiveLine {
    seq: u64,
    prev_hash: String,
    hash: String,
    /// The record text exactly as hashed.
    body: String,
}

/// Writes archive lines to a gzip file, atomically (temp file, fsync, rename).
pub(crate) struct ArchiveWriter {
    dir: PathBuf,
    tmp: TmpFile,
    gz: flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>,
    first: Option<(u64, i64)>,
    last: Option<(u64, i64)>,
}

impl ArchiveWriter {
    pub fn create(dir: &Path) -> Result<ArchiveWriter, StoreError> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".archive-{}.tmp", uuid::Uuid::now_v7()));
        let file = std::fs::File::create(&tmp)?;
        Ok(ArchiveWriter {
            dir: dir.to_owned(),
            tmp: TmpFile {
                path: tmp,
                keep: false,
            },
            gz: flate2::write::GzEncoder::new(
                std::io::BufWriter::new(file),
                flate2::Compression::default(),
            ),
            first: None,
            last: None,
        })
    }

    pub fn write(&mut self, row: &Row) -> Result<(), StoreError> {
        let line = ArchiveLine {
            seq: row.seq,
            prev_hash: row.prev_hash.clone(),
            hash: row.hash.clone(),
            body: row.body.clone(),
        };
        serde_json::to_writer(&mut self.gz, &line)?;
        self.gz.write_all(b"\n")?;
        if self.first.is_none() {
            self.first = Some((row.seq, row.time_us));
        }
        self.last = Some((row.seq, row.time_us));
        Ok(())
    }

    /// Finishes the file: `audit-<first date>_<last date>-<first seq>-<last seq>.jsonl.gz`.
    pub fn finish(mut self) -> Result<Option<PathBuf>, StoreError> {
        let file = self.gz.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let (Some((first_seq, first_us)), Some((last_seq, last_us))) = (self.first, self.last)
        else {
            // Nothing written: the guard removes the file.
            return Ok(None);
        };
        let name = format!(
            "audit-{}_{}-{first_seq:012}-{last_seq:012}.jsonl.gz",
            day(first_us),
            day(last_us)
        );
        let path = self.dir.join(name);
        std::fs::rename(&self.tmp.path, &path)?;
        self.tmp.keep = true;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(Some(path))
    }
}

/// An archive's file while it is written: removed when the archive is given up (an error, a
/// refusal, nothing to archive), so no half-written file stays behind.
struct TmpFile {
    path: PathBuf,
    /// Renamed into place: nothing to remove.
    keep: bool,
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn day(us: i64) -> String {
    let t = from_time_us(us);
    format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day())
}

/// Deletes archive files in `dir` whose last day is older than `keep_years` before `now`.
pub(crate) fn prune_archives(
    dir: &Path,
    now: OffsetDateTime,
    keep_years: u32,
) -> Result<Vec<PathBuf>, StoreError> {
    let limit = day(time_us(subtract_months(now, keep_years.saturating_mul(12))));
    let mut deleted = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(deleted);
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(rest) = name
            .strip_prefix("audit-")
            .and_then(|r| r.strip_suffix(".jsonl.gz"))
        else {
            continue;
        };
        // <first>_<last>-<seq>-<seq>
        let Some(last_day) = rest.get(9..17) else {
            continue;
        };
        if last_day < limit.as_str() {
            std::fs::remove_file(&path)?;
            deleted.push(path);
        }
    }
    deleted.sort();
    Ok(deleted)
}

/// Checks an archive file's own chain: every hash, every link, no gap. `Ok` carries the first
/// and last seq and the last hash (to be matched with the next file or the store's anchor).
pub fn verify_archive(file: &Path) -> Result<VerifyReport, StoreError> {
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(std::fs::File::open(file)?));
    let mut walk: Option<ChainWalk> = None;
    let mut first_seq = 0;
    for line in reader.lines() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let Ok(l) = serde_json::from_str::<ArchiveLine>(&line) else {
            let seq = walk.as_ref().map(|w| w.expected_seq).unwrap_or(first_seq);
            return Ok(VerifyReport::Changed { seq });
        };
        let row = match Row::new_from_body(&l.body, l.seq, &l.prev_hash) {
            Some(mut r) => {
                r.hash = l.hash.clone();
                r
            }
            None => return Ok(VerifyReport::Changed { seq: l.seq }),
        };
        let w = walk.get_or_insert_with(|| {
            first_seq = l.seq;
            ChainWalk::new(l.seq - 1, &l.prev_hash)
        });
        if !w.step(&row) {
            break;
        }
    }
    let Some(w) = walk else {
        return Ok(VerifyReport::Anchor {
            detail: "empty archive file".into(),
        });
    };
    let last = w.expected_seq - 1;
    let hash = w.prev_hash.clone();
    Ok(w.finish(last, &hash))
}

/// Parameters of a query, in order, for either back end.
pub(crate) enum Param {
    I32(i32),
    I64(i64),
    Text(String),
}

/// `WHERE …` for a filter and cursor; `ph(n)` renders the n-th (1-based) placeholder.
///
/// The time bounds are [`window_us`]: they keep every record in the window and may keep a few
/// within a microsecond of a bound, so the caller keeps only the records [`in_time_window`].
pub(crate) fn where_clause(
    filter: &AuditFilter,
    cursor: Option<u64>,
    ph: impl Fn(usize) -> String,
) -> (String, Vec<Param>) {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    let mut add = |col: &str, op: &str, p: Param| {
        params.push(p);
        conds.push(format!("{col} {op} {}", ph(params.len())));
    };
    if let Some(c) = cursor {
        add("seq", "<", Param::I64(i64::try_from(c).unwrap_or(i64::MAX)));
    }
    let (from_us, to_us) = window_us(filter);
    if let Some(us) = from_us {
        add("time_us", ">=", Param::I64(us));
    }
    if let Some(us) = to_us {
        add("time_us", "<", Param::I64(us));
    }
    if let Some(v) = &filter.account {
        add("account", "=", Param::Text(v.clone()));
    }
    if let Some(v) = &filter.kind {
        add("kind", "=", Param::Text(v.clone()));
    }
    if let Some(l) = filter.min_level {
        add("severity", "<=", Param::I32(i32::from(l.severity())));
    }
    if let Some(v) = &filter.transaction_id {
        add("transaction_id", "=", Param::Text(v.clone()));
    }
    if let Some(v) = &filter.target {
        add("target", "=", Param::Text(v.clone()));
    }
    let sql = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    (sql, params)
}

/// `filter`'s time window in whole microseconds, as `time_us` columns hold record times:
/// `from` cut as record times are ([`time_us`]), `to` rounded up ([`bound_us`]). Every record
/// in the window has `from_us <= time_us < to_us`, a record with nanoseconds (the JSON records
/// from before times were taken to the microsecond) included; for whole-microsecond records
/// the converse holds too. So the bounds select or skip by the column, and
/// [`in_time_window`] decides for each record read.
pub(crate) fn window_us(filter: &AuditFilter) -> (Option<i64>, Option<i64>) {
    (filter.from.map(time_us), filter.to.map(bound_us))
}

/// Whether `event` lies in `filter`'s time window, to the nanosecond: at or after `from`,
/// before `to`.
pub(crate) fn in_time_window(filter: &AuditFilter, event: &AuditEvent) -> bool {
    filter.from.is_none_or(|t| event.time >= t) && filter.to.is_none_or(|t| event.time < t)
}

/// A page of at most `limit` records from up to `limit + 1`, newest first: one more than the
/// limit means there is a next page, which starts below the last record kept.
pub(crate) fn page_of(mut records: Vec<StoredRecord>, limit: usize) -> Page {
    let more = records.len() > limit;
    records.truncate(limit);
    let next_cursor = if more {
        records.last().map(|r| r.seq)
    } else {
        None
    };
    Page {
        records,
        next_cursor,
    }
}

/// A store that keeps nothing (tests, or a gateway run without a journal).
#[derive(Debug, Default)]
pub struct NullStore {
    appended: Mutex<u64>,
}

#[async_trait]
impl AuditStore for NullStore {
    async fn append(&self, events: Batch) -> Result<u64, StoreError> {
        let mut n = self.appended.lock().unwrap_or_else(|p| p.into_inner());
        *n += events.len() as u64;
        Ok(*n)
    }
    async fn query(&self, _: &AuditFilter, _: Option<u64>, _: usize) -> Result<Page, StoreError> {
        Ok(Page {
            records: Vec::new(),
            next_cursor: None,
        })
    }
    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        Ok(VerifyReport::Ok {
            count: 0,
            first_seq: 1,
            last_seq: 0,
            last_hash: GENESIS_HASH.into(),
        })
    }
    async fn archive(
        &self,
        _: OffsetDateTime,
        _: &Path,
        _: Retention,
    ) -> Result<ArchiveReport, StoreError> {
        Ok(ArchiveReport::default())
    }
}

/// Shared handle type.
pub type SharedStore = Arc<dyn AuditStore>;

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// The first and last instant `time` can hold, in nanoseconds since the Unix epoch.
    fn representable_nanos() -> (i128, i128) {
        let nanos = |t: time::PrimitiveDateTime| t.assume_utc().unix_timestamp_nanos();
        (
            nanos(time::PrimitiveDateTime::MIN),
            nanos(time::PrimitiveDateTime::MAX),
        )
    }

    #[test]
    fn time_us_cuts_toward_zero_as_the_128_bit_division_does() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (min, max) = representable_nanos();
        let near_epoch = [
            -1_000_000_001,
            -1_000_000_000,
            -999_999_999,
            -1_500,
            -1_000,
            -999,
            -1,
            0,
            1,
            999,
            1_000,
            1_001,
        ];
        for round in 0..300_000 {
            let nanos = match round % 3 {
                0 => rng.random_range(min..=max),
                1 => rng.random_range(-4_000_000_000_000_000_000i128..4_000_000_000_000_000_000),
                _ => near_epoch[round / 3 % near_epoch.len()] + rng.random_range(-2_000..2_000),
            };
            let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).expect("in range");
            let expected = i64::try_from(nanos / 1000).unwrap_or(i64::MAX);
            assert_eq!(time_us(t), expected, "{nanos} ns");
            // Any offset: the same instant.
            let offset = time::UtcOffset::from_whole_seconds(rng.random_range(-86_399..86_400))
                .expect("offset");
            assert_eq!(
                time_us(t.to_offset(offset)),
                expected,
                "{nanos} ns at {offset}"
            );
        }
    }

    #[test]
    fn bound_us_rounds_up_to_the_next_whole_microsecond() {
        let at = |nanos: i128| OffsetDateTime::from_unix_timestamp_nanos(nanos).expect("in range");
        for (nanos, expected) in [
            (0, 0),
            (1, 1),
            (500, 1),
            (999, 1),
            (1_000, 1),
            (1_001, 2),
            (-1, 0),
            (-999, 0),
            (-1_000, -1),
            (-1_001, -1),
            (-1_999, -1),
            (-2_000, -2),
            (-999_999_999, -999_999),
            (-1_000_000_000, -1_000_000),
            (-1_000_000_001, -1_000_000),
            (1_764_000_000_123_456_001, 1_764_000_000_123_457),
            (1_764_000_000_123_456_000, 1_764_000_000_123_456),
        ] {
            assert_eq!(bound_us(at(nanos)), expected, "{nanos} ns");
            // Any offset: the same instant.
            let offset = time::UtcOffset::from_hms(-5, -30, 0).expect("offset");
            assert_eq!(
                bound_us(at(nanos).to_offset(offset)),
                expected,
                "{nanos} ns"
            );
        }
        // The ceiling of the 128-bit division, at random; `time_us` where it is whole.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let (min, max) = representable_nanos();
        for _ in 0..100_000 {
            let nanos = rng.random_range(min..=max);
            let expected = i64::try_from(nanos.div_euclid(1000) + i128::from(nanos % 1000 != 0))
                .expect("fits");
            assert_eq!(bound_us(at(nanos)), expected, "{nanos} ns");
            let whole = at(nanos - nanos.rem_euclid(1000));
            assert_eq!(bound_us(whole), time_us(whole), "{nanos} ns");
        }
    }

    #[test]
    fn online_cutoff_goes_back_calendar_months() {
        assert_eq!(
            online_cutoff(datetime!(2026-05-31 10:00 UTC), 3),
            datetime!(2026-02-28 10:00 UTC)
        );
        assert_eq!(
            online_cutoff(datetime!(2026-02-15 10:00 UTC), 3),
            datetime!(2025-11-15 10:00 UTC)
        );
        assert_eq!(
            online_cutoff(datetime!(2026-02-15 10:00 UTC), 36),
            datetime!(2023-02-15 10:00 UTC)
        );
    }

    #[test]
    fn chain_hash_depends_on_prev_seq_and_body() {
        let h = chain_hash(GENESIS_HASH, 1, "{}");
        assert_eq!(h.len(), 64);
        assert_ne!(h, chain_hash(GENESIS_HASH, 2, "{}"));
        assert_ne!(h, chain_hash(&h, 1, "{}"));
        assert_ne!(h, chain_hash(GENESIS_HASH, 1, "{ }"));
    }
}
