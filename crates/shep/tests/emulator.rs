//! Client ↔ emulator over real loopback sockets: each injected fault reaches the client as the
//! right classification, and the emulated services, counters and async queues behave.

use std::time::Duration;

use qaqpa_shep::classify::RetryReason;
use qaqpa_shep::emulator::{
    EchoService, EmulatorError, InjectedFault, ServiceAnswer, ShepEmulator, When,
};
use qaqpa_shep::*;

const ECHO: &str = "ECHO";

async fn emulator() -> ShepEmulator {
    ShepEmulator::builder()
        .service(ECHO, EchoService)
        .service("GbdulInfoByBin_v2", |req: &SyncRequest| {
            if req
                .data
                .as_ref()
                .is_some_and(|d| d.as_text().contains("000000000000"))
            {
                ServiceAnswer::BusinessError("Организация с БИН 000000000000 не найдена".into())
            } else {
                ServiceAnswer::Data(Some(MessageData::text(
                    "<Response><Status>OK</Status></Response>",
                )))
            }
        })
        .start()
        .await
        .expect("emulator starts")
}

fn client(emu: &ShepEmulator) -> SyncChannelClient {
    SyncChannelClient::new(ClientConfig::new(emu.sync_url()).with_timeout(Duration::from_secs(5)))
        .expect("client")
}

fn request(service: &str) -> SyncRequest {
    SyncRequest::new(
        service,
        SenderInfo::new("qaqpa", Some("pw".into())),
        Some(MessageData::text("<ping>1</ping>")),
    )
    .with_property(Property::new("lang", "ru").expect("fits"))
}

#[tokio::test]
async fn echo_service_answers_scss001_with_the_request_data() {
    let emu = emulator().await;
    let req = request(ECHO).with_route_id("R_TEST");
    let response = client(&emu).send(&req).await.expect("success");
    assert_eq!(response.info.status.code, "SCSS001");
    assert_eq!(response.data, req.data);
    assert_eq!(
        response.info.correlation_id.as_deref(),
        Some(req.info.message_id.as_str())
    );
    assert!(
        response.info.session_id.is_some(),
        "the emulated ШЭП assigns a session"
    );
    let received = emu.received(ECHO);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].info.route_id.as_deref(), Some("R_TEST"));
    assert_eq!(received[0].info.properties, req.info.properties);
    assert_eq!(received[0].info.sender.password.as_deref(), Some("pw"));
}

