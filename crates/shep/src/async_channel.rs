//! AsyncChannel: sendMessage, getMessages, getMessageStatus, sendDeliveryNotification (ШЭП's
//! IAsyncChannel), and sendMessage / changeMassageStatusNotification (the IAsyncChannelClient a
//! participant implements for push delivery; the misspelling is the wire name). Built and read
//! strictly by the contract; no I/O here.

use roxmltree::Node;
use time::OffsetDateTime;

use crate::envelope::{body_payload, is_fault, parse_envelope, write_envelope, Fault};
use crate::types::{
    format_datetime, read_datetime, read_session_id, read_string, ErrorInfo, MessageData, Property,
    SenderInfo, SessionId,
};
use crate::xml::{self, schema_error, Seq, XmlLimits, XmlWriter};
use crate::{ns, EnvelopeError};

/// A part of an AsyncChannel operation: the content of its `request` or `response` element.
pub trait Part: Sized {
    fn write_into(&self, w: &mut XmlWriter);
    fn read_from(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError>;
    /// Refuses what cannot be carried before anything is written.
    fn check(&self) -> Result<(), EnvelopeError> {
        Ok(())
    }
}

/// The wire names of the AsyncChannel operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    SendMessage,
    GetMessages,
    GetMessageStatus,
    SendDeliveryNotification,
    /// IAsyncChannelClient only; spelt as the WSDL spells it.
    ChangeMassageStatusNotification,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Self::SendMessage => "sendMessage",
            Self::GetMessages => "getMessages",
            Self::GetMessageStatus => "getMessageStatus",
            Self::SendDeliveryNotification => "sendDeliveryNotification",
            Self::ChangeMassageStatusNotification => "changeMassageStatusNotification",
        }
    }

    /// The namespace the operation's elements live in.
    pub fn namespace(self) -> &'static str {
        match self {
            Self::ChangeMassageStatusNotification => ns::ASYNC_CLIENT,
            _ => ns::ASYNC,
        }
    }

    /// The fault detail element, e.g. `sendMessageFault1_sendMessageFault`.
    pub fn fault_element(self) -> String {
        format!("{0}Fault1_{0}Fault", self.name())
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::SendMessage,
            Self::GetMessages,
            Self::GetMessageStatus,
            Self::SendDeliveryNotification,
            Self::ChangeMassageStatusNotification,
        ]
        .into_iter()
        .find(|op| op.name() == name)
    }
}

/// The envelope of `op`'s request (`wrapper` = "request") or response (`{op}Response`/"response").
pub fn operation_envelope<T: Part>(
    namespace: &str,
    element: &str,
    wrapper: &str,
    part: &T,
) -> Result<String, EnvelopeError> {
    part.check()?;
    Ok(write_envelope(|w| {
        w.start(&format!("ac:{element}"));
        w.attr("xmlns:ac", namespace);
        w.start(wrapper);
        part.write_into(w);
        w.end();
        w.end();
    }))
}

/// Envelope of a request for `op`.
pub fn request_envelope<T: Part>(op: Operation, part: &T) -> Result<String, EnvelopeError> {
    operation_envelope(op.namespace(), op.name(), "request", part)
}

/// Envelope of a response for `op`, in `namespace` (the request's).
pub fn response_envelope<T: Part>(
    op: Operation,
    namespace: &str,
    part: &T,
) -> Result<String, EnvelopeError> {
    operation_envelope(
        namespace,
        &format!("{}Response", op.name()),
        "response",
        part,
    )
}

/// Fault envelope for `op`, with the ErrorInfo under `{op}Fault1_{op}Fault`.
pub fn fault_envelope(op: Operation, namespace: &str, fault: &Fault) -> String {
    fault.to_envelope(namespace, &op.fault_element())
}

/// Reads the `wrapper` child of an operation element into `T`.
pub fn read_operation<T: Part>(payload: Node<'_, '_>, wrapper: &str) -> Result<T, EnvelopeError> {
    let name = payload.tag_name().name().to_owned();
    let mut seq = Seq::new(payload, &name)?;
    let inner = seq.required(wrapper)?;
    seq.finish()?;
    T::read_from(inner, &format!("{name}/{wrapper}"))
}

