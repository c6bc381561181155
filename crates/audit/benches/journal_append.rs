//! Benchmark: appending to the SQLite audit journal the way the gateway does under load — a
//! message's accept and its exchange with the target, in batches of 256 — and what it costs
//! in CPU per event (the process's user + system time) and bytes on disk per event.
//! `QAQPA_AUDIT_BENCH_EVENTS` sets the count (default 200 000). Then: `verify`, a query by
//! transaction and one by a time window at the start of the journal.
//!
//! `cargo bench -p qaqpa-audit --bench journal_append`
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::TempDir;
use qaqpa_audit::{AuditStore, SqliteAuditStore};

/// CPU time (user + system) of the whole process so far, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of /proc/<pid>/stat, i.e. 11 and 12 after ") ".
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU time (user + system) so far of this process's threads named `name`, in seconds.
fn thread_cpu_seconds(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter(|stat| stat.contains(&format!("({name})")))
        .map(|stat| {
            let after = stat.rsplit(')').next().unwrap_or("");
            let f: Vec<f64> = after
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0.0))
                .collect();
            (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
        })
        .sum()
}

/// This process's resident set size, for the report.
fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let n: usize = std::env::var("QAQPA_AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = TempDir::new("qaqpa-journal-bench").expect("dir");
        let store = SqliteAuditStore::open(dir.path()).expect("journal");
        let all = common::accept_and_delivery_events(n);
        let rss_before = rss();
        let cpu0 = cpu_seconds();
        let journal0 = thread_cpu_seconds("qaqpa-audit-db");
        let start = Instant::now();
        for batch in all.chunks(256) {
            let batch = qaqpa_audit::batch(batch.iter().cloned()).expect("serialisable");
            store.append(batch).await.expect("append");
        }
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let journal_cpu = thread_cpu_seconds("qaqpa-audit-db") - journal0;
        let bytes: u64 = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        println!(
            "journal append: {n} events in {secs:.2} s = {:.0} events/s; CPU {:.1} µs/event (the journal's thread {:.1}); {} bytes/event on disk",
            n as f64 / secs,
            cpu * 1e6 / n as f64,
            journal_cpu * 1e6 / n as f64,
            bytes / n as u64
        );
        println!("resident: {rss_before} with the events built, {} after appending", rss());
        let start = Instant::now();
        let report = store.verify().await.expect("verify");
        assert!(report.is_ok(), "{report}");
        println!(
            "verify: {n} records in {:.2} s",
            start.elapsed().as_secs_f64()
        );
        let start = Instant::now();
        let filter = qaqpa_audit::AuditFilter {
            transaction_id: all[n / 2].transaction_id.clone(),
            ..Default::default()
        };
        let page = store.query(&filter, None, 100).await.expect("query");
        assert_eq!(page.records.len(), 2, "a message's accept and exchange");
        println!(
            "query by transaction: {} records in {:.1} ms",
            page.records.len(),
            start.elapsed().as_secs_f64() * 1e3
        );
        // A window at the very start of the journal: found through the blocks' time
        // bookkeeping, not by walking every newer block.
        let start = Instant::now();
        let filter = qaqpa_audit::AuditFilter {
            from: Some(all[0].time),
            to: Some(all[n / 1000].time),
            ..Default::default()
        };
        let page = store.query(&filter, None, 100).await.expect("query");
        assert!(!page.records.is_empty(), "the oldest records are in the window");
        println!(
            "query by time, oldest 0.1%: {} records in {:.1} ms",
            page.records.len(),
            start.elapsed().as_secs_f64() * 1e3
        );
    });
}
