//! The few facts XML-DSig needs from an X.509 certificate: its public key, issuer and serial
//! number, and validity period.
//!
//! This module never decides whether a certificate is trusted: that is
//! [`crate::dsig::CertificateTrust`]'s job (the pki crate's chain and revocation policy).

use der::asn1::OctetString;
use der::{Decode, Encode};
use std::time::SystemTime;
use x509_cert::Certificate;

/// OID of rsaEncryption.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// A certificate's public key, in the form the verifiers take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// PKCS#1 `RSAPublicKey` DER.
    Rsa(Vec<u8>),
    /// A GOST key as NCA encodes it: the key algorithm OID and LE(x)‖LE(y).
    Gost { key_oid: String, x_le_y_le: Vec<u8> },
    /// Anything else (named by its algorithm OID); no signature with it verifies.
    Other(String),
}

/// What was read from a certificate.
#[derive(Clone, Debug)]
pub struct CertificateInfo {
    /// The DER the facts were read from.
    pub der: Vec<u8>,
    /// Serial number, big-endian magnitude without leading zeros.
    pub serial: Vec<u8>,
    /// The issuer as RFC 4514 text (for `X509IssuerName`).
    pub issuer: String,
    /// The subject as RFC 4514 text.
    pub subject: String,
    /// Issuer attributes as (OID, raw value bytes), for matching an `X509IssuerName`.
    issuer_attributes: Vec<(String, Vec<u8>)>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// The subject public key.
    pub public_key: PublicKey,
}

/// A certificate that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read X.509 certificate: {0}")]
pub struct CertificateError(pub String);

impl CertificateInfo {
    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        let cert = Certificate::from_der(der).map_err(|e| CertificateError(e.to_string()))?;
        let tbs = cert.tbs_certificate();
        let spki = tbs.subject_public_key_info();
        let key_oid = spki.algorithm.oid.to_string();
        let key_bits = spki.subject_public_key.raw_bytes();
        let public_key = if key_oid == RSA_ENCRYPTION {
            PublicKey::Rsa(key_bits.to_vec())
        } else if key_oid.starts_with("1.2.398.3.10.1.1.") {
            let inner = OctetString::from_der(key_bits).map_err(|e| {
                CertificateError(format!("GOST public key is not an OCTET STRING: {e}"))
            })?;
            PublicKey::Gost {
                key_oid,
                x_le_y_le: inner.as_bytes().to_vec(),
            }
        } else {
            PublicKey::Other(key_oid)
        };
        let serial = strip_zeros(tbs.serial_number().as_bytes()).to_vec();
        let issuer_attributes = tbs
            .issuer()
            .iter()
            .map(|atv| (atv.oid.to_string(), atv.value.value().to_vec()))
            .collect();
        Ok(CertificateInfo {
            der: der.to_vec(),
            serial,
            issuer: tbs.issuer().to_string(),
            subject: tbs.subject().to_string(),
            issuer_attributes,
            not_before: tbs.validity().not_before.to_system_time(),
            not_after: tbs.validity().not_after.to_system_time(),
            public_key,
        })
    }

    /// The serial number in decimal (as `X509SerialNumber` writes it).
    pub fn serial_decimal(&self) -> String {
        to_decimal(&self.serial)
    }

    /// Does this certificate match an `X509IssuerSerial` (issuer text, decimal serial)?
    /// Issuer names match when they hold the same attributes, whatever their order or
    /// string type.
    pub fn matches_issuer_serial(&self, issuer_name: &str, serial_decimal: &str) -> bool {
        if self.serial_decimal() != serial_decimal.trim() {
            return false;
        }
        let Ok(name) = issuer_name.trim().parse::<x509_cert::name::Name>() else {
            return false;
        };
        let mut theirs: Vec<(String, Vec<u8>)> = name
            .iter()
            .map(|atv| (atv.oid.to_string(), atv.value.value().to_vec()))
            .collect();
        let mut ours = self.issuer_attributes.clone();
        theirs.sort();
        ours.sort();
        theirs == ours
    }
}

/// Decodes PEM (`-----BEGIN label-----`) to DER; the first block with that label.
pub fn pem_to_der(pem: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Re-encodes a DER certificate (used to check it is exactly one DER object).
pub fn is_single_der_certificate(der: &[u8]) -> bool {
    Certificate::from_der(der)
        .and_then(|c| c.to_der())
        .is_ok_and(|again| again == der)
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// Big-endian magnitude to decimal text.
fn to_decimal(be: &[u8]) -> String {
    let mut digits: Vec<u8> = vec![0]; // little-endian base-10 digits
    for &byte in be {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_numbers_print_in_decimal() {
        assert_eq!(to_decimal(&[]), "0");
        assert_eq!(to_decimal(&[0x01, 0x00]), "256");
        assert_eq!(
            to_decimal(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            "18446744073709551615"
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(CertificateInfo::from_der(b"\x30\x03\x02\x01\x00").is_err());
    }
}
