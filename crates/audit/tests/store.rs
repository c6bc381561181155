//! The audit journal on SQLite and on PostgreSQL (a throwaway server): the hash chain verifies,
//! changes and deletions made around the triggers are found and located, the triggers refuse
//! UPDATE/DELETE, archiving moves old records to a verifiable gzip file and retention deletes
//! old files, queries filter and paginate, and concurrent appenders keep one chain.
mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::TempDir;
use qaqpa_audit::store::{ArchiveCheck, ArchivedRange, ExpiredRange, GENESIS_HASH};
use qaqpa_audit::{
    batch, verify_archive, AuditConfig, AuditEvent, AuditFilter, AuditStore, Auditor, ChangeOp,
    Direction, Exchange, ExchangeResult, Level, LifecycleStage, PgAuditStore, RefusalReason,
    Retention, SqliteAuditStore, VerifyReport,
};
use qaqpa_store::testing::TempPostgres;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A journal on one back end, with raw SQL access for tampering.
enum Backend {
    Sqlite(TempDir),
    Pg(String),
}

impl Backend {
    fn sqlite() -> Backend {
        Backend::Sqlite(TempDir::new("qaqpa-audit-sqlite").expect("temp dir"))
    }

    async fn pg() -> Backend {
        let server = TempPostgres::shared().expect("PostgreSQL for tests");
        Backend::Pg(server.create_database().await.expect("database"))
    }

    async fn open(&self) -> Arc<dyn AuditStore> {
        match self {
            Backend::Sqlite(dir) => Arc::new(SqliteAuditStore::open(dir.path()).expect("open")),
            Backend::Pg(url) => Arc::new(PgAuditStore::connect(url, 4).await.expect("connect")),
        }
    }

    /// Runs SQL as the application would; the error text when refused.
    async fn exec(&self, sql: &str) -> Result<(), String> {
        match self {
            Backend::Sqlite(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("audit.db"))
                    .map_err(|e| e.to_string())?;
                conn.execute_batch(sql).map_err(|e| e.to_string())
            }
            Backend::Pg(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                let task = tokio::spawn(conn);
                let r = client.batch_execute(sql).await.map_err(|e| {
                    e.as_db_error()
                        .map(|d| d.message().to_owned())
                        .unwrap_or_else(|| e.to_string())
                });
                drop(client);
                let _ = task.await;
                r
            }
        }
    }

    /// Runs SQL with the journal's triggers out of the way (an administrator going around the
    /// application).
    async fn tamper(&self, sql: &str) {
        let wrapped = match self {
            Backend::Sqlite(_) => format!(
                "DROP TRIGGER IF EXISTS audit_block_no_update; DROP TRIGGER IF EXISTS audit_block_no_delete; \
                 DROP TRIGGER IF EXISTS audit_key_no_delete; {sql}"
            ),
            Backend::Pg(_) => format!(
                "ALTER TABLE audit_log DISABLE TRIGGER ALL; {sql}; ALTER TABLE audit_log ENABLE TRIGGER ALL;"
            ),
        };
        self.exec(&wrapped).await.expect("tampering SQL runs");
    }

    /// Changes records around the triggers: on PostgreSQL with `pg_sql`; on SQLite (a block of
    /// records per row) by rewriting the lines of the blocks holding `seqs` with `edit`
    /// (`None` drops the line).
    async fn tamper_records(
        &self,
        pg_sql: &str,
        seqs: std::ops::RangeInclusive<u64>,
        edit: impl Fn(&str) -> Option<String>,
    ) {
        let Backend::Sqlite(_) = self else {
            return self.tamper(pg_sql).await;
        };
        let conn = self.blocks_rewritable();
        let blocks: Vec<(i64, String)> = conn
            .prepare("SELECT first_seq, records FROM audit_block WHERE last_seq >= ?1 AND first_seq <= ?2")
            .expect("prepare")
            .query_map([*seqs.start() as i64, *seqs.end() as i64], |r| {
                Ok((r.get(0)?, block_text(r.get(1)?)))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert!(!blocks.is_empty(), "no block holds {seqs:?}");
        for (first, records) in blocks {
            let mut out = String::new();
            for line in records.lines() {
                let seq: u64 = line
                    .split(' ')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("seq");
                let new = if seqs.contains(&seq) {
                    edit(line)
                } else {
                    Some(line.to_owned())
                };
                if let Some(l) = new {
                    out.push_str(&l);
                    out.push('\n');
                }
            }
            // Written back the way the journal writes blocks, so only the edit differs.
            let frame = zstd::encode_all(out.as_bytes(), 1).expect("zstd");
            conn.execute(
                "UPDATE audit_block SET records = ?1 WHERE first_seq = ?2",
                rusqlite::params![frame, first],
            )
            .expect("rewrite block");
        }
    }

    /// A connection to the SQLite journal whose blocks can be rewritten (the append-only
    /// trigger dropped, as an administrator going around the application would).
    fn blocks_rewritable(&self) -> rusqlite::Connection {
        let Backend::Sqlite(dir) = self else {
            panic!("blocks are SQLite's layout");
        };
        let conn = rusqlite::Connection::open(dir.path().join("audit.db")).expect("open");
        conn.execute_batch("DROP TRIGGER IF EXISTS audit_block_no_update;")
            .expect("drop trigger");
        conn
    }

    /// SQL that changes a record (seq 2) and must be refused by the triggers.
    fn forbidden_changes(&self) -> Vec<&'static str> {
        let mut sql = match self {
            Backend::Sqlite(_) => vec![
                "UPDATE audit_block SET records = '' WHERE first_seq = 1",
                "DELETE FROM audit_block WHERE first_seq = 1",
                "DELETE FROM audit_block",
                "UPDATE audit_key SET key = 'x'",
                "DELETE FROM audit_key",
            ],
            Backend::Pg(_) => vec![
                "UPDATE audit_log SET account = 'x' WHERE seq = 2",
                "DELETE FROM audit_log WHERE seq = 2",
                "DELETE FROM audit_log",
            ],
        };
        sql.extend([
            "UPDATE audit_head SET last_seq = 2",
            "DELETE FROM audit_head",
            "UPDATE audit_anchor SET archived_seq = 5",
            "DELETE FROM audit_anchor",
        ]);
        sql
    }
}

/// A SQLite block's text as stored: a zstd frame (decoded with the `zstd` crate here, not the
/// journal's own code), or plain text in blocks from before compression.
fn block_text(stored: rusqlite::types::Value) -> String {
    match stored {
        rusqlite::types::Value::Blob(frame) => {
            String::from_utf8(zstd::decode_all(&frame[..]).expect("a zstd frame")).expect("UTF-8")
        }
        rusqlite::types::Value::Text(text) => text,
        other => panic!("a block's records are {other:?}"),
    }
}

/// 64-bit FNV-1a, written here from its definition (offset basis 0xcbf29ce484222325, prime
/// 0x100000001b3) as the reference for the codes `audit_key` holds for keys that are not a
/// transaction's UUID.
fn fnv1a64(key: &str) -> i64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) as i64
}

fn event(n: usize, time: OffsetDateTime) -> AuditEvent {
    AuditEvent::auth_fail("qaqpa-api", Some(&format!("key-{n}")), "bad secret")
        .at(time)
        .transaction(format!("tx-{n}"))
}

async fn append_n(store: &dyn AuditStore, from: usize, n: usize, time: OffsetDateTime) -> u64 {
    let events: Vec<AuditEvent> = (from..from + n).map(|i| event(i, time)).collect();
    store
        .append(batch(events).expect("serialisable"))
        .await
        .expect("append")
}

/// The seqs of a transaction's records, newest first.
async fn seqs_of_transaction(store: &dyn AuditStore, tx: &str) -> Vec<u64> {
    let filter = AuditFilter {
        transaction_id: Some(tx.into()),
        ..Default::default()
    };
    let page = store.query(&filter, None, 10).await.expect("query");
    page.records.iter().map(|r| r.seq).collect()
}

/// Where the journal's archive files are checked, as of `now`, with the default retention.
fn check(dir: &Path, now: OffsetDateTime) -> ArchiveCheck {
    ArchiveCheck {
        dir: dir.to_owned(),
        retention: Retention::default(),
        now,
    }
}

fn assert_ok(report: &VerifyReport, count: u64, first: u64, last: u64) {
    match report {
        VerifyReport::Ok {
            count: c,
            first_seq,
            last_seq,
            ..
        } => assert_eq!(
            (*c, *first_seq, *last_seq),
            (count, first, last),
            "{report}"
        ),
        other => panic!("expected OK with {count} records, got: {other}"),
    }
}

// ----- scenarios, run on both back ends -----

/// The auditor hands most stores entries without their events (only the record text, the
/// time and the key codes); they must be stored, verified and found exactly as entries with
/// them.
async fn entries_without_their_events_are_stored_and_found_like_entries_with_them(b: Backend) {
    let store = b.open().await;
    let now = OffsetDateTime::now_utc();
    let events: Vec<AuditEvent> = (0..6)
        .map(|i| event(i, now).account(format!("acct-{i}")))
        .collect();
    let entries: Vec<qaqpa_audit::Entry> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if i % 2 == 0 {
                qaqpa_audit::Entry::without_event(e).expect("serialisable")
            } else {
                qaqpa_audit::Entry::new(Arc::new(e.clone())).expect("serialisable")
            }
        })
        .collect();
    assert!(entries[0].event().is_none() && entries[1].event().is_some());
    assert_eq!(store.append(entries.into()).await.expect("append"), 6);
    assert_ok(&store.verify().await.expect("verify"), 6, 1, 6);
    for (i, e) in events.iter().enumerate() {
        let by_transaction = AuditFilter {
            transaction_id: Some(format!("tx-{i}")),
            ..Default::default()
        };
        let by_account = AuditFilter {
            account: Some(format!("acct-{i}")),
            ..Default::default()
        };
        for filter in [by_transaction, by_account] {
            let found = store.query(&filter, None, 10).await.expect("query");
            assert_eq!(found.records.len(), 1, "{filter:?}");
            assert_eq!(found.records[0].seq, i as u64 + 1);
            assert_eq!(&found.records[0].event, e);
        }
    }
}

