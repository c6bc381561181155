//! Several gateway replicas on one PostgreSQL database, each a separate `PgStore` with its own
//! pool: migrations at a simultaneous start, claims that never overlap within a lease, and a dead
//! replica's work taken over by the survivor once its leases expire.
use std::collections::HashSet;
use std::time::Duration;

use qaqpa_core::{MessageId, MessageStatus};
use qaqpa_store::conformance::{at, new_message};
use qaqpa_store::testing::TempPostgres;
use qaqpa_store::{AttemptRecord, AttemptResult, InsertOutcome, PgOptions, PgStore, Store};

const LEASE: Duration = Duration::from_secs(30);

async fn fresh_database() -> String {
    let server = TempPostgres::shared().expect("throwaway PostgreSQL");
    server.create_database().await.expect("create database")
}

async fn replica(url: &str) -> PgStore {
    PgStore::connect(
        url,
        PgOptions {
            max_connections: 4,
            ..PgOptions::default()
        },
    )
    .await
    .expect("replica connects")
}

async fn insert_batch(store: &PgStore, n: usize) -> Vec<MessageId> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let m = new_message("edms-a");
        let id = m.id;
        assert!(matches!(
            store.insert_message(m).await.expect("insert"),
            InsertOutcome::Inserted
        ));
        ids.push(id);
    }
    ids
}

fn delivered_by(worker: &str) -> (AttemptRecord, AttemptResult) {
    (
        AttemptRecord {
            number: 1,
            worker: worker.into(),
            started_at: at(1),
            finished_at: at(2),
            outcome: "delivered".into(),
            error: None,
        },
        AttemptResult::Delivered { target_ref: None },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let url = fresh_database().await;
    let starts: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn({
                let url = url.clone();
                async move { PgStore::connect(&url, PgOptions::default()).await }
            })
        })
        .collect();
    for s in starts {
        s.await.expect("task").expect("every replica starts");
    }
    let store = replica(&url).await;
    let c = store.pool().get().await.expect("connection");
    let versions: Vec<i32> = c
        .query(
            "SELECT version FROM qaqpa_schema_version ORDER BY version",
            &[],
        )
        .await
        .expect("versions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<i32> = (1..=qaqpa_store::pg::SCHEMA_VERSION).collect();
    assert_eq!(versions, expected, "each migration recorded exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_claim_the_same_message_within_a_lease() {
    let url = fresh_database().await;
    let a = replica(&url).await;
    let b = replica(&url).await;
    let ids = insert_batch(&a, 300).await;
    // Both replicas start claiming at the same moment.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let work = |store: PgStore, worker: &'static str| {
        let start = start.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            start.wait().await;
            loop {
                let batch = store
                    .claim_due(worker, at(5), LEASE, 8)
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return mine;
                }
                for c in batch {
                    let (attempt, result) = delivered_by(worker);
                    assert!(
                        store
                            .finish_attempt(c.record.id, worker, attempt, result)
                            .await
                            .expect("finish"),
                        "{worker} lost a lease it just took"
                    );
                    mine.push(c.record.id);
                }
            }
        })
    };
    let (got_a, got_b) = tokio::join!(work(a.clone(), "replica-a"), work(b.clone(), "replica-b"));
    let (got_a, got_b) = (got_a.expect("task a"), got_b.expect("task b"));
    let set_a: HashSet<_> = got_a.iter().copied().collect();
    let set_b: HashSet<_> = got_b.iter().copied().collect();
    assert_eq!(set_a.len(), got_a.len(), "replica a got a message twice");
    assert_eq!(set_b.len(), got_b.len(), "replica b got a message twice");
    assert!(
        set_a.is_disjoint(&set_b),
        "a message was handed to both replicas"
    );
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "both replicas took part ({} / {})",
        got_a.len(),
        got_b.len()
    );
    let all: HashSet<_> = set_a.union(&set_b).copied().collect();
    assert_eq!(
        all,
        ids.into_iter().collect::<HashSet<_>>(),
        "every message delivered once"
    );
    let counts = a.status_counts().await.expect("counts");
    assert!(counts.contains(&(MessageStatus::Delivered, 300)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replicas_messages_are_taken_over_after_its_leases_expire() {
    let url = fresh_database().await;
    let survivor = replica(&url).await;
    let ids = insert_batch(&survivor, 40).await;
    let doomed = replica(&url).await;
    let held: HashSet<MessageId> = doomed
        .claim_due("replica-a", at(0), LEASE, 25)
        .await
        .expect("claim")
        .into_iter()
        .map(|c| c.record.id)
        .collect();
    assert_eq!(held.len(), 25);
    drop(doomed); // the process dies: its pool closes, nothing renews or releases its leases

    let rest: HashSet<MessageId> = survivor
        .claim_due("replica-b", at(10), LEASE, 100)
        .await
        .expect("claim")
        .into_iter()
        .map(|c| c.record.id)
        .collect();
    assert_eq!(
        rest.len(),
        15,
        "only the unclaimed messages while the leases run"
    );
    assert!(rest.is_disjoint(&held));

    let taken: HashSet<MessageId> = survivor
        .claim_due("replica-b", at(31), LEASE, 100)
        .await
        .expect("claim")
        .into_iter()
        .map(|c| c.record.id)
        .collect();
    assert_eq!(
        taken, held,
        "exactly the dead replica's messages are taken over"
    );

    // The dead replica comes back with a stale view: its results are refused.
    let revenant = replica(&url).await;
    for id in &held {
        let (attempt, result) = delivered_by("replica-a");
        assert!(!revenant
            .finish_attempt(*id, "replica-a", attempt, result)
            .await
            .expect("finish"));
    }
    for id in ids {
        let (attempt, result) = delivered_by("replica-b");
        assert!(survivor
            .finish_attempt(id, "replica-b", attempt, result)
            .await
            .expect("finish"));
    }
    let counts = survivor.status_counts().await.expect("counts");
    assert!(
        counts.contains(&(MessageStatus::Delivered, 40)),
        "{counts:?}"
    );
}
