//! # qaqpa-gost: GOST cryptography as NCA RK (НУЦ РК) uses it, in pure Rust
//!
//! Hashes and signatures for the keys and certificates the National Certification Authority of
//! Kazakhstan issues, with NCA's byte encodings:
//!
//! | [`GostAlgorithm`] | signature | curve | hash |
//! |---|---|---|---|
//! | `Gost2004` | GOST 34.310-2004 | CryptoPro-A | GOST 34.311-95 (GOST R 34.11-94, **test** S-box) |
//! | `Gost2015_512` | GOST 34.10-2015 512-bit | TC26 512 paramSetA | Streebog-512 |
//! | `Gost2015_256` | GOST 34.10-2015 256-bit | TC26 256 paramSetA (unconfirmed) | Streebog-256 |
//!
//! No I/O and no ASN.1: callers (crates/pki, crates/soap) pass the raw bytes found in keystores,
//! certificates, CMS and XML.
//!
//! ## Encodings (measured on NCA's certificates and the GOST engine, see the tests)
//! - Public key: the OCTET STRING inside the SubjectPublicKeyInfo BIT STRING holds LE(x)‖LE(y),
//!   each coordinate 32 or 64 bytes little-endian. RFC 4491 (OpenSSL's GOST engine) uses the same.
//! - Signature: LE(r)‖LE(s), the same bytes in certificates, CRLs, CMS and XML SignatureValue.
//!   RFC 4491 / the GOST engine use BE(s)‖BE(r): the same bytes reversed
//!   ([`nca_signature_to_rfc4491`]).
//! - Digest: the hash output bytes as the hash crates produce them, read as a little-endian
//!   integer by the signature (as the GOST engine also does).
//! - Private key: GOST 2015 keystores hold LE bytes (PKCS#8 OCTET STRING); GOST 2004 keystores a
//!   DER INTEGER (big-endian).
//!
//! ## What this crate must never do
//! - Leak a secret: private keys and nonces are zeroized after use ([`SigningKey`] on drop);
//!   `Debug` never prints them; errors never carry them.
//! - Branch on a secret or index memory by one: scalar multiplication uses complete addition
//!   formulas, fixed windows and constant-time table scans on `crypto-bigint`'s constant-time
//!   Montgomery arithmetic. Verification handles only public data.
//! - Return success without doing the check: every `Ok(())` of a verification is a computed
//!   signature equation.
//!
//! Nonces come from the operating system's generator, hedged with the key and digest through
//! Streebog-512 so that a failing generator alone does not expose the key.

mod algorithm;
mod curve;
mod encoding;
mod error;
mod field;
mod hash;
mod keys;
mod params;
mod signature;

pub use algorithm::GostAlgorithm;
pub use encoding::{nca_signature_to_rfc4491, rfc4491_signature_to_nca};
pub use error::GostError;
pub use hash::{digest, GostHasher};
pub use keys::{SigningKey, VerifyingKey};
