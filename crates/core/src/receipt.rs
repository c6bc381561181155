//! Receipts: what a target says about a message after taking it (delivered, registered under a
//! number, given to an executor, finished…). Adapters translate their target's notifications into
//! this one shape; the gateway stores them in arrival order and forwards them to the EDMS.
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One receipt about one message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// Receipt type in the adapter's vocabulary, e.g. `delivered`, `registered`, `execution`.
    pub kind: String,
    /// When the target says it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The receipt's fields (`reg_no`, `executor`, `deadline`…), adapter-defined.
    pub data: serde_json::Value,
    /// The target's own id for this receipt, used to drop repeated pushes of the same receipt.
    pub dedup_key: Option<String>,
}
