//! The one error type of this crate's public boundary. Messages say what was wrong in words a
//! user can act on; they never include passwords or key material.

use thiserror::Error;

/// Everything that can go wrong reading keys, certificates and signatures.
#[derive(Debug, Error)]
pub enum PkiError {
    /// The keystore's integrity check failed: almost always a wrong password.
    #[error("wrong password for the keystore (its integrity check failed)")]
    WrongPassword,
    /// The input is not well-formed ASN.1 / DER / BER of the expected shape.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// An algorithm we do not implement.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// Decryption produced garbage (bad padding) although the MAC matched, or no MAC was present.
    #[error("keystore could not be decrypted: {0}")]
    Decryption(String),
    /// A keystore without a private key or without the matching certificate.
    #[error("keystore is incomplete: {0}")]
    IncompleteKeystore(String),
    /// A signature did not verify.
    #[error("signature is invalid: {0}")]
    BadSignature(String),
    /// A key could not be used.
    #[error("key error: {0}")]
    Key(String),
    /// A certificate chain, validity or revocation check failed.
    #[error("validation failed: {0}")]
    Validation(String),
    /// Network fetches (OCSP, TSP, CRL) failed.
    #[error("network: {0}")]
    Network(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<qaqpa_gost::GostError> for PkiError {
    fn from(e: qaqpa_gost::GostError) -> Self {
        PkiError::Key(e.to_string())
    }
}
