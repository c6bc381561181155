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
//!
//! The rows of `audit_archive` are only claims: anyone who may insert one can claim the whole
//! chain archived, move the anchor to the head and delete every record. So `verify` checks the
//! archived part against the files ([`AuditStore::verify_with`], [`ArchiveCheck`]): every row's
//! file must be in the archive directory and hold exactly the range the row records (its first
//! seq after the row's `first_prev_hash`, its last hash the row's), from seq 1 to the anchor. A
//! file that retention deleted is reported as such (never as verified): the row's file name
//! carries the day of the range's last record, which is what retention deletes files by, so a
//! missing file counts as deleted only when retention would have deleted it by then.
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
    /// The chain holds: `count` records from `first_seq` to `last_seq`, and before them
    /// `archived` (the store's verification; empty for one archive file).
    Ok {
        count: u64,
        first_seq: u64,
        last_seq: u64,
        last_hash: String,
        archived: ArchivedPart,
    },
    /// The record at `seq` is not what was appended (hash, link or indexed columns).
    Changed { seq: u64 },
    /// One or more records after `after_seq` are missing.
    Missing { after_seq: u64 },
    /// The archive bookkeeping does not add up.
    Anchor { detail: String },
    /// The archived range `from_seq..=to_seq` does not check out against its file (missing,
    /// changed, cut short, or not checked at all).
    Archived {
        from_seq: u64,
        to_seq: u64,
        detail: String,
    },
}

/// What the verification of a store found before its online records, in the archive files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchivedPart {
    /// Archive files read, each exactly the range its `audit_archive` row records.
    pub files: u64,
    /// The records in them, every hash and link checked.
    pub verified: u64,
    /// Ranges whose files retention has deleted: their records are gone, and only their rows
    /// link the chain across them.
    pub expired: Vec<ExpiredRange>,
}

/// An archived range whose file retention deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredRange {
    pub from_seq: u64,
    pub to_seq: u64,
    /// The day of its last record (UTC), as its file name recorded it.
    pub last_day: time::Date,
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
                archived,
                ..
            } => {
                write!(f, "OK: {count} records (seq {first_seq}..={last_seq})")?;
                if archived.files > 0 {
                    write!(
                        f,
                        "; archived: {} records in {} file(s) verified",
                        archived.verified, archived.files
                    )?;
                }
                for e in &archived.expired {
                    write!(
                        f,
                        "; archived seq {}..={} deleted by retention (last record on {})",
                        e.from_seq, e.to_seq, e.last_day
                    )?;
                }
                Ok(())
            }
            VerifyReport::Changed { seq } => write!(f, "changed record at seq {seq}"),
            VerifyReport::Missing { after_seq } => {
                write!(f, "record(s) missing after seq {after_seq}")
            }
            VerifyReport::Anchor { detail } => write!(f, "archive anchor: {detail}"),
            VerifyReport::Archived {
                from_seq,
                to_seq,
                detail,
            } => write!(f, "archived range {from_seq}..={to_seq}: {detail}"),
        }
    }
}

/// How long the journal is kept. Read from the configuration only within bounds
/// ([`Retention::check`]); the store refuses to archive with values out of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RetentionFields")]
pub struct Retention {
    /// Archive files are deleted after this many years (default 3; 1 to 100).
    pub keep_years: u32,
    /// Records older than this many months leave the database for the archive (default 3; 1
    /// to `keep_years` × 12).
    pub online_months: u32,
}

/// [`Retention`] as written in the configuration, before its bounds are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionFields {
    #[serde(default = "default_keep_years")]
    keep_years: u32,
    #[serde(default = "default_online_months")]
    online_months: u32,
}

impl TryFrom<RetentionFields> for Retention {
    type Error = StoreError;

    fn try_from(f: RetentionFields) -> Result<Retention, StoreError> {
        let r = Retention {
            keep_years: f.keep_years,
            online_months: f.online_months,
        };
        r.check()?;
        Ok(r)
    }
}

/// The years [`Retention::keep_years`] may be.
pub const KEEP_YEARS: std::ops::RangeInclusive<u32> = 1..=100;

