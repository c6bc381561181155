//! Byte orders: integers to and from little-endian bytes, and the conversions between NCA's
//! signature encoding and the Russian one (RFC 4491 / OpenSSL's GOST engine).
//!
//! NCA RK (measured on its certificates): public key = LE(x)‖LE(y); signature = LE(r)‖LE(s);
//! the digest is read as a little-endian integer; 2015 private keys are LE, 2004 ones BE.
//! RFC 4491 (and the GOST engine): public key = LE(x)‖LE(y) (the same); signature = BE(s)‖BE(r),
//! which is NCA's signature with all its bytes reversed; digest read little-endian (the same).

use crypto_bigint::Uint;

/// An integer from up to `L`·8 little-endian bytes (the caller checks the length).
pub(crate) fn uint_from_le<const L: usize>(bytes: &[u8]) -> Uint<L> {
    debug_assert!(bytes.len() <= L * 8);
    let mut words = [0u64; L];
    for (i, byte) in bytes.iter().enumerate().take(L * 8) {
        words[i / 8] |= u64::from(*byte) << ((i % 8) * 8);
    }
    Uint::from_words(words)
}

/// The `len` little-endian bytes of an integer (which must fit).
pub(crate) fn uint_to_le<const L: usize>(value: &Uint<L>, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        let word = value.as_words().get(i / 8).copied().unwrap_or(0);
        out.push((word >> ((i % 8) * 8)) as u8);
    }
    out
}

/// Converts an NCA signature LE(r)‖LE(s) to RFC 4491's BE(s)‖BE(r), the order OpenSSL's GOST
/// engine reads and writes (and back: the conversion is its own inverse).
pub fn nca_signature_to_rfc4491(signature: &[u8]) -> Vec<u8> {
    signature.iter().rev().copied().collect()
}

/// Converts an RFC 4491 signature BE(s)‖BE(r) to NCA's LE(r)‖LE(s).
pub fn rfc4491_signature_to_nca(signature: &[u8]) -> Vec<u8> {
    nca_signature_to_rfc4491(signature)
}
