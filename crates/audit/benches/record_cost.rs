//! Benchmark: the CPU one audit event costs the gateway's process, end to end, away from the
//! noise of a whole gateway benchmark: two tokio workers record the gateway's busiest events
//! (accepts and deliveries, alternating) through [`Auditor::record`] into the SQLite journal
//! and a TCP syslog sink, until [`Auditor::flush`] says everything is stored and sent.
//!
//! The events come at a steady rate (`QAQPA_AUDIT_BENCH_RATE`, default 40 000 per second,
//! about what this project's delivery benchmark produces; recorded flat out, they would only
//! measure the bounds of the queues). The receiver is a thread of this process that reads the
//! stream and throws it away; its CPU is left out (a SOC's receiver runs elsewhere). Prints
//! µs of CPU per event for the recording workers (formatting, the hand-over, the sink's
//! sends) and the journal's thread, read from `/proc/self/task` (10 ms ticks, so runs are
//! long enough for that not to matter). Building the events is not counted.
//!
//! `cargo bench -p qaqpa-audit --bench record_cost` (`QAQPA_AUDIT_BENCH_EVENTS`, default
//! 400 000; `QAQPA_AUDIT_BENCH_ROUNDS`, default 3; `QAQPA_AUDIT_BENCH_RATE`;
//! `QAQPA_AUDIT_BENCH_WORKERS`, default 2: with 1, both recording tasks, the sink's task and
//! the timers share one thread, which shows what handing the work across cores costs).
#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use common::TempDir;
use qaqpa_audit::{AuditConfig, AuditEvent, AuditStore, Auditor, SqliteAuditStore, SyslogTarget};

/// Each recording task records its share of the rate once per tick.
const TICK: std::time::Duration = std::time::Duration::from_millis(10);
const TICKS_PER_SEC: usize = 100;

/// CPU ticks (user + system) so far per thread name, over this process's threads.
fn ticks_by_thread() -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let used = fields
            .get(11)
            .and_then(|u| u.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
        *out.entry(name).or_insert(0) += used;
    }
    out
}

/// A receiver that reads every connection to the end and keeps nothing.
fn discarding_receiver() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::Builder::new()
        .name("discard-rx".into())
        .spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            }
        })
        .expect("receiver thread");
    port
}

fn main() {
    let n: usize = std::env::var("QAQPA_AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000);
    let rounds: usize = std::env::var("QAQPA_AUDIT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rate: usize = std::env::var("QAQPA_AUDIT_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let workers: usize = std::env::var("QAQPA_AUDIT_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let per_tick = (rate / 2 / TICKS_PER_SEC).max(1);
    let port = discarding_receiver();
    let hz = 100.0; // USER_HZ on Linux
    for round in 1..=rounds {
        let events = common::accept_and_delivery_events(n);
        let dir = TempDir::new("qaqpa-audit-record-cost").expect("dir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("recorder")
            .enable_all()
            .build()
            .expect("runtime");
        let (secs, before, after) = rt.block_on(async {
            let store: Arc<dyn AuditStore> =
                Arc::new(SqliteAuditStore::open(&dir.path().join("journal")).expect("journal"));
            let config = AuditConfig {
                syslog: vec![SyslogTarget::new(format!("tcp://127.0.0.1:{port}"))],
                spool_dir: dir.path().join("spool"),
                ..AuditConfig::default()
            };
            let auditor = Auditor::new(&config, Some(store)).expect("auditor");
            // Half the events to each of two tasks, as two workers would record them, at the
            // set rate in all.
            let halves: Vec<Vec<AuditEvent>> = {
                let mut events = events;
                let second = events.split_off(events.len() / 2);
                vec![events, second]
            };
            let before = ticks_by_thread();
            let start = Instant::now();
            let tasks: Vec<_> = halves
                .into_iter()
                .map(|half| {
                    let auditor = auditor.clone();
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(TICK);
                        let mut events = half.into_iter().peekable();
                        while events.peek().is_some() {
                            tick.tick().await;
                            for e in events.by_ref().take(per_tick) {
                                auditor.record(e);
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("recording task");
            }
            let report = auditor.flush().await;
            assert!(report.stored && report.sent, "{report:?}");
            let secs = start.elapsed().as_secs_f64();
            let after = ticks_by_thread();
            let stats = auditor.sink_stats().remove(0);
            assert_eq!(stats.sent, n as u64, "{stats:?}");
            assert_eq!(auditor.store_stats().appended, n as u64);
            auditor.shutdown(std::time::Duration::from_secs(10)).await;
            (secs, before, after)
        });
        drop(rt);
        let used = |name: &str| {
            (after.get(name).copied().unwrap_or(0) as f64
                - before.get(name).copied().unwrap_or(0) as f64)
                / hz
                * 1e6
                / n as f64
        };
        let workers = used("recorder");
        let journal = used("qaqpa-audit-db");
        println!(
            "round {round}: {n} events in {secs:.2} s ({:.0}/s): recording workers {workers:.2} µs/event, journal thread {journal:.2} µs/event, together {:.2} µs/event",
            n as f64 / secs,
            workers + journal
        );
    }
}
