//! SyncChannel `SendMessage`: the request, the response and the fault, built and read strictly
//! by the contract (`http://bip.bee.kz/SyncChannel/v10/Types`). No I/O, no signatures here.

use roxmltree::Node;
use time::OffsetDateTime;

use crate::envelope::{body_payload, is_fault, parse_envelope, write_envelope, Fault};
use crate::types::{
    format_datetime, read_datetime, read_session_id, read_string, MessageData, Property,
    SenderInfo, SessionId, Status,
};
use crate::xml::{self, schema_error, Seq, XmlLimits, XmlWriter};
use crate::{ns, EnvelopeError};

/// The fault element of SendMessage, as the WSDL names it.
pub const FAULT_ELEMENT: &str = "SendMessageFault1_SendMessageFault";

/// `requestInfo` of SendMessage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequestInfo {
    /// Our message id (the route's stable id, so the target can drop duplicates).
    pub message_id: String,
    pub correlation_id: Option<String>,
    /// The interaction's id in ШЭП's registry.
    pub service_id: String,
    pub message_date: OffsetDateTime,
    pub route_id: Option<String>,
    pub sender: SenderInfo,
    pub properties: Vec<Property>,
    /// Filled by ШЭП; a sender leaves it empty.
    pub session_id: Option<SessionId>,
}

/// SendMessage's request: `requestInfo` and the business `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub info: SyncRequestInfo,
    pub data: Option<MessageData>,
}

