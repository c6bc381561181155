//! `/v1/messages`: an EDMS hands over a document and follows it. A message is answered `202` only
//! once it is durably committed; everything is checked before that, so a refused request leaves
//! nothing behind that matters (a content-addressed blob at most, never a message).
use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use qaqpa_core::{AttachmentMeta, ClientId, MessageId, MessageStatus, Outgoing};
use qaqpa_store::{
    BlobChunks, CancelOutcome, InsertOutcome, MessageFilter, MessageRecord, NewMessage, StoreError,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::api::body::{check_depth, parse_json};
use crate::auth::{Caller, CausedBy, Role};
use crate::problem::Problem;
use crate::state::AppState;

/// A document to deliver.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitMessage {
    /// Message kind; routes.toml decides which adapter takes it (e.g. `http.post`).
    pub kind: String,
    /// Recipient id (meaning depends on the kind).
    pub to: String,
    /// The adapter-specific document card (a JSON object).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
    #[serde(default)]
    pub attachments: Vec<SubmitAttachment>,
    /// CMS signatures, base64 (DER).
    #[serde(default)]
    pub signatures: Vec<String>,
    /// Where status changes and receipts are POSTed (signed webhooks).
    #[serde(default)]
    pub callback_url: Option<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// An attachment inside a JSON request; multipart requests send files as parts instead.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitAttachment {
    pub name: String,
    pub content_type: String,
    /// The file, base64.
    pub content: String,
}

/// The answer to a submit.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    #[schema(value_type = String, format = Uuid)]
    pub id: MessageId,
    #[schema(value_type = String, example = "queued")]
    pub status: MessageStatus,
}

/// A file already in the blob store, waiting for its message.
pub(crate) struct StagedAttachment {
    meta: AttachmentMeta,
}

/// Submit a message (JSON, or multipart with a `message` JSON part followed by file parts).
#[utoipa::path(post, operation_id = "messages_submit", path = "/v1/messages", tag = "messages",
    request_body(content = SubmitMessage, description = "JSON; or multipart/form-data with a `message` part (this JSON without attachment content) and one part per file"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and same body → the original message (200); different body → 409")),
    responses(
        (status = 202, description = "Durably accepted", body = Accepted),
        (status = 200, description = "Already accepted under this Idempotency-Key", body = Accepted),
        (status = 400, description = "Malformed request", body = Problem),
        (status = 401, description = "No or bad API key", body = Problem),
        (status = 409, description = "Idempotency-Key reused with a different body", body = Problem),
        (status = 413, description = "Too large", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
    ),
    security(("api_key" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<Response, Problem> {
    caller.require(&[Role::Client], "submit messages")?;
    let idempotency_key = idempotency_key(req.headers())?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (submit, staged, request_hash) = if content_type.starts_with("multipart/form-data") {
        read_multipart(&state, req).await?
    } else if content_type.starts_with("application/json") {
        read_json(&state, req).await?
    } else {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send application/json or multipart/form-data",
        ));
    };
    accept(
        &state,
        &caller,
        submit,
        staged,
        request_hash,
        idempotency_key,
    )
    .await
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| Problem::bad_request("Idempotency-Key must be printable ASCII"))?
        .trim();
    if s.is_empty() || s.len() > 200 {
        return Err(Problem::bad_request(
            "Idempotency-Key must be 1 to 200 characters",
        ));
    }
    Ok(Some(s.to_string()))
}

async fn read_json(
    state: &AppState,
    req: Request,
) -> Result<(SubmitMessage, Vec<StagedAttachment>, String), Problem> {
    let limit = state.cfg.api.max_json_bytes;
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            Problem::too_large(format!(
                "the JSON body is larger than {limit} bytes; send large files as multipart/form-data"
            ))
        })?;
    check_depth(&bytes, state.cfg.api.max_json_depth)?;
    let mut submit: SubmitMessage = parse_json(&bytes)?;
    check_card(state, &submit)?;
    let hash = hex::encode(Sha256::digest(&bytes));
    let mut staged = Vec::with_capacity(submit.attachments.len());
    for (i, a) in std::mem::take(&mut submit.attachments)
        .into_iter()
        .enumerate()
    {
        check_attachment_meta(i, &a.name, &a.content_type)?;
        let content = base64::engine::general_purpose::STANDARD
            .decode(a.content.as_bytes())
            .map_err(|e| {
                Problem::invalid(
                    format!("/attachments/{i}/content"),
                    format!("not valid base64: {e}"),
                )
            })?;
        let max = state.cfg.api.max_attachment_bytes;
        if content.len() as u64 > max {
            return Err(Problem::invalid(
                format!("/attachments/{i}/content"),
                format!("the file is {} bytes; at most {max} allowed", content.len()),
            ));
        }
        let mut source = OneChunk(Some(Bytes::from(content)));
        let (sha256, size) = state.blobs.put(&mut source, max).await?;
        staged.push(StagedAttachment {
            meta: AttachmentMeta {
                name: a.name,
                content_type: a.content_type,
                size,
                sha256,
            },
        });
    }
    Ok((submit, staged, hash))
}

