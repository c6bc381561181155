//! NCA RK (НУЦ РК) signatures: keystores, certificates, CMS, revocation and time stamps.
//! This crate knows nothing of the gateway or of HTTP servers; it never logs key material.

pub mod asn1;
pub mod cert;
#[cfg(feature = "cli")]
pub mod cli;
pub mod cms;
pub mod crl;
pub mod error;
pub mod fuzzing;
pub mod keys;
pub mod network;
pub mod ocsp;
pub mod oid;
pub mod pem;
pub mod pkcs12;
pub mod report;
pub mod testpki;
pub mod testpki_server;
pub mod time;
pub mod tsp;
pub mod validate;

pub use cert::{Bin, Certificate, Iin, KeyUsage, Name, Role, SubjectInfo};
pub use crl::Crl;
pub use error::PkiError;
pub use keys::{DigestAlgorithm, PrivateKey, PublicKey, SignatureAlgorithm};
pub use network::{FetchObserver, Fetcher, HttpFetcher};
pub use ocsp::OcspResponse;
pub use pkcs12::Keystore;
pub use qaqpa_gost::GostAlgorithm;
pub use report::{verify_cms, CmsReport, SignerReport, VerifyOptions};
pub use time::UtcTime;
pub use tsp::TimeStampToken;
pub use validate::{CertStatus, KeyPurpose, SignerExpectation, TrustStore, Validator};
