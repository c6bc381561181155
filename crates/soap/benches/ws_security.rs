//! WS-Security throughput on one core: a SendMessage-like envelope with 1 KiB of data, built
//! and signed with RSA-2048 (SHA-256), and verified. Compare with `openssl speed rsa2048`
//! (see docs/BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qaqpa_soap::{sign_envelope, verify_envelope, PinnedCertificates, RsaSigner, VerifyOptions};
use std::process::Command;

fn fixture() -> (RsaSigner, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("qaqpa-soap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=bench",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make the benchmark key");
    assert!(out.status.success(), "openssl req failed");
    let key_pem = std::fs::read_to_string(&key).expect("key");
    let cert_pem = std::fs::read_to_string(&cert).expect("cert");
    let _ = std::fs::remove_dir_all(&dir);
    let der = qaqpa_soap::cert::pem_to_der(&cert_pem, "CERTIFICATE").expect("cert der");
    (
        RsaSigner::from_pem(&key_pem, &cert_pem).expect("signer"),
        der,
    )
}

/// Builds the envelope as a client would: requestInfo fields and 1 KiB of escaped data.
fn build_envelope(n: u64, data: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/><soapenv:Body><ns2:SendMessage xmlns:ns2="http://bip.bee.kz/SyncChannel/v10/Types"><request><requestInfo><messageId>00000000-0000-4000-8000-{n:012}</messageId><serviceId>GbdulInfoByBin_v2</serviceId><messageDate>2026-11-23T18:00:00.000+05:00</messageDate><sender><senderId>qaqpa</senderId><password>secret</password></sender></requestInfo><requestData><data xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" xsi:type="xs:string">{data}</data></requestData></request></ns2:SendMessage></soapenv:Body></soapenv:Envelope>"#
    )
}

fn bench(c: &mut Criterion) {
    let (signer, cert_der) = fixture();
    let data: String =
        "&lt;BIN&gt;987654321098&lt;/BIN&gt;".repeat(1024 / 34 + 1)[..1024].to_string();
    let data = data.trim_end_matches(|c| c != ';').to_string();
    let trust = PinnedCertificates::new(vec![cert_der]);
    let opts = qaqpa_soap::WsSecurityOptions::default();

    let mut group = c.benchmark_group("ws_security_send_message_1KiB_rsa2048");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("build_and_sign", |b| {
        b.iter(|| {
            n += 1;
            let envelope = build_envelope(n, &data);
            sign_envelope(envelope.as_bytes(), &signer, &opts).expect("signs")
        })
    });
    let signed = sign_envelope(build_envelope(0, &data).as_bytes(), &signer, &opts).expect("signs");
    group.bench_function("verify", |b| {
        b.iter(|| verify_envelope(&signed, &trust, &VerifyOptions::default()).expect("verifies"))
    });
    let message = vec![0x5au8; 700];
    group.bench_function("raw_rsa2048_sign_only", |b| {
        use qaqpa_soap::XmlSigner;
        b.iter(|| signer.sign(&message).expect("signs"))
    });
    group.finish();

    // Per-core rates by CPU time (as `openssl speed` reports by default), robust to other
    // processes sharing the machine: operations / (user+system CPU seconds of this process).
    let rate = |f: &mut dyn FnMut()| {
        let (wall, cpu0) = (std::time::Instant::now(), cpu_seconds());
        let mut n = 0u64;
        while wall.elapsed().as_secs_f64() < 3.0 {
            f();
            n += 1;
        }
        n as f64 / (cpu_seconds() - cpu0).max(1e-9)
    };
    let mut k = 0u64;
    let sign_rate = rate(&mut || {
        k += 1;
        let envelope = build_envelope(k, &data);
        std::hint::black_box(sign_envelope(envelope.as_bytes(), &signer, &opts).expect("signs"));
    });
    let raw_rate = rate(&mut || {
        use qaqpa_soap::XmlSigner;
        std::hint::black_box(signer.sign(&message).expect("signs"));
    });
    let verify_rate = rate(&mut || {
        std::hint::black_box(
            verify_envelope(&signed, &trust, &VerifyOptions::default()).expect("verifies"),
        );
    });
    println!(
        "cpu-time rates per core: build_and_sign {sign_rate:.0}/s, raw RSA-2048 sign {raw_rate:.0}/s, verify {verify_rate:.0}/s, sign/raw {:.1}%",
        100.0 * sign_rate / raw_rate
    );
}

/// User + system CPU seconds of this process, from /proc/self/stat (Linux; 100 Hz ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the ")" the fields start at "state" (field 3): utime is field 14, stime 15.
    (ticks(11) + ticks(12)) / 100.0
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
