//! The audit journal on PostgreSQL: a deadpool pool from a connection string, its own tables
//! (`audit_log`, `audit_head`, `audit_anchor`, `audit_archive`) created at start-up, triggers
//! that keep them append-only, and appends serialised across processes by a transaction-level
//! advisory lock plus the head row's lock, so several gateway processes build one chain.
//! PostgreSQL has no `INSERT OR REPLACE`; its upsert, `INSERT … ON CONFLICT DO UPDATE`, fires
//! the UPDATE triggers (statement-level ones whether or not a row conflicts), so it changes no
//! row the triggers protect.
use std::path::Path;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use qaqpa_store::pg::describe_error;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use super::{
    check_anchor, from_time_us, in_time_window, online_cutoff, page_of, prune_archives, time_us,
    where_clause, with_archived, ArchiveCheck, ArchiveReport, ArchiveWriter, ArchivedRange,
    AuditFilter, AuditStore, Batch, ChainWalk, Page, Param, Retention, Row, StoreError,
    VerifyReport,
};

/// Key of the advisory lock that serialises appends, archiving and migrations ("qaqpaAUD").
const LOCK_KEY: i64 = 0x7161_7170_6141_5544;

/// Key of the advisory lock under which a run marker is read and written ("qaqpaRUN").
const RUN_LOCK_KEY: i64 = 0x7161_7170_6152_554e;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS audit_log (
    seq            BIGINT PRIMARY KEY,
    id             TEXT NOT NULL,
    time_us        BIGINT NOT NULL,
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
    last_seq  BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);
INSERT INTO audit_head VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
    ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS audit_anchor (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    archived_seq  BIGINT NOT NULL,
    archived_hash TEXT NOT NULL
);
INSERT INTO audit_anchor VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
    ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS audit_archive (
    to_seq          BIGINT PRIMARY KEY,
    from_seq        BIGINT NOT NULL,
    first_prev_hash TEXT NOT NULL,
    last_hash       TEXT NOT NULL,
    file            TEXT NOT NULL,
    archived_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: the audit journal is append-only', TG_OP, TG_TABLE_NAME;
END $$;

CREATE OR REPLACE FUNCTION audit_log_delete_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq > (SELECT archived_seq FROM audit_anchor WHERE id = 1) THEN
        RAISE EXCEPTION 'audit_log rows are only removed by archiving (seq %)', OLD.seq;
    END IF;
    RETURN OLD;
END $$;

CREATE OR REPLACE FUNCTION audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.last_seq <= OLD.last_seq THEN
        RAISE EXCEPTION 'audit_head only moves forward';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION audit_anchor_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.archived_seq <= OLD.archived_seq
       OR NEW.archived_seq > (SELECT last_seq FROM audit_head WHERE id = 1)
       OR NOT EXISTS (SELECT 1 FROM audit_archive
                      WHERE to_seq = NEW.archived_seq AND last_hash = NEW.archived_hash) THEN
        RAISE EXCEPTION 'audit_anchor only moves forward, up to the head, to a recorded archived range';
    END IF;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
DROP TRIGGER IF EXISTS audit_log_no_delete ON audit_log;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_delete_check();
DROP TRIGGER IF EXISTS audit_head_forward ON audit_head;
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward();
DROP TRIGGER IF EXISTS audit_head_no_delete ON audit_head;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE OR TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
DROP TRIGGER IF EXISTS audit_anchor_forward ON audit_anchor;
CREATE TRIGGER audit_anchor_forward BEFORE UPDATE ON audit_anchor
    FOR EACH ROW EXECUTE FUNCTION audit_anchor_forward();
DROP TRIGGER IF EXISTS audit_anchor_no_delete ON audit_anchor;
CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE OR TRUNCATE ON audit_anchor
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
DROP TRIGGER IF EXISTS audit_archive_no_change ON audit_archive;
CREATE TRIGGER audit_archive_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_archive
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
"#;

const ROW_COLUMNS: &str =
    "seq, id, time_us, account, kind, severity, transaction_id, target, body, prev_hash, hash";

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn row_from(r: &tokio_postgres::Row) -> Result<Row, StoreError> {
    Ok(Row {
        seq: u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
        id: r.try_get(1)?,
        time_us: r.try_get(2)?,
        account: r.try_get(3)?,
        kind: r.try_get(4)?,
        severity: r.try_get(5)?,
        transaction_id: r.try_get(6)?,
        target: r.try_get(7)?,
        body: r.try_get(8)?,
        prev_hash: r.try_get(9)?,
        hash: r.try_get(10)?,
    })
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => {
            StoreError::Pool(format!("cannot open a connection: {}", describe_error(&e)))
        }
        e => StoreError::Pool(e.to_string()),
    }
}

