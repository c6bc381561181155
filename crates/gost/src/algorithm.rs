//! The three GOST signature algorithms NCA RK uses, and their identifiers (OIDs and XML-DSig
//! URIs). The Kazakh OIDs live here and nowhere else.
//!
//! Confirmed on real NCA material: GOST 34.310-2004 (CryptoPro-A curve) and GOST 34.10-2015
//! 512-bit (TC26 512 paramSetA). The 256-bit GOST 34.10-2015 variant has no public sample: its
//! OIDs, URIs and curve (TC26 256 paramSetA, as Kalkan's `Gost3410-2015-256-ParamSetA` is reported
//! to be) are the best public evidence, not a measurement.

/// A GOST signature algorithm as NCA RK issues keys for it.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GostAlgorithm {
    /// GOST 34.310-2004 on the CryptoPro-A curve, with the GOST 34.311-95 hash (test S-box).
    Gost2004,
    /// GOST 34.10-2015 256-bit (TC26 256 paramSetA) with Streebog-256. Unconfirmed by samples.
    Gost2015_256,
    /// GOST 34.10-2015 512-bit (TC26 512 paramSetA) with Streebog-512.
    Gost2015_512,
}

impl GostAlgorithm {
    /// All algorithms, in a fixed order (for tests and tables).
    pub const ALL: [GostAlgorithm; 3] = [
        GostAlgorithm::Gost2004,
        GostAlgorithm::Gost2015_256,
        GostAlgorithm::Gost2015_512,
    ];

    /// The algorithm of a SubjectPublicKeyInfo whose algorithm OID is `oid` (Kazakh OIDs).
    pub fn from_key_oid(oid: &str) -> Option<Self> {
        match oid {
            "1.2.398.3.10.1.1.1.1" => Some(Self::Gost2004),
            "1.2.398.3.10.1.1.2.1" => Some(Self::Gost2015_256),
            "1.2.398.3.10.1.1.2.2" => Some(Self::Gost2015_512),
            _ => None,
        }
    }

    /// The algorithm of a signature-with-hash OID (certificates, CRLs, CMS signerInfos).
    pub fn from_signature_oid(oid: &str) -> Option<Self> {
        match oid {
            "1.2.398.3.10.1.1.1.2" | "1.3.6.1.4.1.6801.1.2.2" => Some(Self::Gost2004),
            "1.2.398.3.10.1.1.2.3.1" => Some(Self::Gost2015_256),
            "1.2.398.3.10.1.1.2.3.2" => Some(Self::Gost2015_512),
            _ => None,
        }
    }

