//! A CRL of 100,000 entries parses with bounded memory: a child process (this test binary,
//! re-run on one test) reads and parses it and reports its peak resident set (VmHWM).

mod common;

use common::*;
use qaqpa_pki::Crl;

const CHILD_ENV: &str = "QAQPA_PKI_CRL_MEMORY_CHILD";

fn peak_rss_kib() -> u64 {
    let status =
        std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux) is needed");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Run in the child only: parse the CRL named by the environment and print the peak.
#[test]
fn child_parses_crl_and_reports_peak_memory() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let crl = Crl::from_der(std::fs::read(path).expect("read")).expect("parse");
    assert_eq!(crl.revoked().len(), 100_000);
    assert!(crl.find(&crl.revoked()[777].serial).is_some());
    println!("PEAK_KIB={}", peak_rss_kib());
}

#[test]
fn crl_of_100000_entries_parses_under_50_mb_peak() {
    let dir = scratch("crl-memory");
    let der = qaqpa_pki::testpki::synthetic_crl(100_000).expect("synthetic CRL");
    assert!(der.len() > 4_000_000, "CRL is {} bytes", der.len());
    let file = dir.join("big.crl");
    std::fs::write(&file, &der).expect("write");
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_parses_crl_and_reports_peak_memory",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &file)
        .output()
        .expect("re-run the test binary");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak: u64 = text
        .split("PEAK_KIB=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak reported: {text}"));
    assert!(peak < 50 * 1024, "peak resident memory {peak} KiB ≥ 50 MB");
    println!(
        "100,000-entry CRL ({} bytes): child peak RSS {peak} KiB",
        der.len()
    );
}
