//! The audit journal on SQLite: its own database file `audit.db` (WAL) in a given directory,
//! one connection on a thread of its own (which also chains and compresses each batch), 16 KiB
//! pages for a new file, triggers that keep the journal append-only.
//!
//! Layout: one row per *append* rather than per event, because a row per event (its B-tree
//! entries, five secondary indexes and its share of every commit) cost ~16 µs of CPU per event
//! and a quarter of the gateway's accept rate. `audit_block` holds a batch of consecutive
//! records as text, one line per record: `<seq> <record>\n` (the record text of
//! [`crate::record`], which never holds a line break), stored as one zstd frame
//! (level 1: a block shrinks ~15 times for about the CPU SQLite saves on the pages it no
//! longer writes; blocks written before compression are plain TEXT and read as they are),
//! the records' hashes in `hashes`, 32 bytes each in seq order (kept out of the text: random
//! hex made a tenth of its bytes and a third of zstd's time; blocks written before keep
//! `<seq> <hash> <record>` lines and no `hashes`), plus the first record's `prev_hash`
//! and the batch's time range. `audit_key` says which
//! blocks hold which transaction, account, kind, target and severity (`t:`, `a:`, `k:`,
//! `g:`, `s:` prefixes), by a 64-bit code of each key ([`key_code`]: the time-ordered half of
//! a UUID transaction id, else a hash; journals that kept the keys' text are converted when
//! opened), deduplicated per block; queries walk the blocks it names, newest first, and
//! filter the records exactly, so codes that collide cost reading a block, not a wrong
//! answer. For time windows each block also keeps `upto_us`, the latest record time
//! of it and every block before it (never decreasing, indexed), and `late_us`, how far its
//! earliest record lies before the previous block's `upto_us`. A window ending at `to` starts
//! its walk at the first block whose `upto_us` reaches `to` plus the greatest `late_us`
//! (later blocks cannot hold a record before `to`) and stops at the first block whose
//! `upto_us` is before `from`, so a window months back reads its own blocks, not every newer
//! one. The chain and its hashes are per record, exactly as on PostgreSQL, so
//! `verify` still names the record that changed; it also checks each block's time range and
//! that every record's keys are in `audit_key` (a key removed would hide a record from
//! queries) and each block's time bookkeeping. A journal written with the older per-event
//! layout (`audit_log`) is moved into blocks when opened; blocks written before the time
//! bookkeeping get it then too.
//!
//! `INSERT OR REPLACE` deletes the row it conflicts with without firing DELETE triggers (unless
//! `recursive_triggers` is on), so BEFORE INSERT triggers refuse an insert that would replace a
//! block or an archived range, and any insert into `audit_head` or `audit_anchor` once their
//! row exists (the schema's own `INSERT OR IGNORE` of the initial row, run at every open and by
//! earlier versions, is let through as the no-op it is). `audit_key` needs none: its key is
//! all its columns, so a replacement is the row it replaces. Journals get these triggers when
//! opened.
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use time::OffsetDateTime;