/// The multipart form: first a `message` part holding the JSON card (attachments, if any, inline
/// as in the JSON form), then one part per file, streamed straight into the blob store.
async fn read_multipart(
    state: &AppState,
    req: Request,
) -> Result<(SubmitMessage, Vec<StagedAttachment>, String), Problem> {
    let total_limit = state.cfg.api.max_multipart_bytes;
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, total_limit as usize)));
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|e| Problem::bad_request(format!("not a valid multipart form: {e}")))?;
    let first = form
        .next_field()
        .await
        .map_err(|e| multipart_problem(e, total_limit))?
        .ok_or_else(|| {
            Problem::invalid(
                "/message",
                "the form is empty; the first part must be `message` (JSON)",
            )
        })?;
    if first.name() != Some("message") {
        return Err(Problem::invalid(
            "/message",
            format!(
                "the first part must be named `message` (JSON); got {:?}",
                first.name().unwrap_or("")
            ),
        ));
    }
    let json = first
        .bytes()
        .await
        .map_err(|e| multipart_problem(e, total_limit))?;
    if json.len() > state.cfg.api.max_json_bytes {
        return Err(Problem::too_large("the `message` part is too large"));
    }
    check_depth(&json, state.cfg.api.max_json_depth)?;
    let submit: SubmitMessage = parse_json(&json)?;
    check_card(state, &submit)?;
    let mut hasher = Sha256::new();
    hasher.update(&json);
    let mut staged = Vec::new();
    if !submit.attachments.is_empty() {
        return Err(Problem::invalid(
            "/attachments",
            "in a multipart request, send files as parts, not inline",
        ));
    }
    let mut index = 0usize;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| multipart_problem(e, total_limit))?
    {
        if index >= state.cfg.api.max_attachments {
            return Err(Problem::invalid(
                "/attachments",
                format!(
                    "at most {} files per message",
                    state.cfg.api.max_attachments
                ),
            ));
        }
        let name = field.file_name().map(str::to_string).ok_or_else(|| {
            Problem::invalid(
                format!("/attachments/{index}/name"),
                "each file part needs a filename",
            )
        })?;
        let content_type = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_string();
        check_attachment_meta(index, &name, &content_type)?;
        let mut source = FieldChunks {
            field,
            limit: total_limit,
        };
        let max = state.cfg.api.max_attachment_bytes;
        let (sha256, size) = state
            .blobs
            .put(&mut source, max)
            .await
            .map_err(|e| match e {
                StoreError::BlobTooLarge { limit } => Problem::invalid(
                    format!("/attachments/{index}/content"),
                    format!("file '{name}' is larger than {limit} bytes"),
                ),
                StoreError::Other(m) if m.starts_with("multipart:") => Problem::bad_request(m),
                other => Problem::from(other),
            })?;
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(content_type.as_bytes());
        hasher.update([0]);
        hasher.update(sha256.as_bytes());
        staged.push(StagedAttachment {
            meta: AttachmentMeta {
                name,
                content_type,
                size,
                sha256,
            },
        });
        index += 1;
    }
    Ok((submit, staged, hex::encode(hasher.finalize())))
}

