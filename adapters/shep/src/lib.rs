//! A generic adapter for any ШЭП SyncChannel service: the route names the serviceId, endpoint and
//! sender, so a new government service reached through ШЭП is mostly configuration. It turns a
//! document or a call into one `SendMessage`, and ШЭП's answer into `Delivered`/`Answer` or a
//! `Failure` by the rules of `qaqpa_shep::classify`. It keeps no state about messages between
//! attempts, and never stores, caches or logs the data of synchronous calls.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use qaqpa_core::adapter::toml_value::Table;
use qaqpa_core::{
    Adapter, Answer, Call, Cx, Delivered, Failure, Inbound, Outgoing, PushOutcome, Receipt,
    Rejection, SignatureVerdict,
};
use qaqpa_shep::classify::RetryReason;
use qaqpa_shep::server::read_sync_request;
use qaqpa_shep::{
    EnvelopeSigner, EnvelopeVerifier, MessageData, Property, SenderInfo, ShepError,
    SyncChannelClient, SyncClientPool, SyncRequest, SyncResponse, XmlLimits,
};
use serde::Deserialize;

/// Route settings (`[routes.settings]` in routes.toml) of one ШЭП service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShepSettings {
    /// The ШЭП SyncChannel endpoint URL.
    pub endpoint: String,
    /// The interaction's serviceId in ШЭП's registry (e.g. `GbdulInfoByBin_v2`).
    pub service_id: String,
    /// Our senderId in ШЭП.
    pub sender_id: String,
    /// Name of the environment variable holding our sender password, if ШЭП issued one.
    #[serde(default)]
    pub sender_password_env: Option<String>,
    /// routeId, when the service needs one (e.g. `R_ESEDO`).
    #[serde(default)]
    pub route_id: Option<String>,
    /// Timeout of one exchange, in seconds (the call's deadline shortens it further).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// How the payload travels in `data`: `string` (xsi:type xs:string, escaped) or `xml`.
    #[serde(default)]
    pub data_type: DataType,
    /// Properties sent with every message (key ≤ 30, value ≤ 500 characters).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Does the target drop duplicates by our messageId? If not, an exchange whose request may
    /// have arrived is not retried (it fails as `SHEP_OUTCOME_UNKNOWN` instead).
    #[serde(default = "default_true")]
    pub target_dedups: bool,
    /// Require a valid WS-Security signature on pushes to us (needs a verifier).
    #[serde(default = "default_true")]
    pub require_signed_pushes: bool,
}

fn default_timeout_secs() -> u64 {
    30
}

fn default_true() -> bool {
    true
}

/// How the payload is carried in `data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// `xsi:type="xs:string"`: the payload as text (usually escaped XML).
    #[default]
    String,
    /// The payload as XML element content.
    Xml,
}

impl ShepSettings {
    /// Reads and checks a route's settings, naming the offending key.
    pub fn from_table(table: &Table) -> Result<Self, Rejection> {
        let settings: ShepSettings =
            serde_json::from_value(serde_json::Value::Object(table.clone()))
                .map_err(|e| Rejection::new("settings", e.to_string()))?;
        if !(settings.endpoint.starts_with("http://") || settings.endpoint.starts_with("https://"))
        {
            return Err(Rejection::new(
                "settings.endpoint",
                format!("'{}' is not an http(s) URL", settings.endpoint),
            ));
        }
        for (key, value) in [
            ("settings.service_id", &settings.service_id),
            ("settings.sender_id", &settings.sender_id),
        ] {
            if value.trim().is_empty() {
                return Err(Rejection::new(key, "must not be empty"));
            }
        }
        if settings.timeout_secs == 0 {
            return Err(Rejection::new(
                "settings.timeout_secs",
                "must be at least 1",
            ));
        }
        for (k, v) in &settings.properties {
            Property::new(k.clone(), v.clone())
                .map_err(|e| Rejection::new(format!("settings.properties.{k}"), e.to_string()))?;
        }
        Ok(settings)
    }

    fn password(&self) -> Result<Option<String>, Failure> {
        match &self.sender_password_env {
            None => Ok(None),
            Some(var) => std::env::var(var).map(Some).map_err(|_| {
                Failure::permanent(
                    "SHEP_CONFIG",
                    format!("environment variable {var} (sender password) is not set"),
                )
            }),
        }
    }
}

/// The payload of a document or a call: `{"data": "...", "properties": {...}?, "correlation_id": "..."?}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    data: String,
    #[serde(default)]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    correlation_id: Option<String>,
}

impl Payload {
    fn from_json(value: &serde_json::Value, field: &str) -> Result<Self, Rejection> {
        serde_json::from_value(value.clone()).map_err(|e| Rejection::new(field, e.to_string()))
    }
}

/// The generic ШЭП adapter. One instance serves every route whose adapter is `shep`.
pub struct ShepAdapter {
    verifier: Option<Arc<dyn EnvelopeVerifier>>,
    /// HTTP clients by (endpoint, timeout): connection pools, not message state.
    clients: SyncClientPool,
}

