//! The conformance suite: every promise of the [`Store`] and [`BlobStore`] contracts as an async
//! check that panics with a precise message when an implementation breaks it. Each back end runs
//! all of it (see [`store_conformance_tests!`](crate::store_conformance_tests)); the gateway may run
//! it against its own wrappers. It must never depend on one back end's internals: what it needs to
//! look inside (to corrupt a blob, to count leftovers) comes through [`BlobProbe`].
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use qaqpa_core::{AttachmentMeta, ClientId, MessageId, MessageStatus, Receipt};
use time::macros::datetime;
use time::OffsetDateTime;

use crate::contract::*;

/// A fixed instant the suite's times are built from (whole seconds, so every back end keeps
/// them exactly).
pub fn t0() -> OffsetDateTime {
    datetime!(2026-11-23 10:00:00 UTC)
}

/// `t0` plus `s` seconds.
pub fn at(s: i64) -> OffsetDateTime {
    t0() + time::Duration::seconds(s)
}

/// A message of `client`, due at `t0`, with one attachment and a signature.
pub fn new_message(client: &str) -> NewMessage {
    let id = MessageId::new();
    NewMessage {
        id,
        client: ClientId(client.to_owned()),
        kind: "http.post".into(),
        to: "sandbox-echo".into(),
        route: "sandbox".into(),
        document: serde_json::json!({"title": "Письмо о согласовании", "pages": 2, "id": id.to_string()}),
        attachments: vec![AttachmentMeta {
            name: "letter.pdf".into(),
            content_type: "application/pdf".into(),
            size: 3,
            sha256: "a".repeat(64),
        }],
        signatures: vec![vec![0x30, 0x82, 0x01, 0x00], vec![0xff]],
        callback_url: Some("https://edms.example/hooks".into()),
        idempotency_key: None,
        request_hash: "h1".into(),
        transaction_id: format!("tx-{id}"),
        created_at: t0(),
        due_at: t0(),
    }
}

fn client(c: &str) -> ClientId {
    ClientId(c.to_owned())
}

async fn insert(store: &dyn Store, msg: NewMessage) -> MessageId {
    let id = msg.id;
    match store.insert_message(msg).await.expect("insert_message") {
        InsertOutcome::Inserted => id,
        other => panic!("expected Inserted, got {other:?}"),
    }
}

fn attempt(n: u32, worker: &str, outcome: &str, error: Option<&str>) -> AttemptRecord {
    AttemptRecord {
        number: n,
        worker: worker.into(),
        started_at: at(1),
        finished_at: at(2),
        outcome: outcome.into(),
        error: error.map(str::to_owned),
    }
}

const LEASE: Duration = Duration::from_secs(30);

async fn status_of(store: &dyn Store, id: MessageId) -> MessageStatus {
    store
        .get_message(None, id)
        .await
        .expect("get")
        .expect("message exists")
        .status
}

// ---- messages ---------------------------------------------------------------------------------

pub async fn ping_answers(store: &dyn Store) {
    store.ping().await.expect("ping");
}