#[tokio::test]
async fn emulated_service_business_refusal_is_permanent_with_its_message() {
    let emu = emulator().await;
    let req = SyncRequest::new(
        "GbdulInfoByBin_v2",
        SenderInfo::new("qaqpa", None),
        Some(MessageData::text("<BIN>000000000000</BIN>")),
    );
    let err = client(&emu).send(&req).await.expect_err("refused");
    assert_eq!(
        err,
        ShepError::Permanent {
            code: "SCSE002".into(),
            message: "Организация с БИН 000000000000 не найдена".into()
        }
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn scse002_is_permanent_with_the_targets_message() {
    let emu = emulator().await;
    emu.inject(
        ECHO,
        InjectedFault::Scse002("Неверный формат документа".into()),
        When::Always,
    )
    .expect("inject");
    let outcome = client(&emu).exchange(&request(ECHO)).await;
    assert_eq!(
        outcome,
        ShepOutcome::Permanent {
            code: "SCSE002".into(),
            message: "Неверный формат документа".into()
        }
    );
}

#[tokio::test]
async fn scse003_is_retried() {
    let emu = emulator().await;
    emu.inject(
        ECHO,
        InjectedFault::Scse003("NullPointerException".into()),
        When::Always,
    )
    .expect("inject");
    let err = client(&emu).send(&request(ECHO)).await.expect_err("fails");
    assert!(err.is_retryable());
    assert!(matches!(
        err,
        ShepError::Retry { reason: RetryReason::UnhandledException { ref code, ref message }, .. }
            if code == "SCSE003" && message == "NullPointerException"
    ));
}

#[tokio::test]
async fn soap_client_fault_is_permanent_and_server_fault_is_retried() {
    let emu = emulator().await;
    emu.inject(
        ECHO,
        InjectedFault::SoapFault {
            code: FaultCode::Client,
            error_info: Some(ErrorInfo::new(
                "ACCESS_DENIED",
                "sender qaqpa may not call ECHO",
            )),
        },
        When::Nth(1),
    )
    .expect("inject");
    emu.inject(
        ECHO,
        InjectedFault::SoapFault {
            code: FaultCode::Server,
            error_info: Some(ErrorInfo::new("BUS_DOWN", "queue manager unavailable")),
        },
        When::Nth(2),
    )
    .expect("inject");
    let c = client(&emu);
    assert_eq!(
        c.exchange(&request(ECHO)).await,
        ShepOutcome::Permanent {
            code: "ACCESS_DENIED".into(),
            message: "sender qaqpa may not call ECHO".into()
        }
    );
    assert!(matches!(
        c.exchange(&request(ECHO)).await,
        ShepOutcome::Retry { reason: RetryReason::ServerFault { ref code, .. }, .. } if code == "BUS_DOWN"
    ));
    assert!(matches!(
        c.exchange(&request(ECHO)).await,
        ShepOutcome::Success { .. }
    ));
}

#[tokio::test]
async fn http_5xx_is_retried_and_4xx_is_permanent() {
    let emu = emulator().await;
    emu.inject(ECHO, InjectedFault::Http(503), When::Nth(1))
        .expect("inject");
    emu.inject(ECHO, InjectedFault::Http(404), When::Nth(2))
        .expect("inject");
    let c = client(&emu);
    assert!(matches!(
        c.exchange(&request(ECHO)).await,
        ShepOutcome::Retry {
            reason: RetryReason::HttpStatus(503),
            ..
        }
    ));
    assert!(matches!(
        c.exchange(&request(ECHO)).await,
        ShepOutcome::Permanent { ref code, .. } if code == "HTTP_404"
    ));
}

#[tokio::test]
async fn slow_answer_times_out_and_is_retried() {
    let emu = emulator().await;
    emu.inject(
        ECHO,
        InjectedFault::Slow(Duration::from_secs(3)),
        When::Nth(1),
    )
    .expect("inject");
    let c = SyncChannelClient::new(
        ClientConfig::new(emu.sync_url()).with_timeout(Duration::from_millis(300)),
    )
    .expect("client");
    let started = std::time::Instant::now();
    let err = c.send(&request(ECHO)).await.expect_err("times out");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout cut the wait"
    );
    assert_eq!(
        err,
        ShepError::Retry {
            reason: RetryReason::Timeout,
            after: None
        }
    );
    assert!(
        !err.nothing_sent(),
        "the request may have reached the target"
    );
    // A slow answer within the timeout is still an answer.
    emu.inject(
        ECHO,
        InjectedFault::Slow(Duration::from_millis(50)),
        When::Nth(2),
    )
    .expect("inject");
    assert!(c.send(&request(ECHO)).await.is_ok());
}

#[tokio::test]
async fn dropped_connection_is_retried_as_a_transport_failure() {
    let emu = emulator().await;
    emu.inject(ECHO, InjectedFault::DropConnection, When::Next(1))
        .expect("inject");
    let c = client(&emu);
    let err = c.send(&request(ECHO)).await.expect_err("dropped");
    assert!(
        matches!(
            err,
            ShepError::Retry {
                reason: RetryReason::Transport(_),
                ..
            }
        ),
        "got {err:?}"
    );
    assert!(!err.nothing_sent());
    // Next(1) is used up: the following request succeeds.
    assert!(c.send(&request(ECHO)).await.is_ok());
    assert_eq!(emu.request_count(ECHO), 2);
}

#[tokio::test]
async fn refused_connection_is_retried_and_nothing_was_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let c = SyncChannelClient::new(ClientConfig::new(format!(
        "http://{addr}/bip-sync-wss-gost/"
    )))
    .expect("client");
    let err = c.send(&request(ECHO)).await.expect_err("refused");
    assert!(
        matches!(
            err,
            ShepError::Retry {
                reason: RetryReason::Connect(_),
                ..
            }
        ),
        "got {err:?}"
    );
    assert!(err.nothing_sent());
}