/// A reply to an AsyncChannel call: the typed response, or a SOAP Fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsyncReply<T> {
    Response(T),
    Fault(Fault),
}

/// Reads the reply envelope to `op`: `{op}Response` in `op`'s namespace, or a Fault.
pub fn read_reply<T: Part>(
    op: Operation,
    text: &str,
    limits: &XmlLimits,
) -> Result<AsyncReply<T>, EnvelopeError> {
    let doc = parse_envelope(text, limits)?;
    let payload = body_payload(&doc)?;
    if is_fault(payload) {
        return Ok(AsyncReply::Fault(Fault::read(payload)?));
    }
    let expected = format!("{}Response", op.name());
    if !payload.has_tag_name((op.namespace(), expected.as_str())) {
        return Err(schema_error(
            payload,
            "Body",
            &format!(
                "expected {{{}}}{expected} or a Fault, found {{{}}}{}",
                op.namespace(),
                payload.tag_name().namespace().unwrap_or(""),
                payload.tag_name().name()
            ),
        ));
    }
    Ok(AsyncReply::Response(read_operation(payload, "response")?))
}

fn opt_string(
    seq: &mut Seq<'_, '_>,
    name: &str,
    path: &str,
) -> Result<Option<String>, EnvelopeError> {
    seq.optional(name).map(|n| read_string(n, path)).transpose()
}

fn read_properties(seq: &mut Seq<'_, '_>, path: &str) -> Result<Vec<Property>, EnvelopeError> {
    seq.many("properties")
        .into_iter()
        .map(|n| Property::read(n, &format!("{path}/properties")))
        .collect()
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// The value as it travels.
            pub fn wire(self) -> &'static str {
                match self { $(Self::$variant => $wire),+ }
            }

            pub fn from_wire(text: &str) -> Option<Self> {
                match text.trim() { $($wire => Some(Self::$variant),)+ _ => None }
            }

            fn read(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
                let text = read_string(node, path)?;
                Self::from_wire(&text).ok_or_else(|| {
                    schema_error(node, path, &format!(
                        "'{}' is not one of {}", text, [$($wire),+].join(", ")))
                })
            }
        }
    };
}

wire_enum!(
    /// `messageType` of an async message.
    MessageType {
        Request = "REQUEST",
        Notification = "NOTIFICATION",
        Update = "UPDATE",
        Response = "RESPONSE",
    }
);

wire_enum!(
    /// `MessageState` of a message in ШЭП.
    MessageState {
        OnDelivery = "ON_DELIVERY",
        Delivered = "DELIVERED",
        NotDelivered = "NOT_DELIVERED",
        DeliveryStopped = "DELIVERY_STOPPED",
    }
);

wire_enum!(
    /// `receiveStatus` of a delivery notification (the misspelling is the wire value).
    ReceiveStatus {
        Accepted = "MESSAGE_ACCEPTED",
        NotAccepted = "MESSAGE_NOT_ACCTEPTED",
    }
);

wire_enum!(
    /// `resendMessage` of a delivery notification.
    ResendMessage {
        Resend = "RESEND",
        NotResend = "NOT_RESEND",
    }
);

/// `AsyncMessageInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncMessageInfo {
    /// Assigned by ШЭП: leave empty when sending.
    pub message_id: Option<String>,
    /// Assigned by ШЭП for a REQUEST; must be set for anything else.
    pub correlation_id: Option<String>,
    pub service_id: String,
    pub message_type: MessageType,
    pub route_id: Option<String>,
    pub message_date: OffsetDateTime,
    pub sender: SenderInfo,
    pub properties: Vec<Property>,
    pub session_id: Option<SessionId>,
}

/// An async message: `messageInfo` and `messageData/data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncMessage {
    pub info: AsyncMessageInfo,
    pub data: MessageData,
}

