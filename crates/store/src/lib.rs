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
//! The store never interprets documents or receipts; it keeps them as JSON.

pub mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod contract;
pub mod fsblob;
pub mod pg;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

pub use contract::*;
pub use fsblob::FsBlobStore;
pub use pg::{PgBlobStore, PgOptions, PgStore};
pub use sqlite::{SqliteOptions, SqliteStore};