impl Default for ShepAdapter {
    fn default() -> Self {
        Self::new(None, None)
    }
}

impl ShepAdapter {
    /// `signer` signs every request (WS-Security over the Body); `verifier` checks answers and pushes.
    pub fn new(
        signer: Option<Arc<dyn EnvelopeSigner>>,
        verifier: Option<Arc<dyn EnvelopeVerifier>>,
    ) -> Self {
        Self {
            clients: SyncClientPool::new(signer, verifier.clone(), 256),
            verifier,
        }
    }

    fn client(
        &self,
        settings: &ShepSettings,
        timeout: Duration,
    ) -> Result<SyncChannelClient, Failure> {
        self.clients
            .get(&settings.endpoint, timeout)
            .map_err(|e| Failure::permanent("SHEP_CONFIG", e.to_string()))
    }

    /// Builds the SendMessage for `payload` under `settings`.
    fn request(
        settings: &ShepSettings,
        payload: &Payload,
        message_id: Option<String>,
        field: &str,
    ) -> Result<SyncRequest, Rejection> {
        let data = match settings.data_type {
            DataType::String => MessageData::text(payload.data.clone()),
            DataType::Xml => MessageData::xml(payload.data.clone(), None)
                .map_err(|e| Rejection::new(format!("{field}/data"), e.to_string()))?,
        };
        let password = settings
            .password()
            .map_err(|e| Rejection::new("settings.sender_password_env", e.to_string()))?;
        let mut request = SyncRequest::new(
            settings.service_id.clone(),
            SenderInfo::new(settings.sender_id.clone(), password),
            Some(data),
        );
        if let Some(id) = message_id {
            request = request.with_message_id(id);
        }
        if let Some(route) = &settings.route_id {
            request = request.with_route_id(route.clone());
        }
        if let Some(c) = &payload.correlation_id {
            request = request.with_correlation_id(c.clone());
        }
        let mut properties = settings.properties.clone();
        properties.extend(payload.properties.clone());
        for (k, v) in properties {
            let p = Property::new(k.clone(), v)
                .map_err(|e| Rejection::new(format!("{field}/properties/{k}"), e.to_string()))?;
            request = request.with_property(p);
        }
        request
            .check()
            .map_err(|e| Rejection::new(field.to_owned(), e.to_string()))?;
        Ok(request)
    }

    /// One exchange within the route's timeout and the caller's deadline; the sizes of its
    /// bodies on the wire go to [`Cx::meter`], whatever the outcome (a SOAP fault, an HTTP
    /// error answer and a timeout after sending included).
    async fn exchange(
        &self,
        settings: &ShepSettings,
        request: &SyncRequest,
        cx: &Cx<'_>,
    ) -> Result<SyncResponse, Failure> {
        let timeout = Duration::from_secs(settings.timeout_secs).min(cx.remaining());
        if timeout.is_zero() {
            return Err(Failure::retry(
                "the deadline passed before the request was sent",
            ));
        }
        let client = self.client(settings, timeout)?;
        client
            .send_metered(request, cx.meter)
            .await
            .map_err(|e| to_failure(e, settings.target_dedups))
    }
}

/// The engine's view of a ШЭП error. A retry where the request may have arrived, at a target
/// that does not drop duplicates, becomes permanent (never resend a non-idempotent request).
pub fn to_failure(error: ShepError, target_dedups: bool) -> Failure {
    let nothing_sent = error.nothing_sent();
    match error {
        ShepError::Permanent { code, message } => Failure::permanent(code, message),
        ShepError::Retry { reason, after } => {
            if target_dedups || nothing_sent {
                Failure::Retry {
                    reason: reason.to_string(),
                    after,
                }
            } else {
                let delivered_maybe = !matches!(reason, RetryReason::Connect(_));
                Failure::permanent(
                    "SHEP_OUTCOME_UNKNOWN",
                    format!(
                        "{reason}; the request {} have reached the target, which does not drop \
                         duplicates, so it is not resent",
                        if delivered_maybe { "may" } else { "did not" }
                    ),
                )
            }
        }
        other @ (ShepError::Request(_) | ShepError::Signing(_) | ShepError::Config(_)) => {
            Failure::permanent("SHEP_NOT_SENT", other.to_string())
        }
    }
}

fn data_json(data: &Option<MessageData>) -> serde_json::Value {
    match data {
        None => serde_json::Value::Null,
        Some(d) => serde_json::Value::String(d.as_text().to_owned()),
    }
}

