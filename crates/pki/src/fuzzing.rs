//! Entry points shared by the cargo-fuzz targets (crates/pki/fuzz) and the deterministic
//! mutation test in CI: each parses hostile bytes and must return, never panic.

use crate::cms::SignedData;
use crate::{Certificate, Crl, Keystore, OcspResponse, TimeStampToken};

/// PKCS#12 with a fixed password (the MAC check and, when it passes, decryption and bags).
pub fn keystore(data: &[u8]) {
    let _ = Keystore::from_pkcs12(data, "Qwerty12");
}

/// X.509 certificate, then everything derived from it.
pub fn certificate(data: &[u8]) {
    if let Ok(c) = Certificate::from_der_or_pem(data) {
        let _ = c.subject_info();
        let _ = c.public_key();
        let _ = c.describe();
    }
}

/// CRL parsing and lookups.
pub fn crl(data: &[u8]) {
    if let Ok(c) = Crl::from_der_or_pem(data) {
        let _ = c.find(&[1, 2, 3]);
        let _ = c.describe();
    }
}

/// CMS SignedData parsing and signature checks (no trust).
pub fn cms(data: &[u8]) {
    if let Ok(sd) = SignedData::parse(data) {
        let _ = sd.check_signatures(Some(b"content"), &[]);
        let _ = sd.embedded_revocation();
        for s in &sd.signers {
            let _ = s.timestamp_tokens();
        }
    }
}

/// OCSP response parsing.
pub fn ocsp(data: &[u8]) {
    if let Ok(r) = OcspResponse::from_der(data) {
        let _ = r.describe();
    }
}

/// Time-stamp responses and tokens.
pub fn tsp(data: &[u8]) {
    if let Ok(t) = TimeStampToken::from_response(data).or_else(|_| TimeStampToken::from_der(data)) {
        let _ = t.verify_signature(&[]);
        let _ = t.describe();
    }
}
