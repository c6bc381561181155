//! The emulator's control API over HTTP, as the sandbox and the gateway's end-to-end tests
//! drive it.
use std::net::SocketAddr;
use std::time::Duration;

use qaqpa_adapter_http::Emulator;
use serde_json::{json, Value};

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request sent")
}

async fn json_of(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.expect("body");
    serde_json::from_slice(&bytes).expect("JSON answer")
}

fn wire(id: &str) -> Value {
    json!({
        "id": id, "kind": "http.post", "to": "x", "client": "c", "document": {},
        "attachments": [], "signatures": [], "created_at": "2026-11-23T18:00:00Z", "attempt": 1
    })
}

#[tokio::test]
async fn faults_set_over_http_apply_to_the_next_requests_and_received_is_queryable() {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("valid");
    let emu = Emulator::start(addr).await.expect("starts");
    let base = format!("http://{}", emu.addr());
    let client = reqwest::Client::new();

    let set = post_json(
        &client,
        &format!("{base}/_control/faults"),
        &json!({"status": 503, "count": 2, "retry_after": "3"}),
    )
    .await;
    assert_eq!(set.status().as_u16(), 204);

    let mut statuses = Vec::new();
    for id in ["a", "b", "a"] {
        let r = client
            .post(format!("{base}/anything"))
            .header("idempotency-key", id)
            .body(wire(id).to_string())
            .send()
            .await
            .expect("sent");
        statuses.push((r.status().as_u16(), r.headers().contains_key("retry-after")));
    }
    assert_eq!(statuses, vec![(503, true), (503, true), (200, false)]);

    let faults = json_of(
        client
            .get(format!("{base}/_control/faults"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(faults["count"], json!(0), "both faulted requests used up");

    let summary = json_of(
        client
            .get(format!("{base}/_control/received"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(summary["requests"], json!(3));
    assert_eq!(summary["distinct"], json!(1));
    assert_eq!(summary["messages"][0]["id"], json!("a"));

    let one = client
        .get(format!("{base}/_control/received/a"))
        .send()
        .await
        .expect("sent");
    assert_eq!(one.status().as_u16(), 200);
    assert_eq!(json_of(one).await["body"]["kind"], json!("http.post"));
    let none = client
        .get(format!("{base}/_control/received/b"))
        .send()
        .await
        .expect("sent");
    assert_eq!(none.status().as_u16(), 404);

    let cleared = client
        .delete(format!("{base}/_control/received"))
        .send()
        .await
        .expect("sent");
    assert_eq!(cleared.status().as_u16(), 204);
    assert_eq!(emu.received().messages.len(), 0);
}

#[tokio::test]
async fn bad_fault_settings_and_bad_messages_are_refused_with_a_reason() {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("valid");
    let emu = Emulator::start(addr).await.expect("starts");
    let base = format!("http://{}", emu.addr());
    let client = reqwest::Client::new();

    let typo = post_json(
        &client,
        &format!("{base}/_control/faults"),
        &json!({"stauts": 500}),
    )
    .await;
    assert_eq!(typo.status().as_u16(), 400);
    assert!(json_of(typo).await["error"]
        .as_str()
        .unwrap_or_default()
        .contains("stauts"));
    let ratio = post_json(
        &client,
        &format!("{base}/_control/faults"),
        &json!({"ratio": 2.0}),
    )
    .await;
    assert_eq!(ratio.status().as_u16(), 400);
    // As `curl -d` sends it: a form Content-Type, JSON inside.
    let curl_like = client
        .post(format!("{base}/_control/faults"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"status": 502, "count": 1}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(curl_like.status().as_u16(), 204);
    let faulted = client
        .post(format!("{base}/messages"))
        .header("idempotency-key", "q")
        .body(wire("q").to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(faulted.status().as_u16(), 502);

    let no_key = client
        .post(format!("{base}/messages"))
        .body(wire("z").to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(no_key.status().as_u16(), 400);
    let mismatch = client
        .post(format!("{base}/messages"))
        .header("idempotency-key", "y")
        .body(wire("z").to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(mismatch.status().as_u16(), 400);
    let get = client
        .get(format!("{base}/messages"))
        .send()
        .await
        .expect("sent");
    assert_eq!(get.status().as_u16(), 405);
    assert!(emu.received().messages.is_empty());

    // A fresh emulator's wait_for(0) is immediately satisfied and stays usable after shutdown.
    tokio::time::timeout(Duration::from_secs(5), emu.wait_for(0))
        .await
        .expect("nothing to wait for");
    emu.shutdown().await;
}
