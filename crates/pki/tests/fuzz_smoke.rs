//! A short, deterministic stand-in for the cargo-fuzz runs (which need nightly): every parser
//! entry point of crates/pki/fuzz gets the real NCA material truncated and with bytes flipped,
//! and must return without panicking.

mod common;

use common::*;
use qaqpa_pki::fuzzing;

fn mutate(seed: &[u8], target: fn(&[u8]), steps: usize) {
    let n = seed.len();
    let stride = (n / steps).max(1);
    let mut x: u32 = 0x9e37_79b9;
    for i in (0..n).step_by(stride) {
        target(&seed[..i]);
        let mut d = seed.to_vec();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        d[i] ^= (x as u8) | 1;
        target(&d);
        // Length-byte havoc: make a length huge or indefinite.
        let mut d = seed.to_vec();
        d[i] = 0x84;
        target(&d);
        d[i] = 0x80;
        target(&d);
    }
}

#[test]
fn parsers_survive_mutated_nca_material() {
    let ks = read(&nca("ncanode-go/legal/valid/head.p12"));
    mutate(&ks, fuzzing::keystore, 60);
    for f in [
        "ncanode-go/root_test_gost_2022.cer",
        "ncanode-java/certs/individual_valid_sign_2004_rsa.cer",
    ] {
        mutate(&read(&nca(f)), fuzzing::certificate, 300);
    }
    mutate(
        &read(&nca("ncanode-java/crl/nca_rsa_test.crl")),
        fuzzing::crl,
        200,
    );
    mutate(
        &read(&nca("ncanode-java/tsp/tsp_token.bin")),
        fuzzing::cms,
        150,
    );
    mutate(
        &read(&nca("ncanode-java/tsp/tsp_response.bin")),
        fuzzing::tsp,
        150,
    );
    mutate(
        &read(&nca("ncanode-java/ocsp/ocsp_response_individual_2015.bin")),
        fuzzing::ocsp,
        200,
    );
}