impl Retention {
    /// Whether the values are within bounds: `keep_years` 1 to 100, `online_months` 1 to
    /// `keep_years` × 12. The error names the field.
    pub fn check(&self) -> Result<(), StoreError> {
        if !KEEP_YEARS.contains(&self.keep_years) {
            return Err(StoreError::Other(format!(
                "audit retention: keep_years = {} is out of bounds ({}..={} years)",
                self.keep_years,
                KEEP_YEARS.start(),
                KEEP_YEARS.end()
            )));
        }
        let most = self.keep_years * 12;
        if !(1..=most).contains(&self.online_months) {
            return Err(StoreError::Other(format!(
                "audit retention: online_months = {} is out of bounds (1..={most} months: \
                 at least one, and no more than keep_years = {})",
                self.online_months, self.keep_years
            )));
        }
        Ok(())
    }
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

/// Where [`AuditStore::verify_with`] finds the archive files, and what retention may have
/// deleted from there by `now` (as [`AuditStore::archive`] was given them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveCheck {
    pub dir: PathBuf,
    pub retention: Retention,
    pub now: OffsetDateTime,
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
    /// Walks the whole chain: the archived ranges against their files in `archive`'s
    /// directory (each file exactly the range its row records, from seq 1 to the anchor; a
    /// file retention deleted by `archive.now` is reported in [`ArchivedPart::expired`]), then
    /// the online records from the anchor to the head. Without `archive` a journal that has
    /// archived anything does not verify ([`VerifyReport::Archived`]: its files cannot be
    /// checked).
    async fn verify_with(&self, archive: Option<&ArchiveCheck>)
        -> Result<VerifyReport, StoreError>;
    /// [`AuditStore::verify_with`] without an archive directory: for a journal that has never
    /// been archived.
    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.verify_with(None).await
    }
    /// Moves records older than `retention.online_months` before `now` to a gzip JSON-lines
    /// file in `dir`, records the new anchor and deletes them; deletes archive files in `dir`
    /// whose last record (the day in the file's name) is older than `retention.keep_years`.
    /// Refuses retention out of bounds ([`Retention::check`]).
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
            archived: ArchivedPart::default(),
        }
    }
}

/// One archived range as listed in `audit_archive`: what its file must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedRange {
    pub from_seq: u64,
    pub to_seq: u64,
    /// The `prev_hash` of its first record.
    pub first_prev_hash: String,
    /// The hash of its last record.
    pub last_hash: String,
    /// Its file's name in the archive directory.
    pub file: String,
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

