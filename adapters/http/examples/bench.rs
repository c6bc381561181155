//! Loopback throughput of the HTTP adapter into its emulator: how many messages per second the
//! emulator accepts from `HttpAdapter::deliver`, with latency percentiles. Both run in this one
//! process on tokio's multi-threaded runtime, sharing the machine's cores.
//!
//! Usage: `cargo run --release -p qaqpa-adapter-http --example bench -- [MESSAGES] [CONCURRENCY]
//! [counting]` (defaults 20000 and 32; `counting`: the emulator keeps no bodies). It measures; it must never be taken as a test.
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use qaqpa_adapter_http::{Emulator, EmulatorState, HttpAdapter};
use qaqpa_core::adapter::toml_value::Table;
use qaqpa_core::{
    Adapter, AttachmentSource, ClientId, Cx, ExchangeMeter, Failure, MessageId, Outgoing,
};

struct NoAttachments;

#[async_trait]
impl AttachmentSource for NoAttachments {
    async fn read(&self, index: usize) -> Result<Bytes, Failure> {
        Err(Failure::permanent(
            "attachment_missing",
            format!("no attachment {index}"),
        ))
    }
}

fn message() -> Outgoing {
    // A document card of about 1 KiB.
    let text = "Ә".repeat(480);
    Outgoing {
        id: MessageId::new(),
        client: ClientId("bench".into()),
        kind: "http.post".into(),
        to: "sandbox-echo".into(),
        document: serde_json::json!({ "docNo": "01-12/345", "text": text }),
        attachments: Vec::new(),
        signatures: Vec::new(),
        created_at: time::OffsetDateTime::now_utc(),
        attempt: 1,
        transaction_id: "bench".into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let concurrency: usize = args.next().map_or(Ok(32), |a| a.parse())?;

    let state = match args.next().as_deref() {
        Some("counting") => EmulatorState::counting_only(),
        _ => EmulatorState::default(),
    };
    let emu = Emulator::start_with_state("127.0.0.1:0".parse()?, state).await?;
    let adapter = Arc::new(HttpAdapter::new()?);
    let mut settings = Table::new();
    settings.insert("url".into(), serde_json::Value::String(emu.url()));
    let settings = Arc::new(settings);

    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (adapter, settings, next) = (adapter.clone(), settings.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let msg = message();
                let meter = ExchangeMeter::new();
                let cx = Cx {
                    deadline: Instant::now() + Duration::from_secs(10),
                    settings: &settings,
                    attachments: &NoAttachments,
                    transaction_id: &msg.transaction_id,
                    meter: &meter,
                };
                let t = Instant::now();
                match adapter.deliver(&msg, &cx).await {
                    Ok(_) => latencies.push(t.elapsed()),
                    Err(_) => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut failures = 0;
    for w in workers {
        let (l, f) = w.await?;
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    emu.wait_for(latencies.len()).await;
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).copied().unwrap_or_default()
    };
    println!(
        "messages={} failures={} concurrency={} elapsed={:.2}s rate={:.0} msg/s p50={:.2}ms p99={:.2}ms distinct_at_emulator={}",
        latencies.len(),
        failures,
        concurrency,
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        emu.received().messages.len(),
    );
    emu.shutdown().await;
    Ok(())
}
