//! The conformance suite against the embedded store: a real SQLite file in WAL mode in a
//! temporary directory, and the file-system blob store beside it.
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use qaqpa_store::conformance::BlobProbe;
use qaqpa_store::testing::TempDir;
use qaqpa_store::{BlobStore, FsBlobStore, SqliteOptions, SqliteStore, Store};

async fn fresh_store() -> Arc<dyn Store> {
    Arc::new(SqliteStore::open_temporary(SqliteOptions::default()).expect("open SQLite store"))
}

qaqpa_store::store_conformance_tests!(fresh_store());

/// The same suite with the WAL fsync'd by a second thread (`pipelined_sync`).
mod pipelined_sync {
    use super::*;

    async fn fresh_pipelined_store() -> Arc<dyn Store> {
        let opts = SqliteOptions {
            pipelined_sync: true,
            ..SqliteOptions::default()
        };
        Arc::new(SqliteStore::open_temporary(opts).expect("open SQLite store"))
    }

    qaqpa_store::store_conformance_tests!(fresh_pipelined_store());
}

/// Looks at the files under `<dir>/blobs`.
struct FsProbe {
    dir: TempDir,
    blobs: FsBlobStore,
}

fn files_under(dir: &PathBuf) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                files_under(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[async_trait]
impl BlobProbe for FsProbe {
    async fn corrupt(&self, sha256: &str) {
        let path = self.blobs.path_of(sha256).expect("blob path");
        let mut bytes = std::fs::read(&path).expect("read blob file");
        bytes[0] ^= 0x01;
        std::fs::write(&path, bytes).expect("write blob file");
    }

    async fn stored_objects(&self) -> u64 {
        files_under(&self.dir.path().join("blobs"))
    }
}

async fn fresh_blobs() -> (Arc<dyn BlobStore>, Arc<dyn BlobProbe>) {
    let dir = TempDir::new("qaqpa-blobs").expect("temp dir");
    let blobs = FsBlobStore::open(dir.path()).expect("open blob store");
    (Arc::new(blobs.clone()), Arc::new(FsProbe { dir, blobs }))
}

qaqpa_store::blob_conformance_tests!(fresh_blobs());
