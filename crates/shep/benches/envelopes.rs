//! Throughput of ШЭП envelope work on one core: SendMessage (1 KiB of escaped XML in `data`)
//! built, parsed strictly, and — with an RSA-2048 key made by openssl at run time — signed and
//! verified through the soap crate. Run: `cargo bench -p qaqpa-shep --bench envelopes`.
//! Prints one line per measurement; docs/BENCHMARKS.md records a run.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use qaqpa_shep::*;

fn rate(name: &str, budget: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up, then count whole iterations within the budget.
    for _ in 0..10 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    let per_sec = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "{name:<48} {per_sec:>12.0} /s  ({n} in {:.2} s)",
        start.elapsed().as_secs_f64()
    );
    per_sec
}

fn request() -> SyncRequest {
    let data: String = "<x>Қазақстан</x>".chars().cycle().take(1024).collect();
    SyncRequest::new(
        "GbdulInfoByBin_v2",
        SenderInfo::new("qaqpa", Some("pw".into())),
        Some(MessageData::text(data)),
    )
    .with_route_id("R1")
    .with_property(Property::new("lang", "ru").expect("fits"))
}

fn main() {
    let budget = Duration::from_secs(3);
    let limits = XmlLimits::default();
    let req = request();
    let envelope = req.to_envelope().expect("builds");
    println!("SendMessage envelope: {} bytes", envelope.len());
    rate("SendMessage built", budget, || {
        black_box(black_box(&req).to_envelope().expect("builds"));
    });
    rate("SendMessage parsed (strict)", budget, || {
        black_box(SyncRequest::from_envelope(black_box(&envelope), &limits).expect("reads"));
    });
    rate("SendMessage built + parsed", budget, || {
        let e = black_box(&req).to_envelope().expect("builds");
        black_box(SyncRequest::from_envelope(&e, &limits).expect("reads"));
    });
    let response = SyncResponse::success(req.data.clone())
        .to_envelope()
        .expect("builds");
    rate("SendMessageResponse parsed + classified", budget, || {
        black_box(classify_reply(200, None, black_box(&response), &limits));
    });

    let dir = std::env::temp_dir().join(format!("qaqpa-shep-bench-{}", std::process::id()));
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
            "1",
            "-subj",
            "/CN=bench",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes the bench key (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_pem = std::fs::read_to_string(&key).expect("key");
    let cert_pem = std::fs::read_to_string(&cert).expect("cert");
    let _ = std::fs::remove_dir_all(&dir);
    let cert_der = qaqpa_soap::cert::pem_to_der(&cert_pem, "CERTIFICATE").expect("der");
    let signer = SoapSigner::rsa_from_pem(&key_pem, &cert_pem).expect("signer");
    let verifier = SoapVerifier::pinned(vec![cert_der]);
    let signed = signer.sign(&envelope).expect("signs");
    rate("SendMessage built + signed (RSA-2048)", budget, || {
        let e = black_box(&req).to_envelope().expect("builds");
        black_box(signer.sign(&e).expect("signs"));
    });
    rate("SendMessage verified + parsed (RSA-2048)", budget, || {
        let s = verifier.verify(black_box(&signed)).expect("verifies");
        black_box(s);
        black_box(SyncRequest::from_envelope(&signed, &limits).expect("reads"));
    });
}
