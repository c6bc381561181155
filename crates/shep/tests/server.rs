//! Our own endpoints over loopback: ISyncChannel answers SCSS001 / SCSE002 / SCSE003 / faults,
//! enforces the body limit, and IAsyncChannelClient dispatches sendMessage and
//! changeMassageStatusNotification (wire spelling) to the gateway's handler.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use qaqpa_shep::async_channel::{ChangeStatusNotifyRequest, ChangeStatusNotifyResponse};
use qaqpa_shep::classify::RetryReason;
use qaqpa_shep::server::{
    async_client_router, sync_channel_router, AsyncChannelClientHandler, EndpointConfig,
    HandlerError, SignaturePolicy, SyncChannelHandler,
};
use qaqpa_shep::*;
use time::OffsetDateTime;

#[derive(Default)]
struct Inbox {
    sync: Mutex<Vec<SyncRequest>>,
    async_messages: Mutex<Vec<AsyncMessage>>,
    notifications: Mutex<Vec<ChangeStatusNotifyRequest>>,
}

#[async_trait]
impl SyncChannelHandler for Inbox {
    async fn handle(
        &self,
        request: SyncRequest,
        signer: Option<VerifiedSigner>,
    ) -> Result<SyncResponse, HandlerError> {
        assert!(
            signer.is_none(),
            "no verification configured, no signer claimed"
        );
        let text = request
            .data
            .as_ref()
            .map(|d| d.as_text().to_owned())
            .unwrap_or_default();
        self.sync.lock().expect("lock").push(request);
        if text.contains("bad") {
            return Err(HandlerError::Business(
                "document has no registration number".into(),
            ));
        }
        if text.contains("crash") {
            return Err(HandlerError::Internal("database unavailable".into()));
        }
        Ok(SyncResponse::success(Some(MessageData::text("accepted"))))
    }
}

#[async_trait]
impl AsyncChannelClientHandler for Inbox {
    async fn send_message(
        &self,
        message: AsyncMessage,
        _signer: Option<VerifiedSigner>,
    ) -> Result<AsyncSendMessageResponse, HandlerError> {
        if message.data.as_text().contains("bad") {
            return Err(HandlerError::Business("unknown document kind".into()));
        }
        let response = AsyncSendMessageResponse {
            message_id: message.info.message_id.clone().unwrap_or_default(),
            correlation_id: message.info.correlation_id.clone().unwrap_or_default(),
            response_date: OffsetDateTime::now_utc(),
            session_id: None,
        };
        self.async_messages.lock().expect("lock").push(message);
        Ok(response)
    }

    async fn change_status(
        &self,
        request: ChangeStatusNotifyRequest,
        _signer: Option<VerifiedSigner>,
    ) -> Result<ChangeStatusNotifyResponse, HandlerError> {
        self.notifications.lock().expect("lock").push(request);
        Ok(ChangeStatusNotifyResponse {
            response_date: OffsetDateTime::now_utc(),
            session_id: SessionId::random(),
        })
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}/")
}

fn push(data: &str) -> SyncRequest {
    SyncRequest::new(
        "ESEDO_UNIVERSAL_SERVICE",
        SenderInfo::new("esedo", None),
        Some(MessageData::text(data)),
    )
}

#[tokio::test]
async fn sync_endpoint_answers_scss001_and_hands_the_request_over() {
    let inbox = Arc::new(Inbox::default());
    let url = serve(sync_channel_router(
        inbox.clone(),
        EndpointConfig::new(SignaturePolicy::NotChecked),
    ))
    .await;
    let client = SyncChannelClient::new(ClientConfig::new(url)).expect("client");
    let request = push("<doc>1</doc>").with_property(Property::new("activityId", "7").expect("p"));
    let response = client.send(&request).await.expect("accepted");
    assert_eq!(response.info.status.code, "SCSS001");
    assert_eq!(
        response.info.correlation_id.as_deref(),
        Some(request.info.message_id.as_str())
    );
    let got = inbox.sync.lock().expect("lock").clone();
    assert_eq!(got, vec![request]);
}

