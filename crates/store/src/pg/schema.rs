//! The PostgreSQL schema as numbered migrations, applied at start-up under an advisory lock so
//! that several replicas starting together apply each one exactly once. A released migration is
//! never edited: add a new one.
use tokio_postgres::Client;

use crate::contract::StoreError;

/// Advisory lock key held while migrating ("qaqpa" in ASCII).
const MIGRATION_LOCK: i64 = 0x0071_6171_7061;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    client          text NOT NULL,
    kind            text NOT NULL,
    to_addr         text NOT NULL,
    route           text NOT NULL,
    status          text NOT NULL,
    document        text NOT NULL,
    attachments     text NOT NULL,
    signatures      text NOT NULL,
    callback_url    text,
    idempotency_key text,
    request_hash    text NOT NULL,
    transaction_id  text NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    next_attempt_at timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    target_ref      text,
    last_error      text,
    lease_owner     text,
    lease_until     timestamptz
);
CREATE UNIQUE INDEX messages_idempotency ON messages (client, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status = 'queued';
CREATE INDEX messages_lease ON messages (lease_until) WHERE status = 'delivering';
CREATE INDEX messages_status ON messages (status);
CREATE INDEX messages_client ON messages (client, id);

CREATE TABLE attempts (
    id          bigserial PRIMARY KEY,
    message_id  uuid NOT NULL REFERENCES messages (id),
    number      integer NOT NULL,
    worker      text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    outcome     text NOT NULL,
    error       text
);
CREATE INDEX attempts_message ON attempts (message_id);

CREATE TABLE receipts (
    message_id  uuid NOT NULL REFERENCES messages (id),
    seq         integer NOT NULL,
    received_at timestamptz NOT NULL,
    kind        text NOT NULL,
    at          timestamptz NOT NULL,
    data        text NOT NULL,
    dedup_key   text,
    PRIMARY KEY (message_id, seq)
);
CREATE UNIQUE INDEX receipts_dedup ON receipts (message_id, dedup_key) WHERE dedup_key IS NOT NULL;

CREATE TABLE inbox (
    id             uuid PRIMARY KEY,
    client         text NOT NULL,
    source         text NOT NULL,
    external_id    text NOT NULL,
    kind           text NOT NULL,
    from_addr      text NOT NULL,
    document       text NOT NULL,
    attachments    text NOT NULL,
    received_at    timestamptz NOT NULL,
    acked_at       timestamptz,
    transaction_id text NOT NULL,
    UNIQUE (source, external_id)
);
CREATE INDEX inbox_client ON inbox (client, id);

CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    client      text NOT NULL,
    message_id  uuid,
    url         text NOT NULL,
    payload     text NOT NULL,
    created_at  timestamptz NOT NULL,
    due_at      timestamptz NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    state       text NOT NULL,
    last_error  text,
    lease_owner text,
    lease_until timestamptz
);
CREATE INDEX webhooks_due ON webhooks (due_at) WHERE state = 'pending';
CREATE INDEX webhooks_message ON webhooks (message_id);

CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    secret_hash text NOT NULL,
    client      text NOT NULL,
    role        text NOT NULL,
    label       text NOT NULL,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

CREATE TABLE blobs (
    sha256     text PRIMARY KEY,
    size       bigint NOT NULL,
    chunks     integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE blob_chunks (
    blob text NOT NULL,
    seq  integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (blob, seq)
);
"#];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Brings the database to [`SCHEMA_VERSION`] under the migration lock (held for the session,
/// released when `client`'s connection closes if not before).
pub(crate) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = migrate_locked(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    result
}

async fn migrate_locked(client: &mut Client) -> Result<(), StoreError> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS qaqpa_schema_version (version integer NOT NULL)")
        .await?;
    let current: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM qaqpa_schema_version",
            &[],
        )
        .await?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::Other(format!(
            "the database has schema version {current}, newer than this build's {SCHEMA_VERSION}"
        )));
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO qaqpa_schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}