/// Records are the events' syslog MSGs; an event a MSG cannot say exactly (an empty account
/// or transaction id) is recorded as JSON among them. Both verify, are found by their keys and
/// read back as they were recorded, and a change to either is found.
async fn events_a_msg_cannot_say_are_recorded_as_json_among_the_others(b: Backend) {
    let store = b.open().await;
    let now = OffsetDateTime::now_utc();
    let events: Vec<AuditEvent> = (0..6)
        .map(|i| match i % 3 {
            0 => event(i, now).account(""),
            1 => event(i, now).account(format!("acct-{i}")),
            _ => event(i, now).account("acct \"quoted\" = x\nnext line"),
        })
        .collect();
    let entries: Vec<qaqpa_audit::Entry> = events
        .iter()
        .map(|e| qaqpa_audit::Entry::without_event(e).expect("serialisable"))
        .collect();
    let json: Vec<bool> = entries.iter().map(|e| e.body().starts_with('{')).collect();
    assert_eq!(json, [true, false, false, true, false, false]);
    assert!(entries.iter().all(|e| !e.body().contains('\n')));
    store.append(entries.into()).await.expect("append");
    assert_ok(&store.verify().await.expect("verify"), 6, 1, 6);
    for (i, e) in events.iter().enumerate() {
        let filter = AuditFilter {
            transaction_id: Some(format!("tx-{i}")),
            ..Default::default()
        };
        let found = store.query(&filter, None, 10).await.expect("query");
        assert_eq!(found.records.len(), 1, "{filter:?}");
        assert_eq!(&found.records[0].event, e);
    }
    let by_account = AuditFilter {
        account: Some("acct-4".into()),
        ..Default::default()
    };
    let found = store.query(&by_account, None, 10).await.expect("query");
    assert_eq!(found.records.len(), 1);
    assert_eq!(found.records[0].seq, 5);
    // A changed MSG record (seq 5), then a changed JSON record before it (seq 4), are each
    // found at their seq.
    for seq in [5, 4] {
        b.tamper_records(
            &format!(
                "UPDATE audit_log SET body = replace(body, 'bad secret', 'bad secrets') WHERE seq = {seq}"
            ),
            seq..=seq,
            |line| Some(line.replace("bad secret", "bad secrets")),
        )
        .await;
        assert_eq!(
            store.verify().await.expect("verify"),
            VerifyReport::Changed { seq }
        );
    }
}

async fn chain_verifies_after_appends(b: Backend) {
    let store = b.open().await;
    assert_ok(&store.verify().await.expect("verify"), 0, 1, 0);
    let now = OffsetDateTime::now_utc();
    assert_eq!(append_n(store.as_ref(), 0, 1, now).await, 1);
    assert_eq!(append_n(store.as_ref(), 1, 10, now).await, 11);
    assert_eq!(append_n(store.as_ref(), 11, 100, now).await, 111);
    let report = store.verify().await.expect("verify");
    assert_ok(&report, 111, 1, 111);
    // A reopened store continues the same chain.
    drop(store);
    let store = b.open().await;
    assert_eq!(append_n(store.as_ref(), 111, 1, now).await, 112);
    assert_ok(&store.verify().await.expect("verify"), 112, 1, 112);
    let tail = store.tail(2).await.expect("tail");
    assert_eq!(tail[0].seq, 112);
    assert_eq!(
        tail[0].prev_hash, tail[1].hash,
        "each record links to the previous"
    );
    // Pages run across the appends (blocks, on SQLite) without a gap or a repeat, and every
    // record links to the one before it.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .query(&AuditFilter::default(), cursor, 7)
            .await
            .expect("page");
        seen.extend(
            page.records
                .iter()
                .map(|r| (r.seq, r.prev_hash.clone(), r.hash.clone())),
        );
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=112).rev().collect::<Vec<_>>()
    );
    for pair in seen.windows(2) {
        assert_eq!(
            pair[0].1, pair[1].2,
            "seq {} links to seq {}",
            pair[0].0, pair[1].0
        );
    }
    // A transaction is found in its own append, among the others.
    assert_eq!(seqs_of_transaction(store.as_ref(), "tx-5").await, vec![6]);
}

async fn changed_records_are_found_at_their_seq(b: Backend) {
    let store = b.open().await;
    append_n(store.as_ref(), 0, 20, OffsetDateTime::now_utc()).await;
    b.tamper_records(
        "UPDATE audit_log SET body = replace(body, 'bad secret', 'good secret') WHERE seq = 7",
        7..=7,
        |line| Some(line.replace("bad secret", "good secret")),
    )
    .await;
    assert_eq!(
        store.verify().await.expect("verify"),
        VerifyReport::Changed { seq: 7 }
    );
    assert_eq!(
        store.verify().await.expect("verify").to_string(),
        "changed record at seq 7"
    );
    // An indexed column changed without the body is a change too (and found first). On SQLite
    // the index is `audit_key`: a record whose key is gone would be hidden from queries.
    match &b {
        Backend::Sqlite(_) => {
            b.tamper(&format!(
                "DELETE FROM audit_key WHERE key = {}",
                fnv1a64("a:key-2")
            ))
            .await
        }
        Backend::Pg(_) => {
            b.tamper("UPDATE audit_log SET account = 'someone-else' WHERE seq = 3")
                .await
        }
    }
    assert_eq!(
        store.verify().await.expect("verify"),
        VerifyReport::Changed { seq: 3 }
    );
}

async fn deleted_records_are_found_after_the_last_good_seq(b: Backend, tail: bool) {
    let store = b.open().await;
    append_n(store.as_ref(), 0, 20, OffsetDateTime::now_utc()).await;
    if tail {
        // The newest records: only the head bookkeeping can tell.
        b.tamper_records("DELETE FROM audit_log WHERE seq >= 19", 19..=20, |_| None)
            .await;
        let report = store.verify().await.expect("verify");
        assert_eq!(report, VerifyReport::Missing { after_seq: 18 });
        assert_eq!(report.to_string(), "record(s) missing after seq 18");
    } else {
        b.tamper_records("DELETE FROM audit_log WHERE seq = 12", 12..=12, |_| None)
            .await;
        assert_eq!(
            store.verify().await.expect("verify"),
            VerifyReport::Missing { after_seq: 11 }
        );
        b.tamper_records("DELETE FROM audit_log WHERE seq = 1", 1..=1, |_| None)
            .await;
        assert_eq!(
            store.verify().await.expect("verify"),
            VerifyReport::Missing { after_seq: 0 }
        );
    }
}

async fn triggers_refuse_update_and_delete(b: Backend) {
    let store = b.open().await;
    append_n(store.as_ref(), 0, 5, OffsetDateTime::now_utc()).await;
    for sql in b.forbidden_changes() {
        let err = b.exec(sql).await.expect_err(sql);
        assert!(
            err.contains("append-only")
                || err.contains("archiving")
                || err.contains("forward")
                || err.contains("cannot be deleted")
                || err.contains("refused"),
            "{sql}: {err}"
        );
    }
    if matches!(b, Backend::Pg(_)) {
        let err = b.exec("TRUNCATE audit_log").await.expect_err("truncate");
        assert!(err.contains("append-only"), "{err}");
    }
    assert_ok(&store.verify().await.expect("verify"), 5, 1, 5);
}

fn rewrite_gz(path: &Path, edit: impl Fn(Vec<String>) -> Vec<String>) {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_string(&mut text)
        .expect("gunzip");
    let lines = edit(text.lines().map(str::to_owned).collect());
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).expect("create"),
        flate2::Compression::default(),
    );
    for l in lines {
        writeln!(gz, "{l}").expect("write");
    }
    gz.finish().expect("finish");
}

async fn archive_moves_old_records_and_stays_verifiable(b: Backend) {
    let store = b.open().await;
    let archive = TempDir::new("qaqpa-audit-archive").expect("archive dir");
    let now = datetime!(2026-12-01 12:00 UTC);
    append_n(store.as_ref(), 0, 10, now - Duration::days(200)).await;
    append_n(store.as_ref(), 10, 5, now - Duration::days(1)).await;
    let retention = Retention::default();

    let report = store
        .archive(now, archive.path(), retention)
        .await
        .expect("archive");
    assert_eq!(report.archived, 10);
    let file: PathBuf = report.file.clone().expect("archive file");
    assert_eq!(
        file.file_name().and_then(|n| n.to_str()),
        Some("audit-20260515_20260515-000000000001-000000000010.jsonl.gz")
    );
    assert!(report.deleted_files.is_empty());
    // Online: 11..=15, chained to the anchor; before them the archive file's 10 records.
    let checked = store
        .verify_with(Some(&check(archive.path(), now)))
        .await
        .expect("verify");
    assert_ok(&checked, 5, 11, 15);
    let VerifyReport::Ok { archived, .. } = &checked else {
        unreachable!()
    };
    assert_eq!((archived.files, archived.verified), (1, 10), "{checked}");
    assert!(archived.expired.is_empty(), "{checked}");
    assert!(
        checked
            .to_string()
            .ends_with("archived: 10 records in 1 file(s) verified"),
        "{checked}"
    );
    // Without the archive directory the archived part cannot be checked, and is not passed.
    assert_eq!(
        store.verify().await.expect("verify"),
        VerifyReport::Archived {
            from_seq: 1,
            to_seq: 10,
            detail: "not checked: no archive directory given".into()
        }
    );
    let page = store
        .query(&AuditFilter::default(), None, 100)
        .await
        .expect("query");
    assert_eq!(page.records.len(), 5);
    // The archived part verifies as the range its row records and ends where the online part
    // starts.
    let oldest_online = page.records.last().expect("records");
    assert_eq!(oldest_online.seq, 11);
    let range = ArchivedRange {
        from_seq: 1,
        to_seq: 10,
        first_prev_hash: GENESIS_HASH.into(),
        last_hash: oldest_online.prev_hash.clone(),
        file: file_name(&file),
    };
    let archived = verify_archive(&file, &range).expect("read archive");
    let VerifyReport::Ok {
        count,
        first_seq,
        last_seq,
        last_hash,
        ..
    } = archived
    else {
        panic!("archive does not verify: {archived}")
    };
    assert_eq!((count, first_seq, last_seq), (10, 1, 10));
    assert_eq!(oldest_online.prev_hash, last_hash);
    // Nothing more to archive; appending goes on from the head.
    let again = store
        .archive(now, archive.path(), retention)
        .await
        .expect("archive");
    assert_eq!(again.archived, 0);
    append_n(store.as_ref(), 15, 3, now).await;
    let at_now = check(archive.path(), now);
    assert_ok(
        &store.verify_with(Some(&at_now)).await.expect("verify"),
        8,
        11,
        18,
    );
    // Deleting archived rows again, or below the anchor, is harmless; above it is refused.
    let delete_online = match &b {
        Backend::Sqlite(_) => "DELETE FROM audit_block WHERE first_seq = 11",
        Backend::Pg(_) => "DELETE FROM audit_log WHERE seq = 11",
    };
    assert!(b.exec(delete_online).await.is_err());

    // Tampering with the archive file is found.
    let pristine = std::fs::read(&file).expect("read");
    rewrite_gz(&file, |mut lines| {
        lines[3] = lines[3].replace("bad secret", "bad secreT");
        lines
    });
    assert_eq!(
        verify_archive(&file, &range).expect("verify"),
        VerifyReport::Changed { seq: 4 }
    );
    assert_eq!(
        store.verify_with(Some(&at_now)).await.expect("verify"),
        VerifyReport::Archived {
            from_seq: 1,
            to_seq: 10,
            detail: format!("file {}: changed record at seq 4", range.file)
        }
    );
    std::fs::write(&file, &pristine).expect("restore");
    rewrite_gz(&file, |mut lines| {
        lines.remove(4);
        lines
    });
    assert_eq!(
        verify_archive(&file, &range).expect("verify"),
        VerifyReport::Missing { after_seq: 4 }
    );
    std::fs::write(&file, &pristine).expect("restore");
    assert!(verify_archive(&file, &range).expect("verify").is_ok());

    // Three years on, the old archive file goes (and the newer records are archived).
    let later = now + Duration::days(3 * 365 + 10);
    let report = store
        .archive(later, archive.path(), retention)
        .await
        .expect("archive");
    assert_eq!(report.archived, 8);
    assert!(report.deleted_files.contains(&file), "{report:?}");
    assert!(!file.exists());
    // The deleted files' ranges are reported as deleted by retention: the new file of records
    // from more than three years back went at once.
    let at_later = check(archive.path(), later);
    let checked = store.verify_with(Some(&at_later)).await.expect("verify");
    assert_ok(&checked, 0, 19, 18);
    let VerifyReport::Ok { archived, .. } = &checked else {
        unreachable!()
    };
    assert_eq!(report.deleted_files.len(), 2, "{report:?}");
    assert_eq!(
        archived.expired,
        vec![
            ExpiredRange {
                from_seq: 1,
                to_seq: 10,
                last_day: time::macros::date!(2026 - 05 - 15)
            },
            ExpiredRange {
                from_seq: 11,
                to_seq: 18,
                last_day: time::macros::date!(2026 - 12 - 01)
            }
        ]
    );
    assert_eq!((archived.files, archived.verified), (0, 0), "{checked}");
    assert!(
        checked
            .to_string()
            .contains("archived seq 1..=10 deleted by retention (last record on 2026-05-15)"),
        "{checked}"
    );
    append_n(store.as_ref(), 18, 1, later).await;
    assert_ok(
        &store.verify_with(Some(&at_later)).await.expect("verify"),
        1,
        19,
        19,
    );
    // Checked as of a day before retention was due, the same file is missing, not expired.
    assert_eq!(
        store.verify_with(Some(&at_now)).await.expect("verify"),
        VerifyReport::Archived {
            from_seq: 1,
            to_seq: 10,
            detail: format!(
                "file {} missing from {}",
                range.file,
                archive.path().display()
            )
        }
    );
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("a file name")
        .to_owned()
}

