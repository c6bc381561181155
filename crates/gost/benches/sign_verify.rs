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

fn engine_baseline() {
    println!("\nBaseline: OpenSSL GOST engine (EVP_PKEY_sign/verify over a digest, 3 s each)");
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
    for (_, name, engine_alg, paramset) in cases() {
        match Command::new(&binary)
            .args([engine_alg, paramset, "3"])
            .output()
        {
            Ok(out) if out.status.success() => {
                print!("  {name:<14} {}", String::from_utf8_lossy(&out.stdout))
            }
            Ok(out) => println!("  {name}: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => println!("  {name}: {e}"),
        }
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
    engine_baseline();
}