#[tokio::test]
async fn unknown_service_is_permanent() {
    let emu = emulator().await;
    let outcome = client(&emu).exchange(&request("NO_SUCH_SERVICE")).await;
    assert!(
        matches!(outcome, ShepOutcome::Permanent { ref code, .. } if code == "SERVICE_NOT_FOUND")
    );
}

#[tokio::test]
async fn faults_follow_the_request_count_per_service() {
    let emu = emulator().await;
    emu.inject(ECHO, InjectedFault::Scse003("once".into()), When::Nth(2))
        .expect("inject");
    emu.inject("*", InjectedFault::Http(502), When::Next(1))
        .expect("inject");
    let c = client(&emu);
    // First ECHO request: no ECHO rule for #1, the "*" rule takes it.
    assert!(matches!(
        c.exchange(&request(ECHO)).await,
        ShepOutcome::Retry {
            reason: RetryReason::HttpStatus(502),
            ..
        }
    ));
    // Second: the ECHO rule for #2.
    assert!(matches!(
        c.exchange(&request(ECHO)).await,
        ShepOutcome::Retry {
            reason: RetryReason::UnhandledException { .. },
            ..
        }
    ));
    // Third: nothing left.
    assert!(matches!(
        c.exchange(&request(ECHO)).await,
        ShepOutcome::Success { .. }
    ));
    // Another service was never faulted ("*" Next(1) was used up).
    assert!(matches!(
        c.exchange(&request("GbdulInfoByBin_v2")).await,
        ShepOutcome::Success { .. }
    ));
    assert_eq!(emu.request_count(ECHO), 3);
    assert_eq!(emu.request_count("GbdulInfoByBin_v2"), 1);
    emu.inject(ECHO, InjectedFault::Http(500), When::Always)
        .expect("inject");
    assert!(c.send(&request(ECHO)).await.is_err());
    emu.clear_faults();
    assert!(c.send(&request(ECHO)).await.is_ok());
}

#[tokio::test]
async fn bad_response_signature_needs_a_signing_emulator() {
    let emu = emulator().await;
    assert_eq!(
        emu.inject(ECHO, InjectedFault::BadResponseSignature, When::Always),
        Err(EmulatorError::NoSigner)
    );
}