/// The journal in a PostgreSQL database.
#[derive(Clone)]
pub struct PgAuditStore {
    pool: Pool,
}

async fn seq_and_hash(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
) -> Result<(u64, String), StoreError> {
    let r = tx.query_one(sql, &[]).await?;
    Ok((
        u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
        r.try_get(1)?,
    ))
}

impl PgAuditStore {
    /// Connects (`postgres://…` URL or key=value string) and creates or updates the schema.
    pub async fn connect(url: &str, max_connections: usize) -> Result<PgAuditStore, StoreError> {
        let config: tokio_postgres::Config = url.parse()?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(10)))
            .create_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        PgAuditStore::with_pool(pool).await
    }

    /// Uses an existing pool (e.g. the gateway store's) and creates or updates the schema.
    pub async fn with_pool(pool: Pool) -> Result<PgAuditStore, StoreError> {
        let store = PgAuditStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await?;
        tx.batch_execute(SCHEMA).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The archived ranges and the walk of the online records from the anchor to the head, in
    /// one snapshot (no ranges when the archive bookkeeping already does not add up: the walk's
    /// report says so).
    async fn verify_online(&self) -> Result<(Vec<ArchivedRange>, VerifyReport), StoreError> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        // One snapshot for the whole walk.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let (anchor_seq, anchor_hash) = seq_and_hash(
            &tx,
            "SELECT archived_seq, archived_hash FROM audit_anchor WHERE id = 1",
        )
        .await?;
        let (head_seq, head_hash) = seq_and_hash(
            &tx,
            "SELECT last_seq, last_hash FROM audit_head WHERE id = 1",
        )
        .await?;
        let ranges = tx
            .query(
                "SELECT from_seq, to_seq, first_prev_hash, last_hash, file FROM audit_archive ORDER BY to_seq",
                &[],
            )
            .await?
            .iter()
            .map(|r| -> Result<ArchivedRange, StoreError> {
                Ok(ArchivedRange {
                    from_seq: u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
                    to_seq: u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0),
                    first_prev_hash: r.try_get(2)?,
                    last_hash: r.try_get(3)?,
                    file: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(problem) = check_anchor(&ranges, anchor_seq, &anchor_hash) {
            return Ok((Vec::new(), problem));
        }
        let mut walk = ChainWalk::new(anchor_seq, &anchor_hash);
        let mut after = seq_i64(anchor_seq);
        // Rows below the anchor (left there bypassing the archive path) are noticed too.
        let below: i64 = tx
            .query_one("SELECT count(*) FROM audit_log WHERE seq <= $1", &[&after])
            .await?
            .try_get(0)?;
        if below > 0 {
            let detail = format!("{below} record(s) at or below the archive anchor {anchor_seq}");
            return Ok((Vec::new(), VerifyReport::Anchor { detail }));
        }
        'pages: loop {
            let rows = tx
                .query(
                    &format!(
                        "SELECT {ROW_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 5000"
                    ),
                    &[&after],
                )
                .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let row = row_from(r)?;
                after = seq_i64(row.seq);
                if !walk.step(&row) {
                    break 'pages;
                }
            }
        }
        Ok((ranges, walk.finish(head_seq, &head_hash)))
    }
}

#[async_trait]
impl AuditStore for PgAuditStore {
    /// The indexed columns come from the event (reading them back from the text would cost
    /// a JSON parse per record).
    fn keeps_events(&self) -> bool {
        true
    }