/// Checks the archived part of a store's chain (`ranges`, which [`check_anchor`] found
/// contiguous from seq 1 to the anchor) against the files in `archive`'s directory: each must
/// hold exactly its range ([`verify_archive`]), or be one retention deleted by `archive.now`:
/// named for its range and a last day past retention, and before every range whose file is
/// there. (When retention has deleted every file, a row claiming the newest of them cannot be
/// checked against anything kept here; the SOC's copy of the events is the witness then.)
/// `Err` is the first range that does not check out.
pub(crate) fn check_archived(
    ranges: &[ArchivedRange],
    archive: Option<&ArchiveCheck>,
) -> Result<Result<ArchivedPart, VerifyReport>, StoreError> {
    let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
        return Ok(Ok(ArchivedPart::default()));
    };
    let Some(archive) = archive else {
        return Ok(Err(VerifyReport::Archived {
            from_seq: first.from_seq,
            to_seq: last.to_seq,
            detail: "not checked: no archive directory given".into(),
        }));
    };
    archive.retention.check()?;
    let limit = retention_limit(archive.now, archive.retention.keep_years);
    let mut part = ArchivedPart::default();
    // The last range whose file is there. Retention deletes files by the day of their last
    // record, and ranges are archived in order, so the files it deleted are always those of
    // the oldest ranges: a range after one whose file is still there cannot have gone by
    // retention, whatever its (claimed) file's name says.
    let mut present: Option<&ArchivedRange> = None;
    for r in ranges {
        let problem = |detail: String| {
            Ok(Err(VerifyReport::Archived {
                from_seq: r.from_seq,
                to_seq: r.to_seq,
                detail,
            }))
        };
        // A bare name: the row must not point outside the directory.
        if r.file.is_empty() || r.file == "." || r.file == ".." || r.file.contains(['/', '\\']) {
            return problem(format!("file name {:?} names no archive file", r.file));
        }
        let path = archive.dir.join(&r.file);
        match std::fs::metadata(&path) {
            Ok(_) => match verify_archive(&path, r)? {
                VerifyReport::Ok { count, .. } => {
                    part.files += 1;
                    part.verified += count;
                    present = Some(r);
                }
                other => return problem(format!("file {}: {other}", r.file)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(kept) = present {
                    return problem(format!(
                        "file {} missing from {}, while the file of the earlier range {}..={} \
                         is there (retention deletes the oldest files first)",
                        r.file,
                        archive.dir.display(),
                        kept.from_seq,
                        kept.to_seq
                    ));
                }
                match ArchiveName::parse(&r.file) {
                    Some(name)
                        if name.from_seq == r.from_seq
                            && name.to_seq == r.to_seq
                            && name.last_day < limit =>
                    {
                        part.expired.push(ExpiredRange {
                            from_seq: r.from_seq,
                            to_seq: r.to_seq,
                            last_day: name.last_day,
                        })
                    }
                    _ => {
                        return problem(format!(
                            "file {} missing from {}",
                            r.file,
                            archive.dir.display()
                        ))
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Ok(part))
}

/// A back end's verification finished: the archived ranges it read in the same snapshot
/// checked against their files (on a blocking thread: it reads and unzips them), then
/// `online`, the walk from the anchor to the head. A problem in the archived part comes first,
/// as it lies before the online one.
pub(crate) async fn with_archived(
    ranges: Vec<ArchivedRange>,
    online: VerifyReport,
    archive: Option<&ArchiveCheck>,
) -> Result<VerifyReport, StoreError> {
    if ranges.is_empty() {
        return Ok(online);
    }
    let archive = archive.cloned();
    let checked = tokio::task::spawn_blocking(move || check_archived(&ranges, archive.as_ref()))
        .await
        .map_err(|e| StoreError::Other(format!("checking the archive files: {e}")))??;
    Ok(match checked {
        Err(problem) => problem,
        Ok(part) => {
            let mut online = online;
            if let VerifyReport::Ok { archived, .. } = &mut online {
                *archived = part;
            }
            online
        }
    })
}

/// The oldest time still kept online: `now` less `months` calendar months (the earliest time
/// there is, when that goes back further).
pub fn online_cutoff(now: OffsetDateTime, months: u32) -> OffsetDateTime {
    subtract_months(now, months)
}

/// `t` less `months` calendar months, the day kept within the month; saturates at the earliest
/// time there is.
fn subtract_months(t: OffsetDateTime, months: u32) -> OffsetDateTime {
    let earliest = time::PrimitiveDateTime::MIN.assume_utc();
    let total = i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1 - i64::from(months);
    let Ok(year) = i32::try_from(total.div_euclid(12)) else {
        return earliest;
    };
    let month = time::Month::try_from(u8::try_from(total.rem_euclid(12) + 1).unwrap_or(1))
        .unwrap_or(time::Month::January);
    let day = t.day().min(time::util::days_in_month(month, year));
    match time::Date::from_calendar_date(year, month, day) {
        Ok(date) if year > time::Date::MIN.year() => t.replace_date(date),
        _ => earliest,
    }
}

/// The day (UTC) before which an archive file's last record makes it due for deletion at `now`
/// when retention keeps files `keep_years`.
fn retention_limit(now: OffsetDateTime, keep_years: u32) -> time::Date {
    from_time_us(time_us(subtract_months(now, keep_years.saturating_mul(12)))).date()
}

/// What an archive file's name says: `audit-<first day>_<last day>-<first seq>-<last
/// seq>.jsonl.gz` ([`ArchiveWriter::finish`]).
struct ArchiveName {
    last_day: time::Date,
    from_seq: u64,
    to_seq: u64,
}

impl ArchiveName {
    fn parse(name: &str) -> Option<ArchiveName> {
        let rest = name.strip_prefix("audit-")?.strip_suffix(".jsonl.gz")?;
        let (days, seqs) = rest.split_once('-')?;
        let (first_day, last_day) = days.split_once('_')?;
        let (from, to) = seqs.split_once('-')?;
        let seq = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
        };
        parse_day(first_day)?;
        Some(ArchiveName {
            last_day: parse_day(last_day)?,
            from_seq: seq(from)?,
            to_seq: seq(to)?,
        })
    }
}

/// A day written `YYYYMMDD` ([`day`]).
fn parse_day(d: &str) -> Option<time::Date> {
    if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = d[..4].parse().ok()?;
    let month: u8 = d[4..6].parse().ok()?;
    let day: u8 = d[6..].parse().ok()?;
    time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
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
    let limit = retention_limit(now, keep_years);
    let mut deleted = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(deleted);
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(ArchiveName::parse)
        else {
            continue;
        };
        if name.last_day < limit {
            std::fs::remove_file(&path)?;
            deleted.push(path);
        }
    }
    deleted.sort();
    Ok(deleted)
}

/// Checks an archive file against the range its `audit_archive` row records: the file must
/// hold exactly `expected`, from its first seq (after its `first_prev_hash`) to its last seq
/// and hash, every hash and link checked. A record cut off either end, or a file that does not
/// read back (damaged gzip or JSON), is reported; `Ok` carries the count and last hash.
pub fn verify_archive(file: &Path, expected: &ArchivedRange) -> Result<VerifyReport, StoreError> {
    let Some(anchor_seq) = expected.from_seq.checked_sub(1) else {
        return Ok(VerifyReport::Anchor {
            detail: "an archived range starting at seq 0".into(),
        });
    };
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(std::fs::File::open(file)?));
    let mut walk = ChainWalk::new(anchor_seq, &expected.first_prev_hash);
    for line in reader.lines() {
        let line = match line {
            Ok(l) => l,
            // Not gzip, cut inside the stream, not UTF-8: the next record does not read.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                return Ok(VerifyReport::Changed {
                    seq: walk.expected_seq,
                })
            }
            Err(e) => return Err(e.into()),
        };
        if line.is_empty() {
            continue;
        }
        let Ok(l) = serde_json::from_str::<ArchiveLine>(&line) else {
            return Ok(VerifyReport::Changed {
                seq: walk.expected_seq,
            });
        };
        let row = match Row::new_from_body(&l.body, l.seq, &l.prev_hash) {
            Some(mut r) => {
                r.hash = l.hash;
                r
            }
            None => return Ok(VerifyReport::Changed { seq: l.seq }),
        };
        if !walk.step(&row) {
            break;
        }
    }
    Ok(walk.finish(expected.to_seq, &expected.last_hash))
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
    async fn verify_with(&self, _: Option<&ArchiveCheck>) -> Result<VerifyReport, StoreError> {
        Ok(VerifyReport::Ok {
            count: 0,
            first_seq: 1,
            last_seq: 0,
            last_hash: GENESIS_HASH.into(),
            archived: ArchivedPart::default(),
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
    fn months_beyond_the_calendar_saturate_at_the_earliest_time_instead_of_wrapping() {
        let now = datetime!(2026-05-31 10:00 +05:00);
        let earliest = time::PrimitiveDateTime::MIN.assume_utc();
        // `months as i32` made u32::MAX one month *ahead*; a year out of range was `now`.
        for months in [u32::MAX, u32::MAX / 2, 200_000, 12 * 20_000] {
            assert_eq!(online_cutoff(now, months), earliest, "{months} months");
        }
        assert_eq!(
            online_cutoff(now, 12 * 2000),
            datetime!(0026-05-31 10:00 +05:00)
        );
        // Nothing is before the earliest day: retention of that many years deletes no file.
        assert_eq!(
            retention_limit(now, 20_000),
            time::PrimitiveDateTime::MIN.date()
        );
        assert_eq!(retention_limit(now, 3), time::macros::date!(2023 - 05 - 31));
    }

    #[test]
    fn retention_out_of_bounds_is_refused_naming_the_field() {
        let read = |text: &str| toml::from_str::<Retention>(text).map_err(|e| e.to_string());
        assert_eq!(read(""), Ok(Retention::default()));
        assert_eq!(
            read("keep_years = 100\nonline_months = 1200"),
            Ok(Retention {
                keep_years: 100,
                online_months: 1200
            })
        );
        for (text, field) in [
            ("keep_years = 20000", "keep_years = 20000"),
            ("keep_years = 0", "keep_years = 0"),
            ("keep_years = 101", "keep_years = 101"),
            ("online_months = 0", "online_months = 0"),
            ("online_months = 37", "online_months = 37"),
            ("keep_years = 1\nonline_months = 13", "online_months = 13"),
            ("online_months = 4000000000", "online_months = 4000000000"),
        ] {
            let err = read(text).expect_err(text);
            assert!(err.contains(field), "{text}: {err}");
            assert!(err.contains("out of bounds"), "{text}: {err}");
        }
        assert!(read("keep_years = 3\nextra = 1").is_err());
        let huge = Retention {
            keep_years: 20_000,
            online_months: 3,
        };
        assert!(huge.check().is_err());
    }

    #[test]
    fn archive_file_names_read_back_as_written() {
        let name = ArchiveName::parse("audit-20260515_20260601-000000000001-000000000010.jsonl.gz")
            .expect("parses");
        assert_eq!(
            (name.last_day, name.from_seq, name.to_seq),
            (time::macros::date!(2026 - 06 - 01), 1, 10)
        );
        for odd in [
            "x",
            "audit-20260515_20260601-1-10.jsonl",
            "audit-20260515_20261301-1-10.jsonl.gz",
            "audit-2026051_20260601-1-10.jsonl.gz",
            "audit-20260515_20260601--10.jsonl.gz",
            "audit-20260515_20260601-1-+10.jsonl.gz",
        ] {
            assert!(ArchiveName::parse(odd).is_none(), "{odd}");
        }
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
