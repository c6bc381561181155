//! The SQLite schema as numbered migrations, applied in order at open and recorded in
//! `schema_version`. A migration, once released, is never edited: add a new one.
use rusqlite::Connection;

use crate::contract::StoreError;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    client          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    to_addr         TEXT NOT NULL,
    route           TEXT NOT NULL,
    status          TEXT NOT NULL,
    document        TEXT NOT NULL,
    attachments     TEXT NOT NULL,
    signatures      TEXT NOT NULL,
    callback_url    TEXT,
    idempotency_key TEXT,
    request_hash    TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    next_attempt_at INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    target_ref      TEXT,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     INTEGER
);
CREATE UNIQUE INDEX messages_idempotency ON messages (client, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_due ON messages (status, next_attempt_at);
CREATE INDEX messages_lease ON messages (lease_until) WHERE status = 'delivering';
CREATE INDEX messages_client ON messages (client, id);

CREATE TABLE attempts (
    message_id  TEXT NOT NULL REFERENCES messages (id),
    number      INTEGER NOT NULL,
    worker      TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT
);
CREATE INDEX attempts_message ON attempts (message_id);

CREATE TABLE receipts (
    message_id  TEXT NOT NULL REFERENCES messages (id),
    seq         INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    data        TEXT NOT NULL,
    dedup_key   TEXT,
    PRIMARY KEY (message_id, seq)
);
CREATE UNIQUE INDEX receipts_dedup ON receipts (message_id, dedup_key) WHERE dedup_key IS NOT NULL;

CREATE TABLE inbox (
    id             TEXT PRIMARY KEY,
    client         TEXT NOT NULL,
    source         TEXT NOT NULL,
    external_id    TEXT NOT NULL,
    kind           TEXT NOT NULL,
    from_addr      TEXT NOT NULL,
    document       TEXT NOT NULL,
    attachments    TEXT NOT NULL,
    received_at    INTEGER NOT NULL,
    acked_at       INTEGER,
    transaction_id TEXT NOT NULL,
    UNIQUE (source, external_id)
);
CREATE INDEX inbox_client ON inbox (client, id);

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    client      TEXT NOT NULL,
    message_id  TEXT,
    url         TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL,
    last_error  TEXT,
    lease_owner TEXT,
    lease_until INTEGER
);
CREATE INDEX webhooks_due ON webhooks (state, due_at);
CREATE INDEX webhooks_message ON webhooks (message_id);

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    client      TEXT NOT NULL,
    role        TEXT NOT NULL,
    label       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
"#];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`]; refuses a database from a newer build.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: Option<i64> =
        tx.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))?;
    let current = current.unwrap_or(0);
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
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [i as i64 + 1],
        )?;
    }
    tx.commit()?;
    Ok(())
}
