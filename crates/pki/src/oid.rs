//! Object identifiers this crate reads or writes, in one place. Assumptions about NCA's OIDs
//! come from ../shared/specs/FACTS.md (measured on the real test material).

pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
pub const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
pub const SHA1_WITH_RSA: &str = "1.2.840.113549.1.1.5";
pub const SHA1: &str = "1.3.14.3.2.26";
pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";
pub const HMAC_SHA1: &str = "1.2.840.113549.2.7";
pub const HMAC_SHA256: &str = "1.2.840.113549.2.9";

// PKCS#7 / CMS content types.
pub const DATA: &str = "1.2.840.113549.1.7.1";
pub const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
pub const ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
pub const TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";

// PKCS#9 attributes.
pub const CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
pub const MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
pub const SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
pub const FRIENDLY_NAME: &str = "1.2.840.113549.1.9.20";
pub const LOCAL_KEY_ID: &str = "1.2.840.113549.1.9.21";
pub const X509_CERTIFICATE: &str = "1.2.840.113549.1.9.22.1";
pub const TIMESTAMP_TOKEN: &str = "1.2.840.113549.1.9.16.2.14";
pub const SIGNING_CERTIFICATE_V2: &str = "1.2.840.113549.1.9.16.2.47";

// PKCS#12.
pub const KEY_BAG: &str = "1.2.840.113549.1.12.10.1.1";
pub const SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
pub const CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
pub const PBE_SHA1_3DES: &str = "1.2.840.113549.1.12.1.3";
pub const PBE_SHA1_RC2_128: &str = "1.2.840.113549.1.12.1.5";
pub const PBE_SHA1_RC2_40: &str = "1.2.840.113549.1.12.1.6";
pub const PBES2: &str = "1.2.840.113549.1.5.13";
pub const PBKDF2: &str = "1.2.840.113549.1.5.12";
pub const AES256_CBC: &str = "2.16.840.1.101.3.4.1.42";
pub const AES128_CBC: &str = "2.16.840.1.101.3.4.1.2";

// X.520 attribute types.
pub const CN: &str = "2.5.4.3";
pub const SURNAME: &str = "2.5.4.4";
pub const SERIAL_NUMBER: &str = "2.5.4.5";
pub const COUNTRY: &str = "2.5.4.6";
pub const LOCALITY: &str = "2.5.4.7";
pub const STATE: &str = "2.5.4.8";
pub const ORGANISATION: &str = "2.5.4.10";
pub const ORG_UNIT: &str = "2.5.4.11";
pub const GIVEN_NAME: &str = "2.5.4.42";
pub const EMAIL: &str = "1.2.840.113549.1.9.1";

// X.509 extensions.
pub const EXT_SUBJECT_KEY_ID: &str = "2.5.29.14";
pub const EXT_KEY_USAGE: &str = "2.5.29.15";
pub const EXT_BASIC_CONSTRAINTS: &str = "2.5.29.19";
pub const EXT_CRL_NUMBER: &str = "2.5.29.20";
pub const EXT_DELTA_CRL: &str = "2.5.29.27";
pub const EXT_CRL_DP: &str = "2.5.29.31";
pub const EXT_POLICIES: &str = "2.5.29.32";
pub const EXT_AUTHORITY_KEY_ID: &str = "2.5.29.35";
pub const EXT_EKU: &str = "2.5.29.37";
pub const EXT_FRESHEST_CRL: &str = "2.5.29.46";
pub const EXT_AIA: &str = "1.3.6.1.5.5.7.1.1";
pub const AIA_OCSP: &str = "1.3.6.1.5.5.7.48.1";
pub const AIA_CA_ISSUERS: &str = "1.3.6.1.5.5.7.48.2";
pub const EKU_OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";
pub const EKU_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";
pub const EKU_EMAIL: &str = "1.3.6.1.5.5.7.3.4";
pub const EKU_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

// OCSP.
pub const OCSP_BASIC: &str = "1.3.6.1.5.5.7.48.1.1";
pub const OCSP_NONCE: &str = "1.3.6.1.5.5.7.48.1.2";

// NCA RK roles (Extended Key Usage) and policy.
pub const ROLE_INDIVIDUAL: &str = "1.2.398.3.3.4.1.1";
pub const ROLE_ORGANISATION: &str = "1.2.398.3.3.4.1.2";
pub const ROLE_FIRST_HEAD: &str = "1.2.398.3.3.4.1.2.1";
pub const ROLE_SIGNING_RIGHT: &str = "1.2.398.3.3.4.1.2.2";
pub const ROLE_FINANCIAL: &str = "1.2.398.3.3.4.1.2.3";
pub const ROLE_HR: &str = "1.2.398.3.3.4.1.2.4";
pub const ROLE_EMPLOYEE: &str = "1.2.398.3.3.4.1.2.5";
pub const ROLE_INFORMATION_SYSTEM: &str = "1.2.398.3.3.4.1.2.6";
pub const NCA_POLICY: &str = "1.2.398.3.3.2";
pub const TSA_POLICY_GOST2004: &str = "1.2.398.3.3.2.6.1";
pub const TSA_POLICY_GOST2015: &str = "1.2.398.3.3.2.6.4";