/// A record whose text was changed in place (its stored hash left as it was) is not archived:
/// archiving recomputes every hash it is about to move and refuses at the changed record,
/// archiving and deleting nothing, so the online chain still shows the change.
async fn archive_refuses_a_record_changed_in_place(b: Backend) {
    let store = b.open().await;
    let archive = TempDir::new("qaqpa-audit-archive").expect("archive dir");
    let now = datetime!(2026-12-01 12:00 UTC);
    // Three appends (three blocks on SQLite): two old enough to archive, one not.
    append_n(store.as_ref(), 0, 5, now - Duration::days(200)).await;
    append_n(store.as_ref(), 5, 5, now - Duration::days(199)).await;
    append_n(store.as_ref(), 10, 5, now - Duration::days(1)).await;
    b.tamper_records(
        "UPDATE audit_log SET body = replace(body, 'bad secret', 'good secret') WHERE seq = 7",
        7..=7,
        |line| Some(line.replace("bad secret", "good secret")),
    )
    .await;

    let err = store
        .archive(now, archive.path(), Retention::default())
        .await
        .expect_err("a changed record is not archived");
    assert_eq!(
        err.to_string(),
        "not archiving: the chain is broken at seq 7"
    );
    // Nothing archived (no file at all, not even a half-written one), nothing deleted.
    let archived_files: Vec<PathBuf> = std::fs::read_dir(archive.path())
        .map(|entries| entries.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    assert!(archived_files.is_empty(), "{archived_files:?}");
    let online = store
        .query(&AuditFilter::default(), None, 100)
        .await
        .expect("query");
    let seqs: Vec<u64> = online.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=15).rev().collect::<Vec<u64>>());
    let changed = online.records.iter().find(|r| r.seq == 7).expect("seq 7");
    assert!(
        changed.event.description.ends_with("good secret"),
        "{}",
        changed.event.description
    );
    assert_eq!(
        store.verify().await.expect("verify"),
        VerifyReport::Changed { seq: 7 }
    );
    // Once the record reads as appended again, archiving goes ahead.
    b.tamper_records(
        "UPDATE audit_log SET body = replace(body, 'good secret', 'bad secret') WHERE seq = 7",
        7..=7,
        |line| Some(line.replace("good secret", "bad secret")),
    )
    .await;
    let report = store
        .archive(now, archive.path(), Retention::default())
        .await
        .expect("archive");
    assert_eq!(report.archived, 10);
    assert_ok(
        &store
            .verify_with(Some(&check(archive.path(), now)))
            .await
            .expect("verify"),
        5,
        11,
        15,
    );
}

/// The archive bookkeeping is only a claim: a row in `audit_archive` for records still online
/// lets the anchor move up to them and the delete trigger let them go, without touching a
/// trigger or a hash (the head stays as it was, so the SOC's last hash does not notice). The
/// claimed range has no file, and `verify` says so. `whole`: everything (the three statements
/// as found by review); else a prefix at a block boundary.
async fn records_deleted_behind_a_forged_archived_range_fail_verify(b: Backend, whole: bool) {
    let store = b.open().await;
    let archive = TempDir::new("qaqpa-audit-archive").expect("archive dir");
    let now = OffsetDateTime::now_utc();
    append_n(store.as_ref(), 0, 5, now).await;
    append_n(store.as_ref(), 5, 5, now).await;
    let at_now = check(archive.path(), now);
    assert_ok(
        &store.verify_with(Some(&at_now)).await.expect("verify"),
        10,
        1,
        10,
    );
    let (records, archived_at) = match &b {
        Backend::Sqlite(_) => ("audit_block", "'x'"),
        Backend::Pg(_) => ("audit_log", "now()"),
    };
    let sql = if whole {
        format!(
            "INSERT INTO audit_archive VALUES ((SELECT last_seq FROM audit_head), 1, '{GENESIS_HASH}', \
             (SELECT last_hash FROM audit_head), 'x', {archived_at});
             UPDATE audit_anchor SET archived_seq = (SELECT last_seq FROM audit_head), \
             archived_hash = (SELECT last_hash FROM audit_head);
             DELETE FROM {records};"
        )
    } else {
        // The hash of record 5: the link of the block (or record) after it.
        let hash5 = match &b {
            Backend::Sqlite(_) => "(SELECT prev_hash FROM audit_block WHERE first_seq = 6)",
            Backend::Pg(_) => "(SELECT hash FROM audit_log WHERE seq = 5)",
        };
        let delete = match &b {
            Backend::Sqlite(_) => "DELETE FROM audit_block WHERE last_seq <= 5",
            Backend::Pg(_) => "DELETE FROM audit_log WHERE seq <= 5",
        };
        format!(
            "INSERT INTO audit_archive VALUES (5, 1, '{GENESIS_HASH}', {hash5}, 'x', {archived_at});
             UPDATE audit_anchor SET archived_seq = 5, archived_hash = {hash5};
             {delete};"
        )
    };
    b.exec(&sql)
        .await
        .expect("the triggers let a claimed archive through");
    let to_seq = if whole { 10 } else { 5 };
    assert_eq!(
        store.verify_with(Some(&at_now)).await.expect("verify"),
        VerifyReport::Archived {
            from_seq: 1,
            to_seq,
            detail: format!("file x missing from {}", archive.path().display())
        }
    );
    let report = store.verify().await.expect("verify");
    assert!(!report.is_ok(), "{report}");
    assert_eq!(
        report.to_string(),
        format!("archived range 1..={to_seq}: not checked: no archive directory given")
    );
}

