//! The syslog sinks against a real rsyslogd started by each test: events arrive over UDP, TCP
//! and TLS as RFC 5424 with every field; a TCP receiver killed mid-load and restarted loses no
//! event (duplicates only, identifiable by id); a full spool counts its drops and reports them
//! as an `AUDIT_DROPPED` event once the receiver is back.
mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{
    as_recorded, assert_line_matches, free_tcp_port, free_udp_port, line_id, make_certs,
    sample_events, wait_for_lines, Ports, Rsyslog, TempDir,
};
use qaqpa_audit::{AuditConfig, AuditEvent, Auditor, SyslogTarget};

const HOST: &str = "gw-test.example.kz";

fn config(dir: &TempDir, targets: Vec<SyslogTarget>, spool_max_bytes: u64) -> AuditConfig {
    AuditConfig {
        syslog: targets,
        spool_dir: dir.path().join("spool"),
        spool_max_bytes,
        hostname: Some(HOST.into()),
        app_name: "qaqpa".into(),
        ..AuditConfig::default()
    }
}

fn fast(url: String) -> SyslogTarget {
    SyslogTarget {
        backoff_initial_ms: 20,
        backoff_max_ms: 200,
        ..SyslogTarget::new(url)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_over_udp_tcp_and_tls_as_rfc5424_with_every_field() {
    let dir = TempDir::new("qaqpa-audit-rsyslog").expect("dir");
    let certs = make_certs(dir.path());
    let ports = Ports {
        udp: Some(free_udp_port()),
        tcp: Some(free_tcp_port()),
        tls: Some(free_tcp_port()),
    };
    let out = dir.path().join("rsyslog");
    std::fs::create_dir_all(&out).expect("out dir");
    let _rsyslog = Rsyslog::start(&out, ports, Some(&certs));
    let tls = SyslogTarget {
        ca_file: Some(certs.ca.clone()),
        ..fast(format!("tls://localhost:{}", ports.tls.expect("tls")))
    };
    let auditor = Auditor::new(
        &config(
            &dir,
            vec![
                fast(format!("udp://127.0.0.1:{}", ports.udp.expect("udp"))),
                fast(format!("tcp://127.0.0.1:{}", ports.tcp.expect("tcp"))),
                tls,
            ],
            1 << 20,
        ),
        None,
    )
    .expect("auditor");
    let events = sample_events();
    for e in &events {
        auditor.record(e.clone());
    }
    let report = auditor.flush().await;
    assert!(report.sent, "{report:?} {:?}", auditor.sink_stats());
    let by_id: HashMap<String, AuditEvent> = events
        .iter()
        .map(|e| (e.id.to_string(), as_recorded(e)))
        .collect();
    for input in ["udp", "tcp", "tls"] {
        let lines = wait_for_lines(&out, input, Duration::from_secs(20), |l| {
            l.len() >= events.len()
        })
        .await;
        assert_eq!(
            lines.len(),
            events.len(),
            "{input}: exactly one line per event"
        );
        let mut seen = HashSet::new();
        for line in &lines {
            let id = line_id(line).unwrap_or_else(|| panic!("{input}: no id in {line}"));
            let event = by_id
                .get(&id)
                .unwrap_or_else(|| panic!("{input}: unknown id {id}"));
            assert_line_matches(line, event, HOST, "qaqpa");
            seen.insert(id);
        }
        assert_eq!(seen.len(), events.len(), "{input}: every event");
        // No IIN reaches the SOC unmasked.
        for line in &lines {
            assert!(!line.contains("870101300123") && !line.contains("123456789012"));
        }
    }
    for s in auditor.sink_stats() {
        assert_eq!(s.sent, events.len() as u64, "{s:?}");
        assert_eq!((s.spooled, s.dropped), (0, 0), "{s:?}");
        assert!(s.connected, "{s:?}");
    }
    auditor.shutdown(Duration::from_secs(5)).await;
}

/// Sends `N` events while the receiver is killed (SIGKILL) after 2 500 and restarted on the
/// same port after 4 000; every event must arrive, in order once duplicates are set aside.
async fn receiver_killed_mid_load_and_restarted_loses_no_event(tls: bool) {
    let dir = TempDir::new("qaqpa-audit-rsyslog-kill").expect("dir");
    let certs = tls.then(|| make_certs(dir.path()));
    let port = free_tcp_port();
    let (ports, input, target) = if tls {
        (
            Ports {
                tls: Some(port),
                ..Ports::default()
            },
            "tls",
            SyslogTarget {
                ca_file: certs.as_ref().map(|c| c.ca.clone()),
                ..fast(format!("tls://localhost:{port}"))
            },
        )
    } else {
        (
            Ports {
                tcp: Some(port),
                ..Ports::default()
            },
            "tcp",
            fast(format!("tcp://127.0.0.1:{port}")),
        )
    };
    let out = dir.path().join("rsyslog");
    std::fs::create_dir_all(&out).expect("out dir");
    let rsyslog = Rsyslog::start(&out, ports, certs.as_ref());
    let auditor = Auditor::new(&config(&dir, vec![target], 64 << 20), None).expect("auditor");
    const N: usize = 5000;
    let mut ids = Vec::with_capacity(N);
    let mut rsyslog = Some(rsyslog);
    for i in 0..N {
        let e =
            AuditEvent::auth_ok("qaqpa-api", &format!("key-{i}")).transaction(format!("tx-{i}"));
        ids.push(e.id.to_string());
        auditor.record(e);
        if i == 2500 {
            // Crash the receiver (SIGKILL) while a burst is in flight: once some lines have
            // been written out, the rest of the burst is in the sink's channel, the socket
            // buffers or rsyslog's queue.
            wait_for_lines(&out, input, Duration::from_secs(20), |l| l.len() >= 200).await;
            if let Some(r) = rsyslog.take() {
                r.kill();
            }
        }
        if i > 2500 && i % 50 == 0 {
            // Recording goes on while the receiver is down, at a gateway's pace.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if i == 4000 {
            rsyslog = Some(Rsyslog::start(&out, ports, certs.as_ref()));
        }
    }
    // The receiver is back: flush until the spool is drained.
    let mut flushed = false;
    for _ in 0..400 {
        if auditor.flush().await.sent {
            flushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = auditor.sink_stats().remove(0);
    assert!(flushed, "never drained: {stats:?}");
    let lines = wait_for_lines(&out, input, Duration::from_secs(30), |lines| {
        let got: HashSet<String> = lines.iter().filter_map(|l| line_id(l)).collect();
        ids.iter().all(|id| got.contains(id))
    })
    .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        let id = line_id(line).unwrap_or_else(|| panic!("line without id: {line}"));
        *counts.entry(id).or_default() += 1;
    }
    let expected: HashSet<&String> = ids.iter().collect();
    assert!(
        counts.keys().all(|id| expected.contains(id)),
        "only our events arrive"
    );
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    let stats = auditor.sink_stats().remove(0);
    println!(
        "{input}: {N} events, {} lines received, {duplicates} duplicates; stats {stats:?}",
        lines.len()
    );
    assert_eq!(lines.len(), N + duplicates);
    // Without the duplicates (first arrival of each id), the order is the recording order.
    let mut first_seen = HashSet::new();
    let order: Vec<String> = lines
        .iter()
        .filter_map(|l| line_id(l))
        .filter(|id| first_seen.insert(id.clone()))
        .collect();
    assert!(order == ids, "events arrived out of order");
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert!(
        stats.spooled > 0,
        "events recorded while it was down were spooled: {stats:?}"
    );
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.spool_bytes, 0, "spool removed once sent: {stats:?}");
    let spool_files = std::fs::read_dir(dir.path().join("spool"))
        .expect("spool dir")
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten())
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().starts_with("seg-"))
        .count();
    assert_eq!(spool_files, 0, "no spool segment left");
    auditor.shutdown(Duration::from_secs(5)).await;
    drop(rsyslog);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_receiver_killed_mid_load_and_restarted_loses_no_event() {
    receiver_killed_mid_load_and_restarted_loses_no_event(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_receiver_killed_mid_load_and_restarted_loses_no_event() {
    receiver_killed_mid_load_and_restarted_loses_no_event(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_spool_counts_drops_and_reports_them_when_the_receiver_returns() {
    let dir = TempDir::new("qaqpa-audit-rsyslog-drop").expect("dir");
    let port = free_tcp_port();
    let ports = Ports {
        tcp: Some(port),
        ..Ports::default()
    };
    let out = dir.path().join("rsyslog");
    std::fs::create_dir_all(&out).expect("out dir");
    // Room for a few lines only; nothing listens on the port yet.
    let auditor = Auditor::new(
        &config(&dir, vec![fast(format!("tcp://127.0.0.1:{port}"))], 4096),
        None,
    )
    .expect("auditor");
    let mut ids = Vec::new();
    for i in 0..100 {
        let e = AuditEvent::auth_fail("qaqpa-api", Some(&format!("key-{i}")), "bad secret");
        ids.push(e.id.to_string());
        auditor.record(e);
    }
    let report = auditor.flush().await;
    assert!(!report.sent, "the receiver is down");
    let stats = auditor.sink_stats().remove(0);
    assert!(stats.spooled > 0 && stats.dropped > 0, "{stats:?}");
    assert_eq!(stats.spooled + stats.dropped, 100, "{stats:?}");
    assert!(stats.spool_bytes <= 4096, "{stats:?}");

    let _rsyslog = Rsyslog::start(&out, ports, None);
    let mut flushed = false;
    for _ in 0..400 {
        if auditor.flush().await.sent {
            flushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(flushed, "{:?}", auditor.sink_stats());
    let spooled = stats.spooled as usize;
    let lines = wait_for_lines(&out, "tcp", Duration::from_secs(20), |l| l.len() > spooled).await;
    // The spooled events first, in order, then the drop report.
    let got: Vec<String> = lines.iter().filter_map(|l| line_id(l)).collect();
    assert_eq!(&got[..spooled], &ids[..spooled]);
    let last = syslog_rfc5424::parse_message(lines.last().expect("a line")).expect("RFC 5424");
    assert_eq!(last.msgid.as_deref(), Some("AUDIT_DROPPED"));
    assert_eq!(
        last.sd
            .find_tuple(qaqpa_audit::syslog::SD_ID, "count")
            .map(String::as_str),
        Some(stats.dropped.to_string().as_str()),
        "{lines:?}"
    );
    assert_eq!(lines.len(), spooled + 1);
    auditor.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sink_refuses_a_receiver_whose_certificate_is_not_from_the_configured_ca() {
    let dir = TempDir::new("qaqpa-audit-rsyslog-ca").expect("dir");
    let certs = make_certs(dir.path());
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&other_dir).expect("dir");
    let other = make_certs(&other_dir);
    let port = free_tcp_port();
    let ports = Ports {
        tls: Some(port),
        ..Ports::default()
    };
    let out = dir.path().join("rsyslog");
    std::fs::create_dir_all(&out).expect("out dir");
    let _rsyslog = Rsyslog::start(&out, ports, Some(&certs));
    let target = SyslogTarget {
        ca_file: Some(other.ca.clone()),
        ..fast(format!("tls://localhost:{port}"))
    };
    let auditor = Auditor::new(&config(&dir, vec![target], 1 << 20), None).expect("auditor");
    auditor.record(AuditEvent::auth_ok("qaqpa-api", "key-1"));
    let report = auditor.flush().await;
    assert!(!report.sent);
    let stats = auditor.sink_stats().remove(0);
    assert_eq!((stats.sent, stats.spooled), (0, 1), "{stats:?}");
    assert!(Rsyslog::lines(&out, "tls").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_spools_what_it_cannot_send_and_the_next_run_sends_it() {
    let dir = TempDir::new("qaqpa-audit-rsyslog-shutdown").expect("dir");
    let port = free_tcp_port();
    let ports = Ports {
        tcp: Some(port),
        ..Ports::default()
    };
    let out = dir.path().join("rsyslog");
    std::fs::create_dir_all(&out).expect("out dir");
    let target = fast(format!("tcp://127.0.0.1:{port}"));
    // Nothing listens: shutdown gives up at its deadline and leaves the events in the spool.
    let auditor =
        Auditor::new(&config(&dir, vec![target.clone()], 1 << 20), None).expect("auditor");
    let mut ids = Vec::new();
    for i in 0..50 {
        let e = AuditEvent::auth_ok("qaqpa-api", &format!("key-{i}"));
        ids.push(e.id.to_string());
        auditor.record(e);
    }
    let started = std::time::Instant::now();
    let report = auditor.shutdown(Duration::from_millis(300)).await;
    assert!(!report.sent);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown kept its deadline"
    );
    let stats = auditor.sink_stats().remove(0);
    assert_eq!(
        (stats.spooled, stats.dropped, stats.sent),
        (50, 0, 0),
        "{stats:?}"
    );
    drop(auditor);

    // The next run, with the receiver up, sends the spool first.
    let _rsyslog = Rsyslog::start(&out, ports, None);
    let auditor = Auditor::new(&config(&dir, vec![target], 1 << 20), None).expect("auditor");
    let after = AuditEvent::auth_ok("qaqpa-api", "key-after");
    ids.push(after.id.to_string());
    auditor.record(after);
    let mut flushed = false;
    for _ in 0..400 {
        if auditor.flush().await.sent {
            flushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(flushed, "{:?}", auditor.sink_stats());
    let lines = wait_for_lines(&out, "tcp", Duration::from_secs(20), |l| l.len() >= 51).await;
    let got: Vec<String> = lines.iter().filter_map(|l| line_id(l)).collect();
    assert_eq!(got, ids, "spooled events first, in order, then the new one");
    let report = auditor.shutdown(Duration::from_secs(5)).await;
    assert!(report.sent, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_longer_than_the_in_memory_intake_arrives_complete_and_in_order() {
    let dir = TempDir::new("qaqpa-audit-rsyslog-burst").expect("dir");
    let port = free_tcp_port();
    let ports = Ports {
        tcp: Some(port),
        ..Ports::default()
    };
    let out = dir.path().join("rsyslog");
    std::fs::create_dir_all(&out).expect("out dir");
    let _rsyslog = Rsyslog::start(&out, ports, None);
    let auditor = Auditor::new(
        &config(
            &dir,
            vec![fast(format!("tcp://127.0.0.1:{port}"))],
            64 << 20,
        ),
        None,
    )
    .expect("auditor");
    let n = qaqpa_audit::sink::SPILL_AT * 3;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let e = AuditEvent::auth_ok("qaqpa-api", &format!("key-{i}"));
        ids.push(e.id.to_string());
        auditor.record(e);
    }
    assert!(auditor.flush().await.sent, "{:?}", auditor.sink_stats());
    let lines = wait_for_lines(&out, "tcp", Duration::from_secs(30), |l| l.len() >= n).await;
    let got: Vec<String> = lines.iter().filter_map(|l| line_id(l)).collect();
    assert!(got == ids, "{} lines, not the recorded sequence", got.len());
    let stats = auditor.sink_stats().remove(0);
    assert_eq!((stats.sent, stats.dropped), (n as u64, 0), "{stats:?}");
    auditor.shutdown(Duration::from_secs(5)).await;
}

/// On one thread the sink's task cannot run while events are recorded, so the intake fills:
/// the recording thread then moves it to the spool itself, and nothing is dropped. Every event
/// arrives, in the order recorded.
#[tokio::test(flavor = "current_thread")]
async fn events_beyond_a_full_intake_are_spooled_not_dropped_and_all_arrive_in_order() {
    let dir = TempDir::new("qaqpa-audit-rsyslog-intake").expect("dir");
    let port = free_tcp_port();
    let ports = Ports {
        tcp: Some(port),
        ..Ports::default()
    };
    let out = dir.path().join("rsyslog");
    std::fs::create_dir_all(&out).expect("out dir");
    let _rsyslog = Rsyslog::start(&out, ports, None);
    let auditor = Auditor::new(
        &config(
            &dir,
            vec![fast(format!("tcp://127.0.0.1:{port}"))],
            256 << 20,
        ),
        None,
    )
    .expect("auditor");
    let kept = qaqpa_audit::sink::INTAKE_CAPACITY;
    let n = kept + 7;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let e = AuditEvent::auth_ok("qaqpa-api", &format!("key-{i}"));
        ids.push(e.id.to_string());
        auditor.record(e);
    }
    let stats = auditor.sink_stats().remove(0);
    assert_eq!(
        (stats.sent, stats.spooled, stats.dropped),
        (0, kept as u64, 0),
        "{stats:?}"
    );
    assert!(auditor.flush().await.sent, "{:?}", auditor.sink_stats());
    let lines = wait_for_lines(&out, "tcp", Duration::from_secs(60), |l| l.len() >= n).await;
    let got: Vec<String> = lines.iter().filter_map(|l| line_id(l)).collect();
    assert!(got == ids, "{} lines, not the recorded sequence", got.len());
    assert!(
        !lines.iter().any(|l| l.contains("AUDIT_DROPPED")),
        "nothing was dropped"
    );
    auditor.shutdown(Duration::from_secs(5)).await;
}