impl SyncRequest {
    /// A request for `service_id` from `sender`, dated now, with a fresh message id.
    pub fn new(
        service_id: impl Into<String>,
        sender: SenderInfo,
        data: Option<MessageData>,
    ) -> Self {
        Self {
            info: SyncRequestInfo {
                message_id: uuid::Uuid::new_v4().to_string(),
                correlation_id: None,
                service_id: service_id.into(),
                message_date: crate::types::now(),
                route_id: None,
                sender,
                properties: Vec::new(),
                session_id: None,
            },
            data,
        }
    }

    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.info.message_id = id.into();
        self
    }

    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.info.correlation_id = Some(id.into());
        self
    }

    pub fn with_route_id(mut self, id: impl Into<String>) -> Self {
        self.info.route_id = Some(id.into());
        self
    }

    pub fn with_property(mut self, property: Property) -> Self {
        self.info.properties.push(property);
        self
    }

    pub fn with_session_id(mut self, id: SessionId) -> Self {
        self.info.session_id = Some(id);
        self
    }

    pub fn with_message_date(mut self, at: OffsetDateTime) -> Self {
        self.info.message_date = at;
        self
    }

    /// Checks what the schema cannot be trusted to catch before anything is sent.
    pub fn check(&self) -> Result<(), EnvelopeError> {
        let i = &self.info;
        for (field, value) in [("messageId", &i.message_id), ("serviceId", &i.service_id)] {
            if value.trim().is_empty() {
                return Err(EnvelopeError::invalid(field, "must not be empty"));
            }
            xml::check_chars(field, value)?;
        }
        for (field, value) in [
            ("correlationId", &i.correlation_id),
            ("routeId", &i.route_id),
        ] {
            if let Some(v) = value {
                xml::check_chars(field, v)?;
            }
        }
        i.sender.check()?;
        for p in &i.properties {
            p.check()?;
        }
        if let Some(d) = &self.data {
            d.check()?;
        }
        Ok(())
    }

    /// The SOAP envelope for this request (unsigned; the Body carries `wsu:Id`).
    pub fn to_envelope(&self) -> Result<String, EnvelopeError> {
        self.check()?;
        Ok(write_envelope(|w| self.write(w)))
    }

    fn write(&self, w: &mut XmlWriter) {
        let i = &self.info;
        w.start("sc:SendMessage");
        w.attr("xmlns:sc", ns::SYNC);
        w.start("request");
        w.start("requestInfo");
        w.leaf("messageId", &i.message_id);
        w.leaf_opt("correlationId", i.correlation_id.as_deref());
        w.leaf("serviceId", &i.service_id);
        w.leaf("messageDate", &format_datetime(i.message_date));
        w.leaf_opt("routeId", i.route_id.as_deref());
        i.sender.write(w, "sender");
        Property::write_all(&i.properties, w);
        w.leaf_opt("sessionId", i.session_id.as_ref().map(SessionId::as_str));
        w.end();
        w.start("requestData");
        if let Some(d) = &self.data {
            d.write(w);
        }
        w.end();
        w.end();
        w.end();
    }

    /// Reads a SendMessage envelope strictly (as the emulator and our endpoint do).
    pub fn from_envelope(text: &str, limits: &XmlLimits) -> Result<Self, EnvelopeError> {
        let doc = parse_envelope(text, limits)?;
        let payload = body_payload(&doc)?;
        Self::read_payload(payload)
    }

    /// Reads the `SendMessage` element.
    pub fn read_payload(payload: Node<'_, '_>) -> Result<Self, EnvelopeError> {
        if !payload.has_tag_name((ns::SYNC, "SendMessage")) {
            return Err(schema_error(
                payload,
                "Body",
                &format!(
                    "expected {{{}}}SendMessage, found {{{}}}{}",
                    ns::SYNC,
                    payload.tag_name().namespace().unwrap_or(""),
                    payload.tag_name().name()
                ),
            ));
        }
        let mut seq = Seq::new(payload, "SendMessage")?;
        let request = seq.required("request")?;
        seq.finish()?;
        let mut seq = Seq::new(request, "SendMessage/request")?;
        let info_node = seq.required("requestInfo")?;
        let data_node = seq.required("requestData")?;
        seq.finish()?;

        let path = "SendMessage/request/requestInfo";
        let mut seq = Seq::new(info_node, path)?;
        let message_id = read_string(seq.required("messageId")?, path)?;
        let correlation_id = seq
            .optional("correlationId")
            .map(|n| read_string(n, path))
            .transpose()?;
        let service_id = read_string(seq.required("serviceId")?, path)?;
        let message_date = read_datetime(seq.required("messageDate")?, path)?;
        let route_id = seq
            .optional("routeId")
            .map(|n| read_string(n, path))
            .transpose()?;
        let sender = SenderInfo::read(seq.required("sender")?, &format!("{path}/sender"))?;
        let properties = seq
            .many("properties")
            .into_iter()
            .map(|n| Property::read(n, &format!("{path}/properties")))
            .collect::<Result<Vec<_>, _>>()?;
        let session_id = seq
            .optional("sessionId")
            .map(|n| read_session_id(n, path))
            .transpose()?;
        seq.finish()?;

        let path = "SendMessage/request/requestData";
        let mut seq = Seq::new(data_node, path)?;
        let data = seq
            .optional("data")
            .map(|n| MessageData::read(n, path))
            .transpose()?;
        seq.finish()?;

        Ok(Self {
            info: SyncRequestInfo {
                message_id,
                correlation_id,
                service_id,
                message_date,
                route_id,
                sender,
                properties,
                session_id,
            },
            data,
        })
    }
}

/// `responseInfo` of SendMessageResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponseInfo {
    pub message_id: String,
    pub correlation_id: Option<String>,
    pub response_date: OffsetDateTime,
    pub status: Status,
    pub session_id: Option<SessionId>,
}

/// SendMessageResponse's `response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub info: SyncResponseInfo,
    pub data: Option<MessageData>,
}

impl SyncResponse {
    /// A response with `status`, dated now, with a fresh message id.
    pub fn new(status: Status, data: Option<MessageData>) -> Self {
        Self {
            info: SyncResponseInfo {
                message_id: uuid::Uuid::new_v4().to_string(),
                correlation_id: None,
                response_date: crate::types::now(),
                status,
                session_id: None,
            },
            data,
        }
    }

