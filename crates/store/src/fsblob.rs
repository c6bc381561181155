//! Attachments on the local file system, content-addressed: `<dir>/blobs/aa/bb/<sha256>`.
//! A write streams into a temporary file beside the blobs, hashing as it goes, is fsync'd, renamed
//! into place and its directory fsync'd; reads check the content against its name. It must never
//! expose a partially written blob under its final name, nor hand out bytes that fail the check.
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::codec;
use crate::contract::{BlobChunks, BlobStore, StoreError};

/// Size of the chunks `open` hands out.
pub const READ_CHUNK: usize = 256 * 1024;

/// Blob storage under a data directory.
#[derive(Clone, Debug)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Uses (creating if needed) `<dir>/blobs`. Temporary files left by a crash are removed.
    pub fn open(dir: &Path) -> Result<FsBlobStore, StoreError> {
        let root = dir.join("blobs");
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        for entry in std::fs::read_dir(&tmp)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(FsBlobStore { root })
    }

    /// Where the blob with this SHA-256 lives (whether or not it exists).
    pub fn path_of(&self, sha256: &str) -> Result<PathBuf, StoreError> {
        if !codec::is_sha256_hex(sha256) {
            return Err(StoreError::Other(format!(
                "'{sha256}' is not a lower-case hex SHA-256"
            )));
        }
        Ok(self
            .root
            .join(&sha256[0..2])
            .join(&sha256[2..4])
            .join(sha256))
    }

    async fn write_temp(
        &self,
        tmp: &Path,
        chunks: &mut (dyn BlobChunks + Send),
        limit: u64,
    ) -> Result<(String, u64), StoreError> {
        let mut file = tokio::fs::File::create(tmp).await?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = chunks.next_chunk().await? {
            size = size.saturating_add(chunk.len() as u64);
            if size > limit {
                return Err(StoreError::BlobTooLarge { limit });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        Ok((codec::hex(&hasher.finalize()), size))
    }
}

async fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    tokio::fs::File::open(dir).await?.sync_all().await?;
    Ok(())
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(
        &self,
        chunks: &mut (dyn BlobChunks + Send),
        limit: u64,
    ) -> Result<(String, u64), StoreError> {
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.part", uuid::Uuid::now_v7()));
        let (sha, size) = match self.write_temp(&tmp, chunks, limit).await {
            Ok(done) => done,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let dest = self.path_of(&sha)?;
        let placed = async {
            let leaf = dest
                .parent()
                .ok_or_else(|| StoreError::Other("blob path has no parent".into()))?;
            if !tokio::fs::try_exists(leaf).await? {
                tokio::fs::create_dir_all(leaf).await?;
                if let Some(mid) = leaf.parent() {
                    fsync_dir(mid).await?;
                }
                fsync_dir(&self.root).await?;
            }
            // Renaming over an existing copy is harmless (same content) and heals a damaged one.
            tokio::fs::rename(&tmp, &dest).await?;
            fsync_dir(leaf).await
        }
        .await;
        if let Err(e) = placed {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok((sha, size))
    }

    async fn get(&self, sha256: &str) -> Result<Bytes, StoreError> {
        let path = self.path_of(sha256)?;
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::BlobCorrupt {
                    sha256: sha256.to_owned(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        if codec::hex(&Sha256::digest(&bytes)) != sha256 {
            return Err(StoreError::BlobCorrupt {
                sha256: sha256.to_owned(),
            });
        }
        Ok(Bytes::from(bytes))
    }

    async fn open(&self, sha256: &str) -> Result<Box<dyn BlobChunks + Send>, StoreError> {
        let path = self.path_of(sha256)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::BlobCorrupt {
                    sha256: sha256.to_owned(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Box::new(CheckedReader {
            file,
            hasher: Sha256::new(),
            expected: sha256.to_owned(),
            done: false,
        }))
    }
}

/// Reads a blob file chunk by chunk and fails at the end if the content does not match its name.
struct CheckedReader {
    file: tokio::fs::File,
    hasher: Sha256,
    expected: String,
    done: bool,
}

#[async_trait]
impl BlobChunks for CheckedReader {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let mut buf = BytesMut::zeroed(READ_CHUNK);
        let mut filled = 0;
        while filled < READ_CHUNK {
            let n = self.file.read(&mut buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        self.hasher.update(&buf);
        if filled < READ_CHUNK {
            self.done = true;
            let actual = codec::hex(&self.hasher.clone().finalize());
            if actual != self.expected {
                return Err(StoreError::BlobCorrupt {
                    sha256: self.expected.clone(),
                });
            }
            if filled == 0 {
                return Ok(None);
            }
        }
        Ok(Some(buf.freeze()))
    }
}
