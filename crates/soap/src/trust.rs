//! Bridges to qaqpa-pki (feature `pki`): certificate trust by NCA chain, validity, KeyUsage
//! and revocation ([`PkiTrust`]), and signers from PKCS#12 keystores ([`signer_from_pkcs12`]).
//!
//! This module only adapts; the policy itself lives in qaqpa-pki and must not be re-implemented
//! here.

use crate::dsig::{CertificateTrust, GostSigner, RsaSigner, SignError, XmlSigner};
use std::time::{SystemTime, UNIX_EPOCH};

/// Trust decided by a qaqpa-pki [`qaqpa_pki::Validator`]: the certificate must chain to an
/// anchor, be within its validity at the signing time, fit `purpose`, and not be revoked
/// according to the CRLs/OCSP responses the validator holds.
#[derive(Clone, Debug)]
pub struct PkiTrust {
    validator: qaqpa_pki::Validator,
    purpose: qaqpa_pki::KeyPurpose,
}

impl PkiTrust {
    /// Trust through `validator`, checking certificates for `purpose`.
    pub fn new(validator: qaqpa_pki::Validator, purpose: qaqpa_pki::KeyPurpose) -> Self {
        PkiTrust { validator, purpose }
    }
}

impl CertificateTrust for PkiTrust {
    fn check(&self, certificate_der: &[u8], at: SystemTime) -> Result<(), String> {
        let cert = qaqpa_pki::Certificate::from_der(certificate_der).map_err(|e| e.to_string())?;
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "check time before 1970".to_string())?
            .as_secs();
        let at = qaqpa_pki::UtcTime(i64::try_from(secs).map_err(|_| "check time out of range")?);
        let report = self.validator.validate(&cert, &[], at, self.purpose);
        if report.is_valid() {
            Ok(())
        } else {
            let mut why = report.problems.join("; ");
            if why.is_empty() {
                why = format!("status {}", report.status);
            }
            Err(why)
        }
    }
}

/// A signer for the key in an NCA-style PKCS#12 keystore (GOST 2004/2015 or RSA).
pub fn signer_from_pkcs12(p12: &[u8], password: &str) -> Result<Box<dyn XmlSigner>, SignError> {
    let keystore = qaqpa_pki::Keystore::from_pkcs12(p12, password)
        .map_err(|e| SignError::Key(format!("cannot open the keystore: {e}")))?;
    let cert = keystore.certificate().der();
    match keystore.signing_key() {
        qaqpa_pki::PrivateKey::Gost(key) => {
            let copy =
                qaqpa_gost::SigningKey::from_nca_private(key.algorithm(), &key.to_nca_private())
                    .map_err(|e| SignError::Key(e.to_string()))?;
            Ok(Box::new(GostSigner::new(copy, cert)?))
        }
        key @ qaqpa_pki::PrivateKey::Rsa(_) => Ok(Box::new(RsaSigner::from_pkcs8_der(
            &key.to_pkcs8_der(),
            cert,
        )?)),
    }
}
