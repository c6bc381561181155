//! Grouped inserts for PostgreSQL: one task collects the messages waiting to be inserted and
//! writes up to `max_group` of them with one multi-row `INSERT … SELECT FROM unnest(…) ON
//! CONFLICT DO NOTHING` — one statement, one commit, one WAL flush for the group. It answers
//! each caller only after that commit. Rows it did not insert (an idempotency key or id already
//! taken) and groups that failed as a whole are handed back to the caller, which resolves them
//! one by one; it must never report a message stored that is not committed.
use std::collections::HashSet;

use deadpool_postgres::Pool;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::codec;
use crate::contract::{NewMessage, StoreError};

/// A message waiting for the next group; `reply` gets `Ok(true)` once it is committed,
/// `Ok(false)` if it conflicted, `Err` if the group failed.
pub(crate) struct PendingInsert {
    pub id: Uuid,
    pub client: String,
    pub kind: String,
    pub to: String,
    pub route: String,
    pub document: String,
    pub attachments: String,
    pub signatures: String,
    pub callback_url: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: String,
    pub transaction_id: String,
    pub created_at: OffsetDateTime,
    pub due_at: OffsetDateTime,
    pub reply: oneshot::Sender<Result<bool, String>>,
}

impl PendingInsert {
    pub(crate) fn new(
        msg: &NewMessage,
    ) -> Result<(Self, oneshot::Receiver<Result<bool, String>>), StoreError> {
        let (reply, answer) = oneshot::channel();
        Ok((
            Self {
                id: msg.id.0,
                client: msg.client.0.clone(),
                kind: msg.kind.clone(),
                to: msg.to.clone(),
                route: msg.route.clone(),
                document: codec::to_json(&msg.document)?,
                attachments: codec::encode_attachments(&msg.attachments)?,
                signatures: codec::encode_signatures(&msg.signatures),
                callback_url: msg.callback_url.clone(),
                idempotency_key: msg.idempotency_key.clone(),
                request_hash: msg.request_hash.clone(),
                transaction_id: msg.transaction_id.clone(),
                created_at: msg.created_at,
                due_at: msg.due_at,
                reply,
            },
            answer,
        ))
    }
}

/// Starts the grouping task on the current runtime; it ends when every sender is dropped.
pub(crate) fn spawn(pool: Pool, max_group: usize, queue: usize) -> mpsc::Sender<PendingInsert> {
    let (tx, rx) = mpsc::channel(queue.max(1));
    tokio::spawn(run(pool, rx, max_group.max(1)));
    tx
}

async fn run(pool: Pool, mut rx: mpsc::Receiver<PendingInsert>, max_group: usize) {
    let mut group = Vec::with_capacity(max_group);
    while let Some(first) = rx.recv().await {
        group.push(first);
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        match insert_group(&pool, &group).await {
            Ok(inserted) => {
                for p in group.drain(..) {
                    let done = inserted.contains(&p.id);
                    let _ = p.reply.send(Ok(done));
                }
            }
            Err(e) => {
                let reason = e.to_string();
                for p in group.drain(..) {
                    let _ = p.reply.send(Err(reason.clone()));
                }
            }
        }
    }
}

const INSERT_GROUP: &str = "INSERT INTO messages (id, client, kind, to_addr, route, status, \
    document, attachments, signatures, callback_url, idempotency_key, request_hash, \
    transaction_id, created_at, updated_at, next_attempt_at, attempts) \
    SELECT id, client, kind, to_addr, route, 'queued', document, attachments, signatures, \
    callback_url, idempotency_key, request_hash, transaction_id, created_at, created_at, due_at, 0 \
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
    $13::timestamptz[], $14::timestamptz[]) WITH ORDINALITY \
    AS t(id, client, kind, to_addr, route, document, attachments, signatures, callback_url, \
    idempotency_key, request_hash, transaction_id, created_at, due_at, n) \
    ORDER BY n ON CONFLICT DO NOTHING RETURNING id";

async fn insert_group(pool: &Pool, group: &[PendingInsert]) -> Result<HashSet<Uuid>, StoreError> {
    let c = pool.get().await?;
    let st = c.prepare_cached(INSERT_GROUP).await?;
    let col = |f: fn(&PendingInsert) -> &str| group.iter().map(f).collect::<Vec<&str>>();
    let opt = |f: fn(&PendingInsert) -> Option<&str>| group.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<Uuid> = group.iter().map(|p| p.id).collect();
    let created: Vec<OffsetDateTime> = group.iter().map(|p| p.created_at).collect();
    let due: Vec<OffsetDateTime> = group.iter().map(|p| p.due_at).collect();
    let rows = c
        .query(
            &st,
            &[
                &ids,
                &col(|p| &p.client),
                &col(|p| &p.kind),
                &col(|p| &p.to),
                &col(|p| &p.route),
                &col(|p| &p.document),
                &col(|p| &p.attachments),
                &col(|p| &p.signatures),
                &opt(|p| p.callback_url.as_deref()),
                &opt(|p| p.idempotency_key.as_deref()),
                &col(|p| &p.request_hash),
                &col(|p| &p.transaction_id),
                &created,
                &due,
            ],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get::<_, Uuid>(0)?)).collect()
}
