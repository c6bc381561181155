//! The shared store: PostgreSQL through a deadpool-postgres pool, for several gateway replicas
//! on one database. Claims use `FOR UPDATE SKIP LOCKED` under leases (`lease_owner`,
//! `lease_until`); an attempt is recorded only by the lease holder. Commits are not batched by
//! hand by default: concurrent transactions share WAL flushes inside PostgreSQL; grouped inserts
//! ([`PgOptions::insert_group`]) are available and were measured (see the benchmark report).
//! It must never hold a row lock across a call to a target, and never change a message whose
//! lease it does not hold.
mod blob;
mod inserter;
mod schema;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use qaqpa_core::{ClientId, MessageId, MessageStatus, Receipt};
use time::OffsetDateTime;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use crate::codec;
use crate::contract::*;
use crate::sqlite::{all_statuses, page};
pub use blob::{PgBlobStore, PG_CHUNK};
pub use schema::SCHEMA_VERSION;

/// Tuning of the PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections in the pool (each replica).
    pub max_connections: usize,
    /// How long a caller waits for a free connection before `Unavailable`.
    pub acquire_timeout: Duration,
    /// Most messages `insert_message` writes in one grouped statement (one commit). The default,
    /// 1, turns grouping off: one transaction per message from the pool's connections, whose
    /// commits PostgreSQL already flushes together; on the 2-core benchmark machine that was
    /// faster than one grouping task (docs/BENCHMARKS.md).
    pub insert_group: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            insert_group: 1,
        }
    }
}

/// What went wrong, in words an operator can act on: for an error the server sent, its severity,
/// SQLSTATE and message (`FATAL 53300: sorry, too many clients already`); otherwise the client's
/// error with its causes (`error connecting to server: Connection refused`). The server's DETAIL
/// is left out on purpose: for a failing row it quotes the row, which may hold document content.
pub fn describe_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    qaqpa_core::error_chain(e)
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let transient = match e.code() {
            None => true, // I/O, closed connection, timeout
            Some(code) => {
                let c = code.code();
                c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("57P")
                    || c == "40001"
                    || c == "40P01"
            }
        };
        if transient {
            StoreError::Unavailable(format!("PostgreSQL: {}", describe_error(&e)))
        } else {
            StoreError::Other(format!("PostgreSQL: {}", describe_error(&e)))
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Unavailable(format!(
                "PostgreSQL pool: cannot open a connection: {}",
                describe_error(&e)
            )),
            e => StoreError::Unavailable(format!("PostgreSQL pool: {e}")),
        }
    }
}

/// The PostgreSQL store. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    inserter: Option<tokio::sync::mpsc::Sender<inserter::PendingInsert>>,
}

impl PgStore {
    /// Connects with a libpq-style string or URL (`postgres://user@host:port/db`), applies
    /// migrations (under an advisory lock) and builds the pool.
    pub async fn connect(url: &str, opts: PgOptions) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Other(format!("bad PostgreSQL connection string: {e}")))?;
        Self::connect_config(config, opts).await
    }

    /// As [`PgStore::connect`], from a parsed configuration.
    pub async fn connect_config(
        config: tokio_postgres::Config,
        opts: PgOptions,
    ) -> Result<PgStore, StoreError> {
        let (mut client, connection) = config.connect(NoTls).await?;
        let driver = tokio::spawn(connection);
        let migrated = schema::migrate(&mut client).await;
        drop(client);
        let _ = driver.await;
        migrated?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.acquire_timeout))
            .create_timeout(Some(opts.acquire_timeout))
            .build()
            .map_err(|e| StoreError::Other(format!("PostgreSQL pool: {e}")))?;
        let inserter = (opts.insert_group > 1)
            .then(|| inserter::spawn(pool.clone(), opts.insert_group, opts.insert_group * 8));
        Ok(PgStore { pool, inserter })
    }

    /// The blob store in the same database.
    pub fn blob_store(&self) -> PgBlobStore {
        PgBlobStore::new(self.pool.clone())
    }

    /// The pool (for the gateway's own look-ups and for tests).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }
}