#[async_trait]
impl Adapter for ShepAdapter {
    fn name(&self) -> &'static str {
        "shep"
    }

    fn meters_exchanges(&self) -> bool {
        true
    }

    fn check_settings(&self, settings: &Table) -> Result<(), Rejection> {
        let s = ShepSettings::from_table(settings)?;
        s.password()
            .map_err(|e| Rejection::new("settings.sender_password_env", e.to_string()))?;
        if s.require_signed_pushes && self.verifier.is_none() {
            // Only pushes need it; say so now rather than at the first push.
            return Err(Rejection::new(
                "settings.require_signed_pushes",
                "signed pushes are required but no WS-Security verifier is configured",
            ));
        }
        Ok(())
    }

    fn validate(&self, msg: &Outgoing, settings: &Table) -> Result<(), Rejection> {
        let s = ShepSettings::from_table(settings)?;
        let payload = Payload::from_json(&msg.document, "/document")?;
        Self::request(&s, &payload, Some(msg.id.to_string()), "/document").and_then(|r| {
            r.to_envelope()
                .map(|_| ())
                .map_err(|e| Rejection::new("/document", e.to_string()))
        })
    }

    async fn deliver(&self, msg: &Outgoing, cx: &Cx<'_>) -> Result<Delivered, Failure> {
        let settings = ShepSettings::from_table(cx.settings)
            .map_err(|r| Failure::permanent("SHEP_CONFIG", r.to_string()))?;
        let payload = Payload::from_json(&msg.document, "/document")
            .map_err(|r| Failure::permanent("INVALID_DOCUMENT", r.to_string()))?;
        // Our message id is the ШЭП messageId on every attempt: the target's dedup key.
        let request = Self::request(&settings, &payload, Some(msg.id.to_string()), "/document")
            .map_err(|r| Failure::permanent("INVALID_DOCUMENT", r.to_string()))?;
        let response = self.exchange(&settings, &request, cx).await?;
        let info = &response.info;
        Ok(Delivered {
            result_code: Some(format!("shep:{}", info.status.code)),
            target_ref: Some(info.message_id.clone()),
            receipts: vec![Receipt {
                kind: "answered".into(),
                at: info.response_date,
                data: serde_json::json!({
                    "status_code": info.status.code,
                    "status_message": info.status.message,
                    "session_id": info.session_id.as_ref().map(|s| s.to_string()),
                    "data": data_json(&response.data),
                }),
                dedup_key: Some(format!("{}:answered", info.message_id)),
            }],
        })
    }

    async fn call(&self, req: Call, cx: &Cx<'_>) -> Result<Answer, Failure> {
        let settings = ShepSettings::from_table(cx.settings)
            .map_err(|r| Failure::permanent("SHEP_CONFIG", r.to_string()))?;
        let payload = Payload::from_json(&req.params, "/params")
            .map_err(|r| Failure::permanent("INVALID_PARAMS", r.to_string()))?;
        let request = Self::request(&settings, &payload, None, "/params")
            .map_err(|r| Failure::permanent("INVALID_PARAMS", r.to_string()))?;
        let response = self.exchange(&settings, &request, cx).await?;
        let info = &response.info;
        Ok(Answer {
            body: serde_json::json!({
                "message_id": info.message_id,
                "status": { "code": info.status.code, "message": info.status.message },
                "data": data_json(&response.data),
            }),
            result_code: Some(format!("shep:{}", info.status.code)),
        })
    }

    async fn on_push(&self, inbound: Inbound, cx: &Cx<'_>) -> Result<PushOutcome, Failure> {
        let settings = ShepSettings::from_table(cx.settings)
            .map_err(|r| Failure::permanent("SHEP_CONFIG", r.to_string()))?;
        let text = std::str::from_utf8(&inbound.body)
            .map_err(|_| Failure::permanent("INVALID_ENVELOPE", "the push is not UTF-8"))?;
        let signer = match (&self.verifier, settings.require_signed_pushes) {
            (Some(v), _) => Some(
                v.verify(text)
                    .map_err(|e| Failure::bad_signature("SIGNATURE_INVALID", "ws-security", e))?,
            ),
            (None, true) => {
                return Err(Failure::permanent(
                    "SIGNATURE_UNCHECKED",
                    "signed pushes are required but no WS-Security verifier is configured",
                ))
            }
            (None, false) => None,
        };
        // Read the very Body the signature covered.
        let request = read_sync_request(text, &XmlLimits::default(), signer.as_ref())
            .map_err(|e| Failure::permanent("INVALID_ENVELOPE", e.to_string()))?;
        let info = &request.info;
        let properties: serde_json::Map<String, serde_json::Value> = info
            .properties
            .iter()
            .map(|p| (p.key.clone(), serde_json::Value::String(p.value.clone())))
            .collect();
        Ok(PushOutcome::Document {
            external_id: info.message_id.clone(),
            kind: info.service_id.clone(),
            from: info.sender.sender_id.clone(),
            document: serde_json::json!({
                "data": data_json(&request.data),
                "correlation_id": info.correlation_id,
                "route_id": info.route_id,
                "properties": properties,
                "message_date": qaqpa_shep::types::format_datetime(info.message_date),
            }),
            attachments: Vec::new(),
            signatures: signer
                .iter()
                .map(|v| SignatureVerdict {
                    field: "ws-security".into(),
                    signer: Some(v.subject.clone()),
                })
                .collect(),
        })
    }
}