pub async fn inserted_message_reads_back_whole(store: &dyn Store) {
    let mut msg = new_message("edms-a");
    msg.idempotency_key = Some("k-1".into());
    msg.due_at = at(5);
    let id = insert(store, msg.clone()).await;
    let got = store
        .get_message(Some(&client("edms-a")), id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(got.id, id);
    assert_eq!(got.client, msg.client);
    assert_eq!(got.kind, msg.kind);
    assert_eq!(got.to, msg.to);
    assert_eq!(got.route, msg.route);
    assert_eq!(got.status, MessageStatus::Queued);
    assert_eq!(got.document, msg.document);
    assert_eq!(got.attachments, msg.attachments);
    assert_eq!(got.signatures, msg.signatures);
    assert_eq!(got.callback_url, msg.callback_url);
    assert_eq!(got.idempotency_key.as_deref(), Some("k-1"));
    assert_eq!(got.transaction_id, msg.transaction_id);
    assert_eq!(got.created_at, t0());
    assert_eq!(got.next_attempt_at, Some(at(5)));
    assert_eq!(got.attempts, 0);
    assert!(got.attempt_log.is_empty() && got.receipts.is_empty());
    assert!(got.target_ref.is_none() && got.last_error.is_none());
    assert!(store
        .get_message(None, MessageId::new())
        .await
        .expect("get")
        .is_none());
}

pub async fn same_key_and_request_returns_the_existing_message(store: &dyn Store) {
    let mut first = new_message("edms-a");
    first.idempotency_key = Some("order-77".into());
    let id = insert(store, first.clone()).await;
    let mut again = new_message("edms-a");
    again.idempotency_key = Some("order-77".into());
    again.request_hash = first.request_hash.clone();
    match store.insert_message(again.clone()).await.expect("insert") {
        InsertOutcome::Existing(rec) => assert_eq!(rec.id, id),
        other => panic!("same key and hash must give Existing, got {other:?}"),
    }
    assert!(
        store
            .get_message(None, again.id)
            .await
            .expect("get")
            .is_none(),
        "the repeated request must not store a second message"
    );
}

pub async fn same_key_with_another_request_conflicts(store: &dyn Store) {
    let mut first = new_message("edms-a");
    first.idempotency_key = Some("order-78".into());
    let id = insert(store, first).await;
    let mut other = new_message("edms-a");
    other.idempotency_key = Some("order-78".into());
    other.request_hash = "h2".into();
    match store.insert_message(other.clone()).await.expect("insert") {
        InsertOutcome::Conflict { existing } => assert_eq!(existing, id),
        o => panic!("same key, other hash must Conflict, got {o:?}"),
    }
    assert!(store
        .get_message(None, other.id)
        .await
        .expect("get")
        .is_none());
}

pub async fn idempotency_keys_are_scoped_per_client(store: &dyn Store) {
    let mut a = new_message("edms-a");
    a.idempotency_key = Some("shared-key".into());
    let mut b = new_message("edms-b");
    b.idempotency_key = Some("shared-key".into());
    b.request_hash = "different".into();
    insert(store, a).await;
    insert(store, b).await;
}

pub async fn failed_insert_leaves_nothing_and_spares_its_neighbours(store: &dyn Store) {
    let original = new_message("edms-a");
    let id = insert(store, original.clone()).await;
    // Many inserts at once (grouped into shared commits where the back end does that), one of
    // which reuses an id: it alone fails.
    let mut tasks = Vec::new();
    let store_ids: Vec<NewMessage> = (0..40).map(|_| new_message("edms-a")).collect();
    let mut dup = new_message("edms-a");
    dup.id = id;
    dup.idempotency_key = Some("dup-key".into());
    dup.document = serde_json::json!({"replaced": true});
    for m in store_ids.iter().cloned() {
        tasks.push(store.insert_message(m));
    }
    let dup_result = store.insert_message(dup);
    let (results, dup_result) = tokio::join!(futures_join_all(tasks), dup_result);
    assert!(
        dup_result.is_err(),
        "reusing a message id must fail, got {dup_result:?}"
    );
    for r in results {
        assert!(
            matches!(r, Ok(InsertOutcome::Inserted)),
            "neighbour insert failed: {r:?}"
        );
    }
    for m in &store_ids {
        assert!(store.get_message(None, m.id).await.expect("get").is_some());
    }
    let kept = store
        .get_message(None, id)
        .await
        .expect("get")
        .expect("original kept");
    assert_eq!(
        kept.document, original.document,
        "the failed insert changed the original"
    );
    assert!(kept.idempotency_key.is_none());
    let mut retry = new_message("edms-a");
    retry.idempotency_key = Some("dup-key".into());
    insert(store, retry).await; // the failed insert's key was not kept either
}

/// Polls the futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

pub async fn clients_see_only_their_own_messages(store: &dyn Store) {
    let a = insert(store, new_message("edms-a")).await;
    let b = insert(store, new_message("edms-b")).await;
    assert!(store
        .get_message(Some(&client("edms-b")), a)
        .await
        .expect("get")
        .is_none());
    assert!(store
        .get_message(Some(&client("edms-a")), a)
        .await
        .expect("get")
        .is_some());
    assert!(
        store.get_message(None, b).await.expect("get").is_some(),
        "operators see all"
    );
    let page = store
        .list_messages(&MessageFilter {
            client: Some(client("edms-a")),
            limit: 50,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.items.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a]);
    let all = store
        .list_messages(&MessageFilter {
            limit: 50,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(all.items.len(), 2);
    assert_eq!(
        store.cancel(&client("edms-b"), a).await.expect("cancel"),
        CancelOutcome::NotFound,
        "another client's message cannot be cancelled"
    );
}

pub async fn listing_pages_with_a_cursor_and_filters(store: &dyn Store) {
    let mut ids = Vec::new();
    for i in 0..7i64 {
        let mut m = new_message("edms-a");
        m.created_at = at(i * 60);
        if i % 2 == 1 {
            m.kind = "esedo.letter".into();
        }
        ids.push(insert(store, m).await);
    }
    insert(store, new_message("edms-b")).await;
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_messages(&MessageFilter {
                client: Some(client("edms-a")),
                after: cursor,
                limit: 3,
                ..Default::default()
            })
            .await
            .expect("list");
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|m| m.id));
        match page.next {
            Some(n) => {
                assert_eq!(Some(n), page.items.last().map(|m| m.id));
                cursor = Some(n);
            }
            None => break,
        }
    }
    assert_eq!(
        seen, ids,
        "pages must cover every message once, oldest id first"
    );

    let letters = store
        .list_messages(&MessageFilter {
            client: Some(client("edms-a")),
            kind: Some("esedo.letter".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        letters.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[1], ids[3], ids[5]]
    );
    assert!(letters.next.is_none());

    let window = store
        .list_messages(&MessageFilter {
            client: Some(client("edms-a")),
            created_from: Some(at(120)),
            created_to: Some(at(300)),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        window.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[2], ids[3], ids[4]],
        "created_from is inclusive, created_to exclusive"
    );

    store
        .cancel(&client("edms-a"), ids[0])
        .await
        .expect("cancel");
    let cancelled = store
        .list_messages(&MessageFilter {
            status: Some(MessageStatus::Cancelled),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(cancelled.items.len(), 1);
    assert_eq!(cancelled.items[0].id, ids[0]);
    assert_eq!(cancelled.items[0].status, MessageStatus::Cancelled);
}

pub async fn claim_takes_due_messages_oldest_first(store: &dyn Store) {
    let mut later = new_message("edms-a");
    later.due_at = at(20);
    let later = insert(store, later).await;
    let mut sooner = new_message("edms-a");
    sooner.due_at = at(10);
    let sooner = insert(store, sooner).await;
    let mut future = new_message("edms-a");
    future.due_at = at(1000);
    let future = insert(store, future).await;

    let claimed = store
        .claim_due("w1", at(30), LEASE, 10)
        .await
        .expect("claim");
    let ids: Vec<_> = claimed.iter().map(|c| c.record.id).collect();
    assert_eq!(
        ids,
        vec![sooner, later],
        "due messages, oldest due first; not the future one"
    );
    for c in &claimed {
        assert_eq!(c.record.status, MessageStatus::Delivering);
        assert_eq!(c.lease_until, at(60));
        assert_eq!(c.record.document["title"], "Письмо о согласовании");
    }
    assert_eq!(status_of(store, future).await, MessageStatus::Queued);
    // Later, the expired leases and the future message are all due: oldest due first, `limit` at most.
    let limited = store
        .claim_due("w2", at(2000), LEASE, 2)
        .await
        .expect("claim");
    assert_eq!(
        limited.iter().map(|c| c.record.id).collect::<Vec<_>>(),
        vec![sooner, later]
    );
    let last = store
        .claim_due("w2", at(2000), LEASE, 2)
        .await
        .expect("claim");
    assert_eq!(
        last.iter().map(|c| c.record.id).collect::<Vec<_>>(),
        vec![future]
    );
}

pub async fn claimed_message_is_not_handed_out_again_within_its_lease(store: &dyn Store) {
    let id = insert(store, new_message("edms-a")).await;
    let first = store
        .claim_due("w1", at(1), LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1);
    let second = store
        .claim_due("w2", at(30), LEASE, 10)
        .await
        .expect("claim");
    assert!(
        second.is_empty(),
        "claimed again within the lease: {:?}",
        second.len()
    );
    assert_eq!(status_of(store, id).await, MessageStatus::Delivering);
}

pub async fn expired_lease_is_taken_over(store: &dyn Store) {
    let id = insert(store, new_message("edms-a")).await;
    assert_eq!(
        store
            .claim_due("w1", at(0), LEASE, 10)
            .await
            .expect("claim")
            .len(),
        1
    );
    // w1 "dies": nothing renews its lease, which ends at 30 s.
    let taken = store
        .claim_due("w2", at(31), LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(taken.len(), 1, "the expired lease must be taken over");
    assert_eq!(taken[0].record.id, id);
    assert_eq!(taken[0].lease_until, at(61));
    assert!(
        !store.renew_lease(id, "w1", at(90)).await.expect("renew"),
        "w1 lost its lease"
    );
    assert!(store.renew_lease(id, "w2", at(90)).await.expect("renew"));
    assert!(
        store
            .claim_due("w3", at(70), LEASE, 10)
            .await
            .expect("claim")
            .is_empty(),
        "a renewed lease holds"
    );
    assert_eq!(
        store
            .claim_due("w3", at(91), LEASE, 10)
            .await
            .expect("claim")
            .len(),
        1
    );
}

pub async fn attempt_by_a_worker_that_lost_its_lease_is_refused(store: &dyn Store) {
    let id = insert(store, new_message("edms-a")).await;
    store
        .claim_due("w1", at(0), LEASE, 10)
        .await
        .expect("claim");
    store
        .claim_due("w2", at(31), LEASE, 10)
        .await
        .expect("claim");
    let refused = store
        .finish_attempt(
            id,
            "w1",
            attempt(1, "w1", "delivered", None),
            AttemptResult::Delivered {
                target_ref: Some("T-1".into()),
            },
        )
        .await
        .expect("finish");
    assert!(!refused, "w1 no longer holds the lease");
    let rec = store
        .get_message(None, id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(rec.status, MessageStatus::Delivering);
    assert_eq!(rec.attempts, 0);
    assert!(
        rec.attempt_log.is_empty() && rec.target_ref.is_none(),
        "nothing may change"
    );
    assert!(!store.release(id, "w1").await.expect("release"));
    assert!(store
        .finish_attempt(
            id,
            "w2",
            attempt(1, "w2", "delivered", None),
            AttemptResult::Delivered { target_ref: None }
        )
        .await
        .expect("finish"));
    assert!(
        !store
            .finish_attempt(
                id,
                "w2",
                attempt(2, "w2", "delivered", None),
                AttemptResult::Delivered { target_ref: None }
            )
            .await
            .expect("finish"),
        "a finished attempt releases the lease"
    );
}

pub async fn attempt_results_move_the_message_on(store: &dyn Store) {
    let delivered = insert(store, new_message("edms-a")).await;
    let retried = insert(store, new_message("edms-a")).await;
    let failed = insert(store, new_message("edms-a")).await;
    let dead = insert(store, new_message("edms-a")).await;
    assert_eq!(
        store
            .claim_due("w", at(0), LEASE, 10)
            .await
            .expect("claim")
            .len(),
        4
    );

    assert!(store
        .finish_attempt(
            delivered,
            "w",
            attempt(1, "w", "delivered", None),
            AttemptResult::Delivered {
                target_ref: Some("REG-1".into())
            }
        )
        .await
        .expect("finish"));
    let rec = store
        .get_message(None, delivered)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(rec.status, MessageStatus::Delivered);
    assert_eq!(rec.target_ref.as_deref(), Some("REG-1"));
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.attempt_log, vec![attempt(1, "w", "delivered", None)]);
    assert_eq!(rec.updated_at, at(2));
    assert_eq!(rec.next_attempt_at, None);

    assert!(store
        .finish_attempt(
            retried,
            "w",
            attempt(1, "w", "retry", Some("HTTP 503")),
            AttemptResult::RetryAt(at(100))
        )
        .await
        .expect("finish"));
    let rec = store
        .get_message(None, retried)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(rec.status, MessageStatus::Queued);
    assert_eq!(rec.next_attempt_at, Some(at(100)));
    assert_eq!(rec.last_error.as_deref(), Some("HTTP 503"));

    assert!(store
        .finish_attempt(
            failed,
            "w",
            attempt(1, "w", "failed", Some("SCSE002")),
            AttemptResult::Failed {
                reason: "SCSE002: неверный БИН".into()
            }
        )
        .await
        .expect("finish"));
    let rec = store
        .get_message(None, failed)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(rec.status, MessageStatus::Failed);
    assert_eq!(rec.last_error.as_deref(), Some("SCSE002: неверный БИН"));

    assert!(store
        .finish_attempt(
            dead,
            "w",
            attempt(1, "w", "dead_letter", None),
            AttemptResult::DeadLetter {
                reason: "budget spent".into()
            }
        )
        .await
        .expect("finish"));
    let rec = store
        .get_message(None, dead)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(rec.status, MessageStatus::DeadLetter);
    assert_eq!(rec.last_error.as_deref(), Some("budget spent"));

    assert!(
        store
            .claim_due("w", at(99), LEASE, 10)
            .await
            .expect("claim")
            .is_empty(),
        "nothing is due before the retry time"
    );
    let again = store
        .claim_due("w", at(100), LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(
        again.iter().map(|c| c.record.id).collect::<Vec<_>>(),
        vec![retried],
        "only the retried one comes back"
    );
    assert_eq!(again[0].record.attempts, 1);
    assert_eq!(again[0].record.attempt_log.len(), 1);
    assert!(store
        .finish_attempt(
            retried,
            "w",
            attempt(2, "w", "retry", Some("timeout")),
            AttemptResult::RetryAt(at(200))
        )
        .await
        .expect("finish"));
    let rec = store
        .get_message(None, retried)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(rec.attempts, 2);
    assert_eq!(rec.last_error.as_deref(), Some("timeout"));
    assert_eq!(
        rec.attempt_log.iter().map(|a| a.number).collect::<Vec<_>>(),
        vec![1, 2],
        "attempts in order"
    );
    let finals = store
        .claim_due("w", at(10_000), LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(
        finals.iter().map(|c| c.record.id).collect::<Vec<_>>(),
        vec![retried],
        "terminal states are never claimed"
    );
}

pub async fn release_gives_the_message_back_uncounted(store: &dyn Store) {
    let id = insert(store, new_message("edms-a")).await;
    store
        .claim_due("w1", at(0), LEASE, 10)
        .await
        .expect("claim");
    assert!(
        !store.release(id, "stranger").await.expect("release"),
        "only the holder releases"
    );
    assert!(store.release(id, "w1").await.expect("release"));
    let rec = store
        .get_message(None, id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(rec.status, MessageStatus::Queued);
    assert_eq!(rec.attempts, 0);
    let again = store
        .claim_due("w2", at(1), LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "released work is due at once");
    assert!(!store
        .release(MessageId::new(), "w2")
        .await
        .expect("release"));
}

pub async fn cancel_only_while_queued(store: &dyn Store) {
    let queued = insert(store, new_message("edms-a")).await;
    assert_eq!(
        store
            .cancel(&client("edms-a"), queued)
            .await
            .expect("cancel"),
        CancelOutcome::Cancelled
    );
    assert_eq!(status_of(store, queued).await, MessageStatus::Cancelled);
    assert!(
        store
            .claim_due("w", at(10), LEASE, 10)
            .await
            .expect("claim")
            .is_empty(),
        "cancelled is never claimed"
    );
    assert_eq!(
        store
            .cancel(&client("edms-a"), queued)
            .await
            .expect("cancel"),
        CancelOutcome::NotCancellable(MessageStatus::Cancelled)
    );
    let busy = insert(store, new_message("edms-a")).await;
    store
        .claim_due("w", at(10), LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(
        store.cancel(&client("edms-a"), busy).await.expect("cancel"),
        CancelOutcome::NotCancellable(MessageStatus::Delivering)
    );
    assert_eq!(
        store
            .cancel(&client("edms-a"), MessageId::new())
            .await
            .expect("cancel"),
        CancelOutcome::NotFound
    );
}

pub async fn dead_letter_can_be_retried(store: &dyn Store) {
    let id = insert(store, new_message("edms-a")).await;
    assert!(
        !store.retry_dead(id, at(5)).await.expect("retry"),
        "a queued message is not retried"
    );
    store.claim_due("w", at(0), LEASE, 10).await.expect("claim");
    store
        .finish_attempt(
            id,
            "w",
            attempt(1, "w", "dead_letter", None),
            AttemptResult::DeadLetter {
                reason: "gave up".into(),
            },
        )
        .await
        .expect("finish");
    assert!(store.retry_dead(id, at(500)).await.expect("retry"));
    let rec = store
        .get_message(None, id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(rec.status, MessageStatus::Queued);
    assert_eq!(rec.next_attempt_at, Some(at(500)));
    assert_eq!(
        store
            .claim_due("w", at(500), LEASE, 10)
            .await
            .expect("claim")
            .len(),
        1
    );
    assert!(
        !store.retry_dead(id, at(501)).await.expect("retry"),
        "not while it is being delivered"
    );
    store
        .finish_attempt(
            id,
            "w",
            attempt(2, "w", "failed", None),
            AttemptResult::Failed {
                reason: "SCSE002".into(),
            },
        )
        .await
        .expect("finish");
    assert!(
        store.retry_dead(id, at(600)).await.expect("retry"),
        "a failed message can be retried too"
    );
    assert_eq!(status_of(store, id).await, MessageStatus::Queued);
    assert!(!store
        .retry_dead(MessageId::new(), at(5))
        .await
        .expect("retry"));
}

pub async fn receipts_are_deduplicated_and_kept_in_order(store: &dyn Store) {
    let id = insert(store, new_message("edms-a")).await;
    let r = |kind: &str, key: Option<&str>| Receipt {
        kind: kind.into(),
        at: at(50),
        data: serde_json::json!({"reg_no": "01-12/345"}),
        dedup_key: key.map(str::to_owned),
    };
    let first = store
        .add_receipt(id, r("delivered", Some("d-1")), at(60))
        .await
        .expect("add")
        .expect("new");
    assert_eq!(first.seq, 1);
    assert!(
        store
            .add_receipt(id, r("delivered", Some("d-1")), at(61))
            .await
            .expect("add")
            .is_none(),
        "same dedup key is dropped"
    );
    let second = store
        .add_receipt(id, r("registered", Some("g-1")), at(62))
        .await
        .expect("add")
        .expect("new");
    assert_eq!(second.seq, 2);
    let third = store
        .add_receipt(id, r("execution", None), at(63))
        .await
        .expect("add")
        .expect("new");
    let fourth = store
        .add_receipt(id, r("execution", None), at(64))
        .await
        .expect("add")
        .expect("new");
    assert_eq!(
        (third.seq, fourth.seq),
        (3, 4),
        "receipts without a key are never dropped"
    );
    let rec = store
        .get_message(None, id)
        .await
        .expect("get")
        .expect("found");
    let kinds: Vec<_> = rec
        .receipts
        .iter()
        .map(|s| (s.seq, s.receipt.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, "delivered"),
            (2, "registered"),
            (3, "execution"),
            (4, "execution")
        ]
    );
    assert_eq!(rec.receipts[0], first);
    assert_eq!(rec.receipts[1].received_at, at(62));
    let other = insert(store, new_message("edms-a")).await;
    let elsewhere = store
        .add_receipt(other, r("delivered", Some("d-1")), at(70))
        .await
        .expect("add");
    assert_eq!(
        elsewhere.map(|s| s.seq),
        Some(1),
        "dedup keys are per message"
    );
    assert!(
        store
            .add_receipt(MessageId::new(), r("delivered", None), at(70))
            .await
            .is_err(),
        "no message, no receipt"
    );
}

pub async fn status_counts_cover_every_status(store: &dyn Store) {
    for _ in 0..3 {
        insert(store, new_message("edms-a")).await;
    }
    let mut later = new_message("edms-a");
    later.due_at = at(600);
    insert(store, later).await;
    let cancelled = insert(store, new_message("edms-b")).await;
    store
        .cancel(&client("edms-b"), cancelled)
        .await
        .expect("cancel");
    store.claim_due("w", at(0), LEASE, 1).await.expect("claim");
    let counts = store.status_counts().await.expect("counts");
    let of = |s: MessageStatus| counts.iter().find(|(c, _)| *c == s).map(|(_, n)| *n);
    assert_eq!(of(MessageStatus::Queued), Some(3));
    assert_eq!(
        store.due_count(at(0)).await.expect("due"),
        2,
        "the one due later is not due yet"
    );
    assert_eq!(store.due_count(at(600)).await.expect("due"), 3);
    assert_eq!(of(MessageStatus::Delivering), Some(1));
    assert_eq!(of(MessageStatus::Cancelled), Some(1));
    assert_eq!(
        of(MessageStatus::Delivered),
        Some(0),
        "every status is listed, zeros too"
    );
    assert_eq!(counts.len(), MessageStatus::ALL.len());
}

pub async fn many_concurrent_inserts_are_all_stored(store: Arc<dyn Store>) {
    let mut handles = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..25 {
                let mut m = new_message(&format!("edms-{}", t % 3));
                m.idempotency_key = Some(format!("k-{}", m.id));
                ids.push(insert(&*store, m).await);
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    assert_eq!(all.len(), 400);
    for id in all {
        assert!(
            store.get_message(None, id).await.expect("get").is_some(),
            "{id} acknowledged but missing"
        );
    }
}

pub async fn concurrent_repeats_of_one_key_store_one_message(store: Arc<dyn Store>) {
    let mut handles = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut m = new_message("edms-a");
            m.idempotency_key = Some("submitted-twelve-times".into());
            if i == 11 {
                m.request_hash = "another body".into();
            }
            let id = m.id;
            (id, i, store.insert_message(m).await.expect("insert"))
        }));
    }
    let mut winners = Vec::new();
    let mut outcomes = Vec::new();
    for h in handles {
        let (id, i, outcome) = h.await.expect("task");
        if matches!(outcome, InsertOutcome::Inserted) {
            winners.push((id, i));
        }
        outcomes.push((i, outcome));
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of the repeats is stored: {winners:?}"
    );
    let (winner, winner_i) = winners[0];
    for (i, outcome) in outcomes {
        match outcome {
            InsertOutcome::Inserted => assert_eq!(i, winner_i),
            InsertOutcome::Existing(rec) => assert_eq!(rec.id, winner, "repeat {i}"),
            InsertOutcome::Conflict { existing } => {
                assert_eq!(existing, winner);
                assert!(
                    i == 11 || winner_i == 11,
                    "only a different body conflicts (repeat {i})"
                );
            }
        }
    }
    let page = store
        .list_messages(&MessageFilter {
            limit: 50,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
}

pub async fn concurrent_claimers_never_share_a_message(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for _ in 0..120 {
        ids.push(insert(&*store, new_message("edms-a")).await);
    }
    let mut handles = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store
                    .claim_due(&format!("w{w}"), at(1), LEASE, 7)
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    break;
                }
                got.extend(batch.into_iter().map(|c| c.record.id));
            }
            got
        }));
    }
    let mut claimed = Vec::new();
    for h in handles {
        claimed.extend(h.await.expect("task"));
    }
    claimed.sort();
    let total = claimed.len();
    claimed.dedup();
    assert_eq!(
        total,
        claimed.len(),
        "a message was claimed twice within its lease"
    );
    ids.sort();
    assert_eq!(claimed, ids, "every message claimed exactly once");
}

// ---- inbox ------------------------------------------------------------------------------------

pub fn inbox_item(client: &str, external_id: &str) -> InboxItem {
    InboxItem {
        id: MessageId::new(),
        client: ClientId(client.to_owned()),
        source: "esedo".into(),
        external_id: external_id.into(),
        kind: "esedo.letter".into(),
        from: "MINFIN".into(),
        document: serde_json::json!({"subject": "О бюджете"}),
        attachments: vec![],
        received_at: at(10),
        acked_at: None,
        transaction_id: format!("tx-{external_id}"),
    }
}

pub async fn inbox_dedups_isolates_and_acknowledges(store: &dyn Store) {
    let first = inbox_item("edms-a", "EXT-1");
    let (id, new) = store.insert_inbox(first.clone()).await.expect("insert");
    assert!(new);
    assert_eq!(id, first.id);
    let (again, new) = store
        .insert_inbox(inbox_item("edms-a", "EXT-1"))
        .await
        .expect("insert");
    assert_eq!(
        (again, new),
        (id, false),
        "a repeated push returns the first id"
    );
    let got = store
        .get_inbox(Some(&client("edms-a")), id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(got.document, first.document);
    assert_eq!(got.from, "MINFIN");
    assert_eq!(got.received_at, at(10));
    assert!(got.acked_at.is_none());
    assert!(
        store
            .get_inbox(Some(&client("edms-b")), id)
            .await
            .expect("get")
            .is_none(),
        "other client"
    );
    assert!(
        !store
            .ack_inbox(Some(&client("edms-b")), id, at(20))
            .await
            .expect("ack"),
        "other client cannot ack"
    );
    assert!(store
        .ack_inbox(Some(&client("edms-a")), id, at(20))
        .await
        .expect("ack"));
    assert!(
        store
            .ack_inbox(Some(&client("edms-a")), id, at(30))
            .await
            .expect("ack"),
        "acking twice is fine"
    );
    let got = store
        .get_inbox(None, id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(
        got.acked_at,
        Some(at(20)),
        "the first acknowledgement time is kept"
    );
    assert!(!store
        .ack_inbox(None, MessageId::new(), at(20))
        .await
        .expect("ack"));
}

pub async fn inbox_lists_pages_and_hides_acknowledged(store: &dyn Store) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let (id, _) = store
            .insert_inbox(inbox_item("edms-a", &format!("E-{i}")))
            .await
            .expect("insert");
        ids.push(id);
    }
    store
        .insert_inbox(inbox_item("edms-b", "E-other"))
        .await
        .expect("insert");
    store.ack_inbox(None, ids[1], at(20)).await.expect("ack");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_inbox(Some(&client("edms-a")), after, false, 2)
            .await
            .expect("list");
        seen.extend(page.items.iter().map(|i| i.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let unacked = store
        .list_inbox(Some(&client("edms-a")), None, true, 10)
        .await
        .expect("list");
    assert_eq!(
        unacked.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![ids[0], ids[2], ids[3], ids[4]]
    );
    let everyone = store.list_inbox(None, None, false, 10).await.expect("list");
    assert_eq!(everyone.items.len(), 6);
}

// ---- webhooks ---------------------------------------------------------------------------------

pub fn webhook(message: Option<MessageId>, due: OffsetDateTime) -> WebhookEvent {
    WebhookEvent {
        id: MessageId::new(),
        client: client("edms-a"),
        message,
        url: "https://edms.example/hooks".into(),
        payload: serde_json::json!({"event": "message.delivered", "n": 1}),
        created_at: due,
        due_at: due,
        attempts: 0,
        state: "pending".into(),
        last_error: None,
    }
}

pub async fn webhooks_are_claimed_under_lease_and_finished(store: &dyn Store) {
    let msg = insert(store, new_message("edms-a")).await;
    let a = webhook(Some(msg), at(0));
    let b = webhook(Some(msg), at(5));
    let later = webhook(None, at(500));
    for e in [&a, &b, &later] {
        store.enqueue_webhook(e.clone()).await.expect("enqueue");
    }
    let claimed = store
        .claim_webhooks("h1", at(10), LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    assert_eq!(claimed[0].payload, a.payload);
    assert!(
        store
            .claim_webhooks("h2", at(20), LEASE, 10)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );
    assert!(
        !store
            .finish_webhook(a.id, "h2", WebhookResult::Delivered)
            .await
            .expect("finish"),
        "not h2's"
    );
    assert!(store
        .finish_webhook(a.id, "h1", WebhookResult::Delivered)
        .await
        .expect("finish"));
    assert!(store
        .finish_webhook(
            b.id,
            "h1",
            WebhookResult::RetryAt {
                at: at(100),
                error: "HTTP 500".into()
            }
        )
        .await
        .expect("finish"));
    let events = store.webhooks_for_message(msg).await.expect("list");
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].id, events[0].state.as_str(), events[0].attempts),
        (a.id, "delivered", 1)
    );
    assert_eq!(
        (events[1].state.as_str(), events[1].attempts),
        ("pending", 1)
    );
    assert_eq!(events[1].due_at, at(100));
    assert_eq!(events[1].last_error.as_deref(), Some("HTTP 500"));
    // h1 dies holding b; after the lease b comes back (and the retry time has come).
    let retaken = store
        .claim_webhooks("h2", at(100), LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(retaken.iter().map(|e| e.id).collect::<Vec<_>>(), vec![b.id]);
    let stolen = store
        .claim_webhooks("h3", at(131), LEASE, 10)
        .await
        .expect("claim");
    assert_eq!(
        stolen.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![b.id],
        "expired lease taken over"
    );
    assert!(!store
        .finish_webhook(b.id, "h2", WebhookResult::Delivered)
        .await
        .expect("finish"));
    assert!(store
        .finish_webhook(
            b.id,
            "h3",
            WebhookResult::GaveUp {
                error: "HTTP 410".into()
            }
        )
        .await
        .expect("finish"));
    let events = store.webhooks_for_message(msg).await.expect("list");
    assert_eq!(events[1].state, "failed");
    assert!(store
        .claim_webhooks("h3", at(10_000), LEASE, 10)
        .await
        .expect("claim")
        .iter()
        .all(|e| e.id == later.id));
}

// ---- API keys ---------------------------------------------------------------------------------

pub async fn api_keys_are_created_found_and_revoked(store: &dyn Store) {
    let key = ApiKeyRecord {
        key_id: "k7f3".into(),
        secret_hash: "e3b0c442".into(),
        client: client("edms-a"),
        role: "client".into(),
        label: "1C документооборот".into(),
        created_at: at(0),
        revoked_at: None,
    };
    store.create_api_key(key.clone()).await.expect("create");
    let mut op = key.clone();
    op.key_id = "op01".into();
    op.role = "operator".into();
    op.created_at = at(1);
    store.create_api_key(op).await.expect("create");
    assert!(
        store.create_api_key(key.clone()).await.is_err(),
        "key ids are unique"
    );
    let found = store
        .find_api_key("k7f3")
        .await
        .expect("find")
        .expect("found");
    assert_eq!(
        (
            found.secret_hash.as_str(),
            found.role.as_str(),
            found.label.as_str()
        ),
        ("e3b0c442", "client", "1C документооборот")
    );
    assert_eq!(found.client, client("edms-a"));
    assert!(store.find_api_key("nope").await.expect("find").is_none());
    assert_eq!(
        store
            .list_api_keys()
            .await
            .expect("list")
            .iter()
            .map(|k| k.key_id.as_str())
            .collect::<Vec<_>>(),
        vec!["k7f3", "op01"]
    );
    assert!(store.revoke_api_key("k7f3", at(50)).await.expect("revoke"));
    assert!(!store.revoke_api_key("nope", at(50)).await.expect("revoke"));
    let revoked = store
        .find_api_key("k7f3")
        .await
        .expect("find")
        .expect("still found");
    assert_eq!(revoked.revoked_at, Some(at(50)));
}

// ---- blobs ------------------------------------------------------------------------------------

/// What the blob checks need to see inside a back end.
#[async_trait]
pub trait BlobProbe: Send + Sync {
    /// Flips one byte of the stored content of `sha256`.
    async fn corrupt(&self, sha256: &str);
    /// Number of stored objects (files, rows), temporaries included.
    async fn stored_objects(&self) -> u64;
}

/// Feeds fixed chunks to `put`.
pub struct VecChunks(pub std::collections::VecDeque<Bytes>);

impl VecChunks {
    pub fn new(chunks: Vec<Vec<u8>>) -> Self {
        Self(chunks.into_iter().map(Bytes::from).collect())
    }
}

#[async_trait]
impl BlobChunks for VecChunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        Ok(self.0.pop_front())
    }
}

