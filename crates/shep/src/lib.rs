//! ШЭП (e-government gateway) SyncChannel and AsyncChannel for Qaqpa: typed envelopes, the
//! retry classification, an HTTP client, our own endpoints, and an emulator with fault injection.
//! This crate knows nothing of the gateway's store or engine, and never signs or verifies by
//! itself: WS-Security comes through the [`signing`] hooks, implemented over the soap crate.

pub mod async_channel;
pub mod classify;
pub mod client;
pub mod emulator;
pub mod envelope;
pub mod server;
pub mod signing;
pub mod sync_channel;
pub mod types;
pub mod ws_security;
pub mod xml;

pub use async_channel::{
    AsyncMessage, AsyncMessageInfo, AsyncSendMessageResponse, ChangeStatusNotification,
    DeliveryNotification, DeliveryStatus, GetMessageStatusRequest, GetMessageStatusResponse,
    GetMessagesRequest, GetMessagesResponse, MessageState, MessageStatusInfo, MessageType,
    ReceiveStatus, ResendMessage, SendDeliveryNotificationRequest,
    SendDeliveryNotificationResponse,
};
pub use classify::{classify_reply, classify_status, RetryReason, ShepOutcome};
pub use client::{AsyncChannelClient, ClientConfig, ShepError, SyncChannelClient, SyncClientPool};
pub use envelope::{Fault, FaultCode};
pub use signing::{EnvelopeSigner, EnvelopeVerifier, SignatureError, VerifiedSigner};
pub use sync_channel::{SyncReply, SyncRequest, SyncRequestInfo, SyncResponse, SyncResponseInfo};
pub use types::{ErrorInfo, MessageData, Property, SenderInfo, SessionId, Status, XsiType};
pub use ws_security::{SoapSigner, SoapVerifier};
pub use xml::XmlLimits;

/// Namespaces of the ШЭП contract (as the public WSDL/XSD name them).
pub mod ns {
    /// SOAP 1.1 envelope.
    pub const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
    /// WS-Security utility (wsu:Id on the Body).
    pub const WSU: &str =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
    pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
    pub const XS: &str = "http://www.w3.org/2001/XMLSchema";
    /// SyncChannel operation elements (SendMessage, SendMessageResponse, the fault element).
    pub const SYNC: &str = "http://bip.bee.kz/SyncChannel/v10/Types";
    /// AsyncChannel operation elements (sendMessage, getMessages, …).
    pub const ASYNC: &str = "http://bip.bee.kz/AsyncChannel/v10/Types";
    /// IAsyncChannelClient's own elements (changeMassageStatusNotification, …).
    pub const ASYNC_CLIENT: &str = "http://bip.bee.kz/AsyncChannel/v10/Types/Client";
}

/// Why an envelope could not be built or read. Messages name the place and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("document is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("XML nested deeper than {limit} levels at line {line}, column {column}")]
    TooDeep {
        limit: usize,
        line: u32,
        column: u32,
    },
    #[error("element at line {line}, column {column} has more than {limit} attributes")]
    TooManyAttributes {
        limit: usize,
        line: u32,
        column: u32,
    },
    #[error("{path} (line {line}, column {column}): {problem}")]
    Schema {
        path: String,
        line: u32,
        column: u32,
        problem: String,
    },
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
}

impl EnvelopeError {
    pub(crate) fn invalid(field: &str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            problem: problem.into(),
        }
    }
}
