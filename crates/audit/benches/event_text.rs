//! Benchmark: what one event costs to write down, on the thread that records it, for the
//! gateway's two busiest events (a message accepted, a message delivered): its RFC 5424 line
//! in two parts (`Formatter::format_parts`) and a copy of the MSG, which is what the auditor
//! writes when a syslog sink is configured (the copy is the journal's record text); its record
//! text alone (`Entry::without_event`, the MSG written without a line, as without a sink);
//! and, for comparison, its JSON (what the record text was before 2026-12-03), in ns per
//! event. Then how a journal block of 1,024 delivery records compresses with zstd level 1 as
//! the journal writes it (`<seq> <record>` lines, the 2^11 table of `BLOCK_ZSTD_HASH_LOG` in
//! `src/store/sqlite.rs`), with MSG records (now) and with JSON records (before).
//!
//! `cargo bench -p qaqpa-audit --bench event_text` (`QAQPA_AUDIT_BENCH_EVENTS`, default
//! 200 000 per measurement).
#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use qaqpa_audit::syslog::{Formatter, Scratch};
use qaqpa_audit::{AuditEvent, Entry};

/// Runs `f` on every event of one kind (`parity` 0: accepts, 1: deliveries); ns per event.
fn per_event(events: &[AuditEvent], parity: usize, mut f: impl FnMut(&AuditEvent) -> usize) -> f64 {
    let chosen: Vec<&AuditEvent> = events.iter().skip(parity).step_by(2).collect();
    let start = Instant::now();
    let mut bytes = 0;
    for e in &chosen {
        bytes += f(e);
    }
    black_box(bytes);
    start.elapsed().as_secs_f64() * 1e9 / chosen.len() as f64
}

fn main() {
    let n: usize = std::env::var("QAQPA_AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let events = common::accept_and_delivery_events(2 * n);
    let formatter = Formatter::new(13, "gw-1.example.kz", "qaqpa");
    let mut scratch = Scratch::default();
    for (parity, name) in [(1, "delivery (EXCHANGE)"), (0, "accept (ACCEPTED)")] {
        let line_and_copy = per_event(&events, parity, |e| {
            let [head, msg] = formatter.format_parts(e, &mut scratch);
            head.len() + msg.to_owned().len()
        });
        let text = per_event(&events, parity, |e| {
            Entry::without_event(e).map(|x| x.body().len()).unwrap_or(0)
        });
        let json = per_event(&events, parity, |e| {
            serde_json::to_string(e).map(|j| j.len()).unwrap_or(0)
        });
        let sample = &events[parity];
        println!(
            "{name}: syslog line and a copy of its MSG {line_and_copy:.0} ns ({} bytes), \
             record text alone {text:.0} ns ({} bytes), JSON through serde {json:.0} ns ({} bytes)",
            formatter.format(sample).len(),
            Entry::without_event(sample)
                .map(|x| x.body().len())
                .unwrap_or(0),
            serde_json::to_string(sample).map(|j| j.len()).unwrap_or(0)
        );
    }

    // A journal block as the SQLite journal writes it, `<seq> <record>` per record (the
    // hashes have a column of their own), with MSG records (now) and JSON records (before:
    // the hand-written JSON is byte for byte serde's).
    let mut block = Vec::new();
    let mut json_block = Vec::new();
    for (seq, e) in events.iter().skip(1).step_by(2).take(1024).enumerate() {
        let body = Entry::without_event(e)
            .expect("serialisable")
            .body()
            .to_owned();
        let json = serde_json::to_string(e).expect("serialisable");
        block.extend_from_slice(format!("{seq} {body}\n").as_bytes());
        json_block.extend_from_slice(format!("{seq} {json}\n").as_bytes());
    }
    for (name, text) in [
        ("MSG records (now)", &block),
        ("JSON records (before)", &json_block),
    ] {
        let mut c = zstd::bulk::Compressor::new(1).expect("zstd");
        c.set_parameter(zstd::zstd_safe::CParameter::HashLog(11))
            .expect("hash log");
        let rounds = 100;
        let start = Instant::now();
        let mut size = 0;
        for _ in 0..rounds {
            size = c.compress(black_box(text)).expect("compresses").len();
        }
        let secs = start.elapsed().as_secs_f64() / f64::from(rounds);
        println!(
            "block of 1024 delivery records ({} bytes), level 1, 2^11 table, {name}: {:.2}x smaller, {:.0} MB/s, {:.0} ns per record",
            text.len(),
            text.len() as f64 / size as f64,
            text.len() as f64 / secs / 1e6,
            secs * 1e9 / 1024.0
        );
    }
}