/// Deterministic test content of `len` bytes.
pub fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn read_all(chunks: &mut (dyn BlobChunks + Send)) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    while let Some(c) = chunks.next_chunk().await? {
        out.extend_from_slice(&c);
    }
    Ok(out)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    crate::codec::hex(&sha2::Sha256::digest(bytes))
}

pub async fn blob_round_trips_and_duplicates_are_free(
    blobs: &dyn BlobStore,
    probe: &dyn BlobProbe,
) {
    let data = content(700 * 1024 + 13, 7);
    let pieces: Vec<Vec<u8>> = data.chunks(100_000).map(<[u8]>::to_vec).collect();
    let (sha, size) = blobs
        .put(&mut VecChunks::new(pieces), 10 << 20)
        .await
        .expect("put");
    assert_eq!(sha, sha256_hex(&data));
    assert_eq!(size, data.len() as u64);
    assert_eq!(
        blobs.get(&sha).await.expect("get").as_ref(),
        data.as_slice()
    );
    let mut stream = blobs.open(&sha).await.expect("open");
    assert_eq!(read_all(&mut *stream).await.expect("stream"), data);
    let before = probe.stored_objects().await;
    let (again, _) = blobs
        .put(&mut VecChunks::new(vec![data.clone()]), 10 << 20)
        .await
        .expect("put");
    assert_eq!(again, sha);
    assert_eq!(
        probe.stored_objects().await,
        before,
        "the same content is stored once"
    );
    let (empty, n) = blobs
        .put(&mut VecChunks::new(vec![]), 10)
        .await
        .expect("put empty");
    assert_eq!(n, 0);
    assert!(blobs.get(&empty).await.expect("get empty").is_empty());
}

