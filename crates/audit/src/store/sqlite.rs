//! The audit journal on SQLite: its own database file `audit.db` (WAL) in a given directory,
//! one connection used from blocking threads, triggers that keep `audit_log` append-only.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use time::OffsetDateTime;

use super::{
    check_anchor, online_cutoff, page, prune_archives, time_us, where_clause, ArchiveReport,
    ArchiveWriter, ArchivedRange, AuditFilter, AuditStore, ChainWalk, Page, Param, Retention, Row,
    StoreError, VerifyReport, GENESIS_HASH,
};
use crate::event::AuditEvent;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS audit_log (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL,
    time_us        INTEGER NOT NULL,
    account        TEXT,
    kind           TEXT NOT NULL,
    severity       INTEGER NOT NULL,
    transaction_id TEXT,
    target         TEXT,
    body           TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time_us);
CREATE INDEX IF NOT EXISTS audit_log_account ON audit_log (account, seq);
CREATE INDEX IF NOT EXISTS audit_log_tx ON audit_log (transaction_id, seq);
CREATE INDEX IF NOT EXISTS audit_log_kind ON audit_log (kind, seq);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target, seq);

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

CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > (SELECT archived_seq FROM audit_anchor WHERE id = 1)
BEGIN SELECT RAISE(ABORT, 'audit_log rows are only removed by archiving'); END;
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
"#;

const ROW_COLUMNS: &str =
    "seq, id, time_us, account, kind, severity, transaction_id, target, body, prev_hash, hash";

/// The journal in `<dir>/audit.db`.
#[derive(Clone)]
pub struct SqliteAuditStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
        id: r.get(1)?,
        time_us: r.get(2)?,
        account: r.get(3)?,
        kind: r.get(4)?,
        severity: r.get(5)?,
        transaction_id: r.get(6)?,
        target: r.get(7)?,
        body: r.get(8)?,
        prev_hash: r.get(9)?,
        hash: r.get(10)?,
    })
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn head(conn: &Connection) -> rusqlite::Result<(u64, String)> {
    conn.query_row(
        "SELECT last_seq, last_hash FROM audit_head WHERE id = 1",
        [],
        |r| Ok((u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), r.get(1)?)),
    )
}

fn anchor(conn: &Connection) -> rusqlite::Result<(u64, String)> {
    conn.query_row(
        "SELECT archived_seq, archived_hash FROM audit_anchor WHERE id = 1",
        [],
        |r| Ok((u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), r.get(1)?)),
    )
}

impl SqliteAuditStore {
    /// Opens (creating) `<dir>/audit.db` and its schema.
    pub fn open(dir: &Path) -> Result<SqliteAuditStore, StoreError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("audit.db");
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))?;
        Ok(SqliteAuditStore {
            conn: Arc::new(Mutex::new(conn)),
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
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Other(format!("audit store thread: {e}")))?
    }
}

