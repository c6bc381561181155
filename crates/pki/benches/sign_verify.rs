//! Sign and verify throughput per core: RSA-2048 (aws-lc-rs), GOST 2015-512 and GOST 2004
//! (qaqpa-gost) through the crate's `PrivateKey`/`PublicKey`, plus a CMS sign and a 100,000-entry
//! CRL parse. Compare RSA with `openssl speed -seconds 3 rsa2048` run in the same session
//! (docs/BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, Criterion};
use qaqpa_gost::{GostAlgorithm, SigningKey};
use qaqpa_pki::keys::RsaPrivateKey;
use qaqpa_pki::{PrivateKey, SignatureAlgorithm};
use std::hint::black_box;

fn keys() -> Vec<(&'static str, PrivateKey)> {
    let mut v = Vec::new();
    if let Ok(k) = RsaPrivateKey::generate(2048) {
        v.push(("rsa2048", PrivateKey::Rsa(k)));
    }
    for (name, alg) in [
        ("gost2015_512", GostAlgorithm::Gost2015_512),
        ("gost2004", GostAlgorithm::Gost2004),
    ] {
        if let Ok(k) = SigningKey::try_generate(alg) {
            v.push((name, PrivateKey::Gost(k)));
        }
    }
    v
}

fn sign_verify(c: &mut Criterion) {
    // A SHA-256-sized message like the signed attributes of a CMS.
    let msg = [0x5au8; 120];
    for (name, key) in keys() {
        let alg: SignatureAlgorithm = key.signature_algorithm();
        let Ok(public) = key.public_key() else {
            continue;
        };
        c.bench_function(&format!("{name}_sign"), |b| {
            b.iter(|| key.sign(black_box(&msg)))
        });
        let Ok(sig) = key.sign(&msg) else { continue };
        c.bench_function(&format!("{name}_verify"), |b| {
            b.iter(|| public.verify(black_box(&msg), black_box(&sig), alg))
        });
    }
}

fn big_crl(c: &mut Criterion) {
    let Ok(der) = qaqpa_pki::testpki::synthetic_crl(100_000) else {
        return;
    };
    c.bench_function("crl_100k_parse", |b| {
        b.iter(|| qaqpa_pki::Crl::from_der(black_box(der.clone())))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = sign_verify, big_crl
}
criterion_main!(benches);