use super::{
    chain_digest, check_anchor, online_cutoff, page_of, prune_archives, time_us, window_us,
    with_archived, ArchiveCheck, ArchiveReport, ArchiveWriter, ArchivedRange, AuditFilter,
    AuditStore, Batch, ChainWalk, Entry, Page, Retention, Row, StoreError, StoredRecord,
    VerifyReport, GENESIS_HASH,
};
use crate::event::AuditEvent;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS audit_block (
    first_seq   INTEGER PRIMARY KEY,
    last_seq    INTEGER NOT NULL,
    prev_hash   TEXT NOT NULL,
    min_time_us INTEGER NOT NULL,
    max_time_us INTEGER NOT NULL,
    records     TEXT NOT NULL,
    upto_us     INTEGER NOT NULL DEFAULT 0,
    late_us     INTEGER NOT NULL DEFAULT 0,
    hashes      BLOB
);
CREATE TABLE IF NOT EXISTS audit_key (
    key       INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    PRIMARY KEY (key, first_seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS audit_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq  INTEGER NOT NULL,
    last_hash TEXT NOT NULL
);
INSERT OR IGNORE INTO audit_head VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE IF NOT EXISTS audit_anchor (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    archived_seq  INTEGER NOT NULL,
    archived_hash TEXT NOT NULL
);
INSERT OR IGNORE INTO audit_anchor VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE IF NOT EXISTS audit_archive (
    to_seq          INTEGER PRIMARY KEY,
    from_seq        INTEGER NOT NULL,
    first_prev_hash TEXT NOT NULL,
    last_hash       TEXT NOT NULL,
    file            TEXT NOT NULL,
    archived_at     TEXT NOT NULL
);

CREATE TRIGGER IF NOT EXISTS audit_block_no_delete BEFORE DELETE ON audit_block
WHEN OLD.last_seq > (SELECT archived_seq FROM audit_anchor WHERE id = 1)
BEGIN SELECT RAISE(ABORT, 'audit_block rows are only removed by archiving'); END;
CREATE TRIGGER IF NOT EXISTS audit_head_forward BEFORE UPDATE ON audit_head
WHEN NEW.last_seq <= OLD.last_seq
BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END;
CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END;
CREATE TRIGGER IF NOT EXISTS audit_anchor_forward BEFORE UPDATE ON audit_anchor
WHEN NEW.archived_seq <= OLD.archived_seq
  OR NEW.archived_seq > (SELECT last_seq FROM audit_head WHERE id = 1)
  OR NOT EXISTS (SELECT 1 FROM audit_archive
                 WHERE to_seq = NEW.archived_seq AND last_hash = NEW.archived_hash)
BEGIN SELECT RAISE(ABORT, 'audit_anchor only moves forward, up to the head, to a recorded archived range'); END;
CREATE TRIGGER IF NOT EXISTS audit_anchor_no_delete BEFORE DELETE ON audit_anchor
BEGIN SELECT RAISE(ABORT, 'audit_anchor cannot be deleted'); END;
CREATE TRIGGER IF NOT EXISTS audit_archive_no_update BEFORE UPDATE ON audit_archive
BEGIN SELECT RAISE(ABORT, 'audit_archive is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_archive_no_delete BEFORE DELETE ON audit_archive
BEGIN SELECT RAISE(ABORT, 'audit_archive is append-only'); END;

CREATE TRIGGER IF NOT EXISTS audit_block_no_replace BEFORE INSERT ON audit_block
WHEN EXISTS (SELECT 1 FROM audit_block WHERE first_seq = NEW.first_seq)
BEGIN SELECT RAISE(ABORT, 'audit_block is append-only: a block is never replaced'); END;
CREATE TRIGGER IF NOT EXISTS audit_archive_no_replace BEFORE INSERT ON audit_archive
WHEN EXISTS (SELECT 1 FROM audit_archive WHERE to_seq = NEW.to_seq)
BEGIN SELECT RAISE(ABORT, 'audit_archive is append-only: a range is never replaced'); END;
CREATE TRIGGER IF NOT EXISTS audit_head_one_row BEFORE INSERT ON audit_head
WHEN EXISTS (SELECT 1 FROM audit_head)
BEGIN
    SELECT RAISE(IGNORE) WHERE NEW.id = 1 AND NEW.last_seq = 0
        AND NEW.last_hash = '0000000000000000000000000000000000000000000000000000000000000000';
    SELECT RAISE(ABORT, 'audit_head has one row, which only moves forward');
END;
CREATE TRIGGER IF NOT EXISTS audit_anchor_one_row BEFORE INSERT ON audit_anchor
WHEN EXISTS (SELECT 1 FROM audit_anchor)
BEGIN
    SELECT RAISE(IGNORE) WHERE NEW.id = 1 AND NEW.archived_seq = 0
        AND NEW.archived_hash = '0000000000000000000000000000000000000000000000000000000000000000';
    SELECT RAISE(ABORT, 'audit_anchor has one row, which only moves forward');
END;
"#;

/// The triggers that keep `audit_key` append-only, created once it holds key codes (after
/// [`migrate_text_keys`] on a journal from before them).
const KEY_TRIGGERS: &str = r#"
CREATE TRIGGER IF NOT EXISTS audit_key_no_update BEFORE UPDATE ON audit_key
BEGIN SELECT RAISE(ABORT, 'audit_key is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_key_no_delete BEFORE DELETE ON audit_key
WHEN OLD.first_seq > (SELECT archived_seq FROM audit_anchor WHERE id = 1)
BEGIN SELECT RAISE(ABORT, 'audit_key rows are only removed by archiving'); END;
"#;

/// Indexes on the time bookkeeping, created once the columns exist (after
/// [`add_time_bookkeeping`] on a journal from before them).
const TIME_INDEXES: &str = r#"
CREATE INDEX IF NOT EXISTS audit_block_upto ON audit_block (upto_us);
CREATE INDEX IF NOT EXISTS audit_block_late ON audit_block (late_us);
"#;

const BLOCK_NO_UPDATE: &str =
    "CREATE TRIGGER IF NOT EXISTS audit_block_no_update BEFORE UPDATE ON audit_block
BEGIN SELECT RAISE(ABORT, 'audit_block is append-only'); END;";

/// SQLite's page cache of the journal's connection, in KiB (SQLite's default is 2 MiB). A
/// message's later events add its transaction key beside the one its first event added, so
/// the key index is written wherever the messages in flight are; with the default cache a
/// backlog of 80,000 messages read a page from the file every few events (a tenth of the
/// journal thread's time in the delivery benchmark), with 16 MiB hardly ever. The cache fills
/// only as far as the journal is used.
const JOURNAL_CACHE_KIB: i64 = 16 * 1024;

/// Work for the journal's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The journal in `<dir>/audit.db`. Its one connection lives on a thread of its own (named
/// `qaqpa-audit-db`) that runs appends, queries and verifications in turn: one long-lived
/// thread keeps SQLite's and the allocator's memory in one place, where short-lived blocking
/// threads each left their own behind (hundreds of MB under load).
#[derive(Clone)]
pub struct SqliteAuditStore {
    jobs: Arc<Mutex<std::sync::mpsc::Sender<Job>>>,
    path: PathBuf,
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_u64(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

fn head(conn: &Connection) -> rusqlite::Result<(u64, String)> {
    conn.prepare_cached("SELECT last_seq, last_hash FROM audit_head WHERE id = 1")?
        .query_row([], |r| Ok((seq_u64(r.get(0)?), r.get(1)?)))
}

fn anchor(conn: &Connection) -> rusqlite::Result<(u64, String)> {
    conn.query_row(
        "SELECT archived_seq, archived_hash FROM audit_anchor WHERE id = 1",
        [],
        |r| Ok((seq_u64(r.get(0)?), r.get(1)?)),
    )
}

/// A block's key codes ([`key_code`]), each once. Hashed with FxHash, not SipHash: SipHash
/// was a tenth of the journal thread's time in the delivery benchmark.
type KeySet = HashSet<i64, BuildHasherDefault<rustc_hash::FxHasher>>;

/// Adds the codes of one event's `audit_key` entries (what queries can look blocks up by) to
/// `into`.
fn keys_of(event: &AuditEvent, into: &mut KeySet) {
    into.extend(KeyCodes::of(event).as_slice());
}

/// The codes of one event's `audit_key` entries, at most five: its transaction, account,
/// kind, target and severity. Each is coded from its prefix and value as they are, without
/// building the key's text; an [`Entry`] carries them from the thread that recorded the event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyCodes {
    codes: [i64; 5],
    len: usize,
}

impl KeyCodes {
    pub(crate) fn of(event: &AuditEvent) -> KeyCodes {
        const SEVERITIES: [&str; 8] = ["0", "1", "2", "3", "4", "5", "6", "7"];
        let mut k = KeyCodes {
            codes: [0; 5],
            len: 0,
        };
        let mut add = |code: i64| {
            k.codes[k.len] = code;
            k.len += 1;
        };
        if let Some(t) = &event.transaction_id {
            add(key_code_of("t:", t));
        }
        if let Some(a) = &event.account {
            add(key_code_of("a:", a));
        }
        add(key_code_of("k:", event.kind.name()));
        if let Some(g) = event.kind.target() {
            add(key_code_of("g:", g));
        }
        add(key_code_of(
            "s:",
            SEVERITIES[usize::from(event.level.severity()).min(SEVERITIES.len() - 1)],
        ));
        k
    }

    pub(crate) fn as_slice(&self) -> &[i64] {
        &self.codes[..self.len]
    }
}

/// A key's code, what `audit_key` stores and looks blocks up by (a 64-bit integer rather than
/// the key's text: integers are compared and stored for a fraction of the text's cost, and
/// the transaction key, one per event, was most of the journal thread's SQLite work).
///
/// * A transaction key whose id is a UUID (the gateway's own are UUIDv7, time-ordered): the
///   UUID's first 64 bits: its millisecond and, from the uuid crate, the top 12 bits of the
///   counter it keeps within a millisecond. Transactions begun in the same millisecond so
///   usually share a code (one index row stands for all of them in a block), and codes grow
///   with time, so the inserts walk the index in order rather than landing all over it.
/// * Any other key: its 64-bit FNV-1a hash, prefix included.
///
/// Codes may collide; that only makes a query read a block more than it needs. Queries and
/// `verify` compare every record's own fields, never the code.
pub(crate) fn key_code(key: &str) -> i64 {
    match key.strip_prefix("t:") {
        Some(id) => key_code_of("t:", id),
        None => fnv1a64(FNV_OFFSET, key),
    }
}

/// [`key_code`] of the key `prefix` + `value`.
fn key_code_of(prefix: &str, value: &str) -> i64 {
    if prefix == "t:" {
        if let Ok(id) = uuid::Uuid::try_parse(value) {
            return (id.as_u128() >> 64) as u64 as i64;
        }
    }
    fnv1a64(fnv1a64(FNV_OFFSET, prefix) as u64, value)
}

/// FNV-1a's 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a of `text`, continuing from the state `hash`.
fn fnv1a64(hash: u64, text: &str) -> i64 {
    let mut hash = hash;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash as i64
}

/// The codes of `keys` in order (so the inserts walk the index once).
fn key_codes(keys: &KeySet) -> Vec<i64> {
    let mut codes: Vec<i64> = keys.iter().copied().collect();
    codes.sort_unstable();
    codes
}

/// A batch made ready for a block: each record's text (borrowed, not copied) and time, and
/// the keys of the whole batch.
#[derive(Default)]
struct Prepared<'a> {
    items: Vec<(&'a str, i64)>,
    keys: KeySet,
}

impl<'a> Prepared<'a> {
    /// The bodies, times and keys of `entries`.
    fn of(entries: &'a [Entry]) -> Prepared<'a> {
        let mut items = Vec::with_capacity(entries.len());
        let mut keys = KeySet::default();
        for e in entries {
            items.push((e.body(), e.time_us()));
            keys.extend(e.key_codes());
        }
        Prepared { items, keys }
    }

    /// Adds a body as it was stored before, with its keys when it still parses.
    fn push_stored(&mut self, body: &'a str) {
        let time = match crate::record::decode(body) {
            Ok(e) => {
                keys_of(&e, &mut self.keys);
                time_us(e.time)
            }
            // Kept as it is: `verify` will report it.
            Err(_) => 0,
        };
        self.items.push((body, time));
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// One record of a block, as stored.
struct Line<'a> {
    seq: u64,
    /// Its hash, 64 hex digits.
    hash: Cow<'a, str>,
    body: &'a str,
}

/// Splits a block's text into its records; `Err(n)` names the first line that is not
/// `<seq> <hash> <body>` (0-based). Blocks with a `hashes` column (`hashes`, the block
/// starting at `first_seq`) have `<seq> <body>` lines and keep the records' hashes there
/// instead, 32 bytes per seq from `first_seq` on: `Err(n)` then also names the first line
/// whose seq has no hash there. A record missing from the text leaves its hash unused, and the
/// chain walk reports the gap.
fn lines<'a>(
    records: &'a str,
    hashes: Option<&[u8]>,
    first_seq: u64,
) -> Result<Vec<Line<'a>>, usize> {
    records
        .split_terminator('\n')
        .enumerate()
        .map(|(n, l)| {
            let (seq, rest) = l.split_once(' ').ok_or(n)?;
            let seq: u64 = seq.parse().map_err(|_| n)?;
            let (hash, body) = match hashes {
                None => {
                    let (hash, body) = rest.split_once(' ').ok_or(n)?;
                    (Cow::Borrowed(hash), body)
                }
                Some(hashes) => {
                    let at = seq
                        .checked_sub(first_seq)
                        .and_then(|i| usize::try_from(i).ok())
                        .and_then(|i| i.checked_mul(32))
                        .ok_or(n)?;
                    let digest = hashes.get(at..at.checked_add(32).ok_or(n)?).ok_or(n)?;
                    (Cow::Owned(hex::encode(digest)), rest)
                }
            };
            Ok(Line { seq, hash, body })
        })
        .collect()
}

/// How hard block text is compressed: zstd's level 1 already makes a block of JSON records
/// 8–9 times smaller, and the pages SQLite no longer writes (WAL and checkpoint) pay for the
/// compression (docs/BENCHMARKS.md).
const BLOCK_ZSTD_LEVEL: i32 = 1;

/// The size (log2 of entries) of zstd's match-finding hash table, instead of the larger one
/// level 1 picks for a block's size: a block's records repeat their field names and the times and ids of their
/// neighbours, so the recent positions a small table keeps find the matches, and a table
/// that stays in the CPU's nearest cache finds them sooner. On blocks of gateway records this
/// compressed ~30% faster and ~5% smaller than level 1's own table (docs/BENCHMARKS.md).
const BLOCK_ZSTD_HASH_LOG: u32 = 11;

/// The most text one block may hold; a stored frame that claims more is damaged.
const MAX_BLOCK_TEXT: u64 = 256 << 20;

/// A block buffer bigger than this after use is let go rather than kept for the next block.
const KEEP_BUFFER_BYTES: usize = 4 << 20;

/// What a thread that writes and reads blocks keeps between them: the zstd contexts (each a
/// few hundred KiB to set up) and the buffers a block's text and frame are written into (a
/// busy journal's block is ~0.7 MB of text; a fresh buffer of that size each time costs the
/// page faults of memory the allocator hands back to the system and takes again).
struct Codec {
    compressor: zstd::bulk::Compressor<'static>,
    decompressor: zstd::bulk::Decompressor<'static>,
    text: Vec<u8>,
    frame: Vec<u8>,
}

thread_local! {
    static CODEC: RefCell<Option<Codec>> = const { RefCell::new(None) };
}

fn with_codec<T>(f: impl FnOnce(&mut Codec) -> std::io::Result<T>) -> std::io::Result<T> {
    CODEC.with_borrow_mut(|c| {
        let codec = match c {
            Some(c) => c,
            None => {
                let mut compressor = zstd::bulk::Compressor::new(BLOCK_ZSTD_LEVEL)?;
                compressor
                    .set_parameter(zstd::zstd_safe::CParameter::HashLog(BLOCK_ZSTD_HASH_LOG))?;
                c.insert(Codec {
                    compressor,
                    decompressor: zstd::bulk::Decompressor::new()?,
                    text: Vec::new(),
                    frame: Vec::new(),
                })
            }
        };
        f(codec)
    })
}

/// The thread's block buffers, emptied, taken out for one block; [`return_buffers`] gives
/// them back.
fn take_buffers() -> (Vec<u8>, Vec<u8>) {
    with_codec(|c| {
        let (mut text, mut frame) = (std::mem::take(&mut c.text), std::mem::take(&mut c.frame));
        text.clear();
        frame.clear();
        Ok((text, frame))
    })
    .unwrap_or_default()
}

fn return_buffers(text: Vec<u8>, frame: Vec<u8>) {
    let _ = with_codec(|c| {
        if text.capacity() <= KEEP_BUFFER_BYTES {
            c.text = text;
        }
        if frame.capacity() <= KEEP_BUFFER_BYTES {
            c.frame = frame;
        }
        Ok(())
    });
}

/// A block's text as stored, a zstd frame (which records its own size), written into `frame`.
fn compress_block(text: &[u8], frame: &mut Vec<u8>) -> Result<(), StoreError> {
    frame.clear();
    frame.reserve(zstd::zstd_safe::compress_bound(text.len()));
    with_codec(|c| c.compressor.compress_to_buffer(text, frame))
        .map(|_| ())
        .map_err(|e| StoreError::Other(format!("compressing an audit block: {e}")))
}

/// A block's text from its stored form: a zstd frame, or plain text in blocks written before
/// compression. `None` when it cannot be read back (a damaged frame, a size beyond
/// [`MAX_BLOCK_TEXT`], text that is not UTF-8); `verify` reports that block as changed.
fn block_text(stored: ValueRef<'_>) -> Option<String> {
    match stored {
        ValueRef::Text(t) => String::from_utf8(t.to_vec()).ok(),
        ValueRef::Blob(frame) => {
            let size = zstd::zstd_safe::get_frame_content_size(frame).ok()??;
            if size > MAX_BLOCK_TEXT {
                return None;
            }
            let text = with_codec(|c| c.decompressor.decompress(frame, size as usize)).ok()?;
            if text.len() as u64 != size {
                return None;
            }
            String::from_utf8(text).ok()
        }
        _ => None,
    }
}

/// A block row.
struct Block {
    first_seq: u64,
    last_seq: u64,
    prev_hash: String,
    min_time_us: i64,
    max_time_us: i64,
    /// The records' text; `None` when the stored form cannot be read back.
    records: Option<String>,
    /// The records' hashes, 32 bytes each, in blocks that keep them apart from the text
    /// (`None`: each line holds its hash).
    hashes: Option<Vec<u8>>,
    /// The latest record time of this block and all before it.
    upto_us: i64,
    /// How far this block's earliest record lies before the latest of the blocks before it
    /// (0 when not before).
    late_us: i64,
}

const BLOCK_COLUMNS: &str =
    "first_seq, last_seq, prev_hash, min_time_us, max_time_us, records, upto_us, late_us, hashes";

/// The time bookkeeping of a block with records from `min` to `max` after blocks whose latest
/// record is at `upto_before` (`None`: no block before it is kept): `(upto_us, late_us)`.
fn time_bookkeeping(upto_before: Option<i64>, min: i64, max: i64) -> (i64, i64) {
    match upto_before {
        Some(before) => (before.max(max), before.saturating_sub(min).max(0)),
        None => (max, 0),
    }
}

/// The latest record time of the last block kept.
fn last_upto(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT upto_us FROM audit_block ORDER BY first_seq DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()
}

impl Block {
    /// The block's records; `Err(n)` names the first line (0-based) that cannot be read.
    fn lines(&self) -> Result<Vec<Line<'_>>, usize> {
        match &self.records {
            Some(text) => lines(text, self.hashes.as_deref(), self.first_seq),
            None => Err(0),
        }
    }
}

fn block_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Block> {
    Ok(Block {
        first_seq: seq_u64(r.get(0)?),
        last_seq: seq_u64(r.get(1)?),
        prev_hash: r.get(2)?,
        min_time_us: r.get(3)?,
        max_time_us: r.get(4)?,
        records: block_text(r.get_ref(5)?),
        upto_us: r.get(6)?,
        late_us: r.get(7)?,
        hashes: r.get(8)?,
    })
}

/// The block row of [`insert_block`]: its records chained (or given `hashes`) into `records`,
/// compressed into `frame`, inserted. Returns the last record's hash.
fn write_block(
    tx: &Connection,
    first_seq: u64,
    prev_hash: &str,
    batch: &Prepared,
    hashes: Option<&[String]>,
    records: &mut Vec<u8>,
    frame: &mut Vec<u8>,
) -> Result<String, StoreError> {
    // The text is written as bytes: it is strings and ASCII, and it only goes to zstd.
    records.reserve(batch.items.iter().map(|(b, _)| b.len() + 24).sum());
    // Chained here: the hashes go to their own column, 32 bytes each, and the text holds
    // `<seq> <body>` lines. Random hex in the text made a tenth of its bytes and a third of
    // zstd's time (docs/BENCHMARKS.md). Given (a migration): each line keeps its hash, as the
    // stored one may not even be hex.
    let mut digests: Vec<u8> = Vec::with_capacity(match hashes {
        None => 32 * batch.len(),
        Some(_) => 0,
    });
    let mut hash = prev_hash.as_bytes().to_vec();
    let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
    for (i, &(body, time)) in batch.items.iter().enumerate() {
        let seq = first_seq + i as u64;
        crate::event::push_decimal(records, seq);
        records.push(b' ');
        match hashes {
            Some(given) => {
                hash.clear();
                hash.extend_from_slice(given[i].as_bytes());
                records.extend_from_slice(&hash);
                records.push(b' ');
            }
            None => {
                let digest = chain_digest(&hash, seq, body);
                digests.extend_from_slice(&digest);
                hash.resize(64, b'0');
                // 32 bytes always fit 64 hex digits.
                let _ = hex::encode_to_slice(digest, &mut hash);
            }
        }
        records.extend_from_slice(body.as_bytes());
        records.push(b'\n');
        min_time = min_time.min(time);
        max_time = max_time.max(time);
    }
    let hash = String::from_utf8(hash)
        .map_err(|_| StoreError::Other("an audit record hash is not text".into()))?;
    compress_block(records, frame)?;
    let last_seq = first_seq + batch.len() as u64 - 1;
    let (upto, late) = time_bookkeeping(last_upto(tx)?, min_time, max_time);
    tx.prepare_cached(
        "INSERT INTO audit_block (first_seq, last_seq, prev_hash, min_time_us, max_time_us, records, upto_us, late_us, hashes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        seq_i64(first_seq),
        seq_i64(last_seq),
        prev_hash,
        min_time,
        max_time,
        &frame[..],
        upto,
        late,
        hashes.is_none().then_some(digests)
    ])?;
    Ok(hash)
}

/// Writes one block (and its keys) after `prev_hash` at `first_seq`; returns its last hash.
/// `hashes` gives the records' hashes as stored before (migration); otherwise they are chained
/// here.
fn insert_block(
    tx: &Connection,
    first_seq: u64,
    prev_hash: &str,
    batch: &Prepared,
    hashes: Option<&[String]>,
) -> Result<String, StoreError> {
    let (mut records, mut frame) = take_buffers();
    let written = write_block(
        tx,
        first_seq,
        prev_hash,
        batch,
        hashes,
        &mut records,
        &mut frame,
    );
    return_buffers(records, frame);
    let hash = written?;
    let mut insert = tx.prepare_cached("INSERT INTO audit_key (key, first_seq) VALUES (?1, ?2)")?;
    for code in key_codes(&batch.keys) {
        insert.execute(params![code, seq_i64(first_seq)])?;
    }
    Ok(hash)
}

/// Whether `sql` (a query without parameters) returns a row.
fn exists(conn: &Connection, sql: &str) -> rusqlite::Result<bool> {
    Ok(conn.query_row(sql, [], |_| Ok(())).optional()?.is_some())
}

/// Whether `audit_block` has `column` (journals from before a column lack it).
fn block_has_column(conn: &Connection, column: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM pragma_table_info('audit_block') WHERE name = ?1",
            [column],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Records written by the per-event layout of earlier versions (`audit_log`) go into blocks,
/// their hashes unchanged (the chain formula is the same); then `audit_log` is dropped.
fn migrate_per_event_layout(tx: &Connection) -> Result<(), StoreError> {
    if !exists(
        tx,
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'",
    )? {
        return Ok(());
    }
    let rows: Vec<(u64, String, String, String)> = {
        let mut stmt =
            tx.prepare("SELECT seq, prev_hash, hash, body FROM audit_log ORDER BY seq")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((seq_u64(r.get(0)?), r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows
    };
    // Consecutive runs of at most 256 records per block.
    let mut start = 0;
    while start < rows.len() {
        let mut end = start + 1;
        while end < rows.len() && end - start < 256 && rows[end].0 == rows[end - 1].0 + 1 {
            end += 1;
        }
        let run = &rows[start..end];
        let mut items = Prepared::default();
        for (_, _, _, body) in run {
            items.push_stored(body);
        }
        let hashes: Vec<String> = run.iter().map(|r| r.2.clone()).collect();
        insert_block(tx, run[0].0, &run[0].1, &items, Some(&hashes))?;
        start = end;
    }
    tx.execute_batch("DROP TABLE audit_log;")?;
    tracing::info!(
        records = rows.len(),
        "audit journal moved from the per-event layout into blocks"
    );
    Ok(())
}

/// A journal from before key codes has the keys' text in `audit_key`: the table is rebuilt
/// with their codes (its append-only triggers step aside for that and are created again).
fn migrate_text_keys(tx: &Connection) -> Result<(), StoreError> {
    if !exists(
        tx,
        "SELECT 1 FROM pragma_table_info('audit_key') WHERE name = 'key' AND type = 'TEXT'",
    )? {
        return Ok(());
    }
    tx.execute_batch(
        "CREATE TABLE audit_key_code (
             key       INTEGER NOT NULL,
             first_seq INTEGER NOT NULL,
             PRIMARY KEY (key, first_seq)
         ) WITHOUT ROWID;",
    )?;
    tracing::info!("audit journal: converting its key index to key codes (once; a large journal takes a while)");
    // In code order, so the new index is written front to back: SQLite sorts the rows (on
    // disk when they do not fit its memory) instead of the codes landing at random in an
    // index far larger than the page cache.
    tx.create_scalar_function(
        "qaqpa_key_code",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(key_code(&ctx.get::<String>(0)?)),
    )?;
    let rows = tx.execute(
        "INSERT OR IGNORE INTO audit_key_code (key, first_seq)
         SELECT qaqpa_key_code(key), first_seq FROM audit_key ORDER BY 1, 2",
        [],
    )?;
    tx.remove_function("qaqpa_key_code", 1)?;
    tx.execute_batch(
        "DROP TABLE audit_key;
         ALTER TABLE audit_key_code RENAME TO audit_key;",
    )?;
    tracing::info!(rows, "audit journal: its key index now holds key codes");
    Ok(())
}

/// Blocks written before the time bookkeeping (`upto_us`, `late_us`) get it, computed in seq
/// order; the append-only trigger steps aside for that one update.
fn add_time_bookkeeping(tx: &Connection) -> Result<(), StoreError> {
    if block_has_column(tx, "upto_us")? {
        return Ok(());
    }
    tx.execute_batch(
        "ALTER TABLE audit_block ADD COLUMN upto_us INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE audit_block ADD COLUMN late_us INTEGER NOT NULL DEFAULT 0;
         DROP TRIGGER IF EXISTS audit_block_no_update;",
    )?;
    let times: Vec<(i64, i64, i64)> = {
        let mut stmt = tx.prepare(
            "SELECT first_seq, min_time_us, max_time_us FROM audit_block ORDER BY first_seq",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows
    };
    let mut update =
        tx.prepare("UPDATE audit_block SET upto_us = ?2, late_us = ?3 WHERE first_seq = ?1")?;
    let mut before = None;
    for (first_seq, min, max) in &times {
        let (upto, late) = time_bookkeeping(before, *min, *max);
        update.execute(params![first_seq, upto, late])?;
        before = Some(upto);
    }
    tracing::info!(
        blocks = times.len(),
        "audit journal: time bookkeeping added to its blocks"
    );
    Ok(())
}

/// A journal from before the hashes' own column gets it; its blocks keep their hashes in their
/// lines (the column stays NULL for them) and read as before.
fn add_hashes_column(tx: &Connection) -> Result<(), StoreError> {
    if block_has_column(tx, "hashes")? {
        return Ok(());
    }
    tx.execute_batch("ALTER TABLE audit_block ADD COLUMN hashes BLOB;")?;
    tracing::info!("audit journal: new blocks keep their record hashes in a column of their own");
    Ok(())
}

/// Where a walk newest first may start for records before `to`: the first block whose
/// predecessors already reach `to` plus the greatest lateness of any block. No block after it
/// can hold a record before `to` (its earliest record would be later than that lateness
/// allows). `None`: every block may.
fn last_block_before(conn: &Connection, to_us: i64) -> rusqlite::Result<Option<i64>> {
    let late: i64 = conn.query_row(
        "SELECT coalesce(max(late_us), 0) FROM audit_block",
        [],
        |r| r.get(0),
    )?;
    conn.query_row(
        "SELECT first_seq FROM audit_block WHERE upto_us >= ?1 ORDER BY upto_us, first_seq LIMIT 1",
        [to_us.saturating_add(late)],
        |r| r.get(0),
    )
    .optional()
}

/// Whether `event` (at `seq`) is what `filter` asks for, below `cursor`.
fn wanted(filter: &AuditFilter, cursor: Option<u64>, seq: u64, event: &AuditEvent) -> bool {
    cursor.is_none_or(|c| seq < c)
        && super::in_time_window(filter, event)
        && filter
            .account
            .as_ref()
            .is_none_or(|a| event.account.as_ref() == Some(a))
        && filter.kind.as_ref().is_none_or(|k| event.kind.name() == k)
        && filter
            .min_level
            .is_none_or(|l| event.level.severity() <= l.severity())
        && filter
            .transaction_id
            .as_ref()
            .is_none_or(|t| event.transaction_id.as_ref() == Some(t))
        && filter
            .target
            .as_ref()
            .is_none_or(|t| event.kind.target() == Some(t.as_str()))
}

/// The code of the most selective key a filter names, to find candidate blocks by.
fn driving_key(filter: &AuditFilter) -> Option<i64> {
    let key = if let Some(t) = &filter.transaction_id {
        format!("t:{t}")
    } else if let Some(a) = &filter.account {
        format!("a:{a}")
    } else if let Some(g) = &filter.target {
        format!("g:{g}")
    } else {
        format!("k:{}", filter.kind.as_ref()?)
    };
    Some(key_code(&key))
}

/// Walks the blocks from the anchor (`anchor_seq`, `anchor_hash`) to the recorded head: every
/// record's hash and link, its keys in `audit_key`, each block's bounds and time bookkeeping.
fn verify_blocks(
    tx: &Connection,
    anchor_seq: u64,
    anchor_hash: &str,
    head_seq: u64,
    head_hash: &str,
) -> Result<VerifyReport, StoreError> {
    let mut walk = ChainWalk::new(anchor_seq, anchor_hash);
    {
        let mut has_key =
            tx.prepare("SELECT 1 FROM audit_key WHERE key = ?1 AND first_seq = ?2")?;
        let mut stmt = tx.prepare(&format!(
            "SELECT {BLOCK_COLUMNS} FROM audit_block ORDER BY first_seq"
        ))?;
        let mut rows = stmt.query([])?;
        let mut upto_before: Option<i64> = None;
        'blocks: while let Some(r) = rows.next()? {
            let block = block_from(r)?;
            let lines = match block.lines() {
                Ok(l) => l,
                Err(n) => {
                    return Ok(VerifyReport::Changed {
                        seq: block.first_seq + n as u64,
                    })
                }
            };
            let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
            let mut prev_hash = block.prev_hash.clone();
            for line in &lines {
                let Some(mut row) = Row::new_from_body(line.body, line.seq, &prev_hash) else {
                    return Ok(VerifyReport::Changed { seq: line.seq });
                };
                row.hash = line.hash.to_string();
                if !walk.step(&row) {
                    break 'blocks;
                }
                // Every key of the record must lead to its block.
                let event = crate::record::decode(line.body)?;
                let mut keys = KeySet::default();
                keys_of(&event, &mut keys);
                for code in key_codes(&keys) {
                    let found = has_key
                        .query_row(params![code, seq_i64(block.first_seq)], |_| Ok(()))
                        .optional()?
                        .is_some();
                    if !found {
                        return Ok(VerifyReport::Changed { seq: line.seq });
                    }
                }
                min_time = min_time.min(row.time_us);
                max_time = max_time.max(row.time_us);
                prev_hash = row.hash;
            }
            // The chain walk found gaps and links; what is left is the block's own
            // bookkeeping: where it ends and the time range queries rely on.
            match lines.last().map(|l| l.seq) {
                None => {
                    return Ok(VerifyReport::Missing {
                        after_seq: block.first_seq.saturating_sub(1),
                    })
                }
                Some(last) if last < block.last_seq => {
                    return Ok(VerifyReport::Missing { after_seq: last })
                }
                Some(last) if last > block.last_seq => {
                    return Ok(VerifyReport::Changed {
                        seq: block.last_seq + 1,
                    })
                }
                Some(_) => {}
            }
            // The time bookkeeping time-window queries skip blocks by: after the first
            // block kept, it follows from the block before; the first one's must at
            // least agree with itself (its predecessors may be archived).
            let bookkeeping = match upto_before {
                Some(_) => time_bookkeeping(upto_before, min_time, max_time),
                None if block.late_us > 0 => (
                    block.late_us.saturating_add(min_time).max(max_time),
                    block.late_us,
                ),
                None => (max_time, 0),
            };
            if lines.first().map(|l| l.seq) != Some(block.first_seq)
                || min_time != block.min_time_us
                || max_time != block.max_time_us
                || (block.upto_us, block.late_us) != bookkeeping
            {
                return Ok(VerifyReport::Changed {
                    seq: block.first_seq,
                });
            }
            upto_before = Some(block.upto_us);
        }
    }
    Ok(walk.finish(head_seq, head_hash))
}

impl SqliteAuditStore {
    /// Opens (creating) `<dir>/audit.db` and its schema.
    pub fn open(dir: &Path) -> Result<SqliteAuditStore, StoreError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("audit.db");
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Big pages for a new journal: a block is tens of KB of text, written in a few pages
        // (and system calls) rather than dozens. No effect on an existing file.
        conn.pragma_update(None, "page_size", 16384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -JOURNAL_CACHE_KIB)?;
        {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)?;
            add_time_bookkeeping(&tx)?;
            add_hashes_column(&tx)?;
            tx.execute_batch(BLOCK_NO_UPDATE)?;
            tx.execute_batch(TIME_INDEXES)?;
            migrate_text_keys(&tx)?;
            tx.execute_batch(KEY_TRIGGERS)?;
            migrate_per_event_layout(&tx)?;
            tx.commit()?;
        }
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("qaqpa-audit-db".into())
            .spawn(move || {
                let mut conn = conn;
                while let Ok(job) = queue.recv() {
                    job(&mut conn);
                }
            })?;
        Ok(SqliteAuditStore {
            jobs: Arc::new(Mutex::new(jobs)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| StoreError::Other("the audit journal's thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Other("the audit journal's thread has stopped".into()))?
    }
}

#[async_trait]
impl AuditStore for SqliteAuditStore {
    async fn append(&self, events: Batch) -> Result<u64, StoreError> {
        // Prepared on the journal's thread too: chaining and compressing a batch is a
        // millisecond or so of work that would otherwise hold up a runtime worker (and the
        // requests queued behind it).
        self.with(move |conn| {
            let prepared = Prepared::of(&events);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (seq, hash) = head(&tx)?;
            if prepared.is_empty() {
                return Ok(seq);
            }
            let last_hash = insert_block(&tx, seq + 1, &hash, &prepared, None)?;
            let last_seq = seq + prepared.len() as u64;
            tx.prepare_cached("UPDATE audit_head SET last_seq = ?1, last_hash = ?2 WHERE id = 1")?
                .execute(params![seq_i64(last_seq), last_hash])?;
            tx.commit()?;
            Ok(last_seq)
        })
        .await
    }

    async fn query(
        &self,
        filter: &AuditFilter,
        cursor: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let filter = filter.clone();
        self.with(move |conn| {
            // The bounds in the blocks' microseconds ([`window_us`]), only to skip blocks:
            // `wanted` compares every record's own time.
            let (from_us, to_us) = window_us(&filter);
            // Newest first from below the cursor, or from the last block that can hold a
            // record before `to` (found through the time bookkeeping, not by walking the
            // newer blocks).
            let mut below = seq_i64(cursor.unwrap_or(u64::MAX));
            if let Some(to) = to_us {
                if let Some(last) = last_block_before(conn, to)? {
                    below = below.min(last.saturating_add(1));
                }
            }
            let key = driving_key(&filter);
            let sql = match key {
                Some(_) => "SELECT b.first_seq, b.last_seq, b.prev_hash, b.min_time_us, b.max_time_us, b.records, b.upto_us, b.late_us, b.hashes \
                     FROM audit_key k JOIN audit_block b ON b.first_seq = k.first_seq \
                     WHERE k.key = ?1 AND k.first_seq < ?2 ORDER BY k.first_seq DESC"
                    .to_owned(),
                None => format!(
                    "SELECT {BLOCK_COLUMNS} FROM audit_block WHERE first_seq < ?1 ORDER BY first_seq DESC"
                ),
            };
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = match &key {
                Some(k) => stmt.query(params![k, below])?,
                None => stmt.query(params![below])?,
            };
            let mut records: Vec<StoredRecord> = Vec::new();
            while let Some(r) = rows.next()? {
                let block = block_from(r)?;
                // Neither this block nor any before it has a record from `from` on.
                if from_us.is_some_and(|f| block.upto_us < f) {
                    break;
                }
                if from_us.is_some_and(|f| block.max_time_us < f)
                    || to_us.is_some_and(|t| block.min_time_us >= t)
                {
                    continue;
                }
                let Ok(lines) = block.lines() else {
                    return Err(StoreError::Other(format!(
                        "audit block at seq {} is damaged; run `qaqpa audit verify`",
                        block.first_seq
                    )));
                };
                for (i, line) in lines.iter().enumerate().rev() {
                    if cursor.is_some_and(|c| line.seq >= c) {
                        continue;
                    }
                    let event = crate::record::decode(line.body)?;
                    if !wanted(&filter, cursor, line.seq, &event) {
                        continue;
                    }
                    let prev_hash = match i {
                        0 => block.prev_hash.clone(),
                        _ => lines[i - 1].hash.to_string(),
                    };
                    records.push(StoredRecord {
                        seq: line.seq,
                        prev_hash,
                        hash: line.hash.to_string(),
                        event,
                    });
                    if records.len() > limit {
                        break;
                    }
                }
                if records.len() > limit {
                    break;
                }
            }
            Ok(page_of(records, limit))
        })
        .await
    }

    async fn verify_with(
        &self,
        archive: Option<&ArchiveCheck>,
    ) -> Result<VerifyReport, StoreError> {
        // The archived ranges come back with the online walk's report, read in one snapshot;
        // their files are checked after, off the journal's thread.
        let (ranges, online) = self.with(|conn| {
            let tx = conn.transaction()?;
            let (anchor_seq, anchor_hash) = anchor(&tx)?;
            let (head_seq, head_hash) = head(&tx)?;
            let ranges = {
                let mut stmt = tx.prepare(
                    "SELECT from_seq, to_seq, first_prev_hash, last_hash, file FROM audit_archive ORDER BY to_seq",
                )?;
                let ranges = stmt
                    .query_map([], |r| {
                        Ok(ArchivedRange {
                            from_seq: seq_u64(r.get(0)?),
                            to_seq: seq_u64(r.get(1)?),
                            first_prev_hash: r.get(2)?,
                            last_hash: r.get(3)?,
                            file: r.get(4)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                ranges
            };
            if anchor_seq == 0 && anchor_hash != GENESIS_HASH {
                let detail = "anchor at seq 0 with a hash".into();
                return Ok((Vec::new(), VerifyReport::Anchor { detail }));
            }
            if let Some(problem) = check_anchor(&ranges, anchor_seq, &anchor_hash) {
                return Ok((Vec::new(), problem));
            }
            let online = verify_blocks(&tx, anchor_seq, &anchor_hash, head_seq, &head_hash)?;
            Ok((ranges, online))
        })
        .await?;
        with_archived(ranges, online, archive).await
    }

    async fn archive(
        &self,
        now: OffsetDateTime,
        dir: &Path,
        retention: Retention,
    ) -> Result<ArchiveReport, StoreError> {
        retention.check()?;
        let dir = dir.to_owned();
        self.with(move |conn| {
            let cutoff = time_us(online_cutoff(now, retention.online_months));
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (anchor_seq, anchor_hash) = anchor(&tx)?;
            let mut report = ArchiveReport::default();
            // The archived part is a prefix of the chain: whole blocks, up to the first block
            // holding a record still online.
            let mut writer: Option<ArchiveWriter> = None;
            let mut last_hash = anchor_hash.clone();
            let mut upto = anchor_seq;
            let mut keys_to_delete: Vec<(i64, u64)> = Vec::new();
            {
                let mut stmt = tx.prepare(&format!(
                    "SELECT {BLOCK_COLUMNS} FROM audit_block WHERE first_seq > ?1 ORDER BY first_seq"
                ))?;
                let mut rows = stmt.query(params![seq_i64(anchor_seq)])?;
                while let Some(r) = rows.next()? {
                    let block = block_from(r)?;
                    if block.max_time_us >= cutoff {
                        break;
                    }
                    let broken = |seq: u64| {
                        StoreError::Other(format!(
                            "not archiving: the chain is broken at seq {seq}"
                        ))
                    };
                    let lines = block.lines()
                        .map_err(|n| broken(block.first_seq + n as u64))?;
                    if block.first_seq != upto + 1 || block.prev_hash != last_hash {
                        return Err(StoreError::Other(format!(
                            "not archiving: record(s) missing after seq {upto}"
                        )));
                    }
                    let w = match &mut writer {
                        Some(w) => w,
                        None => writer.insert(ArchiveWriter::create(&dir)?),
                    };
                    let mut keys = KeySet::default();
                    for line in &lines {
                        let mut row = Row::new_from_body(line.body, line.seq, &last_hash)
                            .ok_or_else(|| broken(line.seq))?;
                        if line.seq != upto + 1 || row.hash != *line.hash {
                            return Err(broken(line.seq));
                        }
                        row.hash = line.hash.to_string();
                        w.write(&row)?;
                        let event = crate::record::decode(line.body)?;
                        keys_of(&event, &mut keys);
                        last_hash = row.hash;
                        upto = line.seq;
                    }
                    keys_to_delete.extend(key_codes(&keys).into_iter().map(|k| (k, block.first_seq)));
                }
            }
            if let Some(writer) = writer {
                let file = writer.finish()?;
                let name = file
                    .as_ref()
                    .and_then(|f| f.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                tx.execute(
                    "INSERT INTO audit_archive (to_seq, from_seq, first_prev_hash, last_hash, file, archived_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        seq_i64(upto),
                        seq_i64(anchor_seq + 1),
                        anchor_hash,
                        last_hash,
                        name,
                        crate::event::rfc3339(now)
                    ],
                )?;
                tx.execute(
                    "UPDATE audit_anchor SET archived_seq = ?1, archived_hash = ?2 WHERE id = 1",
                    params![seq_i64(upto), last_hash],
                )?;
                {
                    let mut delete =
                        tx.prepare("DELETE FROM audit_key WHERE key = ?1 AND first_seq = ?2")?;
                    for (key, first_seq) in &keys_to_delete {
                        delete.execute(params![key, seq_i64(*first_seq)])?;
                    }
                }
                tx.execute("DELETE FROM audit_block WHERE last_seq <= ?1", [seq_i64(upto)])?;
                tx.commit()?;
                report.archived = upto - anchor_seq;
                report.file = file;
            }
            report.deleted_files = prune_archives(&dir, now, retention.keep_years)?;
            Ok(report)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::key_code;

    #[test]
    fn keys_other_than_a_transaction_uuid_are_coded_with_64_bit_fnv_1a() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(key_code("") as u64, 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_code("a") as u64, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key_code("foobar") as u64, 0x8594_4171_f739_67e8);
        // A transaction id that is not a UUID is hashed with its prefix.
        assert_eq!(key_code("t:tx-1"), key_code("t:tx-1"));
        assert_ne!(key_code("t:tx-1"), key_code("a:tx-1"));
    }

    #[test]
    fn a_transaction_uuid_is_coded_by_its_first_64_bits_so_codes_follow_time() {
        let id = uuid::Uuid::parse_str("01938f4a-5b6c-7d8e-9f00-112233445566").expect("uuid");
        assert_eq!(
            key_code(&format!("t:{id}")) as u64,
            0x0193_8f4a_5b6c_7d8e,
            "the first half, not a hash"
        );
        let earlier = uuid::Uuid::new_v7(uuid::Timestamp::from_unix_time(1_764_000_000, 0, 0, 0));
        let later = uuid::Uuid::new_v7(uuid::Timestamp::from_unix_time(1_764_000_001, 0, 0, 0));
        assert!(key_code(&format!("t:{earlier}")) < key_code(&format!("t:{later}")));
        // Only the transaction key: an account named like a UUID is hashed.
        assert_ne!(key_code(&format!("a:{id}")) as u64, 0x0193_8f4a_5b6c_7d8e);
    }
}
