//! End-to-end behaviour of the REST API over real sockets: submit → delivered to the emulator →
//! visible in GET → signed webhook; idempotency; hostile input; client isolation; target outage.
mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{echo_routes, Gateway, HookSink, MASTER_SECRET};
use qaqpa::auth::Role;
use qaqpa_adapter_http::{Emulator, Faults};
use serde_json::json;

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_message_is_delivered_shown_and_reported_by_signed_webhook() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let gw = Gateway::start(&echo_routes(&emu.url(), "")).await;
    let sink = HookSink::start().await;
    let token = gw.key("edms-a", Role::Client).await;

    let resp = gw
        .post_json(
            &token,
            "/v1/messages",
            &json!({
                "kind": "http.post", "to": "ministry-1",
                "document": {"title": "Письмо о согласовании"},
                "attachments": [{"name": "letter.txt", "content_type": "text/plain", "content": b64("Сәлем".as_bytes())}],
                "signatures": [b64(b"not really CMS, carried as is")],
                "callback_url": sink.url(),
            }),
        )
        .await;
    assert_eq!(resp.status(), 202);
    assert!(resp.headers().get("location").is_some());
    let accepted: serde_json::Value = resp.json().await.expect("json");
    let id = accepted["id"].as_str().expect("id").to_string();
    assert_eq!(accepted["status"], "queued");

    tokio::time::timeout(Duration::from_secs(10), emu.wait_for(1))
        .await
        .expect("delivered to emulator");
    let received = emu.received();
    let m = received.messages.get(&id).expect("emulator got our id");
    assert_eq!(m.count, 1);
    assert_eq!(
        m.body.as_ref().expect("body kept").document["title"],
        "Письмо о согласовании"
    );
    assert_eq!(m.body.as_ref().expect("body kept").attachments.len(), 1);

    let view = gw
        .wait_message(&token, &id, Duration::from_secs(10), |v| {
            v["status"] == "delivered"
        })
        .await;
    assert_eq!(view["attempts"], 1);
    assert_eq!(view["attempt_log"][0]["outcome"], "delivered");
    assert_eq!(view["target_ref"].as_str(), Some(m.target_ref.as_str()));
    assert_eq!(view["signature_count"], 1);

    // The attachment reads back byte for byte.
    let att = gw
        .get(&token, &format!("/v1/messages/{id}/attachments/0"))
        .await;
    assert_eq!(att.status(), 200);
    assert_eq!(
        att.bytes().await.expect("bytes").as_ref(),
        "Сәлем".as_bytes()
    );

    // The webhook arrived, signed with this client's secret over "<t>.<body>".
    let hooks = sink.wait_for(1, Duration::from_secs(10)).await;
    let hook = &hooks[0];
    let event: serde_json::Value = serde_json::from_slice(&hook.body).expect("event json");
    assert_eq!(event["message_id"], id.as_str());
    assert_eq!(event["status"], "delivered");
    let signer = qaqpa::webhooks::WebhookSigner::new(MASTER_SECRET);
    let secret = signer.client_secret(&qaqpa_core::ClientId("edms-a".into()));
    let t: i64 = hook
        .signature
        .strip_prefix("t=")
        .and_then(|r| r.split(',').next())
        .and_then(|t| t.parse().ok())
        .expect("timestamp in signature");
    assert_eq!(
        hook.signature,
        qaqpa::webhooks::sign_with(&secret, t, &hook.body)
    );
    assert_ne!(
        hook.signature,
        qaqpa::webhooks::sign_with("wrong secret", t, &hook.body)
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_returns_the_original_or_conflicts() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let gw = Gateway::start(&echo_routes(&emu.url(), "")).await;
    let token = gw.key("edms-a", Role::Client).await;
    let body = json!({"kind": "http.post", "to": "x", "document": {"n": 1}});
    let send = |b: serde_json::Value| {
        gw.http
            .post(format!("{}/v1/messages", gw.url))
            .bearer_auth(&token)
            .header("Idempotency-Key", "letter-42")
            .json(&b)
            .send()
    };
    let first = send(body.clone()).await.expect("first");
    assert_eq!(first.status(), 202);
    let first: serde_json::Value = first.json().await.expect("json");
    let again = send(body.clone()).await.expect("again");
    assert_eq!(again.status(), 200);
    let again: serde_json::Value = again.json().await.expect("json");
    assert_eq!(again["id"], first["id"]);
    let other = send(json!({"kind": "http.post", "to": "x", "document": {"n": 2}}))
        .await
        .expect("other");
    assert_eq!(other.status(), 409);
    assert_eq!(
        other
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_a_precise_problem_and_stores_nothing() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let gw = Gateway::start_with(&echo_routes(&emu.url(), ""), |c| {
        c.api.max_json_bytes = 64 * 1024;
        c.api.max_json_depth = 8;
    })
    .await;
    let token = gw.key("edms-a", Role::Client).await;
    let post = |body: Vec<u8>| {
        gw.http
            .post(format!("{}/v1/messages", gw.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let problem = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert_eq!(ct, "application/problem+json");
        let v: serde_json::Value = r.json().await.expect("problem json");
        (status, v)
    };

    // Oversized body.
    let big = format!(
        r#"{{"kind":"http.post","to":"x","document":{{"pad":"{}"}}}}"#,
        "a".repeat(70 * 1024)
    );
    let (s, p) = problem(post(big.into_bytes()).await.expect("send")).await;
    assert_eq!(s, 413, "{p}");

    // Deep JSON.
    let deep = format!(
        r#"{{"kind":"http.post","to":"x","document":{}1{}}}"#,
        "[".repeat(20),
        "]".repeat(20)
    );
    let (s, p) = problem(post(deep.into_bytes()).await.expect("send")).await;
    assert_eq!(s, 400, "{p}");
    assert!(
        p["detail"].as_str().unwrap_or("").contains("nests deeper"),
        "{p}"
    );

    // Bad base64 in an attachment.
    let bad = json!({"kind":"http.post","to":"x","attachments":[{"name":"a.pdf","content_type":"application/pdf","content":"@@not base64@@"}]});
    let (s, p) = problem(
        post(serde_json::to_vec(&bad).expect("json"))
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["pointer"], "/attachments/0/content");

    // Missing field.
    let (s, p) = problem(
        post(br#"{"kind":"http.post"}"#.to_vec())
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["pointer"], "/to");

    // Unknown kind.
    let (s, p) = problem(
        post(br#"{"kind":"esedo.nothing","to":"x"}"#.to_vec())
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["errors"][0]["pointer"], "/kind");

    // Not JSON at all.
    let (s, p) = problem(post(b"{\"kind\": ".to_vec()).await.expect("send")).await;
    assert_eq!(s, 400, "{p}");

    // Wrong API key, missing API key.
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .bearer_auth("qk_0123456789abcdef.wrongsecret")
        .json(&json!({"kind":"http.post","to":"x"}))
        .send()
        .await
        .expect("send");
    let (s, _) = problem(r).await;
    assert_eq!(s, 401);
    let r = gw
        .http
        .get(format!("{}/v1/messages", gw.url))
        .send()
        .await
        .expect("send");
    let (s, _) = problem(r).await;
    assert_eq!(s, 401);

    // Nothing was stored by any of these.
    let list: serde_json::Value = gw
        .get(&token, "/v1/messages")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    assert_eq!(emu.received().requests, 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_never_sees_another_clients_message() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let gw = Gateway::start(&echo_routes(&emu.url(), "")).await;
    let a = gw.key("edms-a", Role::Client).await;
    let b = gw.key("edms-b", Role::Client).await;
    let op = gw.key("ops", Role::Operator).await;
    let id = gw.submit(&a, &json!({"kind":"http.post","to":"x"})).await;
    assert_eq!(
        gw.get(&b, &format!("/v1/messages/{id}")).await.status(),
        404
    );
    assert_eq!(
        gw.get(&b, &format!("/v1/messages/{id}/attachments/0"))
            .await
            .status(),
        404
    );
    let cancel = gw
        .post_json(&b, &format!("/v1/messages/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(cancel.status(), 404);
    let list: serde_json::Value = gw.get(&b, "/v1/messages").await.json().await.expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        gw.get(&a, &format!("/v1/messages/{id}")).await.status(),
        200
    );
    assert_eq!(
        gw.get(&op, &format!("/v1/messages/{id}")).await.status(),
        200
    );
    // Operators cannot submit; clients cannot retry.
    assert_eq!(
        gw.post_json(&op, "/v1/messages", &json!({"kind":"http.post","to":"x"}))
            .await
            .status(),
        403
    );
    assert_eq!(
        gw.post_json(&a, &format!("/v1/messages/{id}/retry"), &json!({}))
            .await
            .status(),
        403
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_backs_off_opens_the_breaker_and_delivers_everything_after_recovery() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let limits = "max_attempts = 50\n[route.limits]\nconcurrency = 4\nbreaker_failures = 3\nbreaker_cooldown_ms = 200\nbreaker_max_cooldown_ms = 400\n";
    let gw = Gateway::start(&echo_routes(&emu.url(), limits)).await;
    let token = gw.key("edms-a", Role::Client).await;
    emu.set_faults(Faults {
        status: Some(503),
        ..Faults::default()
    })
    .expect("faults");
    let mut ids = Vec::new();
    for n in 0..10 {
        let r = gw
            .post_json(
                &token,
                "/v1/messages",
                &json!({"kind":"http.post","to":"x","document":{"n":n}}),
            )
            .await;
        assert_eq!(r.status(), 202);
        ids.push(
            r.json::<serde_json::Value>().await.expect("json")["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    // Wait until the breaker has opened (some attempt deferred) while the target is down.
    gw.wait_message(&token, &ids[9], Duration::from_secs(20), |v| {
        v["attempt_log"].as_array().is_some_and(|l| {
            l.iter()
                .any(|a| a["outcome"] == "deferred" || a["outcome"] == "retry")
        })
    })
    .await;
    let metrics_key = gw.key("ops", Role::Operator).await;
    let mut saw_deferred = false;
    for _ in 0..200 {
        let text = gw
            .get(&metrics_key, "/metrics")
            .await
            .text()
            .await
            .expect("metrics");
        if text.contains("outcome=\"deferred\"") {
            saw_deferred = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(saw_deferred, "the breaker never opened");
    emu.set_faults(Faults::default()).expect("clear faults");
    tokio::time::timeout(Duration::from_secs(30), emu.wait_for(ids.len()))
        .await
        .expect("all delivered after recovery");
    for id in &ids {
        let v = gw
            .wait_message(&token, id, Duration::from_secs(10), |v| {
                v["status"] == "delivered"
            })
            .await;
        assert!(v["attempts"].as_u64().unwrap_or(0) >= 2, "{v}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_refusal_fails_at_once_with_the_targets_reason() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let gw = Gateway::start(&echo_routes(&emu.url(), "")).await;
    let token = gw.key("edms-a", Role::Client).await;
    emu.set_faults(Faults {
        status: Some(422),
        body: Some("docNo is required by the target".into()),
        ..Faults::default()
    })
    .expect("faults");
    let id = gw
        .submit(&token, &json!({"kind":"http.post","to":"x"}))
        .await;
    let v = gw
        .wait_message(&token, &id, Duration::from_secs(10), |v| {
            v["status"] == "failed"
        })
        .await;
    assert_eq!(v["attempts"], 1);
    let err = v["last_error"].as_str().unwrap_or("");
    assert!(
        err.contains("http_422") && err.contains("docNo is required"),
        "{v}"
    );
    // An operator can send it again once the cause is fixed.
    emu.set_faults(Faults::default()).expect("clear");
    let op = gw.key("ops", Role::Operator).await;
    assert_eq!(
        gw.post_json(&op, &format!("/v1/messages/{id}/retry"), &json!({}))
            .await
            .status(),
        200
    );
    gw.wait_message(&token, &id, Duration::from_secs(10), |v| {
        v["status"] == "delivered"
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_budget_dead_letters_with_the_reason() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let extra = "max_attempts = 2\n[route.limits]\nbreaker_failures = 1000\n";
    let gw = Gateway::start(&echo_routes(&emu.url(), extra)).await;
    let token = gw.key("edms-a", Role::Client).await;
    emu.set_faults(Faults {
        status: Some(500),
        ..Faults::default()
    })
    .expect("faults");
    let id = gw
        .submit(&token, &json!({"kind":"http.post","to":"x"}))
        .await;
    let v = gw
        .wait_message(&token, &id, Duration::from_secs(10), |v| {
            v["status"] == "dead_letter"
        })
        .await;
    assert_eq!(v["attempts"], 2);
    assert!(
        v["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("max_attempts"),
        "{v}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_files_stream_into_the_blob_store_and_reach_the_target() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let gw = Gateway::start(&echo_routes(&emu.url(), "")).await;
    let token = gw.key("edms-a", Role::Client).await;
    let file: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .part(
            "message",
            reqwest::multipart::Part::text(r#"{"kind":"http.post","to":"x","document":{"t":1}}"#)
                .mime_str("application/json")
                .expect("mime"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(file.clone())
                .file_name("scan.pdf")
                .mime_str("application/pdf")
                .expect("mime"),
        );
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let v = gw
        .wait_message(&token, &id, Duration::from_secs(10), |v| {
            v["status"] == "delivered"
        })
        .await;
    assert_eq!(v["attachments"][0]["size"], 3_000_000);
    assert_eq!(v["attachments"][0]["name"], "scan.pdf");
    let got = gw
        .get(&token, &format!("/v1/messages/{id}/attachments/0"))
        .await
        .bytes()
        .await
        .expect("bytes");
    assert!(got.as_ref() == file.as_slice(), "attachment differs");
    let received = emu.received();
    let body = received
        .messages
        .get(&id)
        .expect("at target")
        .body
        .as_ref()
        .expect("body kept");
    assert_eq!(body.attachments[0].size, 3_000_000);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_open_and_everything_else_needs_a_key() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let gw = Gateway::start(&echo_routes(&emu.url(), "")).await;
    let get = |p: &str| gw.http.get(format!("{}{p}", gw.url)).send();
    assert_eq!(get("/healthz").await.expect("h").status(), 200);
    assert_eq!(get("/readyz").await.expect("r").status(), 200);
    for p in ["/v1/messages", "/v1/inbox", "/metrics"] {
        assert_eq!(get(p).await.expect("p").status(), 401, "{p}");
    }
    let client = gw.key("edms-a", Role::Client).await;
    assert_eq!(gw.get(&client, "/metrics").await.status(), 403);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_items_are_listed_fetched_and_acknowledged_by_their_client_only() {
    use qaqpa_store::{BlobChunks, InboxItem, StoreError};
    struct One(Option<bytes::Bytes>);
    #[async_trait::async_trait]
    impl BlobChunks for One {
        async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, StoreError> {
            Ok(self.0.take())
        }
    }
    let gw = Gateway::start("").await;
    let a = gw.key("edms-a", Role::Client).await;
    let b = gw.key("edms-b", Role::Client).await;
    let content = bytes::Bytes::from_static(b"incoming letter body");
    let (sha256, size) = gw
        .state
        .blobs
        .put(&mut One(Some(content.clone())), 1 << 20)
        .await
        .expect("blob");
    let id = qaqpa_core::MessageId::new();
    let item = InboxItem {
        id,
        client: qaqpa_core::ClientId("edms-a".into()),
        source: "test".into(),
        external_id: "ext-1".into(),
        kind: "esedo.letter".into(),
        from: "ministry".into(),
        document: json!({"docNo": "01-02/123"}),
        attachments: vec![qaqpa_core::AttachmentMeta {
            name: "letter.txt".into(),
            content_type: "text/plain".into(),
            size,
            sha256,
        }],
        received_at: time::OffsetDateTime::now_utc(),
        acked_at: None,
        transaction_id: "t-1".into(),
    };
    let (stored, new) = gw
        .state
        .store
        .insert_inbox(item.clone())
        .await
        .expect("insert");
    assert!(new);
    // A repeated push of the same document is not a second item.
    let (again, new) = gw
        .state
        .store
        .insert_inbox(InboxItem {
            id: qaqpa_core::MessageId::new(),
            ..item
        })
        .await
        .expect("again");
    assert_eq!((again, new), (stored, false));

    let list: serde_json::Value = gw.get(&a, "/v1/inbox").await.json().await.expect("list");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    let other: serde_json::Value = gw.get(&b, "/v1/inbox").await.json().await.expect("list");
    assert_eq!(other["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        gw.get(&b, &format!("/v1/inbox/{stored}")).await.status(),
        404
    );
    let one: serde_json::Value = gw
        .get(&a, &format!("/v1/inbox/{stored}"))
        .await
        .json()
        .await
        .expect("one");
    assert_eq!(one["document"]["docNo"], "01-02/123");
    let file = gw
        .get(&a, &format!("/v1/inbox/{stored}/attachments/0"))
        .await
        .bytes()
        .await
        .expect("file");
    assert_eq!(file, content);
    assert_eq!(
        gw.post_json(&b, &format!("/v1/inbox/{stored}/ack"), &json!({}))
            .await
            .status(),
        404
    );
    assert_eq!(
        gw.post_json(&a, &format!("/v1/inbox/{stored}/ack"), &json!({}))
            .await
            .status(),
        200
    );
    let after: serde_json::Value = gw.get(&a, "/v1/inbox").await.json().await.expect("list");
    assert_eq!(
        after["items"].as_array().map(Vec::len),
        Some(0),
        "acknowledged items leave the default view"
    );
    let all: serde_json::Value = gw
        .get(&a, "/v1/inbox?all=true")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(all["items"].as_array().map(Vec::len), Some(1));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rate_limit_and_header_limit_hold() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let gw = Gateway::start_with(&echo_routes(&emu.url(), ""), |c| {
        c.api.rate_per_key = 1.0;
        c.api.rate_burst = 3;
    })
    .await;
    let token = gw.key("edms-a", Role::Client).await;

    // HTTP/2 with prior knowledge.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2 client");
    let r = h2
        .get(format!("{}/healthz", gw.url))
        .send()
        .await
        .expect("h2 request");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);

    // A burst of 3, then 429 with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = gw.get(&token, "/v1/messages").await;
        statuses.push((
            r.status().as_u16(),
            r.headers().get("retry-after").is_some(),
        ));
    }
    assert_eq!(
        &statuses[..3],
        &[(200, false), (200, false), (200, false)],
        "{statuses:?}"
    );
    assert!(
        statuses[3..].iter().all(|s| *s == (429, true)),
        "{statuses:?}"
    );

    // Oversized headers are refused before any handler runs.
    let huge = "a".repeat(100 * 1024);
    let r = gw
        .http
        .get(format!("{}/healthz", gw.url))
        .header("x-padding", huge)
        .send()
        .await;
    match r {
        Ok(resp) => assert_eq!(resp.status(), 431),
        Err(e) => assert!(
            e.is_request() || e.is_connect() || e.to_string().contains("connection"),
            "{e}"
        ),
    }
    gw.stop().await;
}

/// The records of kind `kind` in the journal (everything recorded is flushed first), newest
/// first, at most 100.
async fn journalled(gw: &Gateway, kind: &str) -> Vec<qaqpa_audit::StoredRecord> {
    assert!(gw.state.audit.flush().await.stored);
    gw.state
        .audit
        .store()
        .expect("journal")
        .query(
            &qaqpa_audit::AuditFilter {
                kind: Some(kind.into()),
                ..Default::default()
            },
            None,
            100,
        )
        .await
        .expect("query")
        .records
}

/// The EXCHANGE events journalled for message `id` (everything recorded is flushed first).
async fn journalled_exchanges(gw: &Gateway, id: &str) -> Vec<qaqpa_audit::Exchange> {
    journalled_exchanges_where(gw, |x| x.message_id.as_deref() == Some(id)).await
}

/// The EXCHANGE events in the journal (flushed first) that `wanted` picks, newest first.
async fn journalled_exchanges_where(
    gw: &Gateway,
    wanted: impl Fn(&qaqpa_audit::Exchange) -> bool,
) -> Vec<qaqpa_audit::Exchange> {
    journalled(gw, "EXCHANGE")
        .await
        .into_iter()
        .filter_map(|rec| match rec.event.kind {
            qaqpa_audit::EventKind::Exchange(x) if wanted(&x) => Some(x),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_journals_the_sizes_measured_on_the_wire() {
    let emu = Emulator::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("emulator");
    let gw = Gateway::start(&echo_routes(&emu.url(), "max_attempts = 5\n")).await;
    let token = gw.key("edms-a", Role::Client).await;
    // The first attempt is answered 503 with a body of the target's own; the second is
    // delivered.
    let unavailable = r#"{"error": "maintenance until 03:00, try again later"}"#;
    emu.set_faults(Faults {
        status: Some(503),
        body: Some(unavailable.into()),
        count: Some(1),
        ..Faults::default()
    })
    .expect("faults");
    let id = gw
        .submit(
            &token,
            &json!({"kind": "http.post", "to": "x", "document": {"text": "Хат"}}),
        )
        .await;
    gw.wait_message(&token, &id, Duration::from_secs(20), |v| {
        v["status"] == "delivered"
    })
    .await;
    let exchanges = journalled_exchanges(&gw, &id).await;
    assert_eq!(
        exchanges.len(),
        2,
        "one EXCHANGE per attempt: {exchanges:#?}"
    );
    let failed = exchanges
        .iter()
        .find(|x| !x.result.is_success())
        .expect("the failed attempt's exchange");
    let delivered = exchanges
        .iter()
        .find(|x| x.result.is_success())
        .expect("the delivering exchange");
    // The failed attempt's request is the body on the wire (the emulator counted both
    // attempts' bodies, the same but for the attempt number), and its answer the 503's body.
    let on_target = emu.received().request_bytes;
    let failed_sent = failed.request_bytes.expect("request size");
    let delivered_sent = delivered.request_bytes.expect("request size");
    assert_eq!(failed_sent + delivered_sent, on_target, "{exchanges:#?}");
    assert_eq!(failed_sent, delivered_sent, "{exchanges:#?}");
    assert_eq!(
        failed.response_bytes,
        Some(unavailable.len() as u64),
        "{exchanges:#?}"
    );
    assert!(
        delivered.response_bytes.is_some_and(|n| n > 0),
        "{exchanges:#?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_connection_never_opened_journals_no_bytes_sent() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let gw = Gateway::start(&echo_routes(&url, "max_attempts = 1\n")).await;
    let token = gw.key("edms-a", Role::Client).await;
    let id = gw
        .submit(&token, &json!({"kind": "http.post", "to": "x"}))
        .await;
    gw.wait_message(&token, &id, Duration::from_secs(20), |v| {
        v["status"] == "dead_letter"
    })
    .await;
    let exchanges = journalled_exchanges(&gw, &id).await;
    assert_eq!(exchanges.len(), 1, "{exchanges:#?}");
    let x = &exchanges[0];
    assert!(!x.result.is_success(), "{x:#?}");
    assert_eq!(
        (x.request_bytes, x.response_bytes),
        (None, None),
        "nothing went out and nothing came back: {x:#?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_exchange_journals_the_envelopes_on_the_wire_not_the_callers_json() {
    use qaqpa_shep::emulator::{ServiceAnswer, ShepEmulator};
    const BIN: &str = "123456789012";
    let shep = ShepEmulator::builder()
        .service("GbdulInfoByBin_v2", |r: &qaqpa_shep::SyncRequest| {
            let asked = r.data.as_ref().map(|d| d.as_text().to_owned());
            match asked {
                Some(a) if a.contains(BIN) => {
                    ServiceAnswer::Data(Some(qaqpa_shep::MessageData::text(format!(
                        "<Organization><BIN>{BIN}</BIN><Name>ТОО Сынақ</Name></Organization>"
                    ))))
                }
                _ => ServiceAnswer::BusinessError("БИН не найден".into()),
            }
        })
        .start()
        .await
        .expect("ШЭП emulator");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nowhere = format!(
        "http://{}/bip-sync-wss-gost/",
        closed.local_addr().expect("addr")
    );
    drop(closed);
    let service = |name: &str, endpoint: &str| {
        format!(
            "[[service]]\nname = \"{name}\"\nadapter = \"shep\"\ntimeout_ms = 10000\n[service.settings]\n\
             endpoint = \"{endpoint}\"\nservice_id = \"GbdulInfoByBin_v2\"\nsender_id = \"qaqpa\"\n\
             timeout_secs = 10\nrequire_signed_pushes = false\n"
        )
    };
    let routes = format!(
        "{}\n{}{}",
        echo_routes("http://127.0.0.1:9", ""),
        service("company", &shep.sync_url()),
        service("company-down", &nowhere)
    );
    let gw = Gateway::start(&routes).await;
    let token = gw.key("edms-a", Role::Client).await;
    let found = gw
        .post_json(
            &token,
            "/v1/calls/company",
            &json!({"data": format!("<BIN>{BIN}</BIN>")}),
        )
        .await;
    assert_eq!(found.status(), 200);
    let refused = gw
        .post_json(
            &token,
            "/v1/calls/company",
            &json!({"data": "<BIN>000000000000</BIN>"}),
        )
        .await;
    assert_eq!(refused.status(), 502);
    let unreachable = gw
        .post_json(
            &token,
            "/v1/calls/company-down",
            &json!({"data": format!("<BIN>{BIN}</BIN>")}),
        )
        .await;
    assert!(unreachable.status().is_server_error(), "{unreachable:?}");

    // Both answered calls are journalled with the envelopes the emulator received and
    // answered: signed SOAP around the caller's few bytes of JSON, a refusal's too; each
    // under the ШЭП serviceId the request went to and the code the answer carried.
    let wire = shep.wire_sizes();
    assert_eq!(wire.len(), 2, "{wire:?}");
    let mut answered = journalled_exchanges_where(&gw, |x| x.target == "company").await;
    answered.sort_by_key(|x| x.request_out);
    assert_eq!(answered.len(), 2, "{answered:#?}");
    for (x, on_wire) in answered.iter().zip(&wire) {
        assert_eq!(
            (x.request_bytes, x.response_bytes),
            (Some(on_wire.request_bytes), on_wire.response_bytes),
            "{answered:#?}"
        );
        assert!(on_wire.request_bytes > 300, "a whole envelope: {wire:?}");
    }
    assert!(
        answered
            .iter()
            .all(|x| x.service_id.as_deref() == Some("GbdulInfoByBin_v2")),
        "{answered:#?}"
    );
    assert_eq!(
        answered[0].result,
        qaqpa_audit::ExchangeResult::Shep("SCSS001".into())
    );
    assert_eq!(
        answered[1].result,
        qaqpa_audit::ExchangeResult::Shep("SCSE002".into())
    );
    // A call whose connection never opened sent nothing and read nothing.
    let down = journalled_exchanges_where(&gw, |x| x.target == "company-down").await;
    assert_eq!(down.len(), 1, "{down:#?}");
    assert!(
        matches!(&down[0].result, qaqpa_audit::ExchangeResult::Transport(_)),
        "{down:#?}"
    );
    assert_eq!(down[0].response_in, None, "no answer came: {down:#?}");
    assert_eq!(
        (down[0].request_bytes, down[0].response_bytes),
        (None, None),
        "{down:#?}"
    );
    gw.stop().await;
}

/// The CONFIG events in the journal (flushed first), oldest first, as (name, what).
async fn journalled_config(gw: &Gateway) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for op in ["CONFIG_CREATED", "CONFIG_CHANGED", "CONFIG_DELETED"] {
        for rec in journalled(gw, op).await {
            if let qaqpa_audit::EventKind::Config { what, .. } = rec.event.kind {
                out.push((rec.seq, op.to_owned(), what));
            }
        }
    }
    out.sort();
    out.into_iter().map(|(_, op, what)| (op, what)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_journals_each_route_added_removed_or_changed_and_an_unchanged_one_nothing() {
    // One data directory and one routes file for every start.
    let dir = tempfile::tempdir().expect("dir");
    let routes_path = dir.path().join("routes.toml");
    let route = |name: &str, timeout_ms: u32| {
        format!(
            "[[route]]\nname = \"{name}\"\nadapter = \"http\"\nkinds = [\"{name}.post\"]\n\
             timeout_ms = {timeout_ms}\n[route.settings]\nurl = \"http://127.0.0.1:9/deliver\"\n"
        )
    };
    // Starts and stops a gateway on `routes` with `poll_ms`; the CONFIG events this start
    // added to the journal.
    let mut seen = 0;
    let mut start = async |routes: String, poll_ms: u64| {
        std::fs::write(&routes_path, routes).expect("routes");
        let gw = Gateway::start_with("", |cfg| {
            cfg.routes = routes_path.clone();
            cfg.store = qaqpa::config::StoreConfig::Sqlite {
                data_dir: dir.path().join("data"),
            };
            cfg.engine.poll_ms = poll_ms;
        })
        .await;
        let all = journalled_config(&gw).await;
        gw.stop().await;
        let new = all[seen..].to_vec();
        seen = all.len();
        new
    };
    let summary = |events: &[(String, String)]| -> Vec<(String, String)> {
        events
            .iter()
            .map(|(op, what)| {
                let head = what.split([';', '(']).next().unwrap_or_default();
                (op.clone(), head.trim_end().to_owned())
            })
            .collect()
    };
    let pairs = |expected: &[(&str, &str)]| -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(op, what)| (op.to_string(), what.to_string()))
            .collect()
    };
    let loaded = format!(
        "configuration loaded: 2 routes, 0 services from {}",
        routes_path.display()
    );

    let first = start(format!("{}{}", route("echo", 2000), route("old", 2000)), 50).await;
    assert_eq!(
        summary(&first),
        pairs(&[("CONFIG_CREATED", &loaded)]),
        "a first start only loads: {first:#?}"
    );
    let second = start(format!("{}{}", route("echo", 3000), route("new", 2000)), 75).await;
    assert_eq!(
        summary(&second),
        pairs(&[
            ("CONFIG_CREATED", &loaded),
            (
                "CONFIG_CHANGED",
                "route 'echo' changed since the last start"
            ),
            ("CONFIG_CREATED", "route 'new' added since the last start"),
            ("CONFIG_DELETED", "route 'old' removed since the last start"),
        ]),
        "{second:#?}"
    );
    // The same routes in another order: the first that matches takes a message.
    let third = start(format!("{}{}", route("new", 2000), route("echo", 3000)), 75).await;
    assert_eq!(
        summary(&third),
        pairs(&[
            ("CONFIG_CREATED", &loaded),
            ("CONFIG_CHANGED", "route order changed since the last start"),
        ]),
        "{third:#?}"
    );
    // The same routes and settings, written otherwise: nothing changed.
    let fourth = start(
        format!("# comment\n\n{}{}", route("new", 2000), route("echo", 3000)).replace(" = ", "="),
        75,
    )
    .await;
    assert_eq!(
        summary(&fourth),
        pairs(&[("CONFIG_CREATED", &loaded)]),
        "{fourth:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_the_gateway_relies_on_that_expire_soon_are_journalled_with_what_they_are_for()
{
    use qaqpa_pki::testpki::{KeyKind, TestPki};
    use qaqpa_pki::time::UtcTime;
    const IIN: &str = "870101300123";
    let dir = tempfile::tempdir().expect("dir");
    // The trust directory: test roots and intermediates, valid for years (no warning).
    let pki = TestPki::generate(&dir.path().join("trust")).expect("test PKI");
    let ca = pki.ca(KeyKind::Rsa);
    let now = UtcTime::now();
    let days = |n: i64| UtcTime(now.0 - n * 86_400);
    // The signing certificate expires in 20 days (issued 345 days ago for a year), the pinned
    // ШЭП peer's in 3.
    let iin = qaqpa_pki::Iin::new(IIN).expect("iin");
    let bin = qaqpa_pki::Bin::new("123456789021").expect("bin");
    let signing = ca
        .issue_end_entity(
            "ШЛЮЗ ТЕСТ",
            Some(&iin),
            Some((&bin, "АО \"ТЕСТ\"")),
            qaqpa_pki::Role::FirstHead,
            days(345),
        )
        .expect("signing keystore");
    let peer = ca
        .issue_end_entity("ШЭП", None, None, qaqpa_pki::Role::Individual, days(362))
        .expect("peer");
    let keystore = dir.path().join("signing.p12");
    std::fs::write(&keystore, signing.to_pkcs12("пароль-1").expect("p12")).expect("write");
    let password = dir.path().join("signing.password");
    std::fs::write(&password, "пароль-1\n").expect("write");
    let peer_cert = dir.path().join("shep-peer.cer");
    std::fs::write(&peer_cert, peer.certificate().der()).expect("write");
    // The SIEM's CA, an ECDSA one made by OpenSSL, expires in 10 days.
    let siem_ca = dir.path().join("siem-ca.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "10",
            "-subj",
            "/CN=SIEM test CA",
            "-keyout",
        ])
        .arg(dir.path().join("siem-ca.key"))
        .arg("-out")
        .arg(&siem_ca)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let siem_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let siem_url = format!("tls://localhost:{siem_port}");
    let gw = Gateway::start_with(&echo_routes("http://127.0.0.1:9", ""), |cfg| {
        cfg.signing = Some(qaqpa::config::SigningConfig {
            keystore: keystore.clone(),
            password_env: None,
            password_file: Some(password.clone()),
        });
        cfg.shep.peer_certificates = vec![peer_cert.clone()];
        cfg.pki.trust_dir = Some(dir.path().join("trust"));
        let mut siem = qaqpa_audit::SyslogTarget::new(siem_url.clone());
        siem.ca_file = Some(siem_ca.clone());
        cfg.audit.syslog = vec![siem];
        cfg.audit.spool_dir = dir.path().join("spool");
    })
    .await;
    let records = journalled(&gw, "CERT_EXPIRY").await;
    let mut warned: Vec<(String, qaqpa_audit::Level, i64, String)> = records
        .iter()
        .map(|rec| match &rec.event.kind {
            qaqpa_audit::EventKind::CertExpiry {
                serial, days_left, ..
            } => (
                serial.clone(),
                rec.event.level,
                *days_left,
                rec.event.description.clone(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    warned.sort_by_key(|w| w.2);
    assert_eq!(
        warned.len(),
        3,
        "only the three that expire soon: {warned:#?}"
    );
    let (serial, level, left, said) = &warned[0];
    assert_eq!(serial, &peer.certificate().serial_hex());
    assert_eq!(*level, qaqpa_audit::Level::Error, "{said}");
    assert!((2..=3).contains(left), "{warned:#?}");
    assert!(
        said.starts_with(&format!(
            "pinned ШЭП peer certificate {}: ",
            peer_cert.display()
        )),
        "{said}"
    );
    let (_, level, left, said) = &warned[1];
    assert_eq!(*level, qaqpa_audit::Level::Warning, "{said}");
    assert!((9..=10).contains(left), "{warned:#?}");
    assert!(
        said.starts_with(&format!(
            "CA of the syslog receiver {siem_url} ({}): ",
            siem_ca.display()
        )),
        "{said}"
    );
    let (serial, level, left, said) = &warned[2];
    assert_eq!(serial, &signing.certificate().serial_hex());
    assert_eq!(*level, qaqpa_audit::Level::Warning, "{said}");
    assert!((19..=20).contains(left), "{warned:#?}");
    assert!(
        said.starts_with("the gateway's signing certificate: "),
        "{said}"
    );
    // The subject's IIN is masked in the journal.
    let text = format!("{records:?}");
    assert!(!text.contains(IIN), "{text}");
    // The daily check judges the certificates in force, as loaded at start: files replaced on
    // disk since (a renewed peer certificate, a deleted CA file) take effect only on restart.
    let renewed = ca
        .issue_end_entity("ШЭП", None, None, qaqpa_pki::Role::Individual, days(0))
        .expect("renewed peer");
    std::fs::write(&peer_cert, renewed.certificate().der()).expect("write");
    std::fs::remove_file(&siem_ca).expect("remove");
    qaqpa::gateway::check_certificate_expiry(&gw.state.certificates, &gw.state.audit);
    let again = journalled(&gw, "CERT_EXPIRY").await;
    let serials = |records: &[qaqpa_audit::StoredRecord]| {
        let mut s: Vec<String> = records
            .iter()
            .map(|rec| match &rec.event.kind {
                qaqpa_audit::EventKind::CertExpiry { serial, .. } => serial.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        s.sort();
        s
    };
    let mut twice = serials(&records);
    twice.extend(serials(&records));
    twice.sort();
    assert_eq!(serials(&again), twice, "the same three once more");
    gw.stop().await;
}