const MSG_COLS: &str = "id, client, kind, to_addr, route, status, document, attachments, \
    signatures, callback_url, idempotency_key, transaction_id, created_at, updated_at, \
    next_attempt_at, attempts, target_ref, last_error, lease_until";

fn count(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn message_row(r: &Row) -> Result<(MessageRecord, Option<OffsetDateTime>), StoreError> {
    let status: String = r.try_get(5)?;
    let document: String = r.try_get(6)?;
    let attachments: String = r.try_get(7)?;
    let signatures: String = r.try_get(8)?;
    let record = MessageRecord {
        id: MessageId(r.try_get(0)?),
        client: ClientId(r.try_get(1)?),
        kind: r.try_get(2)?,
        to: r.try_get(3)?,
        route: r.try_get(4)?,
        status: codec::status(&status)?,
        document: codec::json(&document)?,
        attachments: codec::json(&attachments)?,
        signatures: codec::decode_signatures(&signatures)?,
        callback_url: r.try_get(9)?,
        idempotency_key: r.try_get(10)?,
        transaction_id: r.try_get(11)?,
        created_at: r.try_get(12)?,
        updated_at: r.try_get(13)?,
        next_attempt_at: r.try_get(14)?,
        attempts: count(r.try_get(15)?),
        target_ref: r.try_get(16)?,
        last_error: r.try_get(17)?,
        attempt_log: Vec::new(),
        receipts: Vec::new(),
    };
    Ok((record, r.try_get(18)?))
}

/// Fills in the attempt logs and receipts of `records` (two queries whatever their number).
async fn attach_history(
    client: &deadpool_postgres::ClientWrapper,
    records: &mut [MessageRecord],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = records.iter().map(|r| r.id.0).collect();
    let index: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let st = client
        .prepare_cached(
            "SELECT message_id, number, worker, started_at, finished_at, outcome, error \
             FROM attempts WHERE message_id = ANY($1) ORDER BY id",
        )
        .await?;
    for r in client.query(&st, &[&ids]).await? {
        let id: Uuid = r.try_get(0)?;
        if let Some(&i) = index.get(&id) {
            records[i].attempt_log.push(AttemptRecord {
                number: count(r.try_get(1)?),
                worker: r.try_get(2)?,
                started_at: r.try_get(3)?,
                finished_at: r.try_get(4)?,
                outcome: r.try_get(5)?,
                error: r.try_get(6)?,
            });
        }
    }
    let st = client
        .prepare_cached(
            "SELECT message_id, seq, received_at, kind, at, data, dedup_key FROM receipts \
             WHERE message_id = ANY($1) ORDER BY message_id, seq",
        )
        .await?;
    for r in client.query(&st, &[&ids]).await? {
        let id: Uuid = r.try_get(0)?;
        let data: String = r.try_get(5)?;
        if let Some(&i) = index.get(&id) {
            records[i].receipts.push(StoredReceipt {
                seq: count(r.try_get(1)?),
                received_at: r.try_get(2)?,
                receipt: Receipt {
                    kind: r.try_get(3)?,
                    at: r.try_get(4)?,
                    data: codec::json(&data)?,
                    dedup_key: r.try_get(6)?,
                },
            });
        }
    }
    Ok(())
}

async fn load_message(
    client: &deadpool_postgres::ClientWrapper,
    who: Option<&str>,
    id: Uuid,
) -> Result<Option<MessageRecord>, StoreError> {
    let st = client
        .prepare_cached(&format!(
            "SELECT {MSG_COLS} FROM messages WHERE id = $1 AND ($2::text IS NULL OR client = $2)"
        ))
        .await?;
    let Some(row) = client.query_opt(&st, &[&id, &who]).await? else {
        return Ok(None);
    };
    let mut records = [message_row(&row)?.0];
    attach_history(client, &mut records).await?;
    let [record] = records;
    Ok(Some(record))
}

const INBOX_COLS: &str = "id, client, source, external_id, kind, from_addr, document, \
    attachments, received_at, acked_at, transaction_id";

fn inbox_row(r: &Row) -> Result<InboxItem, StoreError> {
    let document: String = r.try_get(6)?;
    let attachments: String = r.try_get(7)?;
    Ok(InboxItem {
        id: MessageId(r.try_get(0)?),
        client: ClientId(r.try_get(1)?),
        source: r.try_get(2)?,
        external_id: r.try_get(3)?,
        kind: r.try_get(4)?,
        from: r.try_get(5)?,
        document: codec::json(&document)?,
        attachments: codec::json(&attachments)?,
        received_at: r.try_get(8)?,
        acked_at: r.try_get(9)?,
        transaction_id: r.try_get(10)?,
    })
}

const WEBHOOK_COLS: &str =
    "id, client, message_id, url, payload, created_at, due_at, attempts, state, last_error";

fn webhook_row(r: &Row) -> Result<WebhookEvent, StoreError> {
    let message: Option<Uuid> = r.try_get(2)?;
    let payload: String = r.try_get(4)?;
    Ok(WebhookEvent {
        id: MessageId(r.try_get(0)?),
        client: ClientId(r.try_get(1)?),
        message: message.map(MessageId),
        url: r.try_get(3)?,
        payload: codec::json(&payload)?,
        created_at: r.try_get(5)?,
        due_at: r.try_get(6)?,
        attempts: count(r.try_get(7)?),
        state: r.try_get(8)?,
        last_error: r.try_get(9)?,
    })
}

fn api_key_row(r: &Row) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        key_id: r.try_get(0)?,
        secret_hash: r.try_get(1)?,
        client: ClientId(r.try_get(2)?),
        role: r.try_get(3)?,
        label: r.try_get(4)?,
        created_at: r.try_get(5)?,
        revoked_at: r.try_get(6)?,
    })
}

