//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`. Every write goes
//! through the group-commit writer thread (`writer.rs`); reads use a small pool of read-only
//! connections on blocking threads. It must never answer a write before it is fsync'd, and never
//! block the async runtime on SQLite.
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use qaqpa_core::{ClientId, MessageId, MessageStatus, Receipt};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use time::OffsetDateTime;

use crate::codec::{self, from_micros, to_micros};
use crate::contract::*;
pub use schema::SCHEMA_VERSION;
use writer::WriterHandle;

/// Tuning of the SQLite store. The defaults suit the gateway.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Most write requests committed in one transaction (one fsync).
    pub max_group: usize,
    /// Write requests that may wait for the writer before callers are held back.
    pub queue_depth: usize,
    /// Read-only connections kept open.
    pub readers: usize,
    /// How long a connection waits for a lock held by another process before failing.
    pub busy_timeout: Duration,
    /// Off (the default): every group commit waits for its fsync (`synchronous=FULL`). On: the
    /// writer commits with `synchronous=NORMAL` and goes on with the next group while another
    /// thread fsyncs the WAL and only then answers the committed group's callers. Callers are
    /// still answered only once their write is on disk, but other connections (reads, claims)
    /// may see a write a few milliseconds before it is durable.
    pub pipelined_sync: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            max_group: 1024,
            queue_depth: 8192,
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            pipelined_sync: false,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::DatabaseBusy | C::DatabaseLocked | C::CannotOpen | C::DiskFull) => {
                StoreError::Unavailable(format!("SQLite: {e}"))
            }
            _ => StoreError::Other(format!("SQLite: {e}")),
        }
    }
}

/// The embedded store. Cheap to clone; clones share the writer and the readers.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: WriterHandle,
    readers: Mutex<Vec<Connection>>,
    opts: SqliteOptions,
    /// Dropping it stops the checkpointer thread.
    _checkpointer: std::sync::mpsc::Sender<()>,
    /// Something that must live as long as the store (a temporary directory in tests).
    _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "qaqpa.db";

impl SqliteStore {
    /// Opens (creating if needed) `<dir>/qaqpa.db`, applies migrations and starts the writer.
    pub fn open(dir: &Path, opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(opts.busy_timeout)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Other(format!(
                "{} cannot use WAL mode (got '{mode}')",
                path.display()
            )));
        }
        // Checkpoints run beside the writer (see `spawn_checkpointer`); the writer's own
        // automatic checkpoint stays only as a safety net far above the usual WAL size.
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=20000;",
        )?;
        schema::migrate(&mut conn)?;
        let wal_sync = if opts.pipelined_sync {
            // Commits stop waiting for the disk; the WAL sync thread does (see `writer`).
            conn.execute_batch("PRAGMA synchronous=NORMAL;")?;
            let mut wal_path = path.clone().into_os_string();
            wal_path.push("-wal");
            Some(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(wal_path)?,
            )
        } else {
            None
        };
        let checkpointer = spawn_checkpointer(&path, opts.busy_timeout)?;
        let writer = WriterHandle::spawn(conn, opts.max_group, opts.queue_depth, wal_sync)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer,
                readers: Mutex::new(Vec::new()),
                opts,
                _checkpointer: checkpointer,
                _keep: None,
            }),
        })
    }

    /// A store in a fresh temporary directory, deleted when the last clone is dropped.
    #[cfg(feature = "testing")]
    pub fn open_temporary(opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let dir = crate::testing::TempDir::new("qaqpa-sqlite")?;
        let mut store = Self::open(dir.path(), opts)?;
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner._keep = Some(Box::new(dir));
        }
        Ok(store)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.write(work).await
    }

    /// Runs `work` in one read transaction on a pooled read-only connection.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.take_reader()?;
            let tx = conn.unchecked_transaction()?;
            let result = work(&tx);
            drop(tx);
            inner.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Other(format!("SQLite read task failed: {e}")))?
    }
}

