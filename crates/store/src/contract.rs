//! The [`Store`] and [`BlobStore`] contracts and the records they exchange.
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use qaqpa_core::{AttachmentMeta, ClientId, MessageId, MessageStatus, Receipt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Errors of the store. `Unavailable` is transient (database down, pool exhausted); the rest are
/// bugs or corruption and are reported as such.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("blob {sha256} is missing or does not match its checksum")]
    BlobCorrupt { sha256: String },
    #[error("blob too large: more than {limit} bytes")]
    BlobTooLarge { limit: u64 },
    #[error("blob I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("store error: {0}")]
    Other(String),
}

/// A message to insert. `request_hash` is the SHA-256 (hex) of the submitted request, compared
/// when the same `idempotency_key` comes again.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: MessageId,
    pub client: ClientId,
    pub kind: String,
    pub to: String,
    pub route: String,
    pub document: serde_json::Value,
    pub attachments: Vec<AttachmentMeta>,
    pub signatures: Vec<Vec<u8>>,
    pub callback_url: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: String,
    pub transaction_id: String,
    pub created_at: OffsetDateTime,
    /// When the first attempt is due (normally `created_at`).
    pub due_at: OffsetDateTime,
}

/// What `insert_message` did.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // `Existing` is rare; boxing it would change the contract
pub enum InsertOutcome {
    /// Stored, durably.
    Inserted,
    /// The same client sent the same idempotency key with the same request before: this is it.
    Existing(MessageRecord),
    /// The same client sent the same idempotency key with a different request.
    Conflict { existing: MessageId },
}

/// A message with everything the API shows about it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: MessageId,
    pub client: ClientId,
    pub kind: String,
    pub to: String,
    pub route: String,
    pub status: MessageStatus,
    pub document: serde_json::Value,
    pub attachments: Vec<AttachmentMeta>,
    pub signatures: Vec<Vec<u8>>,
    pub callback_url: Option<String>,
    pub idempotency_key: Option<String>,
    pub transaction_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Number of attempts made so far.
    pub attempts: u32,
    /// The target's reference once delivered.
    pub target_ref: Option<String>,
    /// Why it failed or was dead-lettered (the target's own words where it gave any).
    pub last_error: Option<String>,
    pub attempt_log: Vec<AttemptRecord>,
    /// Receipts in arrival order.
    pub receipts: Vec<StoredReceipt>,
}

/// One delivery attempt as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub number: u32,
    pub worker: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// `delivered`, `retry`, `failed`, `dead_letter`.
    pub outcome: String,
    pub error: Option<String>,
}

/// A receipt with its place in the message's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredReceipt {
    /// 1-based arrival order within the message.
    pub seq: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(flatten)]
    pub receipt: Receipt,
}

/// What the engine decided after an attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum AttemptResult {
    Delivered {
        target_ref: Option<String>,
    },
    /// Try again at the given time.
    RetryAt(OffsetDateTime),
    /// Permanent failure: status `failed`.
    Failed {
        reason: String,
    },
    /// Retry budget exhausted: status `dead_letter`.
    DeadLetter {
        reason: String,
    },
}

/// A message claimed for delivery under a lease.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub record: MessageRecord,
    pub lease_until: OffsetDateTime,
}

/// Filters for listing messages; `client: None` means every client (operator view).
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    pub client: Option<ClientId>,
    pub status: Option<MessageStatus>,
    pub kind: Option<String>,
    pub created_from: Option<OffsetDateTime>,
    pub created_to: Option<OffsetDateTime>,
    /// Return messages with ids strictly after this one (ids are time-ordered UUIDv7).
    pub after: Option<MessageId>,
    pub limit: u32,
}

/// A page of results; `next` is the cursor for the following page, if any.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<MessageId>,
}

/// A compact row for listings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageSummary {
    pub id: MessageId,
    pub client: ClientId,
    pub kind: String,
    pub to: String,
    pub status: MessageStatus,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What `cancel` did.
#[derive(Clone, Debug, PartialEq)]
pub enum CancelOutcome {
    Cancelled,
    NotFound,
    /// Too late: it is being delivered or already finished.
    NotCancellable(MessageStatus),
}

/// A document a target pushed to us, for the inbox.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InboxItem {
    pub id: MessageId,
    /// The client (EDMS) the item is for.
    pub client: ClientId,
    /// Adapter that received it.
    pub source: String,
    /// The target's id of the document: (source, external_id) is unique, repeated pushes dedup.
    pub external_id: String,
    pub kind: String,
    pub from: String,
    pub document: serde_json::Value,
    pub attachments: Vec<AttachmentMeta>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acked_at: Option<OffsetDateTime>,
    pub transaction_id: String,
}

/// A webhook event waiting to be (or already) delivered to an EDMS callback URL.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WebhookEvent {
    pub id: MessageId,
    pub client: ClientId,
    pub message: Option<MessageId>,
    pub url: String,
    /// The JSON body to POST, exactly as signed.
    pub payload: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    pub attempts: u32,
    /// `pending`, `delivered`, `failed` (gave up).
    pub state: String,
    pub last_error: Option<String>,
}

/// What happened to one webhook attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum WebhookResult {
    Delivered,
    RetryAt { at: OffsetDateTime, error: String },
    GaveUp { error: String },
}