#[tokio::test]
async fn schema_violation_gets_a_client_fault_and_is_permanent() {
    let emu = emulator().await;
    let good = request(ECHO).to_envelope().expect("builds");
    let broken = good.replacen("</sender>", "</sender><colour>red</colour>", 1);
    let http = reqwest::Client::new();
    let response = http
        .post(emu.sync_url())
        .header("content-type", "text/xml; charset=utf-8")
        .body(broken)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    assert_eq!(status, 500);
    let outcome = classify_reply(status, None, &body, &XmlLimits::default());
    match outcome {
        ShepOutcome::Permanent { code, message } => {
            assert_eq!(code, "INVALID_ENVELOPE");
            assert!(
                message.contains("colour"),
                "the fault names the offending element: {message}"
            );
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    assert_eq!(
        emu.request_count(ECHO),
        0,
        "an invalid request reaches no service"
    );
}

#[tokio::test]
async fn async_channel_send_fetch_status_and_notify() {
    let emu = emulator().await;
    let c = AsyncChannelClient::new(ClientConfig::new(emu.async_url())).expect("client");
    let message = AsyncMessage::request(
        "ESEDO_ASYNC",
        SenderInfo::new("qaqpa", None),
        MessageData::text("<doc>1</doc>"),
    );
    let sent = c.send_message(&message).await.expect("sent");
    assert!(!sent.message_id.is_empty() && !sent.correlation_id.is_empty());

    let status = c
        .get_message_status(&GetMessageStatusRequest::new(
            sent.message_id.clone(),
            SenderInfo::new("qaqpa", None),
        ))
        .await
        .expect("status");
    assert_eq!(status.message_state, MessageState::OnDelivery);

    let got = c
        .get_messages(&GetMessagesRequest::new(
            "ESEDO_ASYNC",
            SenderInfo::new("peer", None),
            Some(5),
        ))
        .await
        .expect("messages");
    assert_eq!(got.messages.len(), 1);
    assert_eq!(got.messages[0].data, message.data);
    assert_eq!(
        got.messages[0].info.message_id.as_deref(),
        Some(sent.message_id.as_str())
    );

    let status = c
        .get_message_status(&GetMessageStatusRequest::new(
            sent.message_id.clone(),
            SenderInfo::new("qaqpa", None),
        ))
        .await
        .expect("status");
    assert_eq!(status.message_state, MessageState::Delivered);

    let ack = c
        .send_delivery_notification(&SendDeliveryNotificationRequest::new(
            sent.message_id.clone(),
            "ESEDO_ASYNC",
            ReceiveStatus::Accepted,
            ResendMessage::NotResend,
            None,
            None,
        ))
        .await
        .expect("notified");
    assert!(!ack.notification_id.is_empty());
    let notes = emu.delivery_notifications();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].notification.message_id, sent.message_id);

    // An unknown message id is a client fault: permanent.
    let err = c
        .get_message_status(&GetMessageStatusRequest::new(
            "nope",
            SenderInfo::new("qaqpa", None),
        ))
        .await
        .expect_err("unknown");
    assert!(matches!(err, ShepError::Permanent { ref code, .. } if code == "MESSAGE_NOT_FOUND"));
}

#[tokio::test]
async fn async_faults_classify_like_sync_ones() {
    let emu = emulator().await;
    emu.inject(
        "ESEDO_ASYNC",
        InjectedFault::Scse002("bad".into()),
        When::Nth(1),
    )
    .expect("inject");
    emu.inject(
        "ESEDO_ASYNC",
        InjectedFault::Scse003("boom".into()),
        When::Nth(2),
    )
    .expect("inject");
    emu.inject("ESEDO_ASYNC", InjectedFault::Http(503), When::Nth(3))
        .expect("inject");
    let c = AsyncChannelClient::new(ClientConfig::new(emu.async_url())).expect("client");
    let m = AsyncMessage::request(
        "ESEDO_ASYNC",
        SenderInfo::new("qaqpa", None),
        MessageData::text("x"),
    );
    assert!(
        matches!(c.send_message(&m).await, Err(ShepError::Permanent { ref code, .. }) if code == "SCSE002")
    );
    assert!(matches!(
        c.send_message(&m).await,
        Err(ShepError::Retry {
            reason: RetryReason::UnhandledException { .. },
            ..
        })
    ));
    assert!(matches!(
        c.send_message(&m).await,
        Err(ShepError::Retry {
            reason: RetryReason::HttpStatus(503),
            ..
        })
    ));
    assert!(c.send_message(&m).await.is_ok());
}

#[tokio::test]
async fn messages_enqueued_by_a_test_are_fetched_once() {
    let emu = emulator().await;
    let mut m = AsyncMessage::request(
        "INBOX",
        SenderInfo::new("peer", None),
        MessageData::text("<n/>"),
    );
    m.info.message_id = Some("peer-1".into());
    emu.enqueue("INBOX", m.clone());
    let c = AsyncChannelClient::new(ClientConfig::new(emu.async_url())).expect("client");
    let got = c
        .get_messages(&GetMessagesRequest::new(
            "INBOX",
            SenderInfo::new("qaqpa", None),
            None,
        ))
        .await
        .expect("fetched");
    assert_eq!(got.messages, vec![m]);
    let again = c
        .get_messages(&GetMessagesRequest::new(
            "INBOX",
            SenderInfo::new("qaqpa", None),
            None,
        ))
        .await
        .expect("fetched");
    assert!(
        again.messages.is_empty(),
        "a fetched message is not delivered twice"
    );
}
