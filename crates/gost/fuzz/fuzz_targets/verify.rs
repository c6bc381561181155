//! Fuzzes public-key parsing and signature verification with arbitrary bytes: nothing may panic,
//! and a signature the fuzzer invents must not verify unless it is a real one.
//!
//! Input: byte 0 picks the algorithm (low bits) and whether the key is random bytes (parsed with
//! `from_nca_public`, so mostly rejected) or a valid key derived from the input (so the signature
//! equations themselves get exercised); then the key bytes (when random), the signature, and the
//! message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qaqpa_gost::{digest, GostAlgorithm, SigningKey, VerifyingKey};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let alg = GostAlgorithm::ALL[(selector & 0x03) as usize % 3];
    let (key, rest) = if selector & 0x80 == 0 {
        if rest.len() < alg.public_key_len() {
            return;
        }
        let (key_bytes, rest) = rest.split_at(alg.public_key_len());
        match VerifyingKey::from_nca_public(alg, key_bytes) {
            Ok(key) => {
                assert_eq!(key.to_nca_public(), key_bytes);
                (key, rest)
            }
            Err(_) => return,
        }
    } else {
        let seed = digest(GostAlgorithm::Gost2015_512, rest);
        match SigningKey::from_nca_private(alg, &seed[..alg.coordinate_len()]) {
            Ok(signing) => (signing.verifying_key(), rest),
            Err(_) => return,
        }
    };
    let split = rest.len().min(alg.signature_len());
    let (signature, message) = rest.split_at(split);
    let _ = key.verify(message, signature);
    let _ = key.verify_digest(message, signature);
    if message.len() >= alg.digest_len() {
        let _ = key.verify_digest(&message[..alg.digest_len()], signature);
    }
});
