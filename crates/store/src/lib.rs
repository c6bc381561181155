//! The durable store behind the gateway: one [`Store`] contract, two implementations (embedded
//! SQLite and PostgreSQL), one conformance suite run against both.
//!
//! Invariants every implementation keeps:
//! - `insert_message` returns only after the message, its attachments' blob references and its
//!   idempotency key are durably committed (fsync'd; commits may be grouped);
//! - a message is claimed by at most one worker at a time, under a lease; an expired lease makes
//!   it claimable again (a killed process's work is taken over);
//! - an attempt is recorded only by the worker that still holds the lease;
//! - nothing is half-stored: a failed insert leaves no row behind.
//!
//! The store never interprets documents or receipts; it keeps them as JSON. Times are kept to
//! the microsecond on both back ends.
//!
//! Using it:
//! - embedded: [`SqliteStore::open`]`(data_dir, SqliteOptions::default())` (file
//!   `<data_dir>/qaqpa.db`) and [`FsBlobStore::open`]`(data_dir)` (files under
//!   `<data_dir>/blobs/`);
//! - shared: [`PgStore::connect`]`("postgres://user@host/db", PgOptions::default()).await`
//!   (migrates under an advisory lock) and [`PgStore::blob_store`] for blobs in the same database;
//! - tests: feature `testing` gives `testing::TempPostgres` (a throwaway server, also as root) and
//!   `testing::TempDir`; feature `conformance` gives the suite and the
//!   `store_conformance_tests!` / `blob_conformance_tests!` macros.

pub mod codec;
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod contract;
pub mod fsblob;
pub mod pg;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{OpenedStore, StoreConfig};
pub use contract::*;
pub use fsblob::FsBlobStore;
pub use pg::{PgBlobStore, PgOptions, PgStore};
pub use sqlite::{SqliteOptions, SqliteStore};