impl AsyncMessage {
    /// A REQUEST for `service_id`, dated now; ШЭП assigns messageId and correlationId.
    pub fn request(service_id: impl Into<String>, sender: SenderInfo, data: MessageData) -> Self {
        Self {
            info: AsyncMessageInfo {
                message_id: None,
                correlation_id: None,
                service_id: service_id.into(),
                message_type: MessageType::Request,
                route_id: None,
                message_date: crate::types::now(),
                sender,
                properties: Vec::new(),
                session_id: None,
            },
            data,
        }
    }

    /// A follow-up (UPDATE, NOTIFICATION or RESPONSE) in the chain `correlation_id`.
    pub fn follow_up(
        message_type: MessageType,
        correlation_id: impl Into<String>,
        service_id: impl Into<String>,
        sender: SenderInfo,
        data: MessageData,
    ) -> Self {
        let mut m = Self::request(service_id, sender, data);
        m.info.message_type = message_type;
        m.info.correlation_id = Some(correlation_id.into());
        m
    }

    pub fn with_route_id(mut self, id: impl Into<String>) -> Self {
        self.info.route_id = Some(id.into());
        self
    }

    pub fn with_property(mut self, property: Property) -> Self {
        self.info.properties.push(property);
        self
    }

    fn write_message(&self, w: &mut XmlWriter) {
        let i = &self.info;
        w.start("messageInfo");
        w.leaf_opt("messageId", i.message_id.as_deref());
        w.leaf_opt("correlationId", i.correlation_id.as_deref());
        w.leaf("serviceId", &i.service_id);
        w.leaf("messageType", i.message_type.wire());
        w.leaf_opt("routeId", i.route_id.as_deref());
        w.leaf("messageDate", &format_datetime(i.message_date));
        i.sender.write(w, "sender");
        Property::write_all(&i.properties, w);
        w.leaf_opt("sessionId", i.session_id.as_ref().map(SessionId::as_str));
        w.end();
        w.start("messageData");
        self.data.write(w);
        w.end();
    }

    fn read_message(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let info_node = seq.required("messageInfo")?;
        let data_node = seq.required("messageData")?;
        seq.finish()?;
        let ipath = format!("{path}/messageInfo");
        let p = ipath.as_str();
        let mut seq = Seq::new(info_node, p)?;
        let message_id = opt_string(&mut seq, "messageId", p)?;
        let correlation_id = opt_string(&mut seq, "correlationId", p)?;
        let service_id = read_string(seq.required("serviceId")?, p)?;
        let message_type = MessageType::read(seq.required("messageType")?, p)?;
        let route_id = opt_string(&mut seq, "routeId", p)?;
        let message_date = read_datetime(seq.required("messageDate")?, p)?;
        let sender = SenderInfo::read(seq.required("sender")?, p)?;
        let properties = read_properties(&mut seq, p)?;
        let session_id = seq
            .optional("sessionId")
            .map(|n| read_session_id(n, p))
            .transpose()?;
        seq.finish()?;
        let dpath = format!("{path}/messageData");
        let mut seq = Seq::new(data_node, &dpath)?;
        let data = MessageData::read(seq.required("data")?, &dpath)?;
        seq.finish()?;
        Ok(Self {
            info: AsyncMessageInfo {
                message_id,
                correlation_id,
                service_id,
                message_type,
                route_id,
                message_date,
                sender,
                properties,
                session_id,
            },
            data,
        })
    }
}

impl Part for AsyncMessage {
    fn write_into(&self, w: &mut XmlWriter) {
        self.write_message(w);
    }

    fn read_from(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        Self::read_message(node, path)
    }

    fn check(&self) -> Result<(), EnvelopeError> {
        let i = &self.info;
        if i.service_id.trim().is_empty() {
            return Err(EnvelopeError::invalid("serviceId", "must not be empty"));
        }
        if i.message_type != MessageType::Request
            && i.correlation_id
                .as_deref()
                .is_none_or(|c| c.trim().is_empty())
        {
            return Err(EnvelopeError::invalid(
                "correlationId",
                format!(
                    "a {} message must name its chain's correlationId",
                    i.message_type.wire()
                ),
            ));
        }
        for v in [&i.message_id, &i.correlation_id, &i.route_id]
            .into_iter()
            .flatten()
        {
            xml::check_chars("messageInfo", v)?;
        }
        xml::check_chars("serviceId", &i.service_id)?;
        i.sender.check()?;
        for p in &i.properties {
            p.check()?;
        }
        self.data.check()
    }
}