pub async fn corrupted_blob_is_detected(blobs: &dyn BlobStore, probe: &dyn BlobProbe) {
    // Exactly two 256 KiB pieces: the check must still fire after the last full chunk.
    let data = content(512 * 1024, 3);
    let (sha, _) = blobs
        .put(&mut VecChunks::new(vec![data]), 10 << 20)
        .await
        .expect("put");
    probe.corrupt(&sha).await;
    match blobs.get(&sha).await {
        Err(StoreError::BlobCorrupt { sha256 }) => assert_eq!(sha256, sha),
        other => panic!(
            "a flipped byte must be BlobCorrupt, got {:?}",
            other.map(|b| b.len())
        ),
    }
    let mut stream = blobs.open(&sha).await.expect("open");
    assert!(
        matches!(
            read_all(&mut *stream).await,
            Err(StoreError::BlobCorrupt { .. })
        ),
        "the stream must fail at the end"
    );
    assert!(
        matches!(
            blobs.get(&"0".repeat(64)).await,
            Err(StoreError::BlobCorrupt { .. })
        ),
        "a missing blob"
    );
}

pub async fn oversized_blob_leaves_nothing_behind(blobs: &dyn BlobStore, probe: &dyn BlobProbe) {
    let before = probe.stored_objects().await;
    let pieces = vec![content(60_000, 1), content(60_000, 2)];
    match blobs.put(&mut VecChunks::new(pieces), 100_000).await {
        Err(StoreError::BlobTooLarge { limit }) => assert_eq!(limit, 100_000),
        other => panic!("expected BlobTooLarge, got {other:?}"),
    }
    assert_eq!(
        probe.stored_objects().await,
        before,
        "a refused blob leaves nothing"
    );
    let exact = content(100_000, 9);
    let (sha, size) = blobs
        .put(&mut VecChunks::new(vec![exact.clone()]), 100_000)
        .await
        .expect("exactly the limit fits");
    assert_eq!((sha, size), (sha256_hex(&exact), 100_000));
}