/// An archive file must hold exactly the range its row records: records cut off its start or
/// its end, a damaged file, a record claiming seq 0 (which made the old check subtract below
/// zero) and a missing file are each reported, by `verify_archive` and by the store's `verify`.
async fn archive_files_cut_short_damaged_or_missing_are_found(b: Backend) {
    let store = b.open().await;
    let archive = TempDir::new("qaqpa-audit-archive").expect("archive dir");
    let now = datetime!(2026-12-01 12:00 UTC);
    append_n(store.as_ref(), 0, 10, now - Duration::days(200)).await;
    append_n(store.as_ref(), 10, 5, now - Duration::days(1)).await;
    let file = store
        .archive(now, archive.path(), Retention::default())
        .await
        .expect("archive")
        .file
        .expect("archive file");
    let oldest_online = store
        .query(&AuditFilter::default(), None, 100)
        .await
        .expect("query")
        .records
        .pop()
        .expect("records");
    assert_eq!(oldest_online.seq, 11);
    let range = ArchivedRange {
        from_seq: 1,
        to_seq: 10,
        first_prev_hash: GENESIS_HASH.into(),
        last_hash: oldest_online.prev_hash,
        file: file_name(&file),
    };
    let at_now = check(archive.path(), now);
    assert!(verify_archive(&file, &range).expect("verify").is_ok());
    assert_ok(
        &store.verify_with(Some(&at_now)).await.expect("verify"),
        5,
        11,
        15,
    );
    let pristine = std::fs::read(&file).expect("read");
    let in_file = |detail: &str| VerifyReport::Archived {
        from_seq: 1,
        to_seq: 10,
        detail: format!("file {}: {detail}", range.file),
    };

    // The first two records cut off: the rest still chains, but not from the range's start.
    rewrite_gz(&file, |lines| lines[2..].to_vec());
    assert_eq!(
        verify_archive(&file, &range).expect("verify"),
        VerifyReport::Missing { after_seq: 0 }
    );
    assert_eq!(
        store.verify_with(Some(&at_now)).await.expect("verify"),
        in_file("record(s) missing after seq 0")
    );
    // The last record cut off.
    std::fs::write(&file, &pristine).expect("restore");
    rewrite_gz(&file, |lines| lines[..9].to_vec());
    assert_eq!(
        verify_archive(&file, &range).expect("verify"),
        VerifyReport::Missing { after_seq: 9 }
    );
    assert_eq!(
        store.verify_with(Some(&at_now)).await.expect("verify"),
        in_file("record(s) missing after seq 9")
    );
    // A record claiming seq 0: a report, not a panic.
    std::fs::write(&file, &pristine).expect("restore");
    rewrite_gz(&file, |mut lines| {
        assert!(lines[0].contains(r#""seq":1,"#), "{}", lines[0]);
        lines[0] = lines[0].replacen(r#""seq":1,"#, r#""seq":0,"#, 1);
        lines
    });
    assert_eq!(
        verify_archive(&file, &range).expect("verify"),
        VerifyReport::Changed { seq: 0 }
    );
    assert_eq!(
        store.verify_with(Some(&at_now)).await.expect("verify"),
        in_file("changed record at seq 0")
    );
    // The gzip stream cut in the middle.
    std::fs::write(&file, &pristine[..pristine.len() / 2]).expect("cut");
    let report = verify_archive(&file, &range).expect("verify");
    assert!(
        matches!(
            report,
            VerifyReport::Changed { .. } | VerifyReport::Missing { .. }
        ),
        "{report}"
    );
    assert!(!store
        .verify_with(Some(&at_now))
        .await
        .expect("verify")
        .is_ok());
    // The file gone long before retention would delete it.
    std::fs::remove_file(&file).expect("remove");
    assert_eq!(
        store.verify_with(Some(&at_now)).await.expect("verify"),
        VerifyReport::Archived {
            from_seq: 1,
            to_seq: 10,
            detail: format!(
                "file {} missing from {}",
                range.file,
                archive.path().display()
            )
        }
    );
    std::fs::write(&file, &pristine).expect("restore");
    assert!(store
        .verify_with(Some(&at_now))
        .await
        .expect("verify")
        .is_ok());
}

/// Inserting over an existing row does not get around the triggers: on SQLite `INSERT OR
/// REPLACE` (which deletes the row it replaces without firing DELETE triggers) and upserts are
/// refused for the head, the anchor, an archived range and a block; on PostgreSQL its upsert
/// (`ON CONFLICT DO UPDATE`) runs into the UPDATE triggers. The journal stays as it was and
/// opens again (the schema's own insert of the initial rows still passes).
async fn inserting_over_a_row_of_the_journal_is_refused(b: Backend) {
    let store = b.open().await;
    let archive = TempDir::new("qaqpa-audit-archive").expect("archive dir");
    let now = datetime!(2026-12-01 12:00 UTC);
    append_n(store.as_ref(), 0, 5, now - Duration::days(200)).await;
    append_n(store.as_ref(), 5, 5, now).await;
    let report = store
        .archive(now, archive.path(), Retention::default())
        .await
        .expect("archive");
    assert_eq!(report.archived, 5);
    append_n(store.as_ref(), 10, 5, now).await;
    let at_now = check(archive.path(), now);
    assert_ok(
        &store.verify_with(Some(&at_now)).await.expect("verify"),
        10,
        6,
        15,
    );
    let refused: Vec<(&str, &str)> = match &b {
        Backend::Sqlite(_) => vec![
            (
                "audit_head",
                "INSERT OR REPLACE INTO audit_head VALUES (1, 3, 'x')",
            ),
            ("audit_head", "REPLACE INTO audit_head VALUES (1, 20, 'x')"),
            (
                "audit_head",
                "INSERT INTO audit_head VALUES (1, 3, 'x') \
                 ON CONFLICT (id) DO UPDATE SET last_seq = 3",
            ),
            (
                "audit_anchor",
                "INSERT OR REPLACE INTO audit_anchor VALUES (1, 10, 'x')",
            ),
            (
                "audit_anchor",
                "INSERT OR REPLACE INTO audit_anchor VALUES (1, 0, 'x')",
            ),
            (
                "audit_archive",
                "INSERT OR REPLACE INTO audit_archive \
                 SELECT to_seq, from_seq, first_prev_hash, last_hash, 'other', archived_at \
                 FROM audit_archive",
            ),
            (
                "audit_block",
                "INSERT OR REPLACE INTO audit_block \
                 (first_seq, last_seq, prev_hash, min_time_us, max_time_us, records) \
                 SELECT first_seq, first_seq, prev_hash, min_time_us, max_time_us, '' \
                 FROM audit_block WHERE first_seq = 11",
            ),
            (
                "audit_block",
                "INSERT INTO audit_block SELECT * FROM audit_block WHERE first_seq = 11 \
                 ON CONFLICT (first_seq) DO UPDATE SET records = ''",
            ),
        ],
        Backend::Pg(_) => vec![
            (
                "audit_head",
                "INSERT INTO audit_head VALUES (1, 3, 'x') ON CONFLICT (id) \
                 DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash",
            ),
            (
                "audit_anchor",
                "INSERT INTO audit_anchor VALUES (1, 0, 'x') ON CONFLICT (id) \
                 DO UPDATE SET archived_seq = excluded.archived_seq",
            ),
            (
                "audit_archive",
                "INSERT INTO audit_archive SELECT * FROM audit_archive ON CONFLICT (to_seq) \
                 DO UPDATE SET file = 'other'",
            ),
            (
                "audit_log",
                "INSERT INTO audit_log SELECT * FROM audit_log WHERE seq = 11 \
                 ON CONFLICT (seq) DO UPDATE SET body = 'x'",
            ),
        ],
    };
    for (table, sql) in refused {
        let err = b.exec(sql).await.expect_err(sql);
        assert!(err.contains(table), "{sql}: {err}");
    }
    // The head's and the anchor's initial rows, as the schema inserts them at every open, are
    // no change and pass (SQLite: without effect).
    if let Backend::Sqlite(_) = &b {
        b.exec(&format!(
            "INSERT OR IGNORE INTO audit_head VALUES (1, 0, '{GENESIS_HASH}');
             INSERT OR REPLACE INTO audit_head VALUES (1, 0, '{GENESIS_HASH}');
             INSERT OR IGNORE INTO audit_anchor VALUES (1, 0, '{GENESIS_HASH}');"
        ))
        .await
        .expect("the initial rows are no change");
    }
    assert_ok(
        &store.verify_with(Some(&at_now)).await.expect("verify"),
        10,
        6,
        15,
    );
    drop(store);
    let store = b.open().await;
    append_n(store.as_ref(), 15, 1, now).await;
    assert_ok(
        &store.verify_with(Some(&at_now)).await.expect("verify"),
        11,
        6,
        16,
    );
}

/// Retention out of bounds is refused where it is used, naming the field, and deletes
/// nothing: `keep_years = 20000` once wrapped to a date that fell back to `now`, which made
/// every archive file due for deletion.
async fn archiving_refuses_retention_out_of_bounds(b: Backend) {
    let store = b.open().await;
    let archive = TempDir::new("qaqpa-audit-archive").expect("archive dir");
    let now = datetime!(2026-12-01 12:00 UTC);
    append_n(store.as_ref(), 0, 5, now - Duration::days(200)).await;
    append_n(store.as_ref(), 5, 5, now - Duration::days(60)).await;
    append_n(store.as_ref(), 10, 5, now).await;
    let file = store
        .archive(now, archive.path(), Retention::default())
        .await
        .expect("archive")
        .file
        .expect("archive file");
    let later = now + Duration::days(60);
    for (retention, field) in [
        (
            Retention {
                keep_years: 20_000,
                online_months: 3,
            },
            "keep_years = 20000",
        ),
        (
            Retention {
                keep_years: 0,
                online_months: 3,
            },
            "keep_years = 0",
        ),
        (
            Retention {
                keep_years: 3,
                online_months: 100_000,
            },
            "online_months = 100000",
        ),
        (
            Retention {
                keep_years: 3,
                online_months: 0,
            },
            "online_months = 0",
        ),
    ] {
        let err = store
            .archive(later, archive.path(), retention)
            .await
            .expect_err(field)
            .to_string();
        assert!(err.contains(field), "{err}");
        assert!(file.exists(), "{field}: the archive file was deleted");
        let err = store
            .verify_with(Some(&ArchiveCheck {
                dir: archive.path().to_owned(),
                retention,
                now: later,
            }))
            .await
            .expect_err(field)
            .to_string();
        assert!(err.contains(field), "{err}");
    }
    // Within bounds, the records of 60 days ago go to the archive and no file is deleted.
    let report = store
        .archive(later, archive.path(), Retention::default())
        .await
        .expect("archive");
    assert_eq!(report.archived, 5);
    assert!(report.deleted_files.is_empty(), "{report:?}");
    assert_ok(
        &store
            .verify_with(Some(&check(archive.path(), later)))
            .await
            .expect("verify"),
        5,
        11,
        15,
    );
}

async fn queries_filter_and_paginate_newest_first(b: Backend) {
    let store = b.open().await;
    let now = OffsetDateTime::now_utc();
    let x = Exchange {
        direction: Direction::Outbound,
        target: "esedo".into(),
        service_id: None,
        message_id: Some("m-1".into()),
        request_out: Some(now),
        response_in: Some(now),
        request_in: None,
        response_out: None,
        request_bytes: Some(1),
        response_bytes: Some(2),
        result: ExchangeResult::Shep("SCSE003".into()),
    };
    let events = vec![
        AuditEvent::auth_ok("api", "key-a").at(now - Duration::hours(5)),
        AuditEvent::auth_fail("api", Some("key-b"), "bad").at(now - Duration::hours(4)),
        AuditEvent::exchange("engine", x)
            .transaction("tx-1")
            .at(now - Duration::hours(3)),
        AuditEvent::lifecycle(
            "engine",
            LifecycleStage::Delivered,
            "m-1",
            Some("esedo"),
            None,
        )
        .transaction("tx-1")
        .at(now - Duration::hours(2)),
        AuditEvent::refused("api", RefusalReason::RateLimited, "submit", None)
            .account("key-a")
            .at(now - Duration::hours(1)),
        AuditEvent::account_change("api", ChangeOp::Created, "key-c", Some("admin")).at(now),
    ];
    store
        .append(batch(events.clone()).expect("serialisable"))
        .await
        .expect("append");
    let seqs = |page: qaqpa_audit::Page| page.records.iter().map(|r| r.seq).collect::<Vec<_>>();
    let q = |f: AuditFilter| {
        let store = store.clone();
        async move { seqs(store.query(&f, None, 100).await.expect("query")) }
    };
    assert_eq!(q(AuditFilter::default()).await, vec![6, 5, 4, 3, 2, 1]);
    assert_eq!(
        q(AuditFilter {
            account: Some("key-a".into()),
            ..Default::default()
        })
        .await,
        vec![5, 1]
    );
    assert_eq!(
        q(AuditFilter {
            kind: Some("AUTH_FAIL".into()),
            ..Default::default()
        })
        .await,
        vec![2]
    );
    assert_eq!(
        q(AuditFilter {
            min_level: Some(Level::Warning),
            ..Default::default()
        })
        .await,
        vec![5, 3, 2]
    );
    assert_eq!(
        q(AuditFilter {
            transaction_id: Some("tx-1".into()),
            ..Default::default()
        })
        .await,
        vec![4, 3]
    );
    assert_eq!(
        q(AuditFilter {
            target: Some("esedo".into()),
            ..Default::default()
        })
        .await,
        vec![4, 3]
    );
    assert_eq!(
        q(AuditFilter {
            from: Some(now - Duration::minutes(150)),
            to: Some(now - Duration::minutes(30)),
            ..Default::default()
        })
        .await,
        vec![5, 4]
    );
    // Pages of 4: 6..3, then 2..1.
    let p1 = store
        .query(&AuditFilter::default(), None, 4)
        .await
        .expect("page 1");
    assert_eq!(p1.next_cursor, Some(3));
    let p2 = store
        .query(&AuditFilter::default(), p1.next_cursor, 4)
        .await
        .expect("page 2");
    assert_eq!(seqs(p1), vec![6, 5, 4, 3]);
    assert_eq!(p2.next_cursor, None);
    assert_eq!(seqs(p2), vec![2, 1]);
    // Records come back as appended.
    let tail = store.tail(1).await.expect("tail");
    assert_eq!(tail[0].event, events[5]);
}

async fn concurrent_appenders_keep_one_chain(b: Backend) {
    let a = b.open().await;
    let c = b.open().await;
    let now = OffsetDateTime::now_utc();
    let mut tasks = Vec::new();
    for (w, store) in [a.clone(), c.clone(), a.clone(), c.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            for batch in 0..25 {
                append_n(store.as_ref(), w * 1000 + batch * 5, 5, now).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("appender");
    }
    assert_ok(&a.verify().await.expect("verify"), 500, 1, 500);
    assert_ok(&c.verify().await.expect("verify"), 500, 1, 500);
}

// ----- SQLite -----

#[tokio::test]
async fn sqlite_entries_without_their_events_are_stored_and_found_like_entries_with_them() {
    entries_without_their_events_are_stored_and_found_like_entries_with_them(Backend::sqlite())
        .await;
}

#[tokio::test]
async fn postgres_entries_without_their_events_are_stored_and_found_like_entries_with_them() {
    entries_without_their_events_are_stored_and_found_like_entries_with_them(Backend::pg().await)
        .await;
}

#[tokio::test]
async fn sqlite_events_a_msg_cannot_say_are_recorded_as_json_among_the_others() {
    events_a_msg_cannot_say_are_recorded_as_json_among_the_others(Backend::sqlite()).await;
}

#[tokio::test]
async fn postgres_events_a_msg_cannot_say_are_recorded_as_json_among_the_others() {
    events_a_msg_cannot_say_are_recorded_as_json_among_the_others(Backend::pg().await).await;
}

#[tokio::test]
async fn sqlite_chain_verifies_after_appends() {
    chain_verifies_after_appends(Backend::sqlite()).await;
}

#[tokio::test]
async fn sqlite_changed_records_are_found_at_their_seq() {
    changed_records_are_found_at_their_seq(Backend::sqlite()).await;
}

#[tokio::test]
async fn sqlite_deleted_record_is_found() {
    deleted_records_are_found_after_the_last_good_seq(Backend::sqlite(), false).await;
}

#[tokio::test]
async fn sqlite_deleted_newest_records_are_found() {
    deleted_records_are_found_after_the_last_good_seq(Backend::sqlite(), true).await;
}

#[tokio::test]
async fn sqlite_triggers_refuse_update_and_delete() {
    triggers_refuse_update_and_delete(Backend::sqlite()).await;
}

#[tokio::test]
async fn sqlite_archive_moves_old_records_and_stays_verifiable() {
    archive_moves_old_records_and_stays_verifiable(Backend::sqlite()).await;
}

#[tokio::test]
async fn sqlite_archive_refuses_a_record_changed_in_place() {
    archive_refuses_a_record_changed_in_place(Backend::sqlite()).await;
}

#[tokio::test]
async fn sqlite_queries_filter_and_paginate_newest_first() {
    queries_filter_and_paginate_newest_first(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_appenders_keep_one_chain() {
    concurrent_appenders_keep_one_chain(Backend::sqlite()).await;
}

#[tokio::test]
async fn sqlite_records_deleted_behind_a_forged_archived_range_fail_verify() {
    records_deleted_behind_a_forged_archived_range_fail_verify(Backend::sqlite(), true).await;
}

#[tokio::test]
async fn sqlite_a_prefix_deleted_behind_a_forged_archived_range_fails_verify() {
    records_deleted_behind_a_forged_archived_range_fail_verify(Backend::sqlite(), false).await;
}

#[tokio::test]
async fn sqlite_archive_files_cut_short_damaged_or_missing_are_found() {
    archive_files_cut_short_damaged_or_missing_are_found(Backend::sqlite()).await;
}

#[tokio::test]
async fn sqlite_insert_or_replace_over_a_row_of_the_journal_is_refused() {
    inserting_over_a_row_of_the_journal_is_refused(Backend::sqlite()).await;
}

#[tokio::test]
async fn sqlite_archiving_refuses_retention_out_of_bounds() {
    archiving_refuses_retention_out_of_bounds(Backend::sqlite()).await;
}

// ----- PostgreSQL -----

#[tokio::test]
async fn postgres_chain_verifies_after_appends() {
    chain_verifies_after_appends(Backend::pg().await).await;
}

#[tokio::test]
async fn postgres_changed_records_are_found_at_their_seq() {
    changed_records_are_found_at_their_seq(Backend::pg().await).await;
}

#[tokio::test]
async fn postgres_deleted_record_is_found() {
    deleted_records_are_found_after_the_last_good_seq(Backend::pg().await, false).await;
}

#[tokio::test]
async fn postgres_deleted_newest_records_are_found() {
    deleted_records_are_found_after_the_last_good_seq(Backend::pg().await, true).await;
}

#[tokio::test]
async fn postgres_triggers_refuse_update_and_delete() {
    triggers_refuse_update_and_delete(Backend::pg().await).await;
}

#[tokio::test]
async fn postgres_archive_moves_old_records_and_stays_verifiable() {
    archive_moves_old_records_and_stays_verifiable(Backend::pg().await).await;
}

#[tokio::test]
async fn postgres_archive_refuses_a_record_changed_in_place() {
    archive_refuses_a_record_changed_in_place(Backend::pg().await).await;
}

#[tokio::test]
async fn postgres_queries_filter_and_paginate_newest_first() {
    queries_filter_and_paginate_newest_first(Backend::pg().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_appends_from_two_store_instances_keep_one_chain() {
    concurrent_appenders_keep_one_chain(Backend::pg().await).await;
}

#[tokio::test]
async fn postgres_records_deleted_behind_a_forged_archived_range_fail_verify() {
    records_deleted_behind_a_forged_archived_range_fail_verify(Backend::pg().await, true).await;
}

#[tokio::test]
async fn postgres_a_prefix_deleted_behind_a_forged_archived_range_fails_verify() {
    records_deleted_behind_a_forged_archived_range_fail_verify(Backend::pg().await, false).await;
}

#[tokio::test]
async fn postgres_archive_files_cut_short_damaged_or_missing_are_found() {
    archive_files_cut_short_damaged_or_missing_are_found(Backend::pg().await).await;
}

#[tokio::test]
async fn postgres_upserts_over_a_row_of_the_journal_are_refused() {
    inserting_over_a_row_of_the_journal_is_refused(Backend::pg().await).await;
}

#[tokio::test]
async fn postgres_archiving_refuses_retention_out_of_bounds() {
    archiving_refuses_retention_out_of_bounds(Backend::pg().await).await;
}

// ----- the facade -----

#[tokio::test]
async fn auditor_journals_masked_events_and_flush_waits_for_the_store() {
    let dir = TempDir::new("qaqpa-audit-facade").expect("dir");
    let store: Arc<dyn AuditStore> = Arc::new(SqliteAuditStore::open(dir.path()).expect("open"));
    let config = AuditConfig {
        spool_dir: dir.path().join("spool"),
        ..AuditConfig::default()
    };
    let auditor = Auditor::new(&config, Some(store.clone())).expect("auditor");
    for i in 0..1000 {
        auditor.record(
            AuditEvent::signature(
                "qaqpa-engine",
                i % 2 == 0,
                Some("IIN=870101300123"),
                None,
                Some(&format!("m-{i}")),
            )
            .transaction(format!("tx-{i}")),
        );
    }
    let report = auditor.flush().await;
    assert!(report.stored && report.sent, "{report:?}");
    assert_eq!(auditor.store_stats().appended, 1000);
    assert_ok(&store.verify().await.expect("verify"), 1000, 1, 1000);
    let newest = &auditor.store().expect("store").tail(1).await.expect("tail")[0];
    assert_eq!(newest.event.transaction_id.as_deref(), Some("tx-999"));
    let qaqpa_audit::EventKind::SignatureVerify { signer, .. } = &newest.event.kind else {
        panic!("kind")
    };
    assert_eq!(signer.as_deref(), Some("IIN=8701******23"));
    let report = auditor.shutdown(std::time::Duration::from_secs(5)).await;
    assert!(report.stored, "{report:?}");
}

/// On one thread the journal's writer cannot run while events are recorded, so its intake
/// fills: what goes beyond the bound is counted as dropped, the rest is journalled in
/// recording order, and so is nothing recorded after the shutdown.
#[tokio::test]
async fn events_beyond_a_full_journal_intake_are_counted_and_the_rest_journalled_in_order() {
    let dir = TempDir::new("qaqpa-audit-intake").expect("dir");
    let store: Arc<dyn AuditStore> = Arc::new(SqliteAuditStore::open(dir.path()).expect("open"));
    let config = AuditConfig {
        spool_dir: dir.path().join("spool"),
        ..AuditConfig::default()
    };
    let auditor = Auditor::new(&config, Some(store.clone())).expect("auditor");
    let kept = qaqpa_audit::STORE_QUEUE;
    let beyond = 5;
    for i in 0..kept + beyond {
        auditor.record(AuditEvent::auth_ok("api", "key").transaction(format!("tx-{i}")));
    }
    let stats = auditor.store_stats();
    assert_eq!(
        (stats.appended, stats.dropped),
        (0, beyond as u64),
        "{stats:?}"
    );
    let report = auditor.flush().await;
    assert!(report.stored, "{report:?}");
    assert_eq!(auditor.store_stats().appended, kept as u64);
    assert_ok(
        &store.verify().await.expect("verify"),
        kept as u64,
        1,
        kept as u64,
    );
    let newest = store.tail(2).await.expect("tail");
    let txs: Vec<_> = newest
        .iter()
        .map(|r| r.event.transaction_id.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        txs,
        [format!("tx-{}", kept - 1), format!("tx-{}", kept - 2)]
    );
    assert!(
        auditor
            .shutdown(std::time::Duration::from_secs(5))
            .await
            .stored
    );
    auditor.record(AuditEvent::auth_ok("api", "late"));
    assert_eq!(auditor.store_stats().dropped, beyond as u64 + 1);
    assert_eq!(store.tail(1).await.expect("tail")[0].seq, kept as u64);
}

/// One transaction's events recorded one after another by tasks on different worker threads
/// (each hands a token to the next after recording), while the writer takes batches: they are
/// journalled in the order they were recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_recorded_in_turn_on_different_threads_are_journalled_in_that_order() {
    const EVENTS: usize = 4000;
    const THREADS: usize = 4;
    let dir = TempDir::new("qaqpa-audit-turns").expect("dir");
    let store: Arc<dyn AuditStore> = Arc::new(SqliteAuditStore::open(dir.path()).expect("open"));
    let config = AuditConfig {
        spool_dir: dir.path().join("spool"),
        ..AuditConfig::default()
    };
    let auditor = Auditor::new(&config, Some(store.clone())).expect("auditor");
    // A ring of threads: thread k waits for the token on its channel, records the token's
    // number and passes the token to thread k + 1. Plain threads, not runtime tasks: the
    // runtime may run every task on one worker, and then the order across threads would go
    // untested (a worker-thread assertion here failed about one run in three on a busy machine).
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS)
        .map(|_| std::sync::mpsc::channel::<usize>())
        .unzip();
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            for (k, rx) in receivers.into_iter().enumerate() {
                let next = senders[(k + 1) % THREADS].clone();
                let auditor = auditor.clone();
                scope.spawn(move || {
                    while let Ok(n) = rx.recv() {
                        if n == EVENTS {
                            let _ = next.send(n);
                            break;
                        }
                        auditor
                            .record(AuditEvent::auth_ok("api", "key").transaction(format!("{n}")));
                        let _ = next.send(n + 1);
                    }
                });
            }
            senders[0].send(0).expect("start");
        })
    });
    let report = auditor.flush().await;
    assert!(report.stored, "{report:?}");
    assert_ok(
        &store.verify().await.expect("verify"),
        EVENTS as u64,
        1,
        EVENTS as u64,
    );
    let mut journalled: Vec<String> = store
        .tail(EVENTS)
        .await
        .expect("tail")
        .into_iter()
        .map(|r| r.event.transaction_id.unwrap_or_default())
        .collect();
    journalled.reverse();
    let recorded: Vec<String> = (0..EVENTS).map(|n| n.to_string()).collect();
    assert!(journalled == recorded, "journalled out of recording order");
    auditor.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_event_the_journal_cannot_serialise_is_counted_and_does_not_block_the_rest() {
    let dir = TempDir::new("qaqpa-audit-poison").expect("dir");
    let store: Arc<dyn AuditStore> = Arc::new(SqliteAuditStore::open(dir.path()).expect("open"));
    let config = AuditConfig {
        spool_dir: dir.path().join("spool"),
        archive_dir: dir.path().join("archive"),
        ..AuditConfig::default()
    };
    let auditor = Auditor::new(&config, Some(store.clone())).expect("auditor");
    auditor.record(AuditEvent::auth_ok("api", "key-1"));
    // RFC 3339 has no offset seconds: this one cannot be serialised.
    let odd = time::UtcOffset::from_hms(5, 0, 30).expect("offset");
    auditor
        .record(AuditEvent::auth_ok("api", "key-2").at(OffsetDateTime::now_utc().to_offset(odd)));
    auditor.record(AuditEvent::auth_ok("api", "key-3"));
    let report = auditor.flush().await;
    assert!(report.stored, "{report:?}");
    let stats = auditor.store_stats();
    assert_eq!((stats.appended, stats.dropped), (2, 1), "{stats:?}");
    assert_ok(&store.verify().await.expect("verify"), 2, 1, 2);
    // Retention through the facade uses the configured directory.
    let later = OffsetDateTime::now_utc() + Duration::days(200);
    let archived = auditor.archive(later).await.expect("archive");
    assert_eq!(archived.archived, 2);
    assert!(archived
        .file
        .expect("file")
        .starts_with(dir.path().join("archive")));
}

#[tokio::test]
async fn sqlite_journal_in_the_per_event_layout_is_moved_into_blocks() {
    // A journal written by an earlier version: one `audit_log` row per event, bodies in that
    // version's JSON (absent fields as `null`), which today's serialiser no longer writes:
    // verification hashes the stored text, not the event serialised again.
    let dir = TempDir::new("qaqpa-audit-old-layout").expect("temp dir");
    let now = OffsetDateTime::now_utc();
    {
        let conn = rusqlite::Connection::open(dir.path().join("audit.db")).expect("open");
        conn.execute_batch(
            "CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, time_us INTEGER NOT NULL,
               account TEXT, kind TEXT NOT NULL, severity INTEGER NOT NULL, transaction_id TEXT,
               target TEXT, body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
             CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), last_seq INTEGER NOT NULL,
               last_hash TEXT NOT NULL);
             CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
             BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;",
        )
        .expect("old schema");
        let mut prev = qaqpa_audit::store::GENESIS_HASH.to_owned();
        for seq in 1..=3u64 {
            let e = event(seq as usize, now);
            let body = serde_json::to_string(&e).expect("json").replacen(
                '{',
                r#"{"client_ip":null,"op_start":null,"op_end":null,"#,
                1,
            );
            assert_eq!(
                serde_json::from_str::<AuditEvent>(&body).expect("old body"),
                e
            );
            let hash = qaqpa_audit::store::chain_hash(&prev, seq, &body);
            conn.execute(
                "INSERT INTO audit_log VALUES (?1, ?2, 0, ?3, 'AUTH_FAIL', 4, ?4, NULL, ?5, ?6, ?7)",
                rusqlite::params![
                    seq as i64,
                    e.id.to_string(),
                    e.account,
                    e.transaction_id,
                    body,
                    prev,
                    hash
                ],
            )
            .expect("old row");
            prev = hash;
        }
        conn.execute(
            "INSERT INTO audit_head VALUES (1, 3, ?1)",
            rusqlite::params![prev],
        )
        .expect("old head");
    }
    let store = SqliteAuditStore::open(dir.path()).expect("open");
    assert_ok(&store.verify().await.expect("verify"), 3, 1, 3);
    assert_eq!(seqs_of_transaction(&store, "tx-2").await, vec![2]);
    assert_eq!(append_n(&store, 4, 1, now).await, 4);
    assert_ok(&store.verify().await.expect("verify"), 4, 1, 4);
    // The old JSON records and the new MSG record read back as the events they were.
    let tail = store.tail(4).await.expect("tail");
    let read: Vec<(u64, AuditEvent)> = tail.into_iter().map(|r| (r.seq, r.event)).collect();
    let expected: Vec<(u64, AuditEvent)> = (1..=4u64)
        .rev()
        .map(|seq| {
            let mut e = event(seq as usize, now);
            e.id = read[4 - seq as usize].1.id;
            (seq, e)
        })
        .collect();
    assert_eq!(read, expected);
    let conn = rusqlite::Connection::open(dir.path().join("audit.db")).expect("open");
    let old_tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'audit_log'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(old_tables, 0, "the per-event table is gone");
}

/// The blocks of `dir`'s SQLite journal as stored: first seq, text, hashes column.
fn raw_blocks(conn: &rusqlite::Connection) -> Vec<(u64, String, Option<Vec<u8>>)> {
    conn.prepare("SELECT first_seq, records, hashes FROM audit_block ORDER BY first_seq")
        .expect("blocks")
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, block_text(r.get(1)?), r.get(2)?))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// SHA-256 over the previous hash's hex digits, the seq (8 bytes big-endian) and the body,
/// computed here with `sha2` from the chain's definition.
fn chain_digest(prev_hex: &str, seq: u64, body: &str) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(prev_hex.as_bytes());
    h.update(seq.to_be_bytes());
    h.update(body.as_bytes());
    h.finalize().into()
}