/// sendMessage's response: the ids ШЭП assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncSendMessageResponse {
    pub message_id: String,
    pub correlation_id: String,
    pub response_date: OffsetDateTime,
    pub session_id: Option<SessionId>,
}

impl Part for AsyncSendMessageResponse {
    fn write_into(&self, w: &mut XmlWriter) {
        w.leaf("messageId", &self.message_id);
        w.leaf("correlationId", &self.correlation_id);
        w.leaf("responseDate", &format_datetime(self.response_date));
        w.leaf_opt("sessionId", self.session_id.as_ref().map(SessionId::as_str));
    }

    fn read_from(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let message_id = read_string(seq.required("messageId")?, path)?;
        let correlation_id = read_string(seq.required("correlationId")?, path)?;
        let response_date = read_datetime(seq.required("responseDate")?, path)?;
        let session_id = seq
            .optional("sessionId")
            .map(|n| read_session_id(n, path))
            .transpose()?;
        seq.finish()?;
        Ok(Self {
            message_id,
            correlation_id,
            response_date,
            session_id,
        })
    }
}

/// getMessages: fetch messages waiting for us in a service's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMessagesRequest {
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub request_date: Option<OffsetDateTime>,
    pub service_id: String,
    pub sender: Option<SenderInfo>,
    pub amount: Option<i32>,
    pub properties: Vec<Property>,
}

impl GetMessagesRequest {
    pub fn new(service_id: impl Into<String>, sender: SenderInfo, amount: Option<i32>) -> Self {
        Self {
            message_id: None,
            correlation_id: None,
            request_date: Some(crate::types::now()),
            service_id: service_id.into(),
            sender: Some(sender),
            amount,
            properties: Vec::new(),
        }
    }
}

impl Part for GetMessagesRequest {
    fn write_into(&self, w: &mut XmlWriter) {
        w.leaf_opt("messageId", self.message_id.as_deref());
        w.leaf_opt("correlationId", self.correlation_id.as_deref());
        if let Some(d) = self.request_date {
            w.leaf("requestDate", &format_datetime(d));
        }
        w.leaf("serviceId", &self.service_id);
        if let Some(s) = &self.sender {
            s.write(w, "sender");
        }
        if let Some(a) = self.amount {
            w.leaf("amount", &a.to_string());
        }
        Property::write_all(&self.properties, w);
    }

    fn read_from(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let message_id = opt_string(&mut seq, "messageId", path)?;
        let correlation_id = opt_string(&mut seq, "correlationId", path)?;
        let request_date = seq
            .optional("requestDate")
            .map(|n| read_datetime(n, path))
            .transpose()?;
        let service_id = read_string(seq.required("serviceId")?, path)?;
        let sender = seq
            .optional("sender")
            .map(|n| SenderInfo::read(n, path))
            .transpose()?;
        let amount = match seq.optional("amount") {
            None => None,
            Some(n) => {
                let text = read_string(n, path)?;
                Some(text.trim().parse::<i32>().map_err(|_| {
                    schema_error(n, path, &format!("amount '{text}' is not an xs:int"))
                })?)
            }
        };
        let properties = read_properties(&mut seq, path)?;
        seq.finish()?;
        Ok(Self {
            message_id,
            correlation_id,
            request_date,
            service_id,
            sender,
            amount,
            properties,
        })
    }

    fn check(&self) -> Result<(), EnvelopeError> {
        if self.service_id.trim().is_empty() {
            return Err(EnvelopeError::invalid("serviceId", "must not be empty"));
        }
        if let Some(s) = &self.sender {
            s.check()?;
        }
        self.properties.iter().try_for_each(Property::check)
    }
}