/// Generates one `#[tokio::test]` per conformance check. `$make` is an async block giving a fresh
/// `Arc<dyn Store>` for each test.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@each $make;
            ping_answers,
            inserted_message_reads_back_whole,
            same_key_and_request_returns_the_existing_message,
            same_key_with_another_request_conflicts,
            idempotency_keys_are_scoped_per_client,
            failed_insert_leaves_nothing_and_spares_its_neighbours,
            clients_see_only_their_own_messages,
            listing_pages_with_a_cursor_and_filters,
            claim_takes_due_messages_oldest_first,
            claimed_message_is_not_handed_out_again_within_its_lease,
            expired_lease_is_taken_over,
            attempt_by_a_worker_that_lost_its_lease_is_refused,
            attempt_results_move_the_message_on,
            release_gives_the_message_back_uncounted,
            cancel_only_while_queued,
            dead_letter_can_be_retried,
            receipts_are_deduplicated_and_kept_in_order,
            status_counts_cover_every_status,
            inbox_dedups_isolates_and_acknowledges,
            inbox_lists_pages_and_hides_acknowledged,
            webhooks_are_claimed_under_lease_and_finished,
            api_keys_are_created_found_and_revoked
        );
        $crate::store_conformance_tests!(@each_arc $make;
            many_concurrent_inserts_are_all_stored,
            concurrent_repeats_of_one_key_store_one_message,
            concurrent_claimers_never_share_a_message
        );
    };
    (@each $make:expr; $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let store: ::std::sync::Arc<dyn $crate::Store> = $make.await;
            $crate::conformance::$case(&*store).await;
        }
    )*};
    (@each_arc $make:expr; $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let store: ::std::sync::Arc<dyn $crate::Store> = $make.await;
            $crate::conformance::$case(store).await;
        }
    )*};
}

/// Generates the blob checks as `#[tokio::test]`s. `$make` is an async block giving a fresh
/// `(Arc<dyn BlobStore>, Arc<dyn BlobProbe>)` for each test.
#[macro_export]
macro_rules! blob_conformance_tests {
    ($make:expr) => {
        $crate::blob_conformance_tests!(@each $make;
            blob_round_trips_and_duplicates_are_free,
            corrupted_blob_is_detected,
            oversized_blob_leaves_nothing_behind
        );
    };
    (@each $make:expr; $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let (blobs, probe): (
                ::std::sync::Arc<dyn $crate::BlobStore>,
                ::std::sync::Arc<dyn $crate::conformance::BlobProbe>,
            ) = $make.await;
            $crate::conformance::$case(&*blobs, &*probe).await;
        }
    )*};
}