/// An API key as stored: only a hash of the secret is kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public key id (the part before the dot in `qk_<id>.<secret>`).
    pub key_id: String,
    /// Hex SHA-256 of the whole token.
    pub secret_hash: String,
    pub client: ClientId,
    /// `client`, `operator`, `admin`, `auditor`.
    pub role: String,
    pub label: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// The durable outbox and everything around it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap reachability check for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    // ---- messages -------------------------------------------------------------------------
    /// Inserts a message durably (see the module invariants), or resolves its idempotency key.
    async fn insert_message(&self, msg: NewMessage) -> Result<InsertOutcome, StoreError>;
    /// A message; with `client: Some`, only if it belongs to that client.
    async fn get_message(
        &self,
        client: Option<&ClientId>,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError>;
    async fn list_messages(
        &self,
        filter: &MessageFilter,
    ) -> Result<Page<MessageSummary>, StoreError>;
    /// Claims up to `limit` messages that are `queued` and due at `now`, or `delivering` with a
    /// lease that expired before `now`, oldest due first; sets them `delivering` under a lease of
    /// `lease` owned by `worker`. Several processes may call this at once: no message is handed
    /// to two of them (PostgreSQL: `FOR UPDATE SKIP LOCKED`).
    async fn claim_due(
        &self,
        worker: &str,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Claimed>, StoreError>;
    /// Extends the lease of a message `worker` still holds; false if it lost it.
    async fn renew_lease(
        &self,
        id: MessageId,
        worker: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Records an attempt and applies its result, only if `worker` still holds the lease
    /// (returns false and changes nothing otherwise).
    async fn finish_attempt(
        &self,
        id: MessageId,
        worker: &str,
        attempt: AttemptRecord,
        result: AttemptResult,
    ) -> Result<bool, StoreError>;
    /// Gives a claimed message back (graceful shutdown): `queued`, due now, attempt not counted.
    async fn release(&self, id: MessageId, worker: &str) -> Result<bool, StoreError>;
    /// Cancels a `queued` message of `client`.
    async fn cancel(&self, client: &ClientId, id: MessageId) -> Result<CancelOutcome, StoreError>;
    /// Moves a `dead_letter` (or `failed`) message back to `queued`, due now. False if it was in
    /// another state or does not exist.
    async fn retry_dead(&self, id: MessageId, now: OffsetDateTime) -> Result<bool, StoreError>;
    /// Appends a receipt unless one with the same `dedup_key` is already stored for the message.
    /// Returns the stored receipt when it was new, `None` for a duplicate.
    async fn add_receipt(
        &self,
        id: MessageId,
        receipt: Receipt,
        received_at: OffsetDateTime,
    ) -> Result<Option<StoredReceipt>, StoreError>;
    /// Number of messages in each status (for metrics), and of due `queued` ones.
    async fn status_counts(&self) -> Result<Vec<(MessageStatus, u64)>, StoreError>;
    /// Number of `queued` messages due at `now` (the queue depth a metric shows). Added after the
    /// first contract (additive): the default counts every queued message, due or not; both
    /// implementations here count only the due ones.
    async fn due_count(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let _ = now;
        Ok(self
            .status_counts()
            .await?
            .into_iter()
            .filter(|(s, _)| *s == MessageStatus::Queued)
            .map(|(_, n)| n)
            .sum())
    }

    // ---- inbox ----------------------------------------------------------------------------
    /// Stores a pushed document; a repeated (source, external_id) returns the existing id and
    /// false.
    async fn insert_inbox(&self, item: InboxItem) -> Result<(MessageId, bool), StoreError>;
    async fn get_inbox(
        &self,
        client: Option<&ClientId>,
        id: MessageId,
    ) -> Result<Option<InboxItem>, StoreError>;
    /// Items for a client after the cursor; `unacked_only` hides acknowledged ones.
    async fn list_inbox(
        &self,
        client: Option<&ClientId>,
        after: Option<MessageId>,
        unacked_only: bool,
        limit: u32,
    ) -> Result<Page<InboxItem>, StoreError>;
    /// Acknowledges an item; false if it does not exist for that client.
    async fn ack_inbox(
        &self,
        client: Option<&ClientId>,
        id: MessageId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    // ---- webhooks -------------------------------------------------------------------------
    async fn enqueue_webhook(&self, event: WebhookEvent) -> Result<(), StoreError>;
    /// Claims due pending webhook events under a lease, like `claim_due`.
    async fn claim_webhooks(
        &self,
        worker: &str,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<WebhookEvent>, StoreError>;
    async fn finish_webhook(
        &self,
        id: MessageId,
        worker: &str,
        result: WebhookResult,
    ) -> Result<bool, StoreError>;
    /// Webhook events about one message, oldest first (delivery state shown in the API).
    async fn webhooks_for_message(
        &self,
        message: MessageId,
    ) -> Result<Vec<WebhookEvent>, StoreError>;

    // ---- API keys -------------------------------------------------------------------------
    async fn create_api_key(&self, key: ApiKeyRecord) -> Result<(), StoreError>;
    /// The key with this id, revoked or not.
    async fn find_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    async fn revoke_api_key(&self, key_id: &str, at: OffsetDateTime) -> Result<bool, StoreError>;
}

/// Where attachment bytes live, addressed by SHA-256. Writes stream (never the whole file in
/// memory) and are durable before `put` returns; reads verify the checksum.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Streams `chunks` into the store; returns (sha256 hex, size). Fails with `BlobTooLarge`
    /// past `limit` bytes, leaving nothing behind.
    async fn put(
        &self,
        chunks: &mut (dyn BlobChunks + Send),
        limit: u64,
    ) -> Result<(String, u64), StoreError>;
    /// The whole blob, checked against its SHA-256.
    async fn get(&self, sha256: &str) -> Result<Bytes, StoreError>;
    /// The blob as a stream of chunks (for large downloads), checked as it goes: the last chunk
    /// is an error if the content does not match.
    async fn open(&self, sha256: &str) -> Result<Box<dyn BlobChunks + Send>, StoreError>;
}

/// A source of byte chunks (an HTTP body, a file) read one piece at a time.
#[async_trait]
pub trait BlobChunks {
    /// The next chunk, or `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError>;
}
