//! Safe XML reading, canonicalization, XML-DSig and WS-Security for the ШЭП gateway.
//!
//! This crate knows nothing of ШЭП message shapes or HTTP: it reads XML defensively
//! ([`xml`]), canonicalizes it ([`c14n`]), signs and verifies enveloped XML-DSig
//! signatures ([`dsig`]) and WS-Security headers over a SOAP Body ([`wssec`]).
//! It never hands a caller anything a signature did not cover: verifiers return the exact
//! element (or canonical content) that was verified.
//!
//! ```no_run
//! use qaqpa_soap::{sign_envelope, verify_envelope, PinnedCertificates, RsaSigner};
//! # fn demo(key_pem: &str, cert_pem: &str, cert_der: Vec<u8>, envelope: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let signer = RsaSigner::from_pem(key_pem, cert_pem)?;
//! let signed = sign_envelope(envelope, &signer, &Default::default())?;
//! let trust = PinnedCertificates::new(vec![cert_der]);
//! let verified = verify_envelope(&signed, &trust, &Default::default())?;
//! println!("signed by {} certificate(s); Body: {}", verified.signers.len(), verified.body);
//! # Ok(()) }
//! ```

pub mod c14n;
pub mod cert;
pub mod dsig;
#[cfg(feature = "pki")]
pub mod trust;
pub mod wssec;
pub mod xml;

#[cfg(feature = "cli")]
pub mod cli;

pub use c14n::{C14nMethod, Canonicalizer};
#[cfg(feature = "gost")]
pub use dsig::GostSigner;
pub use dsig::{
    sign_enveloped, verify_enveloped, CertificateTrust, EnvelopedOptions, PinnedCertificates,
    RsaSigner, SignError, VerifiedDocument, VerifyError, VerifyOptions, XmlSigner,
};
#[cfg(feature = "pki")]
pub use trust::{signer_from_pkcs12, PkiTrust};
pub use wssec::{sign_envelope, verify_envelope, KeyInfoForm, VerifiedEnvelope, WsSecurityOptions};
pub use xml::{XmlError, XmlLimits};
