//! What survives on the embedded store: acknowledged inserts across a reopen and across a
//! SIGKILL of the writing process in the middle of a load.
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use qaqpa_core::MessageId;
use qaqpa_store::conformance::new_message;
use qaqpa_store::testing::TempDir;
use qaqpa_store::{InsertOutcome, SqliteOptions, SqliteStore, Store};

fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir, SqliteOptions::default()).expect("open SQLite store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_inserts_survive_a_reopen() {
    let dir = TempDir::new("qaqpa-reopen").expect("temp dir");
    let store = Arc::new(open(dir.path()));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..50 {
                let m = new_message("edms-a");
                ids.push(m.id);
                assert!(matches!(
                    store.insert_message(m).await.expect("insert"),
                    InsertOutcome::Inserted
                ));
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.expect("task"));
    }
    drop(store);
    let reopened = open(dir.path());
    for id in ids {
        assert!(
            reopened.get_message(None, id).await.expect("get").is_some(),
            "{id} lost"
        );
    }
}

const CHILD_DIR: &str = "QAQPA_STORE_CRASH_CHILD_DIR";
/// Set for the rounds whose child runs with `pipelined_sync`.
const CHILD_PIPELINED: &str = "QAQPA_STORE_CRASH_CHILD_PIPELINED";

/// Child mode: insert from 32 tasks forever, printing `ack <id>` after each acknowledged insert.
async fn insert_until_killed(dir: &Path) {
    let opts = SqliteOptions {
        pipelined_sync: std::env::var_os(CHILD_PIPELINED).is_some(),
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteStore::open(dir, opts).expect("open SQLite store"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<MessageId>();
    for _ in 0..32 {
        let store = store.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let m = new_message("edms-crash");
                let id = m.id;
                if matches!(store.insert_message(m).await, Ok(InsertOutcome::Inserted))
                    && tx.send(id).is_err()
                {
                    return;
                }
            }
        });
    }
    drop(tx);
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    while let Some(id) = rx.recv().await {
        let _ = writeln!(out, "ack {id}");
        let _ = out.flush();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_inserts_survive_sigkill_mid_load() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        insert_until_killed(Path::new(&dir)).await;
        return;
    }
    let dir = TempDir::new("qaqpa-crash").expect("temp dir");
    let exe = std::env::current_exe().expect("test binary path");
    let mut acked: HashSet<MessageId> = HashSet::new();
    for round in 0..3 {
        let mut command = Command::new(&exe);
        if round % 2 == 1 {
            command.env(CHILD_PIPELINED, "1");
        }
        let mut child = command
            .args([
                "--exact",
                "acknowledged_inserts_survive_sigkill_mid_load",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut this_round = 0;
        while this_round < 500 * (round + 1) {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(id) = line.strip_prefix("ack ") {
                acked.insert(id.parse().expect("child prints ids"));
                this_round += 1;
            }
        }
        child.kill().expect("SIGKILL the child");
        // Whatever the child printed before it died was acknowledged too.
        for line in lines.map_while(Result::ok) {
            if let Some(id) = line.strip_prefix("ack ") {
                acked.insert(id.parse().expect("child prints ids"));
            }
        }
        let status = child.wait().expect("reap child");
        assert!(!status.success(), "the child was killed, not finished");
        assert!(
            this_round > 0,
            "round {round}: the child acknowledged nothing"
        );
    }
    let store = open(dir.path());
    let mut missing = 0;
    for id in &acked {
        if store.get_message(None, *id).await.expect("get").is_none() {
            missing += 1;
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged inserts lost after SIGKILL",
        acked.len()
    );
    assert!(
        acked.len() >= 3,
        "too few acknowledged inserts to mean anything"
    );
    println!(
        "{} acknowledged inserts over 3 SIGKILLs, none lost",
        acked.len()
    );
}
