//! Qaqpa's vocabulary: the message model, receipts, failures and the [`Adapter`] contract that
//! every target (ЕСЭДО, ESF, Enbek, a plain HTTP endpoint…) implements.
//!
//! This crate does no I/O and knows nothing of HTTP servers, databases or SOAP: the gateway owns
//! those, and adapters reach the outside world only through what they are handed in [`Cx`].

pub mod adapter;
pub mod failure;
pub mod ids;
pub mod message;
pub mod meter;
pub mod receipt;

pub use adapter::{
    Adapter, Admitted, Answer, AttachmentSource, Call, Cx, Delivered, Inbound, PushAnswer,
    PushOutcome, SignatureVerdict,
};
pub use failure::{error_chain, Failure, Rejection};
pub use ids::{ClientId, MessageId};
pub use message::{AttachmentMeta, Kind, MessageStatus, Outgoing};
pub use meter::{ExchangeMeter, WireExchange, WireExchangeRecord, WireResult};
pub use receipt::Receipt;