#[async_trait]
impl AuditStore for SqliteAuditStore {
    async fn append(&self, events: &[AuditEvent]) -> Result<u64, StoreError> {
        let events = events.to_vec();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (mut seq, mut hash) = head(&tx)?;
            if events.is_empty() {
                return Ok(seq);
            }
            {
                let mut insert = tx.prepare_cached(&format!(
                    "INSERT INTO audit_log ({ROW_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ))?;
                for event in &events {
                    seq += 1;
                    let row = Row::new(event, seq, &hash)?;
                    insert.execute(params![
                        seq_i64(row.seq),
                        row.id,
                        row.time_us,
                        row.account,
                        row.kind,
                        row.severity,
                        row.transaction_id,
                        row.target,
                        row.body,
                        row.prev_hash,
                        row.hash
                    ])?;
                    hash = row.hash;
                }
            }
            tx.execute(
                "UPDATE audit_head SET last_seq = ?1, last_hash = ?2 WHERE id = 1",
                params![seq_i64(seq), hash],
            )?;
            tx.commit()?;
            Ok(seq)
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
            let (clause, params) = where_clause(&filter, cursor, |n| format!("?{n}"));
            let sql = format!(
                "SELECT {ROW_COLUMNS} FROM audit_log {clause} ORDER BY seq DESC LIMIT {}",
                limit.saturating_add(1)
            );
            let values: Vec<rusqlite::types::Value> = params
                .into_iter()
                .map(|p| match p {
                    Param::I32(v) => rusqlite::types::Value::Integer(i64::from(v)),
                    Param::I64(v) => rusqlite::types::Value::Integer(v),
                    Param::Text(v) => rusqlite::types::Value::Text(v),
                })
                .collect();
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(values), row_from)?
                .collect::<Result<Vec<_>, _>>()?;
            page(rows, limit)
        })
        .await
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let (anchor_seq, anchor_hash) = anchor(&tx)?;
            let (head_seq, head_hash) = head(&tx)?;
            let ranges = {
                let mut stmt = tx.prepare(
                    "SELECT from_seq, to_seq, first_prev_hash, last_hash FROM audit_archive ORDER BY to_seq",
                )?;
                let ranges = stmt
                    .query_map([], |r| {
                        Ok(ArchivedRange {
                            from_seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                            to_seq: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                            first_prev_hash: r.get(2)?,
                            last_hash: r.get(3)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                ranges
            };
            if anchor_seq == 0 && anchor_hash != GENESIS_HASH {
                return Ok(VerifyReport::Anchor {
                    detail: "anchor at seq 0 with a hash".into(),
                });
            }
            if let Some(problem) = check_anchor(&ranges, anchor_seq, &anchor_hash) {
                return Ok(problem);
            }
            let mut walk = ChainWalk::new(anchor_seq, &anchor_hash);
            {
                let mut stmt =
                    tx.prepare(&format!("SELECT {ROW_COLUMNS} FROM audit_log ORDER BY seq"))?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    if !walk.step(&row_from(r)?) {
                        break;
                    }
                }
            }
            Ok(walk.finish(head_seq, &head_hash))
        })
        .await
    }

    async fn archive(
        &self,
        now: OffsetDateTime,
        dir: &Path,
        retention: Retention,
    ) -> Result<ArchiveReport, StoreError> {
        let dir = dir.to_owned();
        self.with(move |conn| {
            let cutoff = time_us(online_cutoff(now, retention.online_months));
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (anchor_seq, anchor_hash) = anchor(&tx)?;
            let (head_seq, _) = head(&tx)?;
            // The archived part is a prefix of the chain: up to the first record still online.
            let first_online: Option<i64> = tx
                .query_row(
                    "SELECT MIN(seq) FROM audit_log WHERE time_us >= ?1",
                    [cutoff],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            let upto = match first_online {
                Some(s) => u64::try_from(s).unwrap_or(0).saturating_sub(1),
                None => head_seq,
            };
            let mut report = ArchiveReport::default();
            if upto > anchor_seq {
                let mut writer = ArchiveWriter::create(&dir)?;
                let mut last_hash = anchor_hash.clone();
                {
                    let mut stmt = tx.prepare(&format!(
                        "SELECT {ROW_COLUMNS} FROM audit_log WHERE seq > ?1 AND seq <= ?2 ORDER BY seq"
                    ))?;
                    let mut rows = stmt.query(params![seq_i64(anchor_seq), seq_i64(upto)])?;
                    let mut expected = anchor_seq + 1;
                    while let Some(r) = rows.next()? {
                        let row = row_from(r)?;
                        if row.seq != expected || row.prev_hash != last_hash {
                            return Err(StoreError::Other(format!(
                                "not archiving: the chain is broken at seq {}",
                                row.seq
                            )));
                        }
                        writer.write(&row)?;
                        last_hash = row.hash.clone();
                        expected += 1;
                    }
                    if expected != upto + 1 {
                        return Err(StoreError::Other(format!(
                            "not archiving: record(s) missing after seq {}",
                            expected - 1
                        )));
                    }
                }
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
                tx.execute("DELETE FROM audit_log WHERE seq <= ?1", [seq_i64(upto)])?;
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
