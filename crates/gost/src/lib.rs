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
//! ## Encodings (measured: NCA's certificates, CRLs and keystores, and OpenSSL's GOST engine)
//! - Public key: the OCTET STRING inside the SubjectPublicKeyInfo BIT STRING holds LE(x)‖LE(y),
//!   each coordinate 32 or 64 bytes little-endian ([`VerifyingKey::from_nca_public`]). The GOST
//!   engine (RFC 4491) reads exactly the same bytes: only the OIDs around them differ
//!   ([`GostAlgorithm::russian_oids`]).
//! - Signature: LE(r)‖LE(s), the same bytes in certificates, CRLs, CMS and XML SignatureValue.
//!   The GOST engine reads and writes BE(s)‖BE(r): all the bytes reversed
//!   ([`nca_signature_to_rfc4491`], [`rfc4491_signature_to_nca`]).
//! - Digest: the hash output bytes as the RustCrypto crates produce them (and as NCA puts them in
//!   messageDigest), read by the signature as a little-endian integer — as the engine does too.
//!   GOST 2004's hash uses the test S-box; the engine's gost94 has only CryptoPro's, so a 2004
//!   signature is checked there over a digest computed here (`openssl pkeyutl -verify`).
//! - Private key: GOST 2015 keystores hold the 32/64 LE bytes (an OCTET STRING in the PKCS#8
//!   privateKey); GOST 2004 keystores a DER INTEGER (big-endian)
//!   ([`SigningKey::from_nca_private`]).
//!
//! ```
//! use qaqpa_gost::{GostAlgorithm, SigningKey, VerifyingKey};
//!
//! let key = SigningKey::generate(GostAlgorithm::Gost2015_512);
//! let signature = key.sign(b"document");                 // LE(r) || LE(s), 128 bytes
//! let public = VerifyingKey::from_nca_public(GostAlgorithm::Gost2015_512,
//!                                            &key.verifying_key().to_nca_public())?;
//! assert!(public.verify(b"document", &signature).is_ok());
//! assert!(public.verify(b"Document", &signature).is_err());
//! # Ok::<(), qaqpa_gost::GostError>(())
//! ```
//!
//! ## How it is built
//! Field arithmetic: for NCA's curves (all over pseudo-Mersenne primes 2^256 − 617 and
//! 2^512 − 569) a constant-time limb implementation checked against `crypto-bigint`'s
//! Montgomery arithmetic; `crypto-bigint` itself for the test curves and all arithmetic mod q.
//! Points: projective coordinates with complete addition formulas (no special cases to branch
//! on). k·G: a precomputed table of signed 5-bit windows, scanned in full for every lookup.
//! Verification's u2·Q works on public data only, in variable-time Jacobian coordinates.
//! Nonces: fresh OS randomness, hedged with the key and the digest through Streebog-512.
//!
//! Checked by: the GOST R 34.10-2012 examples (256 and 512 bits) and the hash test vectors
//! (RFC 5831, RFC 6986); every GOST signature on NCA's public test certificates and CRLs; the
//! private keys of NCA's 13 public GOST 2015 test keystores against their certificates; and
//! OpenSSL's GOST engine both ways for all three algorithms (`tests/`).
//!
//! Fuzzing (`crates/gost/fuzz`, its own workspace; cargo-fuzz needs nightly features, which
//! `RUSTC_BOOTSTRAP=1` unlocks on the stable toolchain):
//! `cd crates/gost/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run verify -- -max_total_time=600`.
//!
//! ## What this crate must never do
//! - Leak a secret: private keys and nonces are zeroized after use ([`SigningKey`] on drop);
//!   `Debug` never prints them; errors never carry them.
//! - Branch on a secret or index memory by one: signing uses only constant-time field
//!   operations, masked table scans and complete formulas. Verification handles only public
//!   data and may take variable time.
//! - Return success without doing the check: every `Ok(())` of a verification is a computed
//!   signature equation.
//! - Do I/O or parse ASN.1 beyond raw key and signature bytes: that belongs to crates/pki.

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
