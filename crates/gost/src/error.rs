//! The one error type of this crate. Messages say what was wrong with the input; they never
//! carry secret material (no key bytes, no nonces).

use crate::GostAlgorithm;

/// Why a GOST operation refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GostError {
    /// The signature does not match the message (or digest) and the public key.
    #[error("GOST signature does not verify")]
    BadSignature,
    /// A key (private or public) is not valid for its algorithm: out of range, or not a point of
    /// the curve's prime-order group.
    #[error("bad GOST key: {0}")]
    BadKey(String),
    /// An input has the wrong length for the algorithm.
    #[error("{what} for {algorithm:?} must be {expected} bytes, got {actual}")]
    BadLength {
        /// What the input was ("digest", "signature", "public key", "private key").
        what: &'static str,
        /// The algorithm it was given for.
        algorithm: GostAlgorithm,
        /// The length the algorithm needs.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// The operating system's random number generator failed.
    #[error("operating system randomness unavailable: {0}")]
    Randomness(String),
}
