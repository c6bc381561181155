//! Attachments in PostgreSQL, so every replica reaches them: `blob_chunks` holds ~256 KiB
//! `bytea` pieces keyed by (blob, seq), `blobs` one row per content (SHA-256, size, chunks).
//! A write streams its chunks inside one transaction under a temporary key and renames them to
//! the SHA-256 at the end (or drops them when that content is already stored), so a failed or
//! refused upload leaves nothing and duplicates cost nothing. Reads check the SHA-256. It must
//! never hold a whole blob in memory on the write path.
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

use crate::codec;
use crate::contract::{BlobChunks, BlobStore, StoreError};

/// Size of the stored pieces.
pub const PG_CHUNK: usize = 256 * 1024;

/// Blob storage in the store's PostgreSQL database.
#[derive(Clone)]
pub struct PgBlobStore {
    pool: Pool,
}

impl PgBlobStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn chunk_count(&self, sha256: &str) -> Result<i32, StoreError> {
        if !codec::is_sha256_hex(sha256) {
            return Err(StoreError::Other(format!(
                "'{sha256}' is not a lower-case hex SHA-256"
            )));
        }
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached("SELECT chunks FROM blobs WHERE sha256 = $1")
            .await?;
        match c.query_opt(&st, &[&sha256]).await? {
            Some(row) => Ok(row.try_get(0)?),
            None => Err(StoreError::BlobCorrupt {
                sha256: sha256.to_owned(),
            }),
        }
    }
}

#[async_trait]
impl BlobStore for PgBlobStore {
    async fn put(
        &self,
        chunks: &mut (dyn BlobChunks + Send),
        limit: u64,
    ) -> Result<(String, u64), StoreError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let staging = format!("upload:{}", uuid::Uuid::now_v7());
        let insert = tx
            .prepare_cached("INSERT INTO blob_chunks (blob, seq, data) VALUES ($1, $2, $3)")
            .await?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut seq: i32 = 0;
        let mut pending = BytesMut::new();
        loop {
            let next = chunks.next_chunk().await?;
            let end = next.is_none();
            if let Some(chunk) = next {
                size = size.saturating_add(chunk.len() as u64);
                if size > limit {
                    // Dropping `tx` rolls back every piece written so far.
                    return Err(StoreError::BlobTooLarge { limit });
                }
                hasher.update(&chunk);
                pending.extend_from_slice(&chunk);
            }
            while pending.len() >= PG_CHUNK || (end && !pending.is_empty()) {
                let take = pending.len().min(PG_CHUNK);
                let piece = pending.split_to(take);
                tx.execute(&insert, &[&staging, &seq, &piece.as_ref()])
                    .await?;
                seq += 1;
            }
            if end {
                break;
            }
        }
        let sha = codec::hex(&hasher.finalize());
        let size_param = i64::try_from(size).unwrap_or(i64::MAX);
        let fresh = tx
            .execute(
                "INSERT INTO blobs (sha256, size, chunks) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&sha, &size_param, &seq],
            )
            .await?;
        if fresh == 1 {
            tx.execute(
                "UPDATE blob_chunks SET blob = $1 WHERE blob = $2",
                &[&sha, &staging],
            )
            .await?;
        } else {
            tx.execute("DELETE FROM blob_chunks WHERE blob = $1", &[&staging])
                .await?;
        }
        tx.commit().await?;
        Ok((sha, size))
    }

    async fn get(&self, sha256: &str) -> Result<Bytes, StoreError> {
        let chunks = self.chunk_count(sha256).await?;
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached("SELECT data FROM blob_chunks WHERE blob = $1 ORDER BY seq")
            .await?;
        let rows = c.query(&st, &[&sha256]).await?;
        let corrupt = || StoreError::BlobCorrupt {
            sha256: sha256.to_owned(),
        };
        if i32::try_from(rows.len()).ok() != Some(chunks) {
            return Err(corrupt());
        }
        let mut out = BytesMut::new();
        for r in &rows {
            let piece: &[u8] = r.try_get(0)?;
            out.extend_from_slice(piece);
        }
        if codec::hex(&Sha256::digest(&out)) != sha256 {
            return Err(corrupt());
        }
        Ok(out.freeze())
    }

    async fn open(&self, sha256: &str) -> Result<Box<dyn BlobChunks + Send>, StoreError> {
        let chunks = self.chunk_count(sha256).await?;
        Ok(Box::new(PgChunkReader {
            pool: self.pool.clone(),
            sha256: sha256.to_owned(),
            next: 0,
            chunks,
            hasher: Sha256::new(),
            done: false,
        }))
    }
}

/// Reads one stored piece per call; the call after the last piece checks the SHA-256.
struct PgChunkReader {
    pool: Pool,
    sha256: String,
    next: i32,
    chunks: i32,
    hasher: Sha256,
    done: bool,
}

#[async_trait]
impl BlobChunks for PgChunkReader {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let corrupt = || StoreError::BlobCorrupt {
            sha256: self.sha256.clone(),
        };
        if self.next >= self.chunks {
            self.done = true;
            if codec::hex(&self.hasher.clone().finalize()) != self.sha256 {
                return Err(corrupt());
            }
            return Ok(None);
        }
        let c = self.pool.get().await?;
        let st = c
            .prepare_cached("SELECT data FROM blob_chunks WHERE blob = $1 AND seq = $2")
            .await?;
        let row = c
            .query_opt(&st, &[&self.sha256, &self.next])
            .await?
            .ok_or_else(corrupt)?;
        let piece: &[u8] = row.try_get(0)?;
        self.hasher.update(piece);
        self.next += 1;
        Ok(Some(Bytes::copy_from_slice(piece)))
    }
}
