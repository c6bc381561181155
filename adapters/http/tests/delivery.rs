//! The HTTP adapter against its emulator over real loopback sockets: every answer class, time
//! limits, broken connections, attachments on the wire, and duplicate accounting.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use qaqpa_adapter_http::wire::sha256_hex;
use qaqpa_adapter_http::{Emulator, EmulatorHandle, EmulatorState, Faults, HttpAdapter};
use qaqpa_core::adapter::toml_value::Table;
use qaqpa_core::{
    Adapter, AttachmentMeta, AttachmentSource, ClientId, Cx, Delivered, ExchangeMeter, Failure,
    MessageId, Outgoing,
};
use serde_json::json;

const LOCAL: &str = "127.0.0.1:0";

struct Memory(Vec<Bytes>);

#[async_trait]
impl AttachmentSource for Memory {
    async fn read(&self, index: usize) -> Result<Bytes, Failure> {
        self.0.get(index).cloned().ok_or_else(|| {
            Failure::permanent("attachment_missing", format!("no attachment {index}"))
        })
    }
}

fn local() -> SocketAddr {
    LOCAL.parse().expect("valid address")
}

async fn emulator() -> EmulatorHandle {
    Emulator::start(local()).await.expect("emulator starts")
}

fn settings(url: &str, extra: serde_json::Value) -> Table {
    let mut table = Table::new();
    table.insert("url".into(), json!(url));
    if let serde_json::Value::Object(m) = extra {
        table.extend(m);
    }
    table
}