/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Starts a thread that runs passive WAL checkpoints on its own connection, so that copying the
/// WAL into the database (and its fsync) happens beside the writer instead of inside a commit.
/// It stops when the returned sender is dropped.
fn spawn_checkpointer(
    path: &Path,
    busy_timeout: Duration,
) -> Result<std::sync::mpsc::Sender<()>, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy_timeout)?;
    conn.execute_batch("PRAGMA synchronous=FULL;")?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("qaqpa-sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        })?;
    Ok(stop)
}

impl Inner {
    fn take_reader(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.readers.lock().ok().and_then(|mut r| r.pop()) {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(self.opts.busy_timeout)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut r) = self.readers.lock() {
            if r.len() < self.opts.readers {
                r.push(conn);
            }
        }
    }
}

const MSG_COLS: &str = "id, client, kind, to_addr, route, status, document, attachments, \
    signatures, callback_url, idempotency_key, transaction_id, created_at, updated_at, \
    next_attempt_at, attempts, target_ref, last_error, lease_until";

fn parse_id(text: &str) -> Result<MessageId, StoreError> {
    text.parse()
        .map_err(|e| StoreError::Other(format!("stored id '{text}' is invalid: {e}")))
}

fn opt_time(v: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    v.map(from_micros).transpose()
}

/// A `messages` row selected with [`MSG_COLS`], before its attempts and receipts are attached.
fn message_row(r: &Row<'_>) -> Result<(MessageRecord, Option<i64>), StoreError> {
    let id: String = r.get(0)?;
    let status: String = r.get(5)?;
    let document: String = r.get(6)?;
    let attachments: String = r.get(7)?;
    let signatures: String = r.get(8)?;
    let attempts: i64 = r.get(15)?;
    let record = MessageRecord {
        id: parse_id(&id)?,
        client: ClientId(r.get(1)?),
        kind: r.get(2)?,
        to: r.get(3)?,
        route: r.get(4)?,
        status: codec::status(&status)?,
        document: codec::json(&document)?,
        attachments: codec::json(&attachments)?,
        signatures: codec::decode_signatures(&signatures)?,
        callback_url: r.get(9)?,
        idempotency_key: r.get(10)?,
        transaction_id: r.get(11)?,
        created_at: from_micros(r.get(12)?)?,
        updated_at: from_micros(r.get(13)?)?,
        next_attempt_at: opt_time(r.get(14)?)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        target_ref: r.get(16)?,
        last_error: r.get(17)?,
        attempt_log: Vec::new(),
        receipts: Vec::new(),
    };
    Ok((record, r.get(18)?))
}

fn attach_history(conn: &Connection, record: &mut MessageRecord) -> Result<(), StoreError> {
    let id = record.id.to_string();
    let mut st = conn.prepare_cached(
        "SELECT number, worker, started_at, finished_at, outcome, error FROM attempts \
         WHERE message_id = ?1 ORDER BY rowid",
    )?;
    let mut rows = st.query([&id])?;
    while let Some(r) = rows.next()? {
        let number: i64 = r.get(0)?;
        record.attempt_log.push(AttemptRecord {
            number: u32::try_from(number).unwrap_or(0),
            worker: r.get(1)?,
            started_at: from_micros(r.get(2)?)?,
            finished_at: from_micros(r.get(3)?)?,
            outcome: r.get(4)?,
            error: r.get(5)?,
        });
    }
    let mut st = conn.prepare_cached(
        "SELECT seq, received_at, kind, at, data, dedup_key FROM receipts \
         WHERE message_id = ?1 ORDER BY seq",
    )?;
    let mut rows = st.query([&id])?;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let data: String = r.get(4)?;
        record.receipts.push(StoredReceipt {
            seq: u32::try_from(seq).unwrap_or(0),
            received_at: from_micros(r.get(1)?)?,
            receipt: Receipt {
                kind: r.get(2)?,
                at: from_micros(r.get(3)?)?,
                data: codec::json(&data)?,
                dedup_key: r.get(5)?,
            },
        });
    }
    Ok(())
}