    /// `SCSS001` with `data`.
    pub fn success(data: Option<MessageData>) -> Self {
        Self::new(Status::success("Сообщение успешно обработано"), data)
    }

    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.info.correlation_id = Some(id.into());
        self
    }

    pub fn with_session_id(mut self, id: SessionId) -> Self {
        self.info.session_id = Some(id);
        self
    }

    pub fn check(&self) -> Result<(), EnvelopeError> {
        let i = &self.info;
        if i.message_id.trim().is_empty() {
            return Err(EnvelopeError::invalid("messageId", "must not be empty"));
        }
        xml::check_chars("messageId", &i.message_id)?;
        xml::check_chars("status.code", &i.status.code)?;
        xml::check_chars("status.message", &i.status.message)?;
        if i.status.message.chars().count() > Status::MAX_MESSAGE_CHARS {
            return Err(EnvelopeError::invalid(
                "status.message",
                "longer than 250 characters",
            ));
        }
        if let Some(d) = &self.data {
            d.check()?;
        }
        Ok(())
    }

    pub fn to_envelope(&self) -> Result<String, EnvelopeError> {
        self.check()?;
        Ok(write_envelope(|w| self.write(w)))
    }

    fn write(&self, w: &mut XmlWriter) {
        let i = &self.info;
        w.start("sc:SendMessageResponse");
        w.attr("xmlns:sc", ns::SYNC);
        w.start("response");
        w.start("responseInfo");
        w.leaf("messageId", &i.message_id);
        w.leaf_opt("correlationId", i.correlation_id.as_deref());
        w.leaf("responseDate", &format_datetime(i.response_date));
        i.status.write(w);
        w.leaf_opt("sessionId", i.session_id.as_ref().map(SessionId::as_str));
        w.end();
        w.start("responseData");
        if let Some(d) = &self.data {
            d.write(w);
        }
        w.end();
        w.end();
        w.end();
    }

    /// Reads the `SendMessageResponse` element.
    pub fn read_payload(payload: Node<'_, '_>) -> Result<Self, EnvelopeError> {
        let mut seq = Seq::new(payload, "SendMessageResponse")?;
        let response = seq.required("response")?;
        seq.finish()?;
        let mut seq = Seq::new(response, "SendMessageResponse/response")?;
        let info_node = seq.required("responseInfo")?;
        let data_node = seq.required("responseData")?;
        seq.finish()?;

        let path = "SendMessageResponse/response/responseInfo";
        let mut seq = Seq::new(info_node, path)?;
        let message_id = read_string(seq.required("messageId")?, path)?;
        let correlation_id = seq
            .optional("correlationId")
            .map(|n| read_string(n, path))
            .transpose()?;
        let response_date = read_datetime(seq.required("responseDate")?, path)?;
        let status = Status::read(seq.required("status")?, &format!("{path}/status"))?;
        let session_id = seq
            .optional("sessionId")
            .map(|n| read_session_id(n, path))
            .transpose()?;
        seq.finish()?;

        let path = "SendMessageResponse/response/responseData";
        let mut seq = Seq::new(data_node, path)?;
        let data = seq
            .optional("data")
            .map(|n| MessageData::read(n, path))
            .transpose()?;
        seq.finish()?;
        Ok(Self {
            info: SyncResponseInfo {
                message_id,
                correlation_id,
                response_date,
                status,
                session_id,
            },
            data,
        })
    }
}

/// What came back for a SendMessage: a response (whatever its status) or a SOAP Fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncReply {
    Response(SyncResponse),
    Fault(Fault),
}

impl SyncReply {
    /// Reads a reply envelope: SendMessageResponse or soap:Fault, nothing else.
    pub fn from_envelope(text: &str, limits: &XmlLimits) -> Result<Self, EnvelopeError> {
        let doc = parse_envelope(text, limits)?;
        let payload = body_payload(&doc)?;
        if is_fault(payload) {
            return Ok(Self::Fault(Fault::read(payload)?));
        }
        if !payload.has_tag_name((ns::SYNC, "SendMessageResponse")) {
            return Err(schema_error(
                payload,
                "Body",
                &format!(
                    "expected SendMessageResponse or a Fault, found {{{}}}{}",
                    payload.tag_name().namespace().unwrap_or(""),
                    payload.tag_name().name()
                ),
            ));
        }
        Ok(Self::Response(SyncResponse::read_payload(payload)?))
    }
}

/// The fault envelope of SendMessage.
pub fn fault_envelope(fault: &Fault) -> String {
    fault.to_envelope(ns::SYNC, FAULT_ELEMENT)
}