fn message(attachments: &[&[u8]]) -> Outgoing {
    Outgoing {
        id: MessageId::new(),
        client: ClientId("edms-1".into()),
        kind: "http.post".into(),
        to: "sandbox-echo".into(),
        document: json!({"docNo": "01-12/345", "title": "Хат"}),
        attachments: attachments
            .iter()
            .enumerate()
            .map(|(i, bytes)| AttachmentMeta {
                name: format!("file-{i}.bin"),
                content_type: "application/octet-stream".into(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
        signatures: vec![vec![0x30, 0x82, 0x01, 0x00, 0xff]],
        created_at: time::OffsetDateTime::now_utc(),
        attempt: 1,
        transaction_id: "tx-0001".into(),
    }
}

async fn deliver_with(
    adapter: &HttpAdapter,
    msg: &Outgoing,
    table: &Table,
    files: &[&[u8]],
    within: Duration,
) -> Result<Delivered, Failure> {
    deliver_measured(adapter, msg, table, files, within).await.0
}

/// One attempt, and what it reported to the meter: `(sent, received)`.
async fn deliver_measured(
    adapter: &HttpAdapter,
    msg: &Outgoing,
    table: &Table,
    files: &[&[u8]],
    within: Duration,
) -> (Result<Delivered, Failure>, (Option<u64>, Option<u64>)) {
    let source = Memory(files.iter().map(|f| Bytes::copy_from_slice(f)).collect());
    let meter = ExchangeMeter::new();
    let cx = Cx {
        deadline: Instant::now() + within,
        settings: table,
        attachments: &source,
        transaction_id: &msg.transaction_id,
        meter: &meter,
    };
    let result = adapter.deliver(msg, &cx).await;
    (result, meter.sizes())
}

/// Delivers `msg` to the emulator once and returns the outcome, what the meter got, and the
/// bytes of request body the emulator received for it (counted on its side).
async fn deliver_counted(
    emu: &EmulatorHandle,
    msg: &Outgoing,
) -> (Result<Delivered, Failure>, (Option<u64>, Option<u64>), u64) {
    let before = emu.received().request_bytes;
    let adapter = HttpAdapter::new().expect("client builds");
    let (result, sizes) = deliver_measured(
        &adapter,
        msg,
        &settings(&emu.url(), json!({})),
        &[],
        Duration::from_secs(10),
    )
    .await;
    (result, sizes, emu.received().request_bytes - before)
}

async fn deliver(emu: &EmulatorHandle, msg: &Outgoing) -> Result<Delivered, Failure> {
    let adapter = HttpAdapter::new().expect("client builds");
    deliver_with(
        &adapter,
        msg,
        &settings(&emu.url(), json!({})),
        &[],
        Duration::from_secs(10),
    )
    .await
}

fn fault(status: u16) -> Faults {
    Faults {
        status: Some(status),
        count: Some(1),
        ..Faults::default()
    }
}

#[tokio::test]
async fn delivered_message_carries_ids_document_signatures_and_attachments() {
    let emu = emulator().await;
    let adapter = HttpAdapter::new().expect("client builds");
    let pdf: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let files: [&[u8]; 2] = [&pdf, b""];
    let msg = message(&files);
    let table = settings(
        &emu.url(),
        json!({"headers": {"Authorization": "Bearer t0k3n"}}),
    );
    let delivered = deliver_with(&adapter, &msg, &table, &files, Duration::from_secs(10))
        .await
        .expect("delivered");
    assert_eq!(delivered.target_ref.as_deref(), Some("emu-1"));

    let received = emu.received();
    let id = msg.id.to_string();
    let got = received
        .messages
        .get(&id)
        .expect("recorded under the message id");
    assert_eq!(got.count, 1);
    let body = got.body.as_ref().expect("bodies kept by default");
    assert_eq!(got.transaction_id.as_deref(), Some("tx-0001"));
    assert_eq!(body.document, msg.document);
    assert_eq!(body.kind, "http.post");
    assert_eq!(body.client, "edms-1");
    assert_eq!(body.to, "sandbox-echo");
    assert_eq!(body.attempt, 1);
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(body.attachments.len(), 2);
    for (sent, wire) in files.iter().zip(&body.attachments) {
        let bytes = b64.decode(&wire.content).expect("base64");
        assert_eq!(bytes, *sent);
        assert_eq!(wire.sha256, sha256_hex(sent));
        assert_eq!(wire.size, sent.len() as u64);
    }
    assert_eq!(
        b64.decode(&body.signatures[0]).expect("base64"),
        msg.signatures[0]
    );
    let created = time::OffsetDateTime::parse(
        &body.created_at,
        &time::format_description::well_known::Rfc3339,
    );
    assert!(
        created.is_ok(),
        "created_at is RFC 3339: {}",
        body.created_at
    );
}

#[tokio::test]
async fn attachment_bytes_that_do_not_match_their_sha256_are_refused_for_good() {
    let emu = emulator().await;
    let adapter = HttpAdapter::new().expect("client builds");
    let msg = message(&[b"the real letter"]);
    let tampered: [&[u8]; 1] = [b"another letter!"];
    let failure = deliver_with(
        &adapter,
        &msg,
        &settings(&emu.url(), json!({})),
        &tampered,
        Duration::from_secs(10),
    )
    .await
    .expect_err("refused");
    match failure {
        Failure::Permanent { code, reason } => {
            assert_eq!(code, "http_422");
            assert!(reason.contains("does not match its sha256"), "{reason}");
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    assert_eq!(emu.received().messages.len(), 0);
}

#[tokio::test]
async fn each_status_class_maps_to_the_right_outcome() {
    let emu = emulator().await;
    for status in [408u16, 429, 500, 502, 503, 504] {
        emu.set_faults(fault(status)).expect("valid faults");
        let failure = deliver(&emu, &message(&[])).await.expect_err("fails");
        assert!(
            matches!(&failure, Failure::Retry { reason, .. } if reason.starts_with(&format!("HTTP {status}"))),
            "{status}: {failure:?}"
        );
    }
    for status in [400u16, 401, 403, 404, 409, 413, 422] {
        emu.set_faults(Faults {
            body: Some(format!("rejected with {status}: field docNo")),
            ..fault(status)
        })
        .expect("valid faults");
        let failure = deliver(&emu, &message(&[])).await.expect_err("fails");
        assert_eq!(
            failure,
            Failure::Permanent {
                code: format!("http_{status}"),
                reason: format!("rejected with {status}: field docNo"),
            }
        );
    }
    emu.set_faults(fault(302)).expect("valid faults");
    let failure = deliver(&emu, &message(&[]))
        .await
        .expect_err("not followed");
    assert!(
        matches!(&failure, Failure::Permanent { code, .. } if code == "http_302"),
        "{failure:?}"
    );

    emu.set_faults(Faults {
        body: Some(r#"{"id": "REG-2026-77"}"#.into()),
        ..fault(201)
    })
    .expect("valid faults");
    let delivered = deliver(&emu, &message(&[]))
        .await
        .expect("2xx is delivered");
    assert_eq!(delivered.target_ref.as_deref(), Some("REG-2026-77"));

    // Faults used up: the next message is accepted.
    assert!(deliver(&emu, &message(&[])).await.is_ok());
    assert_eq!(emu.received().requests, 16);
}

#[tokio::test]
async fn retry_after_from_the_target_is_passed_on() {
    let emu = emulator().await;
    emu.set_faults(Faults {
        retry_after: Some("7".into()),
        ..fault(429)
    })
    .expect("valid faults");
    let failure = deliver(&emu, &message(&[])).await.expect_err("throttled");
    assert!(
        matches!(failure, Failure::Retry { after: Some(d), .. } if d == Duration::from_secs(7)),
        "{failure:?}"
    );
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
    emu.set_faults(Faults {
        retry_after: Some(date),
        ..fault(503)
    })
    .expect("valid faults");
    let failure = deliver(&emu, &message(&[])).await.expect_err("unavailable");
    assert!(
        matches!(failure, Failure::Retry { after: Some(d), .. } if d > Duration::from_secs(100) && d <= Duration::from_secs(120)),
        "{failure:?}"
    );
}

#[tokio::test]
async fn slow_target_times_out_as_retry_within_the_settings_timeout() {
    let emu = emulator().await;
    emu.set_faults(Faults {
        delay_ms: 30_000,
        ..Faults::default()
    })
    .expect("valid faults");
    let adapter = HttpAdapter::new().expect("client builds");
    let msg = message(&[]);
    let started = Instant::now();
    let failure = deliver_with(
        &adapter,
        &msg,
        &settings(&emu.url(), json!({"timeout_ms": 200})),
        &[],
        Duration::from_secs(10),
    )
    .await
    .expect_err("timed out");
    let took = started.elapsed();
    assert!(
        matches!(&failure, Failure::Retry { reason, after: None } if reason.contains("no answer within 200 ms")),
        "{failure:?}"
    );
    assert!(took < Duration::from_secs(5), "gave up after {took:?}");
}

#[tokio::test]
async fn attempt_deadline_caps_the_timeout() {
    let emu = emulator().await;
    emu.set_faults(Faults {
        delay_ms: 30_000,
        ..Faults::default()
    })
    .expect("valid faults");
    let adapter = HttpAdapter::new().expect("client builds");
    let msg = message(&[]);
    let started = Instant::now();
    let failure = deliver_with(
        &adapter,
        &msg,
        &settings(&emu.url(), json!({"timeout_ms": 30_000})),
        &[],
        Duration::from_millis(300),
    )
    .await
    .expect_err("deadline");
    assert!(failure.is_retry(), "{failure:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let past = deliver_with(
        &adapter,
        &msg,
        &settings(&emu.url(), json!({})),
        &[],
        Duration::ZERO,
    )
    .await
    .expect_err("no time left");
    assert!(
        matches!(&past, Failure::Retry { reason, .. } if reason.contains("nothing sent")),
        "{past:?}"
    );
}

#[tokio::test]
async fn dropped_connection_is_a_retry() {
    let emu = emulator().await;
    emu.set_faults(Faults {
        drop_connection: true,
        count: Some(1),
        ..Faults::default()
    })
    .expect("valid faults");
    let msg = message(&[]);
    let failure = deliver(&emu, &msg).await.expect_err("dropped");
    assert!(
        matches!(&failure, Failure::Retry { reason, .. } if reason.contains("transport error")),
        "{failure:?}"
    );
    assert_eq!(emu.count(&msg.id.to_string()), 0, "not processed");
    assert!(
        deliver(&emu, &msg).await.is_ok(),
        "next attempt goes through"
    );
    assert_eq!(emu.count(&msg.id.to_string()), 1);
}

#[tokio::test]
async fn unreachable_port_is_a_retry_with_nothing_sent() {
    // A bound socket that never listens: the port stays ours, and connecting is refused.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(local()).expect("bind");
    let port = socket.local_addr().expect("addr").port();
    let adapter = HttpAdapter::new().expect("client builds");
    let failure = deliver_with(
        &adapter,
        &message(&[]),
        &settings(
            &format!("http://127.0.0.1:{port}/messages?token=s3cr3t"),
            json!({}),
        ),
        &[],
        Duration::from_secs(5),
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(&failure, Failure::Retry { reason, .. } if reason.contains("cannot connect (nothing sent)")),
        "{failure:?}"
    );
    assert!(
        !failure.to_string().contains("s3cr3t"),
        "credentials in the URL stay out of the reason: {failure}"
    );
    drop(socket);
}

#[tokio::test]
async fn lost_answers_cause_duplicates_only_under_the_same_id() {
    let emu = emulator().await;
    // The target processes the message but the answer is lost: the engine retries.
    emu.set_faults(Faults {
        drop_connection: true,
        record: true,
        count: Some(1),
        ..Faults::default()
    })
    .expect("valid faults");
    let first = message(&[]);
    let other = message(&[]);
    assert!(deliver(&emu, &first).await.expect_err("lost").is_retry());
    let retried = Outgoing {
        attempt: 2,
        ..first.clone()
    };
    let again = deliver(&emu, &retried).await.expect("delivered");
    let ok = deliver(&emu, &other).await.expect("delivered");
    emu.wait_for(2).await;

    let received = emu.received();
    let first_id = first.id.to_string();
    assert_eq!(received.count(&first_id), 2);
    assert_eq!(received.count(&other.id.to_string()), 1);
    assert_eq!(received.duplicates(), vec![(first_id.as_str(), 2)]);
    assert_eq!(again.target_ref.as_deref(), Some("emu-1"), "same reference");
    assert_eq!(ok.target_ref.as_deref(), Some("emu-2"));
    assert_eq!(
        received.messages[&first_id]
            .body
            .as_ref()
            .map(|b| b.attempt),
        Some(2),
        "the latest attempt's body is kept"
    );
}

#[tokio::test]
async fn counting_only_emulator_counts_ids_but_keeps_no_bodies() {
    let emu = Emulator::start_with_state(local(), EmulatorState::counting_only())
        .await
        .expect("starts");
    let msg = message(&[]);
    let first = deliver(&emu, &msg).await.expect("delivered");
    let second = deliver(&emu, &msg).await.expect("delivered");
    assert_eq!(first.target_ref, second.target_ref);
    let received = emu.received();
    let got = &received.messages[&msg.id.to_string()];
    assert_eq!(got.count, 2);
    assert_eq!(got.body, None);
}

#[tokio::test]
async fn wait_for_wakes_when_enough_distinct_ids_arrive() {
    let emu = emulator().await;
    let state = emu.state();
    let waiter = tokio::spawn(async move { state.wait_for(5).await });
    let url = emu.url();
    let mut sends = Vec::new();
    for _ in 0..5 {
        let url = url.clone();
        sends.push(tokio::spawn(async move {
            let adapter = HttpAdapter::new().expect("client builds");
            let msg = message(&[]);
            let table = settings(&url, json!({}));
            let first = deliver_with(&adapter, &msg, &table, &[], Duration::from_secs(10)).await;
            let second = deliver_with(&adapter, &msg, &table, &[], Duration::from_secs(10)).await;
            first.is_ok() && second.is_ok()
        }));
    }
    for s in sends {
        assert!(s.await.expect("task ran"), "every delivery succeeded");
    }
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woke up")
        .expect("task ran");
    let received = emu.received();
    assert_eq!(received.messages.len(), 5);
    assert_eq!(
        received.duplicates().len(),
        5,
        "each sent twice under its own id"
    );
    assert_eq!(received.requests, 10);
}

#[tokio::test]
async fn a_ratio_of_faults_hits_exactly_that_share_of_requests() {
    let emu = emulator().await;
    emu.set_faults(Faults {
        status: Some(503),
        ratio: Some(0.25),
        ..Faults::default()
    })
    .expect("valid faults");
    let mut failed = Vec::new();
    for i in 0..12 {
        if deliver(&emu, &message(&[])).await.is_err() {
            failed.push(i);
        }
    }
    assert_eq!(failed, vec![3, 7, 11]);
}

#[tokio::test]
async fn stopped_emulator_refuses_then_restarts_with_its_memory() {
    let emu = emulator().await;
    let addr = emu.addr();
    let url = emu.url();
    let msg = message(&[]);
    deliver(&emu, &msg).await.expect("delivered");
    let state = emu.state();
    emu.shutdown().await;

    let adapter = HttpAdapter::new().expect("client builds");
    let down = deliver_with(
        &adapter,
        &msg,
        &settings(&url, json!({})),
        &[],
        Duration::from_secs(5),
    )
    .await
    .expect_err("down");
    assert!(down.is_retry(), "{down:?}");

    let back = Emulator::start_with_state(addr, state)
        .await
        .expect("same port again");
    deliver(&back, &msg).await.expect("delivered");
    assert_eq!(back.count(&msg.id.to_string()), 2);
}

#[tokio::test]
async fn validation_and_settings_checks_name_the_field() {
    let adapter = HttpAdapter::new().expect("client builds");
    assert_eq!(adapter.name(), "http");
    let table = settings("http://127.0.0.1:1/", json!({}));
    assert!(adapter.validate(&message(&[]), &table).is_ok());
    let mut no_to = message(&[]);
    no_to.to = " ".into();
    assert_eq!(
        adapter.validate(&no_to, &table).expect_err("no to").field,
        "/to"
    );
    let mut list = message(&[]);
    list.document = json!([1, 2]);
    assert_eq!(
        adapter
            .validate(&list, &table)
            .expect_err("not an object")
            .field,
        "/document"
    );
    let mut unnamed = message(&[b"x"]);
    unnamed.attachments[0].name = String::new();
    assert_eq!(
        adapter
            .validate(&unnamed, &table)
            .expect_err("no name")
            .field,
        "/attachments/0/name"
    );
    let bad = settings("http://127.0.0.1:1/", json!({"timeout": 5}));
    assert_eq!(
        adapter.check_settings(&bad).expect_err("unknown").field,
        "timeout"
    );
}

#[tokio::test]
async fn a_success_carries_the_size_of_the_answer_read() {
    let emu = emulator().await;
    let msg = message(&[]);
    let (result, (sent, received), on_target) = deliver_counted(&emu, &msg).await;
    let delivered = result.expect("delivered");
    assert!(on_target > 0);
    assert_eq!(sent, Some(on_target), "the body the target received");
    // The emulator answers {"id": "emu-1", "duplicate": false}, as axum writes it.
    let answer = json!({ "id": delivered.target_ref, "duplicate": false }).to_string();
    assert_eq!(received, Some(answer.len() as u64));
}

#[tokio::test]
async fn a_failed_attempt_reports_the_bytes_sent_and_the_error_body_read() {
    let emu = emulator().await;
    // A 503 with a body of its own: retried, and measured both ways.
    let unavailable = "{\"error\": \"maintenance until 03:00, try later\"}";
    emu.set_faults(Faults {
        body: Some(unavailable.into()),
        ..fault(503)
    })
    .expect("faults");
    let msg = message(&[]);
    let (result, (sent, received), on_target) = deliver_counted(&emu, &msg).await;
    assert!(matches!(result, Err(Failure::Retry { .. })), "{result:?}");
    assert!(on_target > 0);
    assert_eq!(sent, Some(on_target));
    assert_eq!(received, Some(unavailable.len() as u64));

    // A 422: refused for good, measured the same way.
    let refusal = "{\"error\": \"docNo 01-12/345 is already registered\"}";
    emu.set_faults(Faults {
        body: Some(refusal.into()),
        ..fault(422)
    })
    .expect("faults");
    let (result, (sent, received), on_target) = deliver_counted(&emu, &msg).await;
    assert!(
        matches!(&result, Err(Failure::Permanent { code, .. }) if code == "http_422"),
        "{result:?}"
    );
    assert_eq!(sent, Some(on_target));
    assert_eq!(received, Some(refusal.len() as u64));

    // An empty error answer is an answer of 0 bytes, not no answer.
    emu.set_faults(Faults {
        body: Some(String::new()),
        ..fault(500)
    })
    .expect("faults");
    let (_, (sent, received), on_target) = deliver_counted(&emu, &msg).await;
    assert_eq!(sent, Some(on_target));
    assert_eq!(received, Some(0));
}

#[tokio::test]
async fn a_timeout_reports_the_request_sent_and_no_answer() {
    let emu = emulator().await;
    emu.set_faults(Faults {
        delay_ms: 2_000,
        ..Faults::default()
    })
    .expect("faults");
    let adapter = HttpAdapter::new().expect("client builds");
    let msg = message(&[]);
    let (result, (sent, received)) = deliver_measured(
        &adapter,
        &msg,
        &settings(&emu.url(), json!({"timeout_ms": 200})),
        &[],
        Duration::from_secs(10),
    )
    .await;
    assert!(matches!(result, Err(Failure::Retry { .. })), "{result:?}");
    assert_eq!(sent, Some(emu.received().request_bytes));
    assert_eq!(received, None);
}

#[tokio::test]
async fn nothing_is_reported_when_the_connection_never_opened() {
    // A port that was just free: the connection is refused, nothing goes out.
    let port = std::net::TcpListener::bind(local())
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let adapter = HttpAdapter::new().expect("client builds");
    let (result, sizes) = deliver_measured(
        &adapter,
        &message(&[]),
        &settings(&format!("http://127.0.0.1:{port}/in"), json!({})),
        &[],
        Duration::from_secs(10),
    )
    .await;
    assert!(matches!(result, Err(Failure::Retry { .. })), "{result:?}");
    assert_eq!(sizes, (None, None));
}