#[tokio::test]
async fn sqlite_blocks_keep_the_record_hashes_apart_from_the_text_and_verify_checks_them() {
    let b = Backend::sqlite();
    let store = b.open().await;
    append_n(store.as_ref(), 0, 12, OffsetDateTime::now_utc()).await;
    append_n(store.as_ref(), 12, 8, OffsetDateTime::now_utc()).await;
    let conn = b.blocks_rewritable();
    let blocks = raw_blocks(&conn);
    assert_eq!(blocks.len(), 2);
    // Lines are `<seq> <record>` (the event's syslog MSG); the hashes column holds the chain,
    // 32 bytes a record.
    let mut prev = "0".repeat(64);
    let mut seq = 0;
    for (first_seq, text, hashes) in &blocks {
        let hashes = hashes.as_deref().expect("a hashes column");
        assert_eq!(hashes.len(), 32 * text.lines().count());
        for (i, line) in text.lines().enumerate() {
            seq += 1;
            let (s, body) = line.split_once(' ').expect("a record line");
            assert_eq!(s.parse::<u64>().expect("seq"), seq);
            assert_eq!(seq, first_seq + i as u64);
            assert!(body.starts_with("id="), "{line}");
            let digest = chain_digest(&prev, seq, body);
            assert_eq!(&hashes[32 * i..32 * i + 32], digest, "seq {seq}");
            prev = hex::encode(digest);
        }
    }
    let tail = store.tail(1).await.expect("tail");
    assert_eq!(tail[0].hash, prev);
    // A hash changed in the column is a changed record.
    let mut second = blocks[1].2.clone().expect("hashes");
    second[32 * 2] ^= 1;
    conn.execute(
        "UPDATE audit_block SET hashes = ?1 WHERE first_seq = 13",
        rusqlite::params![second],
    )
    .expect("change a hash");
    assert_eq!(
        store.verify().await.expect("verify"),
        VerifyReport::Changed { seq: 15 }
    );
    // The column emptied: the lines do not read as lines with their hashes either.
    conn.execute(
        "UPDATE audit_block SET hashes = NULL WHERE first_seq = 13",
        [],
    )
    .expect("empty the column");
    assert_eq!(
        store.verify().await.expect("verify"),
        VerifyReport::Changed { seq: 13 }
    );
    // Cut short: the first record without its 32 bytes is named.
    let first = blocks[0].2.clone().expect("hashes");
    conn.execute(
        "UPDATE audit_block SET hashes = ?1 WHERE first_seq = 1",
        rusqlite::params![&first[..32 * 5 + 7]],
    )
    .expect("cut the hashes");
    assert_eq!(
        store.verify().await.expect("verify"),
        VerifyReport::Changed { seq: 6 }
    );
}