fn multipart_problem(e: axum::extract::multipart::MultipartError, limit: u64) -> Problem {
    let text = e.body_text();
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE || text.contains("length limit") {
        Problem::too_large(format!("the multipart body is larger than {limit} bytes"))
    } else {
        Problem::bad_request(format!("broken multipart body: {text}"))
    }
}

pub(crate) struct OneChunk(pub(crate) Option<Bytes>);

#[async_trait]
impl BlobChunks for OneChunk {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        Ok(self.0.take())
    }
}

struct FieldChunks<'a> {
    field: axum::extract::multipart::Field<'a>,
    limit: u64,
}

#[async_trait]
impl BlobChunks for FieldChunks<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        self.field.chunk().await.map_err(|e| {
            let p = multipart_problem(e, self.limit);
            StoreError::Other(format!("multipart: {}", p.detail))
        })
    }
}

/// Checks of the card that need no adapter: lengths, shapes, URL.
fn check_card(state: &AppState, s: &SubmitMessage) -> Result<(), Problem> {
    if s.kind.trim().is_empty() || s.kind.len() > 100 {
        return Err(Problem::invalid("/kind", "must be 1 to 100 characters"));
    }
    if s.to.trim().is_empty() || s.to.len() > 256 {
        return Err(Problem::invalid("/to", "must be 1 to 256 characters"));
    }
    if !s.document.is_object() {
        return Err(Problem::invalid("/document", "must be a JSON object"));
    }
    if s.attachments.len() > state.cfg.api.max_attachments {
        return Err(Problem::invalid(
            "/attachments",
            format!(
                "at most {} files per message",
                state.cfg.api.max_attachments
            ),
        ));
    }
    if s.signatures.len() > 16 {
        return Err(Problem::invalid("/signatures", "at most 16 signatures"));
    }
    for (i, sig) in s.signatures.iter().enumerate() {
        if let Err(e) = base64::engine::general_purpose::STANDARD.decode(sig.as_bytes()) {
            return Err(Problem::invalid(
                format!("/signatures/{i}"),
                format!("not valid base64: {e}"),
            ));
        }
    }
    if let Some(url) = &s.callback_url {
        match reqwest::Url::parse(url) {
            Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {}
            Ok(_) => {
                return Err(Problem::invalid(
                    "/callback_url",
                    "must be an http or https URL with a host",
                ))
            }
            Err(e) => return Err(Problem::invalid("/callback_url", format!("not a URL: {e}"))),
        }
    }
    Ok(())
}

fn check_attachment_meta(i: usize, name: &str, content_type: &str) -> Result<(), Problem> {
    let bad_char = |c: char| c.is_control() || c == '/' || c == '\\';
    if name.trim().is_empty() || name.chars().count() > 255 || name.chars().any(bad_char) {
        return Err(Problem::invalid(
            format!("/attachments/{i}/name"),
            "must be 1 to 255 characters without slashes or control characters",
        ));
    }
    let ok_type = content_type
        .split_once('/')
        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && content_type.len() <= 255);
    if !ok_type {
        return Err(Problem::invalid(
            format!("/attachments/{i}/content_type"),
            "must be a MIME type such as application/pdf",
        ));
    }
    Ok(())
}