fn load_message(
    conn: &Connection,
    client: Option<&str>,
    id: &str,
) -> Result<Option<(MessageRecord, Option<i64>)>, StoreError> {
    let sql =
        format!("SELECT {MSG_COLS} FROM messages WHERE id = ?1 AND (?2 IS NULL OR client = ?2)");
    let mut st = conn.prepare_cached(&sql)?;
    let mut rows = st.query(params![id, client])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let (mut record, lease) = message_row(r)?;
    drop(rows);
    attach_history(conn, &mut record)?;
    Ok(Some((record, lease)))
}

/// A message with its JSON columns encoded before it reaches the writer thread, which then only
/// does SQL.
struct EncodedMessage {
    msg: NewMessage,
    document: String,
    attachments: String,
    signatures: String,
}

impl EncodedMessage {
    fn new(msg: NewMessage) -> Result<Self, StoreError> {
        Ok(Self {
            document: codec::to_json(&msg.document)?,
            attachments: codec::encode_attachments(&msg.attachments)?,
            signatures: codec::encode_signatures(&msg.signatures),
            msg,
        })
    }
}

fn insert_message(conn: &Connection, encoded: EncodedMessage) -> Result<InsertOutcome, StoreError> {
    let msg = &encoded.msg;
    // Insert first and look only when a unique index refused the row: the common case costs
    // one statement.
    let mut st = conn.prepare_cached(
        "INSERT INTO messages (id, client, kind, to_addr, route, status, document, attachments, \
         signatures, callback_url, idempotency_key, request_hash, transaction_id, created_at, \
         updated_at, next_attempt_at, attempts) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14, 0) \
         ON CONFLICT DO NOTHING",
    )?;
    let inserted = st.execute(params![
        msg.id.to_string(),
        msg.client.0,
        msg.kind,
        msg.to,
        msg.route,
        encoded.document,
        encoded.attachments,
        encoded.signatures,
        msg.callback_url,
        msg.idempotency_key,
        msg.request_hash,
        msg.transaction_id,
        to_micros(msg.created_at),
        to_micros(msg.due_at),
    ])?;
    if inserted == 1 {
        return Ok(InsertOutcome::Inserted);
    }
    if let Some(key) = &msg.idempotency_key {
        let mut st = conn.prepare_cached(
            "SELECT id, request_hash FROM messages WHERE client = ?1 AND idempotency_key = ?2",
        )?;
        let found: Option<(String, String)> = st
            .query_row(params![msg.client.0, key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((id, hash)) = found {
            if hash != msg.request_hash {
                return Ok(InsertOutcome::Conflict {
                    existing: parse_id(&id)?,
                });
            }
            let (record, _) = load_message(conn, None, &id)?
                .ok_or_else(|| StoreError::Other(format!("message {id} vanished")))?;
            return Ok(InsertOutcome::Existing(record));
        }
    }
    Err(StoreError::Other(format!(
        "a message with id {} already exists",
        msg.id
    )))
}

fn claim_due(
    conn: &Connection,
    worker: &str,
    now: OffsetDateTime,
    until: OffsetDateTime,
    limit: u32,
) -> Result<Vec<Claimed>, StoreError> {
    let now_us = to_micros(now);
    // Two index walks that stop at the limit (an OR of both would sort the whole backlog on
    // every claim): first messages whose lease expired (a dead worker's), then due ones.
    let mut ids: Vec<String> = {
        let mut st = conn.prepare_cached(
            "SELECT id FROM messages WHERE status = 'delivering' AND lease_until < ?1 \
             ORDER BY lease_until LIMIT ?2",
        )?;
        let rows = st.query_map(params![now_us, limit], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let left = limit.saturating_sub(ids.len() as u32);
    if left > 0 {
        let mut st = conn.prepare_cached(
            "SELECT id FROM messages WHERE status = 'queued' AND next_attempt_at <= ?1 \
             ORDER BY next_attempt_at LIMIT ?2",
        )?;
        let rows = st.query_map(params![now_us, left], |r| r.get::<_, String>(0))?;
        for id in rows {
            ids.push(id?);
        }
    }
    let mut update = conn.prepare_cached(
        "UPDATE messages SET status = 'delivering', lease_owner = ?2, lease_until = ?3, \
         updated_at = ?4 WHERE id = ?1",
    )?;
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        update.execute(params![id, worker, to_micros(until), now_us])?;
        if let Some((record, _)) = load_message(conn, None, &id)? {
            claimed.push(Claimed {
                record,
                lease_until: until,
            });
        }
    }
    Ok(claimed)
}

fn finish_attempt(
    conn: &Connection,
    id: &str,
    worker: &str,
    attempt: &AttemptRecord,
    result: &AttemptResult,
) -> Result<bool, StoreError> {
    let held: Option<i64> = conn
        .prepare_cached(
            "SELECT attempts FROM messages WHERE id = ?1 AND status = 'delivering' \
             AND lease_owner = ?2",
        )?
        .query_row(params![id, worker], |r| r.get(0))
        .optional()?;
    if held.is_none() {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO attempts (message_id, number, worker, started_at, finished_at, outcome, \
         error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id,
        attempt.number,
        attempt.worker,
        to_micros(attempt.started_at),
        to_micros(attempt.finished_at),
        attempt.outcome,
        attempt.error,
    ])?;
    let status = codec::status_after(result).as_str();
    let (next, target_ref, error): (Option<i64>, Option<&str>, Option<&str>) = match result {
        AttemptResult::Delivered { target_ref } => (None, target_ref.as_deref(), None),
        AttemptResult::RetryAt(at) => (Some(to_micros(*at)), None, attempt.error.as_deref()),
        AttemptResult::Failed { reason } | AttemptResult::DeadLetter { reason } => {
            (None, None, Some(reason.as_str()))
        }
    };
    conn.prepare_cached(
        "UPDATE messages SET status = ?2, attempts = attempts + 1, next_attempt_at = ?3, \
         target_ref = coalesce(?4, target_ref), last_error = ?5, updated_at = ?6, \
         lease_owner = NULL, lease_until = NULL WHERE id = ?1",
    )?
    .execute(params![
        id,
        status,
        next,
        target_ref,
        error,
        to_micros(attempt.finished_at)
    ])?;
    Ok(true)
}

fn add_receipt(
    conn: &Connection,
    id: &str,
    receipt: Receipt,
    received_at: OffsetDateTime,
) -> Result<Option<StoredReceipt>, StoreError> {
    let exists: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM messages WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::Other(format!(
            "no message {id} to attach a receipt to"
        )));
    }
    if let Some(key) = &receipt.dedup_key {
        let dup: Option<i64> = conn
            .prepare_cached("SELECT seq FROM receipts WHERE message_id = ?1 AND dedup_key = ?2")?
            .query_row(params![id, key], |r| r.get(0))
            .optional()?;
        if dup.is_some() {
            return Ok(None);
        }
    }
    let seq: i64 = conn
        .prepare_cached("SELECT coalesce(max(seq), 0) + 1 FROM receipts WHERE message_id = ?1")?
        .query_row([id], |r| r.get(0))?;
    conn.prepare_cached(
        "INSERT INTO receipts (message_id, seq, received_at, kind, at, data, dedup_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id,
        seq,
        to_micros(received_at),
        receipt.kind,
        to_micros(receipt.at),
        codec::to_json(&receipt.data)?,
        receipt.dedup_key,
    ])?;
    Ok(Some(StoredReceipt {
        seq: u32::try_from(seq).unwrap_or(u32::MAX),
        received_at: codec::truncate(received_at),
        receipt: Receipt {
            at: codec::truncate(receipt.at),
            ..receipt
        },
    }))
}

