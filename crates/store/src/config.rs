//! Choosing a back end from configuration: `backend = "sqlite"` with a data directory, or
//! `backend = "postgres"` with a connection URL; opens the store and its blob store together.
//! Unknown keys are refused. It must never pick a back end the configuration did not name.
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::contract::{BlobStore, Store, StoreError};
use crate::fsblob::FsBlobStore;
use crate::pg::{PgOptions, PgStore};
use crate::sqlite::{SqliteOptions, SqliteStore};

/// Where the gateway keeps its state.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// Embedded: `<data_dir>/qaqpa.db` and `<data_dir>/blobs/`.
    Sqlite { data_dir: PathBuf },
    /// Shared by several replicas: messages and blobs in one PostgreSQL database.
    Postgres {
        /// `postgres://user:password@host:port/db` or a libpq key=value string.
        url: String,
        /// Pool size of this replica (default 16).
        #[serde(default = "default_pool")]
        max_connections: usize,
    },
}

fn default_pool() -> usize {
    PgOptions::default().max_connections
}

/// A store and its blob store, opened together.
#[derive(Clone)]
pub struct OpenedStore {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
}

impl StoreConfig {
    /// Opens the configured back end (migrating it).
    pub async fn open(&self) -> Result<OpenedStore, StoreError> {
        match self {
            StoreConfig::Sqlite { data_dir } => {
                let dir = data_dir.clone();
                tokio::task::spawn_blocking(move || {
                    let store = SqliteStore::open(&dir, SqliteOptions::default())?;
                    let blobs = FsBlobStore::open(&dir)?;
                    Ok(OpenedStore {
                        store: Arc::new(store),
                        blobs: Arc::new(blobs),
                    })
                })
                .await
                .map_err(|e| StoreError::Other(format!("opening the SQLite store failed: {e}")))?
            }
            StoreConfig::Postgres {
                url,
                max_connections,
            } => {
                let opts = PgOptions {
                    max_connections: *max_connections,
                    ..PgOptions::default()
                };
                let store = PgStore::connect(url, opts).await?;
                let blobs = store.blob_store();
                Ok(OpenedStore {
                    store: Arc::new(store),
                    blobs: Arc::new(blobs),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_reads_from_its_own_keys() {
        let sqlite: StoreConfig =
            serde_json::from_str(r#"{"backend": "sqlite", "data_dir": "/var/lib/qaqpa"}"#)
                .expect("sqlite config");
        assert_eq!(
            sqlite,
            StoreConfig::Sqlite {
                data_dir: "/var/lib/qaqpa".into()
            }
        );
        let pg: StoreConfig =
            serde_json::from_str(r#"{"backend": "postgres", "url": "postgres://q@db/qaqpa"}"#)
                .expect("postgres config");
        assert_eq!(
            pg,
            StoreConfig::Postgres {
                url: "postgres://q@db/qaqpa".into(),
                max_connections: 16
            }
        );
    }

    #[test]
    fn unknown_keys_and_backends_are_refused() {
        let typo = serde_json::from_str::<StoreConfig>(
            r#"{"backend": "sqlite", "data_dir": "/d", "datadir": "/e"}"#,
        );
        assert!(typo.is_err(), "a misspelt key must not pass silently");
        assert!(
            serde_json::from_str::<StoreConfig>(r#"{"backend": "mysql", "url": "x"}"#).is_err()
        );
    }

    #[tokio::test]
    async fn sqlite_config_opens_a_working_store_in_its_directory() {
        let dir = std::env::temp_dir().join(format!("qaqpa-config-{}", uuid::Uuid::now_v7()));
        let opened = StoreConfig::Sqlite {
            data_dir: dir.clone(),
        }
        .open()
        .await
        .expect("opens");
        opened.store.ping().await.expect("ping");
        assert!(dir.join("qaqpa.db").is_file());
        assert!(dir.join("blobs").is_dir());
        drop(opened);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