fn limit_param(limit: u32) -> i64 {
    i64::from(codec::page_size(limit)) + 1
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    async fn insert_message(&self, msg: NewMessage) -> Result<InsertOutcome, StoreError> {
        if let Some(inserter) = &self.inserter {
            let (pending, answer) = inserter::PendingInsert::new(&msg)?;
            if inserter.send(pending).await.is_ok() {
                if let Ok(Ok(true)) = answer.await {
                    return Ok(InsertOutcome::Inserted);
                }
            }
            // Not inserted by the group (key or id taken, or the group failed): resolved
            // below on its own, where the precise outcome or error is known.
        }
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "INSERT INTO messages (id, client, kind, to_addr, route, status, document, \
                 attachments, signatures, callback_url, idempotency_key, request_hash, \
                 transaction_id, created_at, updated_at, next_attempt_at, attempts) \
                 VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10, $11, $12, $13, $13, \
                 $14, 0) ON CONFLICT DO NOTHING",
            )
            .await?;
        let inserted = c
            .execute(
                &st,
                &[
                    &msg.id.0,
                    &msg.client.0,
                    &msg.kind,
                    &msg.to,
                    &msg.route,
                    &codec::to_json(&msg.document)?,
                    &codec::encode_attachments(&msg.attachments)?,
                    &codec::encode_signatures(&msg.signatures),
                    &msg.callback_url,
                    &msg.idempotency_key,
                    &msg.request_hash,
                    &msg.transaction_id,
                    &msg.created_at,
                    &msg.due_at,
                ],
            )
            .await?;
        if inserted == 1 {
            return Ok(InsertOutcome::Inserted);
        }
        if let Some(key) = &msg.idempotency_key {
            let st = c
                .prepare_cached(
                    "SELECT id, request_hash FROM messages WHERE client = $1 AND idempotency_key = $2",
                )
                .await?;
            if let Some(row) = c.query_opt(&st, &[&msg.client.0, key]).await? {
                let id: Uuid = row.try_get(0)?;
                let hash: String = row.try_get(1)?;
                if hash != msg.request_hash {
                    return Ok(InsertOutcome::Conflict {
                        existing: MessageId(id),
                    });
                }
                let record = load_message(&c, None, id)
                    .await?
                    .ok_or_else(|| StoreError::Other(format!("message {id} vanished")))?;
                return Ok(InsertOutcome::Existing(record));
            }
        }
        Err(StoreError::Other(format!(
            "a message with id {} already exists",
            msg.id
        )))
    }

    async fn get_message(
        &self,
        client: Option<&ClientId>,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let c = self.client().await?;
        load_message(&c, client.map(|c| c.0.as_str()), id.0).await
    }

    async fn list_messages(&self, f: &MessageFilter) -> Result<Page<MessageSummary>, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "SELECT id, client, kind, to_addr, status, attempts, created_at, updated_at \
                 FROM messages WHERE ($1::text IS NULL OR client = $1) \
                 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR kind = $3) \
                 AND ($4::timestamptz IS NULL OR created_at >= $4) \
                 AND ($5::timestamptz IS NULL OR created_at < $5) \
                 AND ($6::uuid IS NULL OR id > $6) ORDER BY id LIMIT $7",
            )
            .await?;
        let rows = c
            .query(
                &st,
                &[
                    &f.client.as_ref().map(|c| c.0.as_str()),
                    &f.status.map(|s| s.as_str()),
                    &f.kind,
                    &f.created_from,
                    &f.created_to,
                    &f.after.map(|a| a.0),
                    &limit_param(f.limit),
                ],
            )
            .await?;
        let items = rows
            .iter()
            .map(|r| {
                let status: String = r.try_get(4)?;
                Ok(MessageSummary {
                    id: MessageId(r.try_get(0)?),
                    client: ClientId(r.try_get(1)?),
                    kind: r.try_get(2)?,
                    to: r.try_get(3)?,
                    status: codec::status(&status)?,
                    attempts: count(r.try_get(5)?),
                    created_at: r.try_get(6)?,
                    updated_at: r.try_get(7)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(page(items, codec::page_size(f.limit), |m| m.id))
    }

    async fn claim_due(
        &self,
        worker: &str,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Claimed>, StoreError> {
        let until = codec::truncate(codec::lease_end(now, lease)?);
        let c = self.client().await?;
        let st = c
            .prepare_cached(&format!(
                // Two index walks that stop at the limit (an OR of both would sort the whole
                // backlog on every claim): expired leases first, then due messages.
                "WITH expired AS ( \
                   SELECT id FROM messages WHERE status = 'delivering' AND lease_until < $3 \
                   ORDER BY lease_until LIMIT $4 FOR UPDATE SKIP LOCKED), \
                 due AS ( \
                   SELECT id FROM messages WHERE status = 'queued' AND next_attempt_at <= $3 \
                   ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED), \
                 picked AS ( \
                   SELECT id FROM (SELECT id, 0 AS k FROM expired \
                                   UNION ALL SELECT id, 1 AS k FROM due) p \
                   ORDER BY k LIMIT $4) \
                 UPDATE messages SET status = 'delivering', lease_owner = $1, lease_until = $2, \
                 updated_at = $3 WHERE id IN (SELECT id FROM picked) \
                 RETURNING {MSG_COLS}"
            ))
            .await?;
        let rows = c
            .query(&st, &[&worker, &until, &now, &i64::from(limit)])
            .await?;
        let mut records = rows
            .iter()
            .map(|r| Ok(message_row(r)?.0))
            .collect::<Result<Vec<_>, StoreError>>()?;
        records.sort_by_key(|r| (r.next_attempt_at, r.id));
        attach_history(&c, &mut records).await?;
        Ok(records
            .into_iter()
            .map(|record| Claimed {
                record,
                lease_until: until,
            })
            .collect())
    }

    async fn renew_lease(
        &self,
        id: MessageId,
        worker: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "UPDATE messages SET lease_until = $3 WHERE id = $1 AND status = 'delivering' \
                 AND lease_owner = $2",
            )
            .await?;
        Ok(c.execute(&st, &[&id.0, &worker, &until]).await? == 1)
    }

    async fn finish_attempt(
        &self,
        id: MessageId,
        worker: &str,
        attempt: AttemptRecord,
        result: AttemptResult,
    ) -> Result<bool, StoreError> {
        let status = codec::status_after(&result).as_str();
        let (next, target_ref, error): (Option<OffsetDateTime>, Option<&str>, Option<&str>) =
            match &result {
                AttemptResult::Delivered { target_ref } => (None, target_ref.as_deref(), None),
                AttemptResult::RetryAt(at) => (Some(*at), None, attempt.error.as_deref()),
                AttemptResult::Failed { reason } | AttemptResult::DeadLetter { reason } => {
                    (None, None, Some(reason.as_str()))
                }
            };
        let c = self.client().await?;
        // One statement: the update happens only under the caller's lease, and the attempt row
        // only if the update did.
        let st = c
            .prepare_cached(
                "WITH held AS ( \
                   UPDATE messages SET status = $3, attempts = attempts + 1, \
                     next_attempt_at = $4, target_ref = coalesce($5, target_ref), \
                     last_error = $6, updated_at = $10, lease_owner = NULL, lease_until = NULL \
                   WHERE id = $1 AND status = 'delivering' AND lease_owner = $2 RETURNING id) \
                 INSERT INTO attempts (message_id, number, worker, started_at, finished_at, \
                   outcome, error) \
                 SELECT id, $7::integer, $8::text, $9::timestamptz, $10, $11::text, $12::text FROM held",
            )
            .await?;
        let number = i32::try_from(attempt.number).unwrap_or(i32::MAX);
        let n = c
            .execute(
                &st,
                &[
                    &id.0,
                    &worker,
                    &status,
                    &next,
                    &target_ref,
                    &error,
                    &number,
                    &attempt.worker,
                    &attempt.started_at,
                    &attempt.finished_at,
                    &attempt.outcome,
                    &attempt.error,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn release(&self, id: MessageId, worker: &str) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "UPDATE messages SET status = 'queued', lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND status = 'delivering' AND lease_owner = $2",
            )
            .await?;
        Ok(c.execute(&st, &[&id.0, &worker]).await? == 1)
    }

    async fn cancel(&self, client: &ClientId, id: MessageId) -> Result<CancelOutcome, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "UPDATE messages SET status = 'cancelled', next_attempt_at = NULL, \
                 updated_at = now() WHERE id = $1 AND client = $2 AND status = 'queued'",
            )
            .await?;
        if c.execute(&st, &[&id.0, &client.0]).await? == 1 {
            return Ok(CancelOutcome::Cancelled);
        }
        let st = c
            .prepare_cached("SELECT status FROM messages WHERE id = $1 AND client = $2")
            .await?;
        match c.query_opt(&st, &[&id.0, &client.0]).await? {
            None => Ok(CancelOutcome::NotFound),
            Some(row) => {
                let s: String = row.try_get(0)?;
                Ok(CancelOutcome::NotCancellable(codec::status(&s)?))
            }
        }
    }

    async fn retry_dead(&self, id: MessageId, now: OffsetDateTime) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "UPDATE messages SET status = 'queued', next_attempt_at = $2, updated_at = $2, \
                 lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND status IN ('dead_letter', 'failed')",
            )
            .await?;
        Ok(c.execute(&st, &[&id.0, &now]).await? == 1)
    }

    async fn add_receipt(
        &self,
        id: MessageId,
        receipt: Receipt,
        received_at: OffsetDateTime,
    ) -> Result<Option<StoredReceipt>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // The row lock serialises receipts of one message, so `seq` has no gaps or races.
        if tx
            .query_opt("SELECT 1 FROM messages WHERE id = $1 FOR UPDATE", &[&id.0])
            .await?
            .is_none()
        {
            return Err(StoreError::Other(format!(
                "no message {id} to attach a receipt to"
            )));
        }
        if let Some(key) = &receipt.dedup_key {
            let dup = tx
                .query_opt(
                    "SELECT 1 FROM receipts WHERE message_id = $1 AND dedup_key = $2",
                    &[&id.0, key],
                )
                .await?;
            if dup.is_some() {
                return Ok(None);
            }
        }
        let seq: i32 = tx
            .query_one(
                "INSERT INTO receipts (message_id, seq, received_at, kind, at, data, dedup_key) \
                 SELECT $1::uuid, coalesce(max(seq), 0) + 1, $2::timestamptz, $3::text, \
                 $4::timestamptz, $5::text, $6::text FROM receipts \
                 WHERE message_id = $1 RETURNING seq",
                &[
                    &id.0,
                    &received_at,
                    &receipt.kind,
                    &receipt.at,
                    &codec::to_json(&receipt.data)?,
                    &receipt.dedup_key,
                ],
            )
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok(Some(StoredReceipt {
            seq: count(seq),
            received_at: codec::truncate(received_at),
            receipt: Receipt {
                at: codec::truncate(receipt.at),
                ..receipt
            },
        }))
    }

    async fn status_counts(&self) -> Result<Vec<(MessageStatus, u64)>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT status, count(*) FROM messages GROUP BY status", &[])
            .await?;
        let found = rows
            .iter()
            .map(|r| {
                let s: String = r.try_get(0)?;
                let n: i64 = r.try_get(1)?;
                Ok((codec::status(&s)?, u64::try_from(n).unwrap_or(0)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(all_statuses(found))
    }

    async fn due_count(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "SELECT count(*) FROM messages WHERE status = 'queued' AND next_attempt_at <= $1",
            )
            .await?;
        let n: i64 = c.query_one(&st, &[&now]).await?.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn insert_inbox(&self, item: InboxItem) -> Result<(MessageId, bool), StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "INSERT INTO inbox (id, client, source, external_id, kind, from_addr, document, \
                 attachments, received_at, acked_at, transaction_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (source, external_id) DO NOTHING",
            )
            .await?;
        let n = c
            .execute(
                &st,
                &[
                    &item.id.0,
                    &item.client.0,
                    &item.source,
                    &item.external_id,
                    &item.kind,
                    &item.from,
                    &codec::to_json(&item.document)?,
                    &codec::encode_attachments(&item.attachments)?,
                    &item.received_at,
                    &item.acked_at,
                    &item.transaction_id,
                ],
            )
            .await?;
        if n == 1 {
            return Ok((item.id, true));
        }
        let row = c
            .query_opt(
                "SELECT id FROM inbox WHERE source = $1 AND external_id = $2",
                &[&item.source, &item.external_id],
            )
            .await?
            .ok_or_else(|| StoreError::Other(format!("inbox item {} already exists", item.id)))?;
        Ok((MessageId(row.try_get(0)?), false))
    }

    async fn get_inbox(
        &self,
        client: Option<&ClientId>,
        id: MessageId,
    ) -> Result<Option<InboxItem>, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {INBOX_COLS} FROM inbox WHERE id = $1 AND ($2::text IS NULL OR client = $2)"
            ))
            .await?;
        c.query_opt(&st, &[&id.0, &client.map(|c| c.0.as_str())])
            .await?
            .as_ref()
            .map(inbox_row)
            .transpose()
    }

    async fn list_inbox(
        &self,
        client: Option<&ClientId>,
        after: Option<MessageId>,
        unacked_only: bool,
        limit: u32,
    ) -> Result<Page<InboxItem>, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {INBOX_COLS} FROM inbox WHERE ($1::text IS NULL OR client = $1) \
                 AND ($2::uuid IS NULL OR id > $2) AND (NOT $3 OR acked_at IS NULL) \
                 ORDER BY id LIMIT $4"
            ))
            .await?;
        let rows = c
            .query(
                &st,
                &[
                    &client.map(|c| c.0.as_str()),
                    &after.map(|a| a.0),
                    &unacked_only,
                    &limit_param(limit),
                ],
            )
            .await?;
        let items = rows.iter().map(inbox_row).collect::<Result<Vec<_>, _>>()?;
        Ok(page(items, codec::page_size(limit), |i| i.id))
    }

    async fn ack_inbox(
        &self,
        client: Option<&ClientId>,
        id: MessageId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "UPDATE inbox SET acked_at = coalesce(acked_at, $3) \
                 WHERE id = $1 AND ($2::text IS NULL OR client = $2)",
            )
            .await?;
        Ok(c.execute(&st, &[&id.0, &client.map(|c| c.0.as_str()), &at])
            .await?
            == 1)
    }

    async fn enqueue_webhook(&self, e: WebhookEvent) -> Result<(), StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "INSERT INTO webhooks (id, client, message_id, url, payload, created_at, due_at, \
                 attempts, state, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .await?;
        let attempts = i32::try_from(e.attempts).unwrap_or(i32::MAX);
        c.execute(
            &st,
            &[
                &e.id.0,
                &e.client.0,
                &e.message.map(|m| m.0),
                &e.url,
                &codec::to_json(&e.payload)?,
                &e.created_at,
                &e.due_at,
                &attempts,
                &e.state,
                &e.last_error,
            ],
        )
        .await?;
        Ok(())
    }

    async fn claim_webhooks(
        &self,
        worker: &str,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<WebhookEvent>, StoreError> {
        let until = codec::lease_end(now, lease)?;
        let c = self.client().await?;
        let st = c
            .prepare_cached(&format!(
                "UPDATE webhooks SET lease_owner = $1, lease_until = $2 WHERE id IN ( \
                   SELECT id FROM webhooks WHERE state = 'pending' AND due_at <= $3 \
                   AND (lease_until IS NULL OR lease_until < $3) \
                   ORDER BY due_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
                 RETURNING {WEBHOOK_COLS}"
            ))
            .await?;
        let rows = c
            .query(&st, &[&worker, &until, &now, &i64::from(limit)])
            .await?;
        let mut events = rows
            .iter()
            .map(webhook_row)
            .collect::<Result<Vec<_>, _>>()?;
        events.sort_by_key(|e| (e.due_at, e.id));
        Ok(events)
    }

    async fn finish_webhook(
        &self,
        id: MessageId,
        worker: &str,
        result: WebhookResult,
    ) -> Result<bool, StoreError> {
        let (state, due, error) = match &result {
            WebhookResult::Delivered => ("delivered", None, None),
            WebhookResult::RetryAt { at, error } => ("pending", Some(*at), Some(error.as_str())),
            WebhookResult::GaveUp { error } => ("failed", None, Some(error.as_str())),
        };
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "UPDATE webhooks SET state = $3, due_at = coalesce($4, due_at), \
                 last_error = coalesce($5, last_error), attempts = attempts + 1, \
                 lease_owner = NULL, lease_until = NULL \
                 WHERE id = $1 AND state = 'pending' AND lease_owner = $2",
            )
            .await?;
        Ok(c.execute(&st, &[&id.0, &worker, &state, &due, &error])
            .await?
            == 1)
    }

    async fn webhooks_for_message(
        &self,
        message: MessageId,
    ) -> Result<Vec<WebhookEvent>, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {WEBHOOK_COLS} FROM webhooks WHERE message_id = $1 ORDER BY created_at, id"
            ))
            .await?;
        c.query(&st, &[&message.0])
            .await?
            .iter()
            .map(webhook_row)
            .collect()
    }

    async fn create_api_key(&self, k: ApiKeyRecord) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO api_keys (key_id, secret_hash, client, role, label, created_at, \
             revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &k.key_id,
                &k.secret_hash,
                &k.client.0,
                &k.role,
                &k.label,
                &k.created_at,
                &k.revoked_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn find_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let c = self.client().await?;
        let st = c
            .prepare_cached(
                "SELECT key_id, secret_hash, client, role, label, created_at, revoked_at \
                 FROM api_keys WHERE key_id = $1",
            )
            .await?;
        c.query_opt(&st, &[&key_id])
            .await?
            .as_ref()
            .map(api_key_row)
            .transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let c = self.client().await?;
        c.query(
            "SELECT key_id, secret_hash, client, role, label, created_at, revoked_at \
             FROM api_keys ORDER BY created_at, key_id",
            &[],
        )
        .await?
        .iter()
        .map(api_key_row)
        .collect()
    }

    async fn revoke_api_key(&self, key_id: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE key_id = $1",
                &[&key_id, &at],
            )
            .await?;
        Ok(n == 1)
    }
}
