//! The WS-Security hooks: how the client, our endpoints and the emulator ask for a signature
//! over the envelope's Body, and for a verification of one. Implementations live over the soap
//! crate; this module never signs or verifies anything itself, and nothing here pretends to.

/// Who signed an envelope whose WS-Security signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSigner {
    /// The signer's certificate subject, as the verifier renders it.
    pub subject: String,
    /// The signer's certificate, DER.
    pub certificate_der: Vec<u8>,
    /// Byte range of the signed `soap:Body` in the verified text: the reader checks that the
    /// Body it reads is exactly this one (no wrapping between verification and reading).
    pub body_range: std::ops::Range<usize>,
}

/// Why a signature could not be made or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The envelope carries no WS-Security signature where one is required.
    #[error("the envelope carries no WS-Security signature")]
    Missing,
    /// A signature is there and does not hold (tampered, wrong key, wrapping, untrusted…).
    #[error("the WS-Security signature is not valid: {0}")]
    Invalid(String),
    /// Signing failed (key, algorithm, malformed envelope).
    #[error("could not sign the envelope: {0}")]
    Signing(String),
}

/// Signs a serialised SOAP envelope with WS-Security over its Body and returns the signed text.
pub trait EnvelopeSigner: Send + Sync {
    fn sign(&self, envelope: &str) -> Result<String, SignatureError>;
}

/// Verifies the WS-Security signature of a serialised SOAP envelope. An implementation must
/// refuse unless the signed element is exactly the envelope's one `soap:Body`, so that what is
/// then read from the Body is what was signed.
pub trait EnvelopeVerifier: Send + Sync {
    fn verify(&self, envelope: &str) -> Result<VerifiedSigner, SignatureError>;
}