const INBOX_COLS: &str = "id, client, source, external_id, kind, from_addr, document, \
    attachments, received_at, acked_at, transaction_id";

fn inbox_row(r: &Row<'_>) -> Result<InboxItem, StoreError> {
    let id: String = r.get(0)?;
    let document: String = r.get(6)?;
    let attachments: String = r.get(7)?;
    Ok(InboxItem {
        id: parse_id(&id)?,
        client: ClientId(r.get(1)?),
        source: r.get(2)?,
        external_id: r.get(3)?,
        kind: r.get(4)?,
        from: r.get(5)?,
        document: codec::json(&document)?,
        attachments: codec::json(&attachments)?,
        received_at: from_micros(r.get(8)?)?,
        acked_at: opt_time(r.get(9)?)?,
        transaction_id: r.get(10)?,
    })
}

const WEBHOOK_COLS: &str =
    "id, client, message_id, url, payload, created_at, due_at, attempts, state, last_error";

fn webhook_row(r: &Row<'_>) -> Result<WebhookEvent, StoreError> {
    let id: String = r.get(0)?;
    let message: Option<String> = r.get(2)?;
    let payload: String = r.get(4)?;
    let attempts: i64 = r.get(7)?;
    Ok(WebhookEvent {
        id: parse_id(&id)?,
        client: ClientId(r.get(1)?),
        message: message.as_deref().map(parse_id).transpose()?,
        url: r.get(3)?,
        payload: codec::json(&payload)?,
        created_at: from_micros(r.get(5)?)?,
        due_at: from_micros(r.get(6)?)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        state: r.get(8)?,
        last_error: r.get(9)?,
    })
}