pub(crate) async fn accept(
    state: &AppState,
    caller: &Caller,
    submit: SubmitMessage,
    staged: Vec<StagedAttachment>,
    request_hash: String,
    idempotency_key: Option<String>,
) -> Result<Response, Problem> {
    let client = caller.client.clone();
    let route = match state.routes.route_for(&submit.kind, &client.0, &submit.to) {
        Some(r) => r,
        None if !state.routes.knows_kind(&submit.kind, &client.0) => {
            return Err(Problem::invalid(
                "/kind",
                format!("unknown kind '{}' (no route takes it)", submit.kind),
            ))
        }
        None => {
            return Err(Problem::invalid(
                "/to",
                format!("no route delivers '{}' to '{}'", submit.kind, submit.to),
            ))
        }
    };
    let adapter = state
        .adapters
        .get(&route.adapter)
        .ok_or_else(|| Problem::internal(format!("route '{}' has no adapter", route.name)))?;
    let now = OffsetDateTime::now_utc();
    let id = MessageId::new();
    let transaction_id = id.to_string();
    let signatures = submit
        .signatures
        .iter()
        .map(|s| base64::engine::general_purpose::STANDARD.decode(s.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Problem::invalid("/signatures", e.to_string()))?;
    let attachments: Vec<AttachmentMeta> = staged.into_iter().map(|s| s.meta).collect();
    let outgoing = Outgoing {
        id,
        client: client.clone(),
        kind: submit.kind.clone(),
        to: submit.to.clone(),
        document: submit.document.clone(),
        attachments: attachments.clone(),
        signatures: signatures.clone(),
        created_at: now,
        attempt: 0,
        transaction_id: transaction_id.clone(),
    };
    let settings = route.settings_table();
    adapter
        .validate(&outgoing, &settings)
        .map_err(|r| Problem::invalid(r.field, r.message))?;
    let blob_source = crate::engine::BlobAttachments {
        blobs: state.blobs.as_ref(),
        attachments: &outgoing.attachments,
    };
    // Admission's own requests (revocation checks) are not the target's: the meter is not
    // read; the PKI fetcher journals each of them (`pki_exchanges`, the scope below).
    let meter = qaqpa_core::ExchangeMeter::new();
    let cx = qaqpa_core::Cx {
        deadline: std::time::Instant::now() + route.timeout(),
        settings: &settings,
        attachments: &blob_source,
        transaction_id: &transaction_id,
        meter: &meter,
    };
    // The OCSP questions the signature checks ask are journalled in the message's transaction.
    let admitted = crate::pki_exchanges::within(
        crate::pki_exchanges::ExchangeScope::of(crate::audit::API, &transaction_id, caller)
            .about(&transaction_id),
        adapter.admit(&outgoing, &cx),
    )
    .await;
    journal_signatures(state, caller, &id, &admitted);
    admitted.map_err(|r| Problem::invalid(r.field, r.message))?;
    let outcome = state
        .store
        .insert_message(NewMessage {
            id,
            client,
            kind: submit.kind,
            to: submit.to,
            route: route.name.clone(),
            document: submit.document,
            attachments,
            signatures,
            callback_url: submit.callback_url,
            idempotency_key,
            request_hash,
            transaction_id,
            created_at: now,
            due_at: now,
        })
        .await?;
    match outcome {
        InsertOutcome::Inserted => {
            // The operation: from the message's creation to its durable commit.
            let stored = OffsetDateTime::now_utc();
            // The message id is also the transaction id: written out once.
            let id_text = id.to_string();
            state.audit.record(
                qaqpa_audit::AuditEvent::lifecycle(
                    crate::audit::API,
                    qaqpa_audit::LifecycleStage::Accepted,
                    &id_text,
                    Some(&route.name),
                    None,
                )
                .by(caller)
                .operation(now, stored)
                .transaction(id_text),
            );
            state.metrics.accepted(&route.name);
            state.engine_wake.notify_one();
            tracing::debug!(message = %id, route = %route.name, "accepted");
            Ok(accepted_response(
                StatusCode::ACCEPTED,
                id,
                MessageStatus::Queued,
            ))
        }
        InsertOutcome::Existing(rec) => Ok(accepted_response(StatusCode::OK, rec.id, rec.status)),
        InsertOutcome::Conflict { existing } => Err(Problem::conflict(format!(
            "this Idempotency-Key was used for message {existing} with a different body"
        ))),
    }
}

fn accepted_response(status: StatusCode, id: MessageId, st: MessageStatus) -> Response {
    let mut resp = (status, Json(Accepted { id, status: st })).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/messages/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A message as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    #[schema(value_type = String, format = Uuid)]
    pub id: MessageId,
    pub client: String,
    pub kind: String,
    pub to: String,
    pub route: String,
    #[schema(value_type = String, example = "delivered")]
    pub status: MessageStatus,
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    pub attachments: Vec<AttachmentMeta>,
    pub signature_count: usize,
    pub callback_url: Option<String>,
    pub transaction_id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<OffsetDateTime>,
    pub attempts: u32,
    pub target_ref: Option<String>,
    pub last_error: Option<String>,
    /// Every attempt with its times and error.
    #[schema(value_type = Vec<Object>)]
    pub attempt_log: Vec<qaqpa_store::AttemptRecord>,
    /// Receipts in arrival order.
    #[schema(value_type = Vec<Object>)]
    pub receipts: Vec<qaqpa_store::StoredReceipt>,
    /// Webhook deliveries about this message and their state.
    #[schema(value_type = Vec<Object>)]
    pub webhooks: Vec<WebhookView>,
    /// The target's card folded from the receipts (for ЕСЭДО: sent, delivered, registered
    /// number, executor, deadline, result); absent when the adapter keeps none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub card: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    pub event: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

impl MessageView {
    fn from_record(
        r: MessageRecord,
        webhooks: Vec<WebhookView>,
        card: Option<serde_json::Value>,
    ) -> Self {
        Self {
            card,
            id: r.id,
            client: r.client.0,
            kind: r.kind,
            to: r.to,
            route: r.route,
            status: r.status,
            document: r.document,
            attachments: r.attachments,
            signature_count: r.signatures.len(),
            callback_url: r.callback_url,
            transaction_id: r.transaction_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            next_attempt_at: r.next_attempt_at,
            attempts: r.attempts,
            target_ref: r.target_ref,
            last_error: r.last_error,
            attempt_log: r.attempt_log,
            receipts: r.receipts,
            webhooks,
        }
    }
}

fn parse_id(s: &str) -> Result<MessageId, Problem> {
    s.parse()
        .map_err(|_| Problem::not_found(&format!("message '{s}'")))
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<MessageRecord, Problem> {
    let id = parse_id(id)?;
    state
        .store
        .get_message(caller.scope(), id)
        .await?
        .ok_or_else(|| Problem::not_found(&format!("message {id}")))
}

/// One message: status, attempts, target reference, receipts in order, webhook deliveries.
#[utoipa::path(get, operation_id = "messages_get_one", path = "/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "Message id")),
    responses((status = 200, body = MessageView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MessageView>, Problem> {
    let rec = load(&state, &caller, &id).await?;
    crate::audit::object_read(
        &state,
        &caller,
        qaqpa_audit::ObjectKind::Message,
        &rec.id.to_string(),
        Some(&rec.transaction_id),
    );
    let hooks = state
        .store
        .webhooks_for_message(rec.id)
        .await?
        .into_iter()
        .map(|w| WebhookView {
            event: w
                .payload
                .get("event")
                .and_then(|e| e.as_str())
                .unwrap_or("")
                .to_string(),
            state: w.state,
            attempts: w.attempts,
            last_error: w.last_error,
        })
        .collect();
    let card = state
        .routes
        .by_name(&rec.route)
        .and_then(|route| state.adapters.get(&route.adapter))
        .and_then(|adapter| {
            let receipts: Vec<qaqpa_core::Receipt> =
                rec.receipts.iter().map(|r| r.receipt.clone()).collect();
            adapter.card(&receipts)
        });
    Ok(Json(MessageView::from_record(rec, hooks, card)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// queued, delivering, delivered, failed, dead_letter, cancelled
    pub status: Option<String>,
    pub kind: Option<String>,
    /// RFC 3339: created at or after.
    pub from: Option<String>,
    /// RFC 3339: created before.
    pub to: Option<String>,
    /// Cursor from the previous page's `next`.
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// Operators: only this client's messages.
    pub client: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessagePage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<qaqpa_store::MessageSummary>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[schema(value_type = Option<String>)]
    pub next: Option<MessageId>,
}

fn parse_time(field: &str, s: &Option<String>) -> Result<Option<OffsetDateTime>, Problem> {
    s.as_deref()
        .map(|v| {
            OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).map_err(|e| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad-request",
                    "Malformed request",
                    format!("query parameter '{field}' is not an RFC 3339 time: {e}"),
                )
            })
        })
        .transpose()
}

/// The cursor and page size of a listing: `after` must be an id from a previous page's `next`,
/// `limit` between 1 and 1000 (default 100).
pub(crate) fn page_params(
    after: Option<&str>,
    limit: Option<u32>,
) -> Result<(Option<MessageId>, u32), Problem> {
    let after = after
        .map(|s| {
            s.parse()
                .map_err(|_| Problem::bad_request("bad cursor in 'after'"))
        })
        .transpose()?;
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 1000"));
    }
    Ok((after, limit))
}

pub(crate) fn query_problem(e: impl std::fmt::Display) -> Problem {
    Problem::bad_request(format!("bad query string: {e}"))
}

/// Messages, newest last, filtered by status, kind and creation time, a page at a time.
#[utoipa::path(get, operation_id = "messages_list", path = "/v1/messages", tag = "messages", params(ListQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = Problem)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MessagePage>, Problem> {
    let Query(q) = query.map_err(query_problem)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            MessageStatus::parse(s)
                .ok_or_else(|| Problem::bad_request(format!("unknown status '{s}'")))
        })
        .transpose()?;
    let (after, limit) = page_params(q.after.as_deref(), q.limit)?;
    let client = match caller.scope() {
        Some(c) => Some(c.clone()),
        None => q.client.clone().map(ClientId),
    };
    let page = state
        .store
        .list_messages(&MessageFilter {
            client,
            status,
            kind: q.kind.clone(),
            created_from: parse_time("from", &q.from)?,
            created_to: parse_time("to", &q.to)?,
            after,
            limit,
        })
        .await?;
    Ok(Json(MessagePage {
        items: page.items,
        next: page.next,
    }))
}