#[tokio::test]
async fn sqlite_journal_from_before_the_hashes_column_reads_verifies_and_takes_new_blocks() {
    // A journal of today turned into one from before the column: each line gets its hash
    // back and the column goes.
    let b = Backend::sqlite();
    let now = OffsetDateTime::now_utc();
    {
        let store = b.open().await;
        append_n(store.as_ref(), 0, 6, now).await;
        let conn = b.blocks_rewritable();
        for (first_seq, text, hashes) in raw_blocks(&conn) {
            let hashes = hashes.expect("hashes");
            let old: String = text
                .lines()
                .zip(hashes.chunks(32))
                .map(|(line, h)| {
                    let (seq, body) = line.split_once(' ').expect("line");
                    format!("{seq} {} {body}\n", hex::encode(h))
                })
                .collect();
            conn.execute(
                "UPDATE audit_block SET records = ?1, hashes = NULL WHERE first_seq = ?2",
                rusqlite::params![
                    zstd::encode_all(old.as_bytes(), 1).expect("zstd"),
                    first_seq as i64
                ],
            )
            .expect("old block");
        }
        conn.execute_batch("ALTER TABLE audit_block DROP COLUMN hashes;")
            .expect("drop the column");
    }
    let store = b.open().await;
    assert_ok(&store.verify().await.expect("verify"), 6, 1, 6);
    assert_eq!(seqs_of_transaction(store.as_ref(), "tx-4").await, vec![5]);
    append_n(store.as_ref(), 6, 4, now).await;
    assert_ok(&store.verify().await.expect("verify"), 10, 1, 10);
    let tail = store.tail(5).await.expect("tail");
    assert_eq!(
        tail[3].prev_hash, tail[4].hash,
        "the chain runs on across the formats"
    );
    let conn = b.blocks_rewritable();
    let blocks = raw_blocks(&conn);
    assert!(blocks[0].2.is_none() && blocks[1].2.is_some());
    // An old block's record changed is still found.
    b.tamper_records("", 3..=3, |line| {
        Some(line.replace("bad secret", "good secret"))
    })
    .await;
    assert_eq!(
        store.verify().await.expect("verify"),
        VerifyReport::Changed { seq: 3 }
    );
}