    async fn append(&self, events: Batch) -> Result<u64, StoreError> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await?;
        let (mut seq, mut hash) = seq_and_hash(
            &tx,
            "SELECT last_seq, last_hash FROM audit_head WHERE id = 1 FOR UPDATE",
        )
        .await?;
        if events.is_empty() {
            return Ok(seq);
        }
        let insert = tx
            .prepare_cached(&format!(
                "INSERT INTO audit_log ({ROW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ))
            .await?;
        let mut rows = Vec::with_capacity(events.len());
        for event in events.iter() {
            seq += 1;
            let row = match event.event() {
                Some(e) => Row::with_body(e, event.body().to_owned(), seq, &hash),
                // An entry made without its event: its fields read back from its text.
                None => Row::new_from_body(event.body(), seq, &hash).ok_or_else(|| {
                    StoreError::Other("an audit record's text does not read back".into())
                })?,
            };
            hash = row.hash.clone();
            rows.push(row);
        }
        let inserts = rows.iter().map(|row| {
            let seq = seq_i64(row.seq);
            let insert = &insert;
            let tx = &tx;
            async move {
                tx.execute(
                    insert,
                    &[
                        &seq,
                        &row.id,
                        &row.time_us,
                        &row.account,
                        &row.kind,
                        &row.severity,
                        &row.transaction_id,
                        &row.target,
                        &row.body,
                        &row.prev_hash,
                        &row.hash,
                    ],
                )
                .await
            }
        });
        // Pipelined: the statements go out together and complete in order.
        futures_util::future::try_join_all(inserts).await?;
        tx.execute(
            "UPDATE audit_head SET last_seq = $1, last_hash = $2 WHERE id = 1",
            &[&seq_i64(seq), &hash],
        )
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn query(
        &self,
        filter: &AuditFilter,
        cursor: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let want = limit.saturating_add(1);
        // The SQL's time bounds are whole microseconds ([`where_clause`]); each record's own
        // time decides. Only records in the bounds' two microseconds can be left out here, so
        // a page needs another round only when some of those fell within its rows.
        let mut records = Vec::with_capacity(want.min(1024));
        let mut below = cursor;
        loop {
            let (clause, params) = where_clause(filter, below, |n| format!("${n}"));
            let sql = format!(
                "SELECT {ROW_COLUMNS} FROM audit_log {clause} ORDER BY seq DESC LIMIT {want}"
            );
            let values: Vec<Box<dyn ToSql + Sync + Send>> = params
                .into_iter()
                .map(|p| -> Box<dyn ToSql + Sync + Send> {
                    match p {
                        Param::I32(v) => Box::new(v),
                        Param::I64(v) => Box::new(v),
                        Param::Text(v) => Box::new(v),
                    }
                })
                .collect();
            let refs: Vec<&(dyn ToSql + Sync)> = values
                .iter()
                .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let rows = client.query(&sql, &refs).await?;
            let fetched = rows.len();
            for row in &rows {
                let record = row_from(row)?.record()?;
                below = Some(record.seq);
                if in_time_window(filter, &record.event) {
                    records.push(record);
                    if records.len() == want {
                        return Ok(page_of(records, limit));
                    }
                }
            }
            if fetched < want {
                return Ok(page_of(records, limit));
            }
        }
    }

    async fn verify_with(
        &self,
        archive: Option<&ArchiveCheck>,
    ) -> Result<VerifyReport, StoreError> {
        let (ranges, online) = self.verify_online().await?;
        with_archived(ranges, online, archive).await
    }

    async fn archive(
        &self,
        now: OffsetDateTime,
        dir: &Path,
        retention: Retention,
    ) -> Result<ArchiveReport, StoreError> {
        retention.check()?;
        let cutoff = time_us(online_cutoff(now, retention.online_months));
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await?;
        let (anchor_seq, anchor_hash) = seq_and_hash(
            &tx,
            "SELECT archived_seq, archived_hash FROM audit_anchor WHERE id = 1 FOR UPDATE",
        )
        .await?;
        let (head_seq, _) = seq_and_hash(
            &tx,
            "SELECT last_seq, last_hash FROM audit_head WHERE id = 1",
        )
        .await?;
        let first_online: Option<i64> = tx
            .query_one(
                "SELECT MIN(seq) FROM audit_log WHERE time_us >= $1",
                &[&cutoff],
            )
            .await?
            .try_get(0)?;
        let upto = match first_online {
            Some(s) => u64::try_from(s).unwrap_or(0).saturating_sub(1),
            None => head_seq,
        };
        let mut report = ArchiveReport::default();
        if upto > anchor_seq {
            let mut writer = ArchiveWriter::create(dir)?;
            let mut last_hash = anchor_hash.clone();
            let mut expected = anchor_seq + 1;
            loop {
                let rows = tx
                    .query(
                        &format!(
                            "SELECT {ROW_COLUMNS} FROM audit_log WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT 5000"
                        ),
                        &[&seq_i64(expected), &seq_i64(upto)],
                    )
                    .await?;
                if rows.is_empty() {
                    break;
                }
                for r in &rows {
                    let row = row_from(r)?;
                    // Linked in seq order, and intact as `verify` checks it (a text changed in
                    // place under its old hash must not leave the database, where `verify`
                    // finds it, for the archive).
                    if row.seq != expected || row.prev_hash != last_hash || !row.intact() {
                        return Err(StoreError::Other(format!(
                            "not archiving: the chain is broken at seq {}",
                            row.seq
                        )));
                    }
                    writer.write(&row)?;
                    last_hash = row.hash.clone();
                    expected += 1;
                }
            }
            if expected != upto + 1 {
                return Err(StoreError::Other(format!(
                    "not archiving: record(s) missing after seq {}",
                    expected - 1
                )));
            }
            let file = writer.finish()?;
            let name = file
                .as_ref()
                .and_then(|f| f.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            tx.execute(
                "INSERT INTO audit_archive (to_seq, from_seq, first_prev_hash, last_hash, file) VALUES ($1, $2, $3, $4, $5)",
                &[&seq_i64(upto), &seq_i64(anchor_seq + 1), &anchor_hash, &last_hash, &name],
            )
            .await?;
            tx.execute(
                "UPDATE audit_anchor SET archived_seq = $1, archived_hash = $2 WHERE id = 1",
                &[&seq_i64(upto), &last_hash],
            )
            .await?;
            tx.execute("DELETE FROM audit_log WHERE seq <= $1", &[&seq_i64(upto)])
                .await?;
            tx.commit().await?;
            report.archived = upto - anchor_seq;
            report.file = file;
        } else {
            tx.commit().await?;
        }
        report.deleted_files = prune_archives(dir, now, retention.keep_years)?;
        Ok(report)
    }
}

/// Run markers of gateways that share a PostgreSQL journal: one row per configured worker id
/// in `audit_run`, written when a run starts and deleted when it stops cleanly. A row found at
/// start means the previous run of that worker id ended otherwise (killed, crashed, host lost),
/// so events it had not yet journalled may be missing. The SQLite journal's counterpart is a
/// file in the data directory (one gateway per directory); on PostgreSQL the worker id tells
/// replicas apart, as it does for leases.
///
/// A plain connection opened for each call: a run marks itself twice, at start and at stop.
pub struct PgRunMarkers {
    url: String,
}

/// A gateway run, as its marker records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub pid: u32,
    pub host: String,
    pub started: OffsetDateTime,
}

const RUN_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS audit_run (
    worker_id  TEXT PRIMARY KEY,
    pid        BIGINT NOT NULL,
    host       TEXT NOT NULL,
    started_us BIGINT NOT NULL
)";

impl PgRunMarkers {
    pub fn new(url: &str) -> PgRunMarkers {
        PgRunMarkers {
            url: url.to_owned(),
        }
    }

    async fn client(&self) -> Result<tokio_postgres::Client, StoreError> {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "run marker connection ended");
            }
        });
        Ok(client)
    }

    /// Marks `run` as the running one of `worker` and returns the run it replaces: one that
    /// started and never stopped cleanly.
    pub async fn begin(&self, worker: &str, run: &RunInfo) -> Result<Option<RunInfo>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Replicas starting together would race in `CREATE TABLE IF NOT EXISTS`: PostgreSQL
        // fails all but one with 23505 (on `pg_type`), and a replica whose marker is not
        // written cannot report its own unclean stop later. Under the lock the others wait
        // and then find the table.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&RUN_LOCK_KEY])
            .await?;
        tx.batch_execute(RUN_SCHEMA).await?;
        let previous = tx
            .query_opt(
                "SELECT pid, host, started_us FROM audit_run WHERE worker_id = $1 FOR UPDATE",
                &[&worker],
            )
            .await?
            .map(|r| -> Result<RunInfo, StoreError> {
                Ok(RunInfo {
                    pid: u32::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
                    host: r.try_get(1)?,
                    started: from_time_us(r.try_get(2)?),
                })
            })
            .transpose()?;
        tx.execute(
            "INSERT INTO audit_run (worker_id, pid, host, started_us) VALUES ($1, $2, $3, $4)
             ON CONFLICT (worker_id) DO UPDATE
             SET pid = EXCLUDED.pid, host = EXCLUDED.host, started_us = EXCLUDED.started_us",
            &[
                &worker,
                &i64::from(run.pid),
                &run.host,
                &time_us(run.started),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(previous)
    }

    /// `run` of `worker` stopped cleanly: removes its marker (not one a later run of the same
    /// worker id wrote). Returns whether there was one.
    pub async fn end(&self, worker: &str, run: &RunInfo) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM audit_run WHERE worker_id = $1 AND pid = $2 AND started_us = $3",
                &[&worker, &i64::from(run.pid), &time_us(run.started)],
            )
            .await?;
        Ok(n > 0)
    }
}