/// getMessages' response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMessagesResponse {
    pub response_date: OffsetDateTime,
    pub session_id: SessionId,
    pub messages: Vec<AsyncMessage>,
}

impl Part for GetMessagesResponse {
    fn write_into(&self, w: &mut XmlWriter) {
        w.leaf("responseDate", &format_datetime(self.response_date));
        w.leaf("sessionId", self.session_id.as_str());
        for m in &self.messages {
            w.start("messages");
            m.write_message(w);
            w.end();
        }
    }

    fn read_from(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let response_date = read_datetime(seq.required("responseDate")?, path)?;
        let session_id = read_session_id(seq.required("sessionId")?, path)?;
        let messages = seq
            .many("messages")
            .into_iter()
            .map(|n| AsyncMessage::read_message(n, &format!("{path}/messages")))
            .collect::<Result<Vec<_>, _>>()?;
        seq.finish()?;
        Ok(Self {
            response_date,
            session_id,
            messages,
        })
    }
}

/// getMessageStatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMessageStatusRequest {
    pub message_id: String,
    pub request_date: OffsetDateTime,
    pub sender: SenderInfo,
    pub properties: Vec<Property>,
}

impl GetMessageStatusRequest {
    pub fn new(message_id: impl Into<String>, sender: SenderInfo) -> Self {
        Self {
            message_id: message_id.into(),
            request_date: crate::types::now(),
            sender,
            properties: Vec::new(),
        }
    }
}

impl Part for GetMessageStatusRequest {
    fn write_into(&self, w: &mut XmlWriter) {
        w.leaf("messageId", &self.message_id);
        w.leaf("requestDate", &format_datetime(self.request_date));
        self.sender.write(w, "sender");
        Property::write_all(&self.properties, w);
    }

    fn read_from(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let message_id = read_string(seq.required("messageId")?, path)?;
        let request_date = read_datetime(seq.required("requestDate")?, path)?;
        let sender = SenderInfo::read(seq.required("sender")?, path)?;
        let properties = read_properties(&mut seq, path)?;
        seq.finish()?;
        Ok(Self {
            message_id,
            request_date,
            sender,
            properties,
        })
    }

    fn check(&self) -> Result<(), EnvelopeError> {
        xml::check_chars("messageId", &self.message_id)?;
        self.sender.check()?;
        self.properties.iter().try_for_each(Property::check)
    }
}

/// `MessageStatusInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageStatusInfo {
    pub status_code: String,
    pub status_message: String,
    pub status_date: OffsetDateTime,
}

impl MessageStatusInfo {
    fn write(&self, w: &mut XmlWriter) {
        w.start("status");
        w.leaf("statusCode", &self.status_code);
        w.leaf("statusMessage", &self.status_message);
        w.leaf("statusDate", &format_datetime(self.status_date));
        w.end();
    }

    fn read(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let status_code = read_string(seq.required("statusCode")?, path)?;
        let status_message = read_string(seq.required("statusMessage")?, path)?;
        let status_date = read_datetime(seq.required("statusDate")?, path)?;
        seq.finish()?;
        Ok(Self {
            status_code,
            status_message,
            status_date,
        })
    }
}

/// getMessageStatus' response (its sessionId is a plain string in this one schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMessageStatusResponse {
    pub message_state: MessageState,
    pub status: MessageStatusInfo,
    pub response_date: OffsetDateTime,
    pub session_id: Option<String>,
}

impl Part for GetMessageStatusResponse {
    fn write_into(&self, w: &mut XmlWriter) {
        w.leaf("messageState", self.message_state.wire());
        self.status.write(w);
        w.leaf("responseDate", &format_datetime(self.response_date));
        w.leaf_opt("sessionId", self.session_id.as_deref());
    }

    fn read_from(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let message_state = MessageState::read(seq.required("messageState")?, path)?;
        let status = MessageStatusInfo::read(seq.required("status")?, &format!("{path}/status"))?;
        let response_date = read_datetime(seq.required("responseDate")?, path)?;
        let session_id = opt_string(&mut seq, "sessionId", path)?;
        seq.finish()?;
        Ok(Self {
            message_state,
            status,
            response_date,
            session_id,
        })
    }
}

