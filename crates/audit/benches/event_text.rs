//! Benchmark: what one event costs to write down, on the thread that records it, for the
//! gateway's two busiest events (a message accepted, a message delivered): its journal record
//! text (`Entry::without_event`, the JSON the chain hashes) and its RFC 5424 line
//! (`Formatter::format_with`), in ns per event; then how a journal block of 1,024 delivery
//! records compresses with zstd level 1: as the journal writes it (the records' hashes in a
//! column of their own, the 2^11 table of `BLOCK_ZSTD_HASH_LOG` in `src/store/sqlite.rs`),
//! and as it did before (each line with its hash, with zstd's own table and the 2^11 one).
//!
//! `cargo bench -p qaqpa-audit --bench event_text` (`QAQPA_AUDIT_BENCH_EVENTS`, default
//! 200 000 per measurement).
#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use qaqpa_audit::syslog::{Formatter, Scratch};
use qaqpa_audit::{AuditEvent, Entry};
use sha2::Digest;

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
        let text = per_event(&events, parity, |e| {
            Entry::without_event(e).map(|x| x.body().len()).unwrap_or(0)
        });
        let line = per_event(&events, parity, |e| {
            formatter.format_with(e, &mut scratch).len()
        });
        let sample = &events[parity];
        println!(
            "{name}: record text {text:.0} ns ({} bytes), syslog line {line:.0} ns ({} bytes)",
            Entry::without_event(sample)
                .map(|x| x.body().len())
                .unwrap_or(0),
            formatter.format(sample).len()
        );
    }

    // A journal block as the SQLite journal writes it, `<seq> <text>` per record (the hashes
    // have a column of their own), and as it did before, `<seq> <hash> <text>`.
    let mut block = Vec::new();
    let mut with_hashes = Vec::new();
    let mut prev = [b'0'; 64];
    for (seq, e) in events.iter().skip(1).step_by(2).take(1024).enumerate() {
        let body = Entry::without_event(e)
            .expect("serialisable")
            .body()
            .to_owned();
        let mut h = sha2::Sha256::new();
        h.update(prev);
        h.update((seq as u64).to_be_bytes());
        h.update(body.as_bytes());
        let hash = hex::encode(h.finalize());
        prev.copy_from_slice(hash.as_bytes());
        block.extend_from_slice(format!("{seq} {body}\n").as_bytes());
        with_hashes.extend_from_slice(format!("{seq} {hash} {body}\n").as_bytes());
    }
    for (name, text, hash_log) in [
        ("hashes in the text, zstd's own table", &with_hashes, None),
        ("hashes in the text, 2^11 table", &with_hashes, Some(11)),
        ("hashes apart (now), 2^11 table", &block, Some(11)),
    ] {
        let mut c = zstd::bulk::Compressor::new(1).expect("zstd");
        if let Some(log) = hash_log {
            c.set_parameter(zstd::zstd_safe::CParameter::HashLog(log))
                .expect("hash log");
        }
        let rounds = 100;
        let start = Instant::now();
        let mut size = 0;
        for _ in 0..rounds {
            size = c.compress(black_box(text)).expect("compresses").len();
        }
        let secs = start.elapsed().as_secs_f64() / f64::from(rounds);
        println!(
            "block of 1024 delivery records ({} bytes), level 1, {name}: {:.2}x smaller, {:.0} MB/s, {:.0} ns per record",
            text.len(),
            text.len() as f64 / size as f64,
            text.len() as f64 / secs / 1e6,
            secs * 1e9 / 1024.0
        );
    }
}