#[tokio::test]
async fn sync_endpoint_answers_scse002_for_business_errors_and_scse003_for_ours() {
    let inbox = Arc::new(Inbox::default());
    let url = serve(sync_channel_router(
        inbox.clone(),
        EndpointConfig::new(SignaturePolicy::NotChecked),
    ))
    .await;
    let client = SyncChannelClient::new(ClientConfig::new(url)).expect("client");
    assert_eq!(
        client.exchange(&push("bad")).await,
        ShepOutcome::Permanent {
            code: "SCSE002".into(),
            message: "document has no registration number".into()
        }
    );
    assert!(matches!(
        client.exchange(&push("crash")).await,
        ShepOutcome::Retry { reason: RetryReason::UnhandledException { ref message, .. }, .. } if message == "database unavailable"
    ));
}

#[tokio::test]
async fn sync_endpoint_refuses_oversized_and_invalid_envelopes_with_faults() {
    let inbox = Arc::new(Inbox::default());
    let mut config = EndpointConfig::new(SignaturePolicy::NotChecked);
    config.max_body_bytes = 2048;
    let url = serve(sync_channel_router(inbox.clone(), config)).await;
    let client = SyncChannelClient::new(ClientConfig::new(url.clone())).expect("client");
    let outcome = client.exchange(&push(&"x".repeat(4096))).await;
    assert!(
        matches!(outcome, ShepOutcome::Permanent { ref code, .. } if code == "BODY_TOO_LARGE"),
        "{outcome:?}"
    );

    let http = reqwest::Client::new();
    let r = http
        .post(&url)
        .body("<not-soap/>")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status().as_u16(), 500);
    let body = r.text().await.expect("body");
    let outcome = classify_reply(500, None, &body, &XmlLimits::default());
    assert!(
        matches!(outcome, ShepOutcome::Permanent { ref code, .. } if code == "INVALID_ENVELOPE"),
        "{outcome:?}"
    );
    assert!(
        inbox.sync.lock().expect("lock").is_empty(),
        "nothing invalid reached the handler"
    );
}

#[tokio::test]
async fn async_client_endpoint_takes_send_message_and_status_notifications() {
    let inbox = Arc::new(Inbox::default());
    let url = serve(async_client_router(
        inbox.clone(),
        EndpointConfig::new(SignaturePolicy::NotChecked),
    ))
    .await;
    let client = AsyncChannelClient::new(ClientConfig::new(url)).expect("client");

    let mut message = AsyncMessage::follow_up(
        MessageType::Response,
        "chain-9",
        "ESEDO_ASYNC",
        SenderInfo::new("shep", None),
        MessageData::text("<receipt/>"),
    );
    message.info.message_id = Some("m-1".into());
    let r = client.send_message(&message).await.expect("accepted");
    assert_eq!(
        (r.message_id.as_str(), r.correlation_id.as_str()),
        ("m-1", "chain-9")
    );
    assert_eq!(
        inbox.async_messages.lock().expect("lock").clone(),
        vec![message.clone()]
    );

    let mut bad = message.clone();
    bad.data = MessageData::text("bad");
    let e = client.send_message(&bad).await.expect_err("refused");
    assert_eq!(
        e,
        ShepError::Permanent {
            code: "SCSE002".into(),
            message: "unknown document kind".into()
        }
    );

    let note = ChangeStatusNotifyRequest {
        notification: ChangeStatusNotification {
            notification_id: "n-1".into(),
            message_id: "m-0".into(),
            notification_date: OffsetDateTime::now_utc(),
            message_state: MessageState::Delivered,
            status: MessageStatusInfo {
                status_code: "DELIVERED".into(),
                status_message: "delivered".into(),
                status_date: OffsetDateTime::now_utc(),
            },
            error: None,
        },
        request_date: OffsetDateTime::now_utc(),
        session_id: None,
    };
    client
        .change_massage_status_notification(&note)
        .await
        .expect("taken");
    let notes = inbox.notifications.lock().expect("lock").clone();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].notification.message_state, MessageState::Delivered);
}