/// `DeliveryStatusInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryStatus {
    pub receive_status: ReceiveStatus,
    pub status_date: OffsetDateTime,
    pub resend_message: ResendMessage,
    pub error: Option<ErrorInfo>,
}

/// `DeliveryNotification`: we tell ШЭП whether we accepted a message it delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryNotification {
    pub message_id: String,
    pub service_id: String,
    pub notification_date: OffsetDateTime,
    pub delivery_status: DeliveryStatus,
}

/// sendDeliveryNotification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendDeliveryNotificationRequest {
    pub notification: DeliveryNotification,
    pub request_date: OffsetDateTime,
    pub sender: Option<SenderInfo>,
}

impl SendDeliveryNotificationRequest {
    /// "Accepted" (or not) for `message_id` of `service_id`, dated now.
    pub fn new(
        message_id: impl Into<String>,
        service_id: impl Into<String>,
        receive_status: ReceiveStatus,
        resend: ResendMessage,
        error: Option<ErrorInfo>,
        sender: Option<SenderInfo>,
    ) -> Self {
        let now = crate::types::now();
        Self {
            notification: DeliveryNotification {
                message_id: message_id.into(),
                service_id: service_id.into(),
                notification_date: now,
                delivery_status: DeliveryStatus {
                    receive_status,
                    status_date: now,
                    resend_message: resend,
                    error,
                },
            },
            request_date: now,
            sender,
        }
    }
}

impl Part for SendDeliveryNotificationRequest {
    fn write_into(&self, w: &mut XmlWriter) {
        let n = &self.notification;
        w.start("notification");
        w.leaf("messageId", &n.message_id);
        w.leaf("serviceId", &n.service_id);
        w.leaf("notificationDate", &format_datetime(n.notification_date));
        w.start("deliveryStatus");
        let s = &n.delivery_status;
        w.leaf("receiveStatus", s.receive_status.wire());
        w.leaf("statusDate", &format_datetime(s.status_date));
        w.leaf("resendMessage", s.resend_message.wire());
        if let Some(e) = &s.error {
            w.start("error");
            e.write_content(w);
            w.end();
        }
        w.end();
        w.end();
        w.leaf("requestDate", &format_datetime(self.request_date));
        if let Some(s) = &self.sender {
            s.write(w, "sender");
        }
    }

    fn read_from(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let n_node = seq.required("notification")?;
        let request_date = read_datetime(seq.required("requestDate")?, path)?;
        let sender = seq
            .optional("sender")
            .map(|n| SenderInfo::read(n, path))
            .transpose()?;
        seq.finish()?;
        let np = format!("{path}/notification");
        let mut seq = Seq::new(n_node, &np)?;
        let message_id = read_string(seq.required("messageId")?, &np)?;
        let service_id = read_string(seq.required("serviceId")?, &np)?;
        let notification_date = read_datetime(seq.required("notificationDate")?, &np)?;
        let ds_node = seq.required("deliveryStatus")?;
        seq.finish()?;
        let dp = format!("{np}/deliveryStatus");
        let mut seq = Seq::new(ds_node, &dp)?;
        let receive_status = ReceiveStatus::read(seq.required("receiveStatus")?, &dp)?;
        let status_date = read_datetime(seq.required("statusDate")?, &dp)?;
        let resend_message = ResendMessage::read(seq.required("resendMessage")?, &dp)?;
        let error = seq
            .optional("error")
            .map(|n| ErrorInfo::read(n, &format!("{dp}/error")))
            .transpose()?;
        seq.finish()?;
        Ok(Self {
            notification: DeliveryNotification {
                message_id,
                service_id,
                notification_date,
                delivery_status: DeliveryStatus {
                    receive_status,
                    status_date,
                    resend_message,
                    error,
                },
            },
            request_date,
            sender,
        })
    }

    fn check(&self) -> Result<(), EnvelopeError> {
        xml::check_chars("notification.messageId", &self.notification.message_id)?;
        xml::check_chars("notification.serviceId", &self.notification.service_id)?;
        match &self.sender {
            Some(s) => s.check(),
            None => Ok(()),
        }
    }
}

