//! Sign and verify per second for GOST 2015-512, 2015-256 and 2004 (over a digest, like the
//! engine's EVP_PKEY_sign), and in the same run the same operations through OpenSSL's GOST engine
//! (benches/engine_baseline.c, compiled here with `cc -lcrypto`), printed side by side.
//!
//! Run: `cargo bench -p qaqpa-gost --bench sign_verify`. Needs gcc, libssl-dev and
//! libengine-gost-openssl for the baseline; without them the baseline line says why.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, Criterion};
use qaqpa_gost::{GostAlgorithm, SigningKey};

fn cases() -> [(GostAlgorithm, &'static str, &'static str, &'static str); 3] {
    [
        (
            GostAlgorithm::Gost2015_512,
            "gost2015_512",
            "gost2012_512",
            "A",
        ),
        (
            GostAlgorithm::Gost2015_256,
            "gost2015_256",
            "gost2012_256",
            "TCA",
        ),
        (GostAlgorithm::Gost2004, "gost2004", "gost2012_256", "A"),
    ]
}

fn sign_verify(c: &mut Criterion) {
    for (alg, name, _, _) in cases() {
        let key = SigningKey::generate(alg);
        let public = key.verifying_key();
        let digest: Vec<u8> = (0..alg.digest_len()).map(|i| (i * 37 + 11) as u8).collect();
        let signature = key.sign_digest(&digest).expect("sign");
        c.bench_function(&format!("{name}/sign_digest"), |b| {
            b.iter(|| {
                key.sign_digest(std::hint::black_box(&digest))
                    .expect("sign")
            })
        });
        c.bench_function(&format!("{name}/verify_digest"), |b| {
            b.iter(|| {
                public
                    .verify_digest(std::hint::black_box(&digest), &signature)
                    .expect("verify")
            })
        });
    }
}

/// This thread's CPU time in nanoseconds (Linux schedstat): the machine is shared, so rates are
/// per CPU-second of the measuring thread, for ours and the engine alike.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .expect("/proc/thread-self/schedstat is readable (Linux)")
}

/// Operations per CPU-second of `op`, run for about `seconds` of CPU time.
fn rate(seconds: f64, mut op: impl FnMut()) -> f64 {
    let start = thread_cpu_ns();
    let mut count = 0u64;
    loop {
        for _ in 0..16 {
            op();
        }
        count += 16;
        let elapsed = (thread_cpu_ns() - start) as f64 / 1e9;
        if elapsed >= seconds {
            return count as f64 / elapsed;
        }
    }
}

fn ours_per_cpu_second() -> Vec<(f64, f64)> {
    println!("\nqaqpa-gost, per CPU-second (best of 3 runs of 2 CPU-s each):");
    let mut rates = Vec::new();
    for (alg, name, _, _) in cases() {
        let key = SigningKey::generate(alg);
        let public = key.verifying_key();
        let digest: Vec<u8> = (0..alg.digest_len()).map(|i| (i * 37 + 11) as u8).collect();
        let signature = key.sign_digest(&digest).expect("sign");
        // Best of three: the machine is shared, and other load only ever slows a run down.
        let mut sign = 0f64;
        let mut verify = 0f64;
        for _ in 0..3 {
            sign = sign.max(rate(2.0, || {
                std::hint::black_box(
                    key.sign_digest(std::hint::black_box(&digest))
                        .expect("sign"),
                );
            }));
            verify = verify.max(rate(2.0, || {
                public
                    .verify_digest(std::hint::black_box(&digest), &signature)
                    .expect("verify");
            }));
        }
        println!("  {name:<14} sign/s {sign:.1} verify/s {verify:.1}");
        rates.push((sign, verify));
    }
    rates
}

fn engine_baseline(ours: &[(f64, f64)]) {
    println!("\nBaseline: OpenSSL GOST engine (EVP_PKEY_sign/verify over a digest, best of 3 runs of 2 CPU-s each)");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/engine_baseline.c");
    let binary =
        std::env::temp_dir().join(format!("qaqpa-gost-engine-baseline-{}", std::process::id()));
    let compiled = Command::new("cc")
        .args(["-O2", "-Wno-deprecated-declarations", "-o"])
        .arg(&binary)
        .arg(&source)
        .arg("-lcrypto")
        .output();
    match compiled {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            println!(
                "  cannot compile the baseline: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        Err(e) => {
            println!("  cannot run cc: {e}");
            return;
        }
    }
    for ((_, name, engine_alg, paramset), (our_sign, our_verify)) in cases().into_iter().zip(ours) {
        let mut engine_sign = 0f64;
        let mut engine_verify = 0f64;
        for _ in 0..3 {
            match Command::new(&binary)
                .args([engine_alg, paramset, "2"])
                .output()
            {
                Ok(out) if out.status.success() => {
                    let line = String::from_utf8_lossy(&out.stdout);
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let parse = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
                    engine_sign = engine_sign.max(parse(3).unwrap_or(f64::NAN));
                    engine_verify = engine_verify.max(parse(5).unwrap_or(f64::NAN));
                }
                Ok(out) => println!("  {name}: {}", String::from_utf8_lossy(&out.stderr)),
                Err(e) => println!("  {name}: {e}"),
            }
        }
        println!(
            "  {name:<14} ({engine_alg} paramset {paramset}) sign/s {engine_sign:.1} verify/s {engine_verify:.1} -> ours/engine: sign {:.2}x, verify {:.2}x",
            our_sign / engine_sign,
            our_verify / engine_verify
        );
    }
    let _ = std::fs::remove_file(&binary);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = sign_verify
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let ours = ours_per_cpu_second();
    engine_baseline(&ours);
}