#[tokio::test]
async fn sqlite_journal_with_the_keys_text_in_its_index_gets_key_codes_when_opened() {
    // A journal from before key codes: `audit_key` declared TEXT, one row per key's text and
    // block, append-only. Built here from a journal of today by rewriting its index.
    let b = Backend::sqlite();
    let now = OffsetDateTime::now_utc();
    let mut uuids = Vec::new();
    {
        let store = b.open().await;
        append_n(store.as_ref(), 0, 5, now).await;
        // Transactions whose ids are UUIDs, as the gateway's own are.
        let events: Vec<AuditEvent> = (0..3)
            .map(|i| {
                let id = uuid::Uuid::now_v7().to_string();
                uuids.push(id.clone());
                event(10 + i, now).transaction(id)
            })
            .collect();
        store
            .append(batch(events).expect("serialisable"))
            .await
            .expect("append");
    }
    let text_keys: Vec<(String, i64)> = {
        let conn = b.blocks_rewritable();
        let mut stmt = conn
            .prepare("SELECT first_seq, records FROM audit_block ORDER BY first_seq")
            .expect("blocks");
        let blocks: Vec<(i64, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, block_text(r.get(1)?))))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let mut keys = std::collections::HashSet::new();
        for (first_seq, text) in blocks {
            for line in text.lines() {
                // `<seq> <record>`: the hashes have a column of their own.
                let (_, body) = line.split_once(' ').expect("a record line");
                let e = qaqpa_audit::record::decode(body).expect("event");
                for key in [
                    e.transaction_id.map(|t| format!("t:{t}")),
                    e.account.map(|a| format!("a:{a}")),
                    Some(format!("k:{}", e.kind.name())),
                    e.kind.target().map(|g| format!("g:{g}")),
                    Some(format!("s:{}", e.level.severity())),
                ]
                .into_iter()
                .flatten()
                {
                    keys.insert((key, first_seq));
                }
            }
        }
        keys.into_iter().collect()
    };
    // Per block: each record's transaction and account, one kind, one severity.
    assert_eq!(text_keys.len(), (5 + 5 + 1 + 1) + (3 + 3 + 1 + 1));
    b.exec(
        "DROP TABLE audit_key;
         CREATE TABLE audit_key (key TEXT NOT NULL, first_seq INTEGER NOT NULL,
             PRIMARY KEY (key, first_seq)) WITHOUT ROWID;
         CREATE TRIGGER audit_key_no_update BEFORE UPDATE ON audit_key
         BEGIN SELECT RAISE(ABORT, 'audit_key is append-only'); END;",
    )
    .await
    .expect("back to the text index");
    for (key, first_seq) in &text_keys {
        b.exec(&format!(
            "INSERT INTO audit_key VALUES ('{key}', {first_seq})"
        ))
        .await
        .expect("text key");
    }
    let store = b.open().await;
    assert_ok(&store.verify().await.expect("verify"), 8, 1, 8);
    assert_eq!(seqs_of_transaction(store.as_ref(), "tx-3").await, vec![4]);
    assert_eq!(
        seqs_of_transaction(store.as_ref(), &uuids[1]).await,
        vec![7]
    );
    let filter = AuditFilter {
        account: Some("key-11".into()),
        ..Default::default()
    };
    let page = store.query(&filter, None, 10).await.expect("query");
    assert_eq!(
        page.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![7]
    );
    append_n(store.as_ref(), 20, 2, now).await;
    assert_ok(&store.verify().await.expect("verify"), 10, 1, 10);
    assert_eq!(seqs_of_transaction(store.as_ref(), "tx-21").await, vec![10]);
    // The index holds codes now, and is append-only again.
    let conn = rusqlite::Connection::open(match &b {
        Backend::Sqlite(dir) => dir.path().join("audit.db"),
        Backend::Pg(_) => unreachable!("a SQLite journal"),
    })
    .expect("open");
    let text_rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit_key WHERE typeof(key) <> 'integer'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(text_rows, 0);
    let code: i64 = fnv1a64("a:key-11");
    let found: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit_key WHERE key = ?1",
            [code],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(found, 1, "an account's code is the FNV-1a of its key");
    assert!(conn.execute("DELETE FROM audit_key", []).is_err());
    assert!(conn.execute("UPDATE audit_key SET key = 1", []).is_err());
}