/// sendDeliveryNotification's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendDeliveryNotificationResponse {
    pub notification_id: String,
    pub response_date: OffsetDateTime,
    pub session_id: SessionId,
}

impl Part for SendDeliveryNotificationResponse {
    fn write_into(&self, w: &mut XmlWriter) {
        w.leaf("notificationId", &self.notification_id);
        w.leaf("responseDate", &format_datetime(self.response_date));
        w.leaf("sessionId", self.session_id.as_str());
    }

    fn read_from(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let notification_id = read_string(seq.required("notificationId")?, path)?;
        let response_date = read_datetime(seq.required("responseDate")?, path)?;
        let session_id = read_session_id(seq.required("sessionId")?, path)?;
        seq.finish()?;
        Ok(Self {
            notification_id,
            response_date,
            session_id,
        })
    }
}

/// `ChangeStatusNotification`: ШЭП tells us a message of ours changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeStatusNotification {
    pub notification_id: String,
    pub message_id: String,
    pub notification_date: OffsetDateTime,
    pub message_state: MessageState,
    pub status: MessageStatusInfo,
    pub error: Option<ErrorInfo>,
}

/// changeMassageStatusNotification's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeStatusNotifyRequest {
    pub notification: ChangeStatusNotification,
    pub request_date: OffsetDateTime,
    pub session_id: Option<SessionId>,
}

impl Part for ChangeStatusNotifyRequest {
    fn write_into(&self, w: &mut XmlWriter) {
        let n = &self.notification;
        w.start("notification");
        w.leaf("notificationId", &n.notification_id);
        w.leaf("messageId", &n.message_id);
        w.leaf("notificationDate", &format_datetime(n.notification_date));
        w.leaf("messageState", n.message_state.wire());
        n.status.write(w);
        if let Some(e) = &n.error {
            w.start("error");
            e.write_content(w);
            w.end();
        }
        w.end();
        w.leaf("requestDate", &format_datetime(self.request_date));
        w.leaf_opt("sessionId", self.session_id.as_ref().map(SessionId::as_str));
    }

    fn read_from(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let n_node = seq.required("notification")?;
        let request_date = read_datetime(seq.required("requestDate")?, path)?;
        let session_id = seq
            .optional("sessionId")
            .map(|n| read_session_id(n, path))
            .transpose()?;
        seq.finish()?;
        let np = format!("{path}/notification");
        let mut seq = Seq::new(n_node, &np)?;
        let notification_id = read_string(seq.required("notificationId")?, &np)?;
        let message_id = read_string(seq.required("messageId")?, &np)?;
        let notification_date = read_datetime(seq.required("notificationDate")?, &np)?;
        let message_state = MessageState::read(seq.required("messageState")?, &np)?;
        let status = MessageStatusInfo::read(seq.required("status")?, &format!("{np}/status"))?;
        let error = seq
            .optional("error")
            .map(|n| ErrorInfo::read(n, &format!("{np}/error")))
            .transpose()?;
        seq.finish()?;
        Ok(Self {
            notification: ChangeStatusNotification {
                notification_id,
                message_id,
                notification_date,
                message_state,
                status,
                error,
            },
            request_date,
            session_id,
        })
    }
}

/// changeMassageStatusNotification's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeStatusNotifyResponse {
    pub response_date: OffsetDateTime,
    pub session_id: SessionId,
}

impl Part for ChangeStatusNotifyResponse {
    fn write_into(&self, w: &mut XmlWriter) {
        w.leaf("responseDate", &format_datetime(self.response_date));
        w.leaf("sessionId", self.session_id.as_str());
    }

    fn read_from(node: Node<'_, '_>, path: &str) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(node, path)?;
        let response_date = read_datetime(seq.required("responseDate")?, path)?;
        let session_id = read_session_id(seq.required("sessionId")?, path)?;
        seq.finish()?;
        Ok(Self {
            response_date,
            session_id,
        })
    }
}
