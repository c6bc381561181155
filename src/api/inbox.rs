//! `/v1/inbox`: documents targets pushed to us, waiting for the EDMS to fetch and acknowledge.
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Json;
use qaqpa_core::MessageId;
use qaqpa_store::InboxItem;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::api::messages::{page_params, query_problem, stream_blob};
use crate::auth::{Caller, Role};
use crate::problem::Problem;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// Cursor from the previous page's `next`.
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// Include acknowledged items (default: only unacknowledged).
    pub all: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InboxPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<InboxItem>,
    #[schema(value_type = Option<String>)]
    pub next: Option<MessageId>,
}

/// Items pushed by targets, oldest first.
#[utoipa::path(get, operation_id = "inbox_list", path = "/v1/inbox", tag = "inbox", params(InboxQuery),
    responses((status = 200, body = InboxPage), (status = 400, body = Problem)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<InboxQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<InboxPage>, Problem> {
    let Query(q) = query.map_err(query_problem)?;
    let (after, limit) = page_params(q.after.as_deref(), q.limit)?;
    let page = state
        .store
        .list_inbox(caller.scope(), after, !q.all.unwrap_or(false), limit)
        .await?;
    Ok(Json(InboxPage {
        items: page.items,
        next: page.next,
    }))
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<InboxItem, Problem> {
    let parsed: MessageId = id
        .parse()
        .map_err(|_| Problem::not_found(&format!("inbox item '{id}'")))?;
    state
        .store
        .get_inbox(caller.scope(), parsed)
        .await?
        .ok_or_else(|| Problem::not_found(&format!("inbox item {id}")))
}

/// One inbox item.
#[utoipa::path(get, operation_id = "inbox_get_one", path = "/v1/inbox/{id}", tag = "inbox", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)),
    security(("api_key" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<InboxItem>, Problem> {
    let item = load(&state, &caller, &id).await?;
    crate::audit::object_read(
        &state,
        &caller,
        qaqpa_audit::ObjectKind::InboxItem,
        &item.id.to_string(),
        Some(&item.transaction_id),
    );
    Ok(Json(item))
}

/// One attachment of an inbox item.
#[utoipa::path(get, operation_id = "inbox_attachment", path = "/v1/inbox/{id}/attachments/{n}", tag = "inbox",
    params(("id" = String, Path), ("n" = usize, Path)),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"), (status = 404, body = Problem)),
    security(("api_key" = [])))]
pub async fn attachment(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, n)): Path<(String, usize)>,
) -> Result<Response, Problem> {
    let item = load(&state, &caller, &id).await?;
    let meta = item
        .attachments
        .get(n)
        .ok_or_else(|| Problem::not_found(&format!("attachment {n} of inbox item {id}")))?;
    crate::audit::object_read(
        &state,
        &caller,
        qaqpa_audit::ObjectKind::Attachment,
        &format!("inbox/{id}/attachments/{n}"),
        Some(&item.transaction_id),
    );
    stream_blob(&state, meta).await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Acked {
    pub id: String,
    pub acked: bool,
}

/// Acknowledge an inbox item (the EDMS has taken it).
#[utoipa::path(post, operation_id = "inbox_ack", path = "/v1/inbox/{id}/ack", tag = "inbox", params(("id" = String, Path)),
    responses((status = 200, body = Acked), (status = 404, body = Problem)),
    security(("api_key" = [])))]
pub async fn ack(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Acked>, Problem> {
    caller.require(&[Role::Client], "acknowledge inbox items")?;
    let item = load(&state, &caller, &id).await?;
    if state
        .store
        .ack_inbox(caller.scope(), item.id, OffsetDateTime::now_utc())
        .await?
    {
        Ok(Json(Acked { id, acked: true }))
    } else {
        Err(Problem::not_found(&format!("inbox item {id}")))
    }
}

/// The EDMS's answer about an inbox item, sent back to the target that pushed it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// The answer's kind; routes.toml decides the adapter (e.g. `esedo.receipt`).
    pub kind: String,
    /// The answer's card; `inReplyTo` is filled with the item's external id when absent
    /// (for ЕСЭДО: `{"state": "registered", "regNo": "…"}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
    /// Where status changes of the answer are POSTed.
    #[serde(default)]
    pub callback_url: Option<String>,
}

/// Answer an inbox item (registered, refused, sent for execution…): the answer becomes an
/// outgoing message to the item's sender, delivered and retried like any other.
#[utoipa::path(post, operation_id = "inbox_reply", path = "/v1/inbox/{id}/reply", tag = "inbox",
    params(("id" = String, Path)), request_body = Reply,
    responses((status = 202, description = "Accepted for delivery", body = crate::api::messages::Accepted),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
pub async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    caller.require(&[Role::Client], "answer inbox items")?;
    let item = load(&state, &caller, &id).await?;
    crate::api::body::check_depth(&body, state.cfg.api.max_json_depth)?;
    let reply: Reply = crate::api::body::parse_json(&body)?;
    let mut document = match reply.document {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => serde_json::Map::new(),
        _ => return Err(Problem::invalid("/document", "must be a JSON object")),
    };
    document
        .entry("inReplyTo")
        .or_insert_with(|| serde_json::Value::String(item.external_id.clone()));
    let submit = crate::api::messages::SubmitMessage {
        kind: reply.kind,
        to: item.from.clone(),
        document: serde_json::Value::Object(document),
        attachments: Vec::new(),
        signatures: Vec::new(),
        callback_url: reply.callback_url,
    };
    let idempotency_key = crate::api::messages::idempotency_key(&headers)?;
    let request_hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    crate::api::messages::accept(
        &state,
        &caller,
        submit,
        Vec::new(),
        request_hash,
        idempotency_key,
    )
    .await
}