/// Every record of the journal, newest first, page by page.
async fn all_records(store: &dyn AuditStore, filter: &AuditFilter) -> Vec<(u64, OffsetDateTime)> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.query(filter, cursor, 7).await.expect("query");
        out.extend(page.records.iter().map(|r| (r.seq, r.event.time)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// 40 appends a minute apart, each of 3 events; the 31st also carries an event timed in the
/// 6th minute (recorded late, as a slow exchange's event can be). Time-window queries, paged,
/// return exactly what filtering the whole journal by time returns, late record included.
async fn time_windows_find_late_records(b: &Backend) -> Arc<dyn AuditStore> {
    let store = b.open().await;
    let t0 = datetime!(2026-01-05 08:00 UTC);
    for i in 0..40usize {
        let at = t0 + Duration::minutes(i as i64);
        let mut events: Vec<AuditEvent> = (0..3).map(|k| event(i * 3 + k, at)).collect();
        if i == 30 {
            events.push(event(
                999,
                t0 + Duration::minutes(5) + Duration::seconds(30),
            ));
        }
        store
            .append(batch(events).expect("serialisable"))
            .await
            .expect("append");
    }
    let everything = all_records(store.as_ref(), &AuditFilter::default()).await;
    assert_eq!(everything.len(), 121);
    let windows = [
        (Some(5), Some(6)),
        (Some(5), None),
        (None, Some(6)),
        (None, Some(1)),
        (Some(39), None),
        (Some(12), Some(31)),
        (Some(50), None),
        (None, Some(0)),
    ];
    for (from, to) in windows {
        let filter = AuditFilter {
            from: from.map(|m| t0 + Duration::minutes(m)),
            to: to.map(|m| t0 + Duration::minutes(m)),
            ..Default::default()
        };
        let expected: Vec<(u64, OffsetDateTime)> = everything
            .iter()
            .filter(|(_, t)| {
                filter.from.is_none_or(|f| *t >= f) && filter.to.is_none_or(|e| *t < e)
            })
            .cloned()
            .collect();
        let got = all_records(store.as_ref(), &filter).await;
        assert_eq!(got, expected, "window {from:?}..{to:?} (minutes)");
        if from == Some(5) && to == Some(6) {
            assert_eq!(got.len(), 4, "minute 5's three records and the late one");
            assert_eq!(
                got[0].0, 94,
                "the late record comes first: its seq is the highest"
            );
        }
    }
    assert_ok(&store.verify().await.expect("verify"), 121, 1, 121);
    store
}

#[tokio::test]
async fn sqlite_time_windows_find_late_records_and_verify_checks_the_time_bookkeeping() {
    let b = Backend::sqlite();
    drop(time_windows_find_late_records(&b).await);
    // The bookkeeping time windows skip blocks by is checked like the records: a block
    // claiming an earlier latest time (which would hide newer blocks from a window query) is
    // reported at its first record.
    b.tamper("UPDATE audit_block SET upto_us = upto_us - 600000000 WHERE first_seq = 61")
        .await;
    assert_eq!(
        b.open().await.verify().await.expect("verify"),
        VerifyReport::Changed { seq: 61 }
    );
}

#[tokio::test]
async fn postgres_time_windows_find_late_records() {
    time_windows_find_late_records(&Backend::pg().await).await;
}

/// Five appends a second apart (five blocks on SQLite), each of three records a microsecond
/// apart, all at whole microseconds. A bound between two microseconds compares like the
/// instant it is: `to` just after a record keeps it and `from` just after it leaves it out,
/// whichever block holds it.
async fn time_bounds_finer_than_a_microsecond_are_exact(b: Backend) {
    let store = b.open().await;
    let t0 = datetime!(2026-03-02 09:15:00.000_123 UTC);
    let time_of = |seq: u64| {
        let (append, k) = ((seq - 1) / 3, (seq - 1) % 3);
        t0 + Duration::seconds(append as i64) + Duration::microseconds(k as i64)
    };
    for append in 0..5u64 {
        let events: Vec<AuditEvent> = (1..=3)
            .map(|k| {
                let seq = append * 3 + k;
                event(seq as usize, time_of(seq))
            })
            .collect();
        store
            .append(batch(events).expect("serialisable"))
            .await
            .expect("append");
    }
    let everything = all_records(store.as_ref(), &AuditFilter::default()).await;
    assert_eq!(
        everything,
        (1..=15).rev().map(|s| (s, time_of(s))).collect::<Vec<_>>()
    );
    let ns = Duration::nanoseconds;
    let seqs = |from: Option<OffsetDateTime>, to: Option<OffsetDateTime>| {
        let store = store.clone();
        async move {
            let filter = AuditFilter {
                from,
                to,
                ..Default::default()
            };
            all_records(store.as_ref(), &filter)
                .await
                .into_iter()
                .map(|(s, _)| s)
                .collect::<Vec<u64>>()
        }
    };
    let newest_first = |r: std::ops::RangeInclusive<u64>| r.rev().collect::<Vec<u64>>();

    // Seq 7: the first record of the third block, two blocks before it and two after.
    let x = time_of(7);
    for d in [1, 500, 999] {
        assert_eq!(
            seqs(None, Some(x + ns(d))).await,
            newest_first(1..=7),
            "to +{d} ns"
        );
        assert_eq!(
            seqs(Some(x + ns(d)), None).await,
            newest_first(8..=15),
            "from +{d} ns"
        );
        assert_eq!(
            seqs(None, Some(x - ns(d))).await,
            newest_first(1..=6),
            "to -{d} ns"
        );
        assert_eq!(
            seqs(Some(x - ns(d)), None).await,
            newest_first(7..=15),
            "from -{d} ns"
        );
        assert_eq!(
            seqs(Some(x), Some(x + ns(d))).await,
            vec![7],
            "[x, x +{d} ns)"
        );
        assert_eq!(
            seqs(Some(x - ns(d)), Some(x)).await,
            Vec::<u64>::new(),
            "[x -{d} ns, x)"
        );
    }
    assert_eq!(seqs(None, Some(x)).await, newest_first(1..=6), "to exactly");
    assert_eq!(
        seqs(Some(x), None).await,
        newest_first(7..=15),
        "from exactly"
    );
    assert_eq!(
        seqs(Some(x + ns(1)), Some(time_of(8) + ns(1))).await,
        vec![8]
    );
    // The oldest record, in the oldest block; the last record of an older block.
    assert_eq!(seqs(None, Some(time_of(1) + ns(1))).await, vec![1]);
    assert_eq!(seqs(None, Some(time_of(1))).await, Vec::<u64>::new());
    assert_eq!(
        seqs(Some(time_of(3) + ns(500)), Some(time_of(10) + ns(500))).await,
        newest_first(4..=10)
    );
    assert_eq!(
        seqs(Some(time_of(3)), Some(time_of(10))).await,
        newest_first(3..=9)
    );

    // Every record's time and a part of a microsecond either side of it, as `from`, as `to`
    // and as a window a microsecond long: the same as comparing the record times.
    for (_, t) in everything.clone() {
        for d in [-999, -500, -1, 0, 1, 500, 999] {
            let at = t + ns(d);
            for (from, to) in [
                (Some(at), None),
                (None, Some(at)),
                (Some(at), Some(at + Duration::microseconds(1))),
            ] {
                let expected: Vec<u64> = everything
                    .iter()
                    .filter(|(_, rt)| from.is_none_or(|f| *rt >= f) && to.is_none_or(|e| *rt < e))
                    .map(|(s, _)| *s)
                    .collect();
                assert_eq!(seqs(from, to).await, expected, "{from:?}..{to:?}");
            }
        }
    }
    assert_ok(&store.verify().await.expect("verify"), 15, 1, 15);
}

#[tokio::test]
async fn sqlite_time_bounds_finer_than_a_microsecond_are_exact() {
    time_bounds_finer_than_a_microsecond_are_exact(Backend::sqlite()).await;
}

#[tokio::test]
async fn postgres_time_bounds_finer_than_a_microsecond_are_exact() {
    time_bounds_finer_than_a_microsecond_are_exact(Backend::pg().await).await;
}

/// A PostgreSQL journal written before event times were taken to the microsecond: JSON records
/// timed to the nanosecond, several in one microsecond, the `time_us` column their time cut to
/// the microsecond. A time window that ends or starts inside such a microsecond returns exactly
/// the records whose own time lies in it, page after page (7 records a page), as the SQLite
/// journal does.
#[tokio::test]
async fn postgres_json_records_finer_than_a_microsecond_are_filtered_by_their_own_time() {
    let b = Backend::pg().await;
    let store = b.open().await;
    let t0 = datetime!(2026-03-02 09:15:00.000_123_100 UTC);
    // 20 records 400 ns apart: two or three per microsecond.
    let time_of = |seq: u64| t0 + Duration::nanoseconds(400 * (seq as i64 - 1));
    let mut prev = qaqpa_audit::store::GENESIS_HASH.to_owned();
    let mut sql = String::new();
    for seq in 1..=20u64 {
        let at = time_of(seq);
        let e = event(seq as usize, at);
        let mut json = serde_json::to_value(&e).expect("json");
        json["time"] = serde_json::Value::String(
            at.format(&time::format_description::well_known::Rfc3339)
                .expect("rfc3339"),
        );
        let body = json.to_string();
        let hash = qaqpa_audit::store::chain_hash(&prev, seq, &body);
        sql.push_str(&format!(
            "INSERT INTO audit_log VALUES ({seq}, '{id}', {us}, '{account}', '{kind}', {severity}, \
             '{tx}', NULL, '{body}', '{prev}', '{hash}');",
            id = e.id,
            us = at.unix_timestamp_nanos() / 1000,
            account = e.account.as_deref().expect("an account"),
            kind = e.kind.name(),
            severity = e.level.severity(),
            tx = e.transaction_id.as_deref().expect("a transaction"),
            body = body.replace('\'', "''"),
        ));
        prev = hash;
    }
    sql.push_str(&format!(
        "UPDATE audit_head SET last_seq = 20, last_hash = '{prev}' WHERE id = 1;"
    ));
    b.exec(&sql).await.expect("old records written");
    assert_ok(&store.verify().await.expect("verify"), 20, 1, 20);
    let everything = all_records(store.as_ref(), &AuditFilter::default()).await;
    assert_eq!(
        everything,
        (1..=20).rev().map(|s| (s, time_of(s))).collect::<Vec<_>>(),
        "the records read back with their nanoseconds"
    );
    let ns = Duration::nanoseconds;
    for (_, t) in everything.clone() {
        for d in [-999, -500, -399, -1, 0, 1, 399, 500, 999] {
            let at = t + ns(d);
            for (from, to) in [
                (Some(at), None),
                (None, Some(at)),
                (Some(at), Some(at + Duration::microseconds(1))),
                (Some(at), Some(at + ns(1))),
            ] {
                let expected: Vec<u64> = everything
                    .iter()
                    .filter(|(_, rt)| from.is_none_or(|f| *rt >= f) && to.is_none_or(|e| *rt < e))
                    .map(|(s, _)| *s)
                    .collect();
                let filter = AuditFilter {
                    from,
                    to,
                    ..Default::default()
                };
                let got: Vec<u64> = all_records(store.as_ref(), &filter)
                    .await
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect();
                assert_eq!(got, expected, "{from:?}..{to:?}");
            }
        }
    }
}

#[tokio::test]
async fn sqlite_journal_from_before_the_time_bookkeeping_gets_it_when_opened() {
    let b = Backend::sqlite();
    drop(time_windows_find_late_records(&b).await);
    b.exec(
        "DROP INDEX audit_block_upto; DROP INDEX audit_block_late;
         ALTER TABLE audit_block DROP COLUMN upto_us; ALTER TABLE audit_block DROP COLUMN late_us;",
    )
    .await
    .expect("back to the older layout");
    let store = b.open().await;
    assert_ok(&store.verify().await.expect("verify"), 121, 1, 121);
    let filter = AuditFilter {
        from: Some(datetime!(2026-01-05 08:05 UTC)),
        to: Some(datetime!(2026-01-05 08:06 UTC)),
        ..Default::default()
    };
    assert_eq!(all_records(store.as_ref(), &filter).await.len(), 4);
    assert!(
        b.exec("UPDATE audit_block SET records = '' WHERE first_seq = 1")
            .await
            .is_err(),
        "blocks are append-only again"
    );
}

#[tokio::test]
async fn sqlite_blocks_are_stored_compressed_and_plain_text_blocks_from_before_still_read() {
    let b = Backend::sqlite();
    let store = b.open().await;
    let now = OffsetDateTime::now_utc();
    append_n(store.as_ref(), 0, 50, now).await;
    append_n(store.as_ref(), 50, 50, now).await;
    drop(store);
    let conn = b.blocks_rewritable();
    let stored: Vec<(i64, rusqlite::types::Value)> = conn
        .prepare("SELECT first_seq, records FROM audit_block ORDER BY first_seq")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(stored.len(), 2, "one block per append");
    let mut texts = Vec::new();
    for (first, value) in &stored {
        let rusqlite::types::Value::Blob(frame) = value else {
            panic!("block {first} is stored as {value:?}, not compressed");
        };
        let text = block_text(value.clone());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 50);
        assert!(
            lines[0].starts_with(&format!("{first} ")),
            "{first}: {}",
            lines[0]
        );
        assert!(
            frame.len() * 3 < text.len(),
            "block {first}: {} bytes for {} bytes of text",
            frame.len(),
            text.len()
        );
        texts.push(text);
    }
    // The first block as an older version wrote it: plain text.
    conn.execute(
        "UPDATE audit_block SET records = ?1 WHERE first_seq = 1",
        [&texts[0]],
    )
    .expect("back to text");
    drop(conn);
    let store = b.open().await;
    assert_ok(&store.verify().await.expect("verify"), 100, 1, 100);
    assert_eq!(seqs_of_transaction(store.as_ref(), "tx-7").await, vec![8]);
    assert_eq!(seqs_of_transaction(store.as_ref(), "tx-77").await, vec![78]);
}

#[tokio::test]
async fn sqlite_an_unreadable_block_is_reported_at_its_first_seq() {
    // A frame cut short, a frame header claiming a terabyte of text with nothing after it, and
    // bytes that are no frame at all.
    let mut huge = vec![0x28, 0xb5, 0x2f, 0xfd, 0b1110_0000];
    huge.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let cut = zstd::encode_all(&b"11 x {}\n"[..], 1).expect("zstd")[..6].to_vec();
    for frame in [cut, huge, b"not a frame".to_vec()] {
        let b = Backend::sqlite();
        let store = b.open().await;
        let now = OffsetDateTime::now_utc();
        append_n(store.as_ref(), 0, 10, now).await;
        append_n(store.as_ref(), 10, 10, now).await;
        append_n(store.as_ref(), 20, 10, now).await;
        drop(store);
        let conn = b.blocks_rewritable();
        conn.execute(
            "UPDATE audit_block SET records = ?1 WHERE first_seq = 11",
            [&frame],
        )
        .expect("damage");
        drop(conn);
        let store = b.open().await;
        assert_eq!(
            store.verify().await.expect("verify"),
            VerifyReport::Changed { seq: 11 },
            "{frame:?}"
        );
        let err = store
            .query(&AuditFilter::default(), Some(20), 5)
            .await
            .expect_err("the damaged block is in the way");
        assert!(err.to_string().contains("seq 11"), "{err}");
        // Newer records read as before.
        assert_eq!(seqs_of_transaction(store.as_ref(), "tx-25").await, vec![26]);
    }
}

#[tokio::test]
async fn pg_run_markers_of_replicas_starting_together_on_a_new_database_are_all_written() {
    // The first start of several replicas at once: each creates the markers' table if it is
    // missing. Without a lock around that, PostgreSQL failed all but one of them (23505 on
    // `pg_type`), and a replica without a marker cannot report its own unclean stop.
    for round in 0..3 {
        let Backend::Pg(url) = Backend::pg().await else {
            unreachable!("a PostgreSQL back end")
        };
        let runs: Vec<(String, qaqpa_audit::RunInfo)> = (0..8u32)
            .map(|i| {
                (
                    format!("replica-{i}"),
                    qaqpa_audit::RunInfo {
                        pid: 1000 + i,
                        host: format!("gw-{i}"),
                        started: datetime!(2026-12-02 15:00 UTC),
                    },
                )
            })
            .collect();
        let starts = runs.iter().map(|(worker, run)| {
            let url = url.clone();
            async move {
                qaqpa_audit::PgRunMarkers::new(&url)
                    .begin(worker, run)
                    .await
            }
        });
        for (result, (worker, _)) in futures_util::future::join_all(starts)
            .await
            .into_iter()
            .zip(&runs)
        {
            assert_eq!(
                result.unwrap_or_else(|e| panic!("round {round}, {worker}: {e}")),
                None,
                "a first run has no predecessor"
            );
        }
        // Every marker is there: each replica's next start is told of the run before.
        let markers = qaqpa_audit::PgRunMarkers::new(&url);
        for (worker, run) in &runs {
            let next = qaqpa_audit::RunInfo {
                pid: run.pid + 100,
                ..run.clone()
            };
            assert_eq!(
                markers.begin(worker, &next).await.expect("begin"),
                Some(run.clone()),
                "round {round}, {worker}"
            );
        }
    }
}

#[tokio::test]
async fn pg_run_markers_report_a_run_that_never_stopped_cleanly_per_worker_id() {
    let Backend::Pg(url) = Backend::pg().await else {
        unreachable!("a PostgreSQL back end")
    };
    let markers = qaqpa_audit::PgRunMarkers::new(&url);
    let run = |pid: u32, host: &str, minute: u8| qaqpa_audit::RunInfo {
        pid,
        host: host.to_owned(),
        started: datetime!(2026-12-02 06:00:00.123456 UTC) + Duration::minutes(minute.into()),
    };
    let begin = |worker: &'static str, r: qaqpa_audit::RunInfo| {
        let markers = &markers;
        async move { markers.begin(worker, &r).await.expect("begin") }
    };
    let end = |worker: &'static str, r: qaqpa_audit::RunInfo| {
        let markers = &markers;
        async move { markers.end(worker, &r).await.expect("end") }
    };
    // A first run finds nothing; a replica with another worker id is not its predecessor.
    assert_eq!(begin("replica-a", run(100, "gw-1", 0)).await, None);
    assert_eq!(begin("replica-b", run(200, "gw-2", 0)).await, None);
    // replica-a was killed: its next run is told which run that was.
    assert_eq!(
        begin("replica-a", run(101, "gw-1", 5)).await,
        Some(run(100, "gw-1", 0))
    );
    // A stale stop (the killed run's marker is gone already) removes nothing of the new run.
    assert!(!end("replica-a", run(100, "gw-1", 0)).await);
    // A clean stop removes the marker: the run after it starts clean.
    assert!(end("replica-a", run(101, "gw-1", 5)).await);
    assert_eq!(begin("replica-a", run(102, "gw-1", 9)).await, None);
    // replica-b, untouched by all of that, still shows its unfinished run.
    assert_eq!(
        begin("replica-b", run(201, "gw-2", 9)).await,
        Some(run(200, "gw-2", 0))
    );
}