/// One attachment's bytes, streamed from the blob store and checked against its SHA-256.
#[utoipa::path(get, operation_id = "messages_attachment", path = "/v1/messages/{id}/attachments/{n}", tag = "messages",
    params(("id" = String, Path), ("n" = usize, Path, description = "0-based index")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"), (status = 404, body = Problem)),
    security(("api_key" = [])))]
pub async fn attachment(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, n)): Path<(String, usize)>,
) -> Result<Response, Problem> {
    let rec = load(&state, &caller, &id).await?;
    let meta = rec
        .attachments
        .get(n)
        .ok_or_else(|| Problem::not_found(&format!("attachment {n} of message {id}")))?;
    crate::audit::object_read(
        &state,
        &caller,
        qaqpa_audit::ObjectKind::Attachment,
        &format!("{id}/attachments/{n}"),
        Some(&rec.transaction_id),
    );
    stream_blob(&state, meta).await
}

pub(crate) async fn stream_blob(
    state: &AppState,
    meta: &AttachmentMeta,
) -> Result<Response, Problem> {
    let chunks = state.blobs.open(&meta.sha256).await?;
    let stream = futures_util::stream::unfold(chunks, |mut c| async move {
        match c.next_chunk().await {
            Ok(Some(b)) => Some((Ok::<Bytes, std::io::Error>(b), c)),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), c)),
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&meta.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
    let disposition = format!(
        "attachment; filename*=UTF-8''{}",
        percent_encode(&meta.name)
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&meta.sha256) {
        h.insert("x-content-sha256", v);
    }
    Ok(resp)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Cancel a message that has not been handed to its target yet.
#[utoipa::path(post, operation_id = "messages_cancel", path = "/v1/messages/{id}/cancel", tag = "messages",
    params(("id" = String, Path)),
    responses((status = 200, body = Accepted), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Accepted>, Problem> {
    caller.require(&[Role::Client], "cancel messages")?;
    let id = parse_id(&id)?;
    match state.store.cancel(&caller.client, id).await? {
        CancelOutcome::Cancelled => {
            if let Ok(Some(rec)) = state.store.get_message(None, id).await {
                crate::webhooks::status_changed(&state, &rec, None).await;
            }
            Ok(Json(Accepted {
                id,
                status: MessageStatus::Cancelled,
            }))
        }
        CancelOutcome::NotFound => Err(Problem::not_found(&format!("message {id}"))),
        CancelOutcome::NotCancellable(st) => Err(Problem::conflict(format!(
            "message {id} is {} and can no longer be cancelled",
            st.as_str()
        ))),
    }
}

/// Send a dead-lettered (or failed) message again (operators).
#[utoipa::path(post, operation_id = "messages_retry", path = "/v1/messages/{id}/retry", tag = "messages",
    params(("id" = String, Path)),
    responses((status = 200, body = Accepted), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Accepted>, Problem> {
    caller.require(&[Role::Operator, Role::Admin], "retry messages")?;
    let id = parse_id(&id)?;
    let rec = state
        .store
        .get_message(None, id)
        .await?
        .ok_or_else(|| Problem::not_found(&format!("message {id}")))?;
    if state
        .store
        .retry_dead(id, OffsetDateTime::now_utc())
        .await?
    {
        state.engine_wake.notify_one();
        let id_text = id.to_string();
        state.audit.record(
            qaqpa_audit::AuditEvent::lifecycle(
                crate::audit::API,
                qaqpa_audit::LifecycleStage::Requeued,
                &id_text,
                Some(&rec.route),
                Some(&format!("was {}", rec.status.as_str())),
            )
            .by(&caller)
            .transaction(rec.transaction_id.clone()),
        );
        tracing::info!(message = %id, operator = %caller.key_id, "retried from dead letter");
        Ok(Json(Accepted {
            id,
            status: MessageStatus::Queued,
        }))
    } else {
        Err(Problem::conflict(format!(
            "message {id} is {}; only dead_letter or failed messages can be retried",
            rec.status.as_str()
        )))
    }
}

/// Journals the signatures the adapter checked while admitting message `id`: each valid one, and
/// the one a rejection at `/signatures/N` names as not valid.
fn journal_signatures(
    state: &AppState,
    caller: &Caller,
    id: &MessageId,
    admitted: &Result<qaqpa_core::Admitted, qaqpa_core::Rejection>,
) {
    if admitted
        .as_ref()
        .is_ok_and(|a| a.valid_signatures.is_empty())
    {
        return;
    }
    let id = id.to_string();
    let event = |valid: bool, signer: Option<&str>, reason: Option<&str>| {
        qaqpa_audit::AuditEvent::signature(crate::audit::API, valid, signer, reason, Some(&id))
            .by(caller)
            .transaction(id.clone())
    };
    match admitted {
        Ok(a) => {
            for v in &a.valid_signatures {
                state.audit.record(event(true, Some(&v.summary()), None));
            }
        }
        Err(r) if r.field.starts_with("/signatures") => {
            let reason = format!("{}: {}", r.field, r.message);
            state.audit.record(event(false, None, Some(&reason)));
        }
        Err(_) => {}
    }
}
