//! The conformance suite against a real PostgreSQL server started for this test binary
//! ([`TempPostgres`]), one fresh database per test; blobs in the same database.
use std::sync::Arc;

use async_trait::async_trait;
use qaqpa_store::conformance::BlobProbe;
use qaqpa_store::testing::TempPostgres;
use qaqpa_store::{BlobStore, PgOptions, PgStore, Store};

async fn fresh_pg() -> PgStore {
    let server = TempPostgres::shared().expect("throwaway PostgreSQL");
    let url = server.create_database().await.expect("create database");
    PgStore::connect(
        &url,
        PgOptions {
            max_connections: 8,
            ..PgOptions::default()
        },
    )
    .await
    .expect("connect PgStore")
}

async fn fresh_store() -> Arc<dyn Store> {
    Arc::new(fresh_pg().await)
}

qaqpa_store::store_conformance_tests!(fresh_store());

/// The same suite with grouped inserts (one multi-row statement per group of messages).
mod grouped_inserts {
    use super::*;

    async fn fresh_grouping_store() -> Arc<dyn Store> {
        let server = TempPostgres::shared().expect("throwaway PostgreSQL");
        let url = server.create_database().await.expect("create database");
        let opts = PgOptions {
            max_connections: 8,
            insert_group: 64,
            ..PgOptions::default()
        };
        Arc::new(PgStore::connect(&url, opts).await.expect("connect PgStore"))
    }

    qaqpa_store::store_conformance_tests!(fresh_grouping_store());
}

/// Looks at the blob tables with plain SQL.
struct PgProbe {
    store: PgStore,
}

#[async_trait]
impl BlobProbe for PgProbe {
    async fn corrupt(&self, sha256: &str) {
        let c = self.store.pool().get().await.expect("connection");
        let n = c
            .execute(
                "UPDATE blob_chunks SET data = set_byte(data, 0, get_byte(data, 0) # 1) \
                 WHERE blob = $1 AND seq = 0",
                &[&sha256],
            )
            .await
            .expect("corrupt");
        assert_eq!(n, 1, "the blob's first chunk exists");
    }

    async fn stored_objects(&self) -> u64 {
        let c = self.store.pool().get().await.expect("connection");
        let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM blobs) + (SELECT count(*) FROM blob_chunks)",
                &[],
            )
            .await
            .expect("count");
        u64::try_from(row.get::<_, i64>(0)).expect("non-negative")
    }
}

async fn fresh_blobs() -> (Arc<dyn BlobStore>, Arc<dyn BlobProbe>) {
    let store = fresh_pg().await;
    (Arc::new(store.blob_store()), Arc::new(PgProbe { store }))
}

qaqpa_store::blob_conformance_tests!(fresh_blobs());

/// An error the server sends is passed on in its own words (severity, SQLSTATE, message), not as
/// the client library's bare "db error".
#[tokio::test]
async fn a_server_error_is_reported_with_its_sqlstate_and_message() {
    let server = TempPostgres::shared().expect("throwaway PostgreSQL");
    let url = server.url("qaqpa_no_such_database");
    let err = match PgStore::connect(&url, PgOptions::default()).await {
        Ok(_) => panic!("connected to a database that does not exist"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("FATAL 3D000") && err.contains("\"qaqpa_no_such_database\" does not exist"),
        "{err}"
    );
}
