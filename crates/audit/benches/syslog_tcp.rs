//! Benchmark: RFC 5424 formatting rate, and events per second through `Auditor::record` and a
//! TCP sink into a local rsyslogd (started here), measured until rsyslog has written every
//! line. `QAQPA_AUDIT_BENCH_EVENTS` sets the count (default 100 000).
//!
//! `cargo bench -p qaqpa-audit --bench syslog_tcp`
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{free_tcp_port, sample_events, Ports, Rsyslog, TempDir};
use qaqpa_audit::syslog::{Formatter, Scratch};
use qaqpa_audit::{AuditConfig, AuditEvent, Auditor, SyslogTarget};

fn main() {
    let n: usize = std::env::var("QAQPA_AUDIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    // Formatting alone, into reused buffers as a sink does.
    let f = Formatter::new(13, "gw-1.example.kz", "qaqpa");
    let samples = sample_events();
    let mut scratch = Scratch::default();
    let start = Instant::now();
    let mut bytes = 0usize;
    for i in 0..n {
        bytes += f
            .format_with(&samples[i % samples.len()], &mut scratch)
            .len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "format: {n} events in {secs:.3} s = {:.0} events/s (mean line {} bytes)",
        n as f64 / secs,
        bytes / n
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = TempDir::new("qaqpa-audit-bench").expect("dir");
        let out = dir.path().join("rsyslog");
        std::fs::create_dir_all(&out).expect("out dir");
        let port = free_tcp_port();
        let _rsyslog = Rsyslog::start(
            &out,
            Ports {
                tcp: Some(port),
                ..Ports::default()
            },
            None,
        );
        let config = AuditConfig {
            syslog: vec![SyslogTarget::new(format!("tcp://127.0.0.1:{port}"))],
            spool_dir: dir.path().join("spool"),
            hostname: Some("gw-1.example.kz".into()),
            ..AuditConfig::default()
        };
        let auditor = Auditor::new(&config, None).expect("auditor");
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| {
                let mut e = samples[i % samples.len()].clone();
                e.id = uuid::Uuid::now_v7();
                e
            })
            .collect();
        let start = Instant::now();
        for e in events {
            auditor.record(e);
        }
        let recorded = start.elapsed();
        let mut flushed = false;
        for _ in 0..600 {
            if auditor.flush().await.sent {
                flushed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent = start.elapsed();
        assert!(flushed, "not drained: {:?}", auditor.sink_stats());
        let stats = auditor.sink_stats().remove(0);
        let expected = n - stats.dropped as usize;
        common::wait_for_lines(&out, "tcp", Duration::from_secs(120), |l| l.len() >= expected)
            .await;
        let received = start.elapsed();
        println!(
            "record(): {n} calls in {:.3} s = {:.2} µs/call",
            recorded.as_secs_f64(),
            recorded.as_secs_f64() * 1e6 / n as f64
        );
        println!(
            "tcp sink: {n} events sent in {:.3} s = {:.0} events/s; written by rsyslog after {:.3} s = {:.0} events/s",
            sent.as_secs_f64(),
            n as f64 / sent.as_secs_f64(),
            received.as_secs_f64(),
            n as f64 / received.as_secs_f64()
        );
        println!("sink stats: {stats:?}");
        auditor.shutdown(Duration::from_secs(5)).await;
    });
}