    /// The public-key algorithm OID (SubjectPublicKeyInfo.algorithm).
    pub fn key_oid(self) -> &'static str {
        match self {
            Self::Gost2004 => "1.2.398.3.10.1.1.1.1",
            Self::Gost2015_256 => "1.2.398.3.10.1.1.2.1",
            Self::Gost2015_512 => "1.2.398.3.10.1.1.2.2",
        }
    }

    /// The curve (parameter set) OID found in the key's algorithm parameters.
    pub fn curve_oid(self) -> &'static str {
        match self {
            Self::Gost2004 => "1.2.398.3.10.1.1.1.1.1",
            Self::Gost2015_256 => "1.2.398.3.10.1.1.2.1.1",
            Self::Gost2015_512 => "1.2.398.3.10.1.1.2.2.1",
        }
    }

    /// The signature-with-hash OID NCA writes (the first of [`Self::from_signature_oid`]'s).
    pub fn signature_oid(self) -> &'static str {
        match self {
            Self::Gost2004 => "1.2.398.3.10.1.1.1.2",
            Self::Gost2015_256 => "1.2.398.3.10.1.1.2.3.1",
            Self::Gost2015_512 => "1.2.398.3.10.1.1.2.3.2",
        }
    }

    /// The digest algorithm OID (CMS digestAlgorithm).
    pub fn digest_oid(self) -> &'static str {
        match self {
            Self::Gost2004 => "1.2.398.3.10.1.3.1",
            Self::Gost2015_256 => "1.2.398.3.10.1.3.2",
            Self::Gost2015_512 => "1.2.398.3.10.1.3.3",
        }
    }

    /// The algorithm for a digest OID (the inverse of [`Self::digest_oid`]).
    pub fn from_digest_oid(oid: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.digest_oid() == oid)
    }

    /// The XML-DSig SignatureMethod URI.
    pub fn xmldsig_signature_uri(self) -> &'static str {
        match self {
            Self::Gost2004 => "http://www.w3.org/2001/04/xmldsig-more#gost34310-gost34311",
            Self::Gost2015_256 => {
                "urn:ietf:params:xml:ns:pkigovkz:xmlsec:algorithms:gostr34102015-gostr34112015-256"
            }
            Self::Gost2015_512 => {
                "urn:ietf:params:xml:ns:pkigovkz:xmlsec:algorithms:gostr34102015-gostr34112015-512"
            }
        }
    }

    /// The XML-DSig DigestMethod URI.
    pub fn xmldsig_digest_uri(self) -> &'static str {
        match self {
            Self::Gost2004 => "http://www.w3.org/2001/04/xmldsig-more#gost34311",
            Self::Gost2015_256 => {
                "urn:ietf:params:xml:ns:pkigovkz:xmlsec:algorithms:gostr34112015-256"
            }
            Self::Gost2015_512 => {
                "urn:ietf:params:xml:ns:pkigovkz:xmlsec:algorithms:gostr34112015-512"
            }
        }
    }

    /// The algorithm for an XML-DSig SignatureMethod URI.
    pub fn from_xmldsig_signature_uri(uri: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.xmldsig_signature_uri() == uri)
    }

    /// The algorithm for an XML-DSig DigestMethod URI.
    pub fn from_xmldsig_digest_uri(uri: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.xmldsig_digest_uri() == uri)
    }

    /// Length of the digest in bytes: 32 or 64.
    pub fn digest_len(self) -> usize {
        self.coordinate_len()
    }

    /// Length of a signature in bytes: 64 or 128 (r and s, each one coordinate long).
    pub fn signature_len(self) -> usize {
        2 * self.coordinate_len()
    }

    /// Length of a public key (x‖y) in bytes: 64 or 128.
    pub fn public_key_len(self) -> usize {
        2 * self.coordinate_len()
    }

    /// Length of one coordinate, one scalar or one private key in bytes: 32 or 64.
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::Gost2004 | Self::Gost2015_256 => 32,
            Self::Gost2015_512 => 64,
        }
    }

    /// The Russian (TC26 / CryptoPro) OIDs of the same key and curve, for re-wrapping a public key
    /// for OpenSSL's GOST engine: (public-key algorithm, curve parameter set, digest).
    pub fn russian_oids(self) -> (&'static str, &'static str, &'static str) {
        match self {
            // GOST R 34.10-2012-256 key on the CryptoPro-A parameter set. The digest OID is the
            // 2012 one: the engine's own GOST R 34.11-94 uses the CryptoPro S-box, not NCA's test
            // S-box, so 2004 signatures are checked over a digest computed here.
            Self::Gost2004 => ("1.2.643.7.1.1.1.1", "1.2.643.2.2.35.1", "1.2.643.7.1.1.2.2"),
            Self::Gost2015_256 => (
                "1.2.643.7.1.1.1.1",
                "1.2.643.7.1.2.1.1.1",
                "1.2.643.7.1.1.2.2",
            ),
            Self::Gost2015_512 => (
                "1.2.643.7.1.1.1.2",
                "1.2.643.7.1.2.1.2.1",
                "1.2.643.7.1.1.2.3",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_map_back_to_their_algorithm() {
        for alg in GostAlgorithm::ALL {
            assert_eq!(GostAlgorithm::from_key_oid(alg.key_oid()), Some(alg));
            assert_eq!(
                GostAlgorithm::from_signature_oid(alg.signature_oid()),
                Some(alg)
            );
            assert_eq!(GostAlgorithm::from_digest_oid(alg.digest_oid()), Some(alg));
            assert_eq!(
                GostAlgorithm::from_xmldsig_signature_uri(alg.xmldsig_signature_uri()),
                Some(alg)
            );
            assert_eq!(
                GostAlgorithm::from_xmldsig_digest_uri(alg.xmldsig_digest_uri()),
                Some(alg)
            );
            assert_eq!(alg.signature_len(), 2 * alg.digest_len());
        }
        assert_eq!(
            GostAlgorithm::from_signature_oid("1.3.6.1.4.1.6801.1.2.2"),
            Some(GostAlgorithm::Gost2004)
        );
        assert_eq!(GostAlgorithm::from_key_oid("1.2.840.113549.1.1.1"), None);
        assert_eq!(GostAlgorithm::Gost2015_512.digest_len(), 64);
        assert_eq!(GostAlgorithm::Gost2004.signature_len(), 64);
    }
}