fn api_key_row(r: &Row<'_>) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        key_id: r.get(0)?,
        secret_hash: r.get(1)?,
        client: ClientId(r.get(2)?),
        role: r.get(3)?,
        label: r.get(4)?,
        created_at: from_micros(r.get(5)?)?,
        revoked_at: opt_time(r.get(6)?)?,
    })
}

fn collect<T>(
    rows: &mut rusqlite::Rows<'_>,
    f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| {
            Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())?)
        })
        .await
    }

    async fn insert_message(&self, msg: NewMessage) -> Result<InsertOutcome, StoreError> {
        let encoded = EncodedMessage::new(msg)?;
        self.write(move |c| insert_message(c, encoded)).await
    }

    async fn get_message(
        &self,
        client: Option<&ClientId>,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let client = client.map(|c| c.0.clone());
        self.read(move |c| Ok(load_message(c, client.as_deref(), &id.to_string())?.map(|m| m.0)))
            .await
    }

    async fn list_messages(
        &self,
        filter: &MessageFilter,
    ) -> Result<Page<MessageSummary>, StoreError> {
        let f = filter.clone();
        self.read(move |c| {
            let limit = codec::page_size(f.limit);
            let mut st = c.prepare_cached(
                "SELECT id, client, kind, to_addr, status, attempts, created_at, updated_at \
                 FROM messages WHERE (?1 IS NULL OR client = ?1) AND (?2 IS NULL OR status = ?2) \
                 AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR created_at >= ?4) \
                 AND (?5 IS NULL OR created_at < ?5) AND (?6 IS NULL OR id > ?6) \
                 ORDER BY id LIMIT ?7",
            )?;
            let mut rows = st.query(params![
                f.client.as_ref().map(|c| c.0.as_str()),
                f.status.map(|s| s.as_str()),
                f.kind,
                f.created_from.map(to_micros),
                f.created_to.map(to_micros),
                f.after.map(|a| a.to_string()),
                limit + 1,
            ])?;
            let items = collect(&mut rows, |r| {
                let id: String = r.get(0)?;
                let status: String = r.get(4)?;
                let attempts: i64 = r.get(5)?;
                Ok(MessageSummary {
                    id: parse_id(&id)?,
                    client: ClientId(r.get(1)?),
                    kind: r.get(2)?,
                    to: r.get(3)?,
                    status: codec::status(&status)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    created_at: from_micros(r.get(6)?)?,
                    updated_at: from_micros(r.get(7)?)?,
                })
            })?;
            Ok(page(items, limit, |m| m.id))
        })
        .await
    }

    async fn claim_due(
        &self,
        worker: &str,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Claimed>, StoreError> {
        let until = codec::truncate(codec::lease_end(now, lease)?);
        let worker = worker.to_owned();
        self.write(move |c| claim_due(c, &worker, now, until, limit))
            .await
    }

    async fn renew_lease(
        &self,
        id: MessageId,
        worker: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let worker = worker.to_owned();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE messages SET lease_until = ?3 WHERE id = ?1 \
                     AND status = 'delivering' AND lease_owner = ?2",
                )?
                .execute(params![id.to_string(), worker, to_micros(until)])?;
            Ok(n == 1)
        })
        .await
    }

    async fn finish_attempt(
        &self,
        id: MessageId,
        worker: &str,
        attempt: AttemptRecord,
        result: AttemptResult,
    ) -> Result<bool, StoreError> {
        let worker = worker.to_owned();
        self.write(move |c| finish_attempt(c, &id.to_string(), &worker, &attempt, &result))
            .await
    }

    async fn release(&self, id: MessageId, worker: &str) -> Result<bool, StoreError> {
        let worker = worker.to_owned();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE messages SET status = 'queued', lease_owner = NULL, \
                     lease_until = NULL WHERE id = ?1 AND status = 'delivering' \
                     AND lease_owner = ?2",
                )?
                .execute(params![id.to_string(), worker])?;
            Ok(n == 1)
        })
        .await
    }

    async fn cancel(&self, client: &ClientId, id: MessageId) -> Result<CancelOutcome, StoreError> {
        let client = client.0.clone();
        self.write(move |c| {
            let id = id.to_string();
            let status: Option<String> = c
                .prepare_cached("SELECT status FROM messages WHERE id = ?1 AND client = ?2")?
                .query_row(params![id, client], |r| r.get(0))
                .optional()?;
            let Some(status) = status else {
                return Ok(CancelOutcome::NotFound);
            };
            let status = codec::status(&status)?;
            if status != MessageStatus::Queued {
                return Ok(CancelOutcome::NotCancellable(status));
            }
            c.prepare_cached(
                "UPDATE messages SET status = 'cancelled', next_attempt_at = NULL, \
                 updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, to_micros(OffsetDateTime::now_utc())])?;
            Ok(CancelOutcome::Cancelled)
        })
        .await
    }

    async fn retry_dead(&self, id: MessageId, now: OffsetDateTime) -> Result<bool, StoreError> {
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE messages SET status = 'queued', next_attempt_at = ?2, \
                     updated_at = ?2, lease_owner = NULL, lease_until = NULL \
                     WHERE id = ?1 AND status IN ('dead_letter', 'failed')",
                )?
                .execute(params![id.to_string(), to_micros(now)])?;
            Ok(n == 1)
        })
        .await
    }

    async fn add_receipt(
        &self,
        id: MessageId,
        receipt: Receipt,
        received_at: OffsetDateTime,
    ) -> Result<Option<StoredReceipt>, StoreError> {
        self.write(move |c| add_receipt(c, &id.to_string(), receipt, received_at))
            .await
    }

    async fn status_counts(&self) -> Result<Vec<(MessageStatus, u64)>, StoreError> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT status, count(*) FROM messages GROUP BY status")?;
            let mut rows = st.query([])?;
            let found = collect(&mut rows, |r| {
                let s: String = r.get(0)?;
                let n: i64 = r.get(1)?;
                Ok((codec::status(&s)?, u64::try_from(n).unwrap_or(0)))
            })?;
            Ok(all_statuses(found))
        })
        .await
    }

    async fn due_count(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached(
                    "SELECT count(*) FROM messages WHERE status = 'queued' AND next_attempt_at <= ?1",
                )?
                .query_row([to_micros(now)], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn insert_inbox(&self, item: InboxItem) -> Result<(MessageId, bool), StoreError> {
        self.write(move |c| {
            let existing: Option<String> = c
                .prepare_cached("SELECT id FROM inbox WHERE source = ?1 AND external_id = ?2")?
                .query_row(params![item.source, item.external_id], |r| r.get(0))
                .optional()?;
            if let Some(id) = existing {
                return Ok((parse_id(&id)?, false));
            }
            c.prepare_cached(
                "INSERT INTO inbox (id, client, source, external_id, kind, from_addr, document, \
                 attachments, received_at, acked_at, transaction_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                item.id.to_string(),
                item.client.0,
                item.source,
                item.external_id,
                item.kind,
                item.from,
                codec::to_json(&item.document)?,
                codec::encode_attachments(&item.attachments)?,
                to_micros(item.received_at),
                item.acked_at.map(to_micros),
                item.transaction_id,
            ])?;
            Ok((item.id, true))
        })
        .await
    }

    async fn get_inbox(
        &self,
        client: Option<&ClientId>,
        id: MessageId,
    ) -> Result<Option<InboxItem>, StoreError> {
        let client = client.map(|c| c.0.clone());
        self.read(move |c| {
            let sql = format!(
                "SELECT {INBOX_COLS} FROM inbox WHERE id = ?1 AND (?2 IS NULL OR client = ?2)"
            );
            let mut st = c.prepare_cached(&sql)?;
            let mut rows = st.query(params![id.to_string(), client])?;
            Ok(collect(&mut rows, inbox_row)?.pop())
        })
        .await
    }

    async fn list_inbox(
        &self,
        client: Option<&ClientId>,
        after: Option<MessageId>,
        unacked_only: bool,
        limit: u32,
    ) -> Result<Page<InboxItem>, StoreError> {
        let client = client.map(|c| c.0.clone());
        self.read(move |c| {
            let limit = codec::page_size(limit);
            let sql = format!(
                "SELECT {INBOX_COLS} FROM inbox WHERE (?1 IS NULL OR client = ?1) \
                 AND (?2 IS NULL OR id > ?2) AND (?3 = 0 OR acked_at IS NULL) \
                 ORDER BY id LIMIT ?4"
            );
            let mut st = c.prepare_cached(&sql)?;
            let mut rows = st.query(params![
                client,
                after.map(|a| a.to_string()),
                unacked_only,
                limit + 1
            ])?;
            let items = collect(&mut rows, inbox_row)?;
            Ok(page(items, limit, |i| i.id))
        })
        .await
    }

    async fn ack_inbox(
        &self,
        client: Option<&ClientId>,
        id: MessageId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let client = client.map(|c| c.0.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE inbox SET acked_at = coalesce(acked_at, ?3) \
                     WHERE id = ?1 AND (?2 IS NULL OR client = ?2)",
                )?
                .execute(params![id.to_string(), client, to_micros(at)])?;
            Ok(n == 1)
        })
        .await
    }

    async fn enqueue_webhook(&self, event: WebhookEvent) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO webhooks (id, client, message_id, url, payload, created_at, due_at, \
                 attempts, state, last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                event.id.to_string(),
                event.client.0,
                event.message.map(|m| m.to_string()),
                event.url,
                codec::to_json(&event.payload)?,
                to_micros(event.created_at),
                to_micros(event.due_at),
                event.attempts,
                event.state,
                event.last_error,
            ])?;
            Ok(())
        })
        .await
    }

    async fn claim_webhooks(
        &self,
        worker: &str,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<WebhookEvent>, StoreError> {
        let until = codec::lease_end(now, lease)?;
        let worker = worker.to_owned();
        self.write(move |c| {
            let now_us = to_micros(now);
            let sql = format!(
                "SELECT {WEBHOOK_COLS} FROM webhooks WHERE state = 'pending' AND due_at <= ?1 \
                 AND (lease_until IS NULL OR lease_until < ?1) ORDER BY due_at, id LIMIT ?2"
            );
            let events = {
                let mut st = c.prepare_cached(&sql)?;
                let mut rows = st.query(params![now_us, limit])?;
                collect(&mut rows, webhook_row)?
            };
            let mut st = c.prepare_cached(
                "UPDATE webhooks SET lease_owner = ?2, lease_until = ?3 WHERE id = ?1",
            )?;
            for e in &events {
                st.execute(params![e.id.to_string(), worker, to_micros(until)])?;
            }
            Ok(events)
        })
        .await
    }

    async fn finish_webhook(
        &self,
        id: MessageId,
        worker: &str,
        result: WebhookResult,
    ) -> Result<bool, StoreError> {
        let worker = worker.to_owned();
        self.write(move |c| {
            let (state, due, error) = match &result {
                WebhookResult::Delivered => ("delivered", None, None),
                WebhookResult::RetryAt { at, error } => {
                    ("pending", Some(to_micros(*at)), Some(error.as_str()))
                }
                WebhookResult::GaveUp { error } => ("failed", None, Some(error.as_str())),
            };
            let n = c
                .prepare_cached(
                    "UPDATE webhooks SET state = ?3, due_at = coalesce(?4, due_at), \
                     last_error = coalesce(?5, last_error), attempts = attempts + 1, \
                     lease_owner = NULL, lease_until = NULL \
                     WHERE id = ?1 AND state = 'pending' AND lease_owner = ?2",
                )?
                .execute(params![id.to_string(), worker, state, due, error])?;
            Ok(n == 1)
        })
        .await
    }

    async fn webhooks_for_message(
        &self,
        message: MessageId,
    ) -> Result<Vec<WebhookEvent>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {WEBHOOK_COLS} FROM webhooks WHERE message_id = ?1 \
                 ORDER BY created_at, id"
            );
            let mut st = c.prepare_cached(&sql)?;
            let mut rows = st.query([message.to_string()])?;
            collect(&mut rows, webhook_row)
        })
        .await
    }

    async fn create_api_key(&self, key: ApiKeyRecord) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO api_keys (key_id, secret_hash, client, role, label, created_at, \
                 revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                key.key_id,
                key.secret_hash,
                key.client.0,
                key.role,
                key.label,
                to_micros(key.created_at),
                key.revoked_at.map(to_micros),
            ])?;
            Ok(())
        })
        .await
    }

    async fn find_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let key_id = key_id.to_owned();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT key_id, secret_hash, client, role, label, created_at, revoked_at \
                 FROM api_keys WHERE key_id = ?1",
            )?;
            let mut rows = st.query([key_id])?;
            Ok(collect(&mut rows, api_key_row)?.pop())
        })
        .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT key_id, secret_hash, client, role, label, created_at, revoked_at \
                 FROM api_keys ORDER BY created_at, key_id",
            )?;
            let mut rows = st.query([])?;
            collect(&mut rows, api_key_row)
        })
        .await
    }

    async fn revoke_api_key(&self, key_id: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let key_id = key_id.to_owned();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE key_id = ?1",
                )?
                .execute(params![key_id, to_micros(at)])?;
            Ok(n == 1)
        })
        .await
    }
}

/// Cuts a `limit + 1` fetch down to a page whose cursor is set only when more rows follow.
pub(crate) fn page<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> MessageId) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(id);
        Page { items, next }
    } else {
        Page { items, next: None }
    }
}

/// Every status with its count, zeros included, in lifecycle order.
pub(crate) fn all_statuses(found: Vec<(MessageStatus, u64)>) -> Vec<(MessageStatus, u64)> {
    MessageStatus::ALL
        .into_iter()
        .map(|s| {
            (
                s,
                found.iter().filter(|(f, _)| *f == s).map(|(_, n)| n).sum(),
            )
        })
        .collect()
}
