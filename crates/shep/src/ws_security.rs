//! WS-Security for ШЭП envelopes through the soap crate: the [`EnvelopeSigner`] and
//! [`EnvelopeVerifier`] that the client, our endpoints and the emulator are given. All the
//! cryptography and the anti-wrapping rules are the soap crate's; this module only adapts them
//! and never accepts an envelope the soap crate refused.

use std::sync::Arc;

use qaqpa_soap::cert::CertificateInfo;
use qaqpa_soap::{
    sign_envelope, verify_envelope, CertificateTrust, RsaSigner, VerifyError, VerifyOptions,
    WsSecurityOptions, XmlSigner,
};

use crate::signing::{EnvelopeSigner, EnvelopeVerifier, SignatureError, VerifiedSigner};

pub use qaqpa_soap::{KeyInfoForm, PinnedCertificates};

/// Signs envelopes with WS-Security over the Body (RSA or GOST, as the key is).
#[derive(Clone)]
pub struct SoapSigner {
    signer: Arc<dyn XmlSigner>,
    options: WsSecurityOptions,
}

impl SoapSigner {
    pub fn new(signer: Arc<dyn XmlSigner>, options: WsSecurityOptions) -> Self {
        Self { signer, options }
    }

    /// An RSA signer from a PKCS#8 key and its certificate, both PEM; KeyInfo by KeyIdentifier.
    pub fn rsa_from_pem(key_pem: &str, certificate_pem: &str) -> Result<Self, SignatureError> {
        let signer = RsaSigner::from_pem(key_pem, certificate_pem)
            .map_err(|e| SignatureError::Signing(e.to_string()))?;
        Ok(Self::new(Arc::new(signer), WsSecurityOptions::default()))
    }

    /// The same key, naming the certificate in KeyInfo as `form` says.
    pub fn with_key_info(mut self, form: KeyInfoForm) -> Self {
        self.options.key_info = form;
        self
    }
}

impl EnvelopeSigner for SoapSigner {
    fn sign(&self, envelope: &str) -> Result<String, SignatureError> {
        let signed = sign_envelope(envelope.as_bytes(), self.signer.as_ref(), &self.options)
            .map_err(|e| SignatureError::Signing(e.to_string()))?;
        String::from_utf8(signed)
            .map_err(|_| SignatureError::Signing("the signed envelope is not UTF-8".into()))
    }
}

/// Verifies WS-Security with the soap crate: every signature must verify, cover the Body, and
/// come from a certificate `trust` accepts.
#[derive(Clone)]
pub struct SoapVerifier {
    trust: Arc<dyn CertificateTrust>,
    options: VerifyOptions,
}

impl SoapVerifier {
    pub fn new(trust: Arc<dyn CertificateTrust>, options: VerifyOptions) -> Self {
        Self { trust, options }
    }

    /// Trusts exactly these DER certificates (which IssuerSerial references may also name).
    pub fn pinned(certificates: Vec<Vec<u8>>) -> Self {
        let options = VerifyOptions {
            known_certificates: certificates.clone(),
            ..VerifyOptions::default()
        };
        Self::new(Arc::new(PinnedCertificates::new(certificates)), options)
    }
}

impl EnvelopeVerifier for SoapVerifier {
    fn verify(&self, envelope: &str) -> Result<VerifiedSigner, SignatureError> {
        let verified = verify_envelope(envelope.as_bytes(), self.trust.as_ref(), &self.options)
            .map_err(|e| match e {
                VerifyError::NoSignature(_) => SignatureError::Missing,
                other => SignatureError::Invalid(other.to_string()),
            })?;
        let certificate_der = verified
            .signers
            .first()
            .cloned()
            .ok_or(SignatureError::Missing)?;
        let subject = CertificateInfo::from_der(&certificate_der)
            .map(|c| c.subject)
            .unwrap_or_default();
        Ok(VerifiedSigner {
            subject,
            certificate_der,
            body_range: verified.body_range,
        })
    }
}
