//! Private and public keys (RSA through aws-lc-rs, GOST through qaqpa-gost) and the signature
//! algorithms NCA uses. Private key bytes live only in zeroizing buffers; never log or print them.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as awssig, KeyPair, RsaKeyPair, UnparsedPublicKey};
use qaqpa_gost::{GostAlgorithm, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::asn1::{der, parse_single, tag, Reader};
use crate::error::PkiError;
use crate::oid;

/// A signature algorithm as it appears in certificates, CRLs, CMS and OCSP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256.
    RsaSha256,
    /// GOST 34.310-2004 with GOST 34.311-95 (test S-box).
    Gost2004,
    /// GOST 34.10-2015 256-bit with Streebog-256.
    Gost2015_256,
    /// GOST 34.10-2015 512-bit with Streebog-512.
    Gost2015_512,
}

impl SignatureAlgorithm {
    /// From a signature-with-hash OID (certificates, CRLs, CMS signatureAlgorithm).
    pub fn from_oid(o: &str) -> Result<Self, PkiError> {
        if o == oid::SHA256_WITH_RSA {
            return Ok(Self::RsaSha256);
        }
        // Kalkan also writes the bare rsaEncryption OID in CMS signerInfos.
        if o == oid::RSA_ENCRYPTION {
            return Ok(Self::RsaSha256);
        }
        if o == "1.3.6.1.4.1.6801.1.2.2" {
            return Ok(Self::Gost2004);
        }
        match GostAlgorithm::from_signature_oid(o).or_else(|| GostAlgorithm::from_key_oid(o)) {
            Some(g) => Ok(Self::from_gost(g)),
            None => Err(PkiError::UnsupportedAlgorithm(format!(
                "signature algorithm {o}"
            ))),
        }
    }

    pub fn from_gost(g: GostAlgorithm) -> Self {
        match g {
            GostAlgorithm::Gost2004 => Self::Gost2004,
            GostAlgorithm::Gost2015_256 => Self::Gost2015_256,
            GostAlgorithm::Gost2015_512 => Self::Gost2015_512,
        }
    }

    /// The GOST algorithm, if this is one.
    pub fn gost(self) -> Option<GostAlgorithm> {
        match self {
            Self::RsaSha256 => None,
            Self::Gost2004 => Some(GostAlgorithm::Gost2004),
            Self::Gost2015_256 => Some(GostAlgorithm::Gost2015_256),
            Self::Gost2015_512 => Some(GostAlgorithm::Gost2015_512),
        }
    }

    /// The signature-with-hash OID.
    pub fn oid(self) -> &'static str {
        match self.gost() {
            None => oid::SHA256_WITH_RSA,
            Some(g) => g.signature_oid(),
        }
    }

    /// The digest OID that goes with it (CMS digestAlgorithm).
    pub fn digest_oid(self) -> &'static str {
        match self.gost() {
            None => oid::SHA256,
            Some(g) => g.digest_oid(),
        }
    }

    /// AlgorithmIdentifier for the signature (RSA carries NULL parameters, GOST none).
    pub fn to_der(self) -> Vec<u8> {
        match self {
            Self::RsaSha256 => der::alg(oid::SHA256_WITH_RSA, Some(&der::null())),
            _ => der::alg(self.oid(), None),
        }
    }

    /// The hash of `data` under this algorithm's digest.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self.gost() {
            None => sha256(data),
            Some(g) => qaqpa_gost::digest(g, data),
        }
    }

    /// Short human name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RsaSha256 => "RSA SHA-256",
            Self::Gost2004 => "GOST 34.310-2004",
            Self::Gost2015_256 => "GOST 34.10-2015 256",
            Self::Gost2015_512 => "GOST 34.10-2015 512",
        }
    }
}

/// A digest algorithm as used in CMS digestAlgorithms, CertIDs and time-stamp imprints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha1,
    Sha256,
    Gost(GostAlgorithm),
}

impl DigestAlgorithm {
    pub fn from_oid(o: &str) -> Result<Self, PkiError> {
        match o {
            oid::SHA1 => Ok(Self::Sha1),
            oid::SHA256 => Ok(Self::Sha256),
            _ => GostAlgorithm::from_digest_oid(o)
                .map(Self::Gost)
                .ok_or_else(|| PkiError::UnsupportedAlgorithm(format!("digest {o}"))),
        }
    }

    pub fn oid(self) -> &'static str {
        match self {
            Self::Sha1 => oid::SHA1,
            Self::Sha256 => oid::SHA256,
            Self::Gost(g) => g.digest_oid(),
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha1::Digest as _;
        match self {
            Self::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Self::Sha256 => sha256(data),
            Self::Gost(g) => qaqpa_gost::digest(g, data),
        }
    }
}

pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}

/// An RSA private key (aws-lc-rs keeps the key in memory it clears on free).
pub struct RsaPrivateKey {
    pair: RsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RsaPrivateKey({} bits)",
            self.pair.public_modulus_len() * 8
        )
    }
}

impl RsaPrivateKey {
    /// The PKCS#1 RSAPublicKey DER of this key.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// A fresh RSA key of `bits` (2048, 3072 or 4096).
    pub fn generate(bits: usize) -> Result<Self, PkiError> {
        let size = match bits {
            2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
            3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
            4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
            _ => return Err(PkiError::Key(format!("unsupported RSA size {bits}"))),
        };
        let pair = RsaKeyPair::generate(size).map_err(|e| PkiError::Key(e.to_string()))?;
        let doc = pair
            .as_der()
            .map_err(|e| PkiError::Key(format!("cannot export RSA key: {e}")))?;
        let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
        Ok(RsaPrivateKey { pair, pkcs8 })
    }
}

/// A private signing key from a keystore or a PKCS#8 file.
#[derive(Debug)]
pub enum PrivateKey {
    Rsa(RsaPrivateKey),
    Gost(SigningKey),
}

impl PrivateKey {
    /// From a PKCS#8 PrivateKeyInfo (RSA or NCA GOST) in DER.
    pub fn from_pkcs8_der(der_bytes: &[u8]) -> Result<Self, PkiError> {
        let top = parse_single(der_bytes, "PrivateKeyInfo")?;
        top.check(tag::SEQUENCE, "PrivateKeyInfo")?;
        let mut r = top.reader();
        r.expect(tag::INTEGER, "PrivateKeyInfo version")?;
        let alg = r.expect(tag::SEQUENCE, "privateKeyAlgorithm")?;
        let alg_oid = alg
            .reader()
            .expect(tag::OID, "privateKeyAlgorithm")?
            .oid()?;
        let key = r.expect(tag::OCTET_STRING, "privateKey")?;
        if alg_oid == oid::RSA_ENCRYPTION {
            let pair = RsaKeyPair::from_pkcs8(der_bytes)
                .map_err(|e| PkiError::Key(format!("RSA private key rejected: {e}")))?;
            return Ok(PrivateKey::Rsa(RsaPrivateKey {
                pair,
                pkcs8: Zeroizing::new(der_bytes.to_vec()),
            }));
        }
        let g = GostAlgorithm::from_key_oid(&alg_oid)
            .ok_or_else(|| PkiError::UnsupportedAlgorithm(format!("private key {alg_oid}")))?;
        let g = refine_gost_by_params(g, &alg)?;
        // NCA: 2015 = OCTET STRING of little-endian bytes, 2004 = INTEGER (big-endian); some
        // writers put the raw bytes directly. Accept the three.
        let inner = key.content;
        let raw: Zeroizing<Vec<u8>> = match Reader::new(inner).read() {
            Ok(t) if t.raw.len() == inner.len() && t.tag == tag::OCTET_STRING => {
                Zeroizing::new(t.content.to_vec())
            }
            Ok(t) if t.raw.len() == inner.len() && t.tag == tag::INTEGER => {
                Zeroizing::new(t.uint_bytes()?.to_vec())
            }
            _ => Zeroizing::new(inner.to_vec()),
        };
        Ok(PrivateKey::Gost(SigningKey::from_nca_private(g, &raw)?))
    }

    /// From a PKCS#1 RSAPrivateKey in DER ("RSA PRIVATE KEY").
    pub fn from_pkcs1_der(der_bytes: &[u8]) -> Result<Self, PkiError> {
        let pair = RsaKeyPair::from_der(der_bytes)
            .map_err(|e| PkiError::Key(format!("RSA private key rejected: {e}")))?;
        let doc = pair
            .as_der()
            .map_err(|e| PkiError::Key(format!("cannot export RSA key: {e}")))?;
        Ok(PrivateKey::Rsa(RsaPrivateKey {
            pkcs8: Zeroizing::new(doc.as_ref().to_vec()),
            pair,
        }))
    }

    /// From a PEM file with "PRIVATE KEY" or "RSA PRIVATE KEY" (unencrypted).
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        for block in crate::pem::parse(pem)? {
            match block.label.as_str() {
                "PRIVATE KEY" => return Self::from_pkcs8_der(&block.der),
                "RSA PRIVATE KEY" => return Self::from_pkcs1_der(&block.der),
                _ => {}
            }
        }
        Err(PkiError::Malformed("no PRIVATE KEY block in PEM".into()))
    }

    /// The PKCS#8 PrivateKeyInfo (unencrypted) in DER; the buffer zeroizes on drop.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        match self {
            PrivateKey::Rsa(k) => k.pkcs8.clone(),
            PrivateKey::Gost(k) => {
                let g = k.algorithm();
                let raw = k.to_nca_private();
                let inner = Zeroizing::new(match g {
                    GostAlgorithm::Gost2004 => der::uint(&raw),
                    _ => der::octets(&raw),
                });
                let params = der::seq(&[&der::oid(g.curve_oid()), &der::oid(g.digest_oid())]);
                let body = Zeroizing::new(
                    [
                        der::small_uint(0),
                        der::alg(g.key_oid(), Some(&params)),
                        der::octets(&inner),
                    ]
                    .concat(),
                );
                Zeroizing::new(der::tlv(tag::SEQUENCE, &body))
            }
        }
    }

    /// The algorithm this key signs with.
    pub fn signature_algorithm(&self) -> SignatureAlgorithm {
        match self {
            PrivateKey::Rsa(_) => SignatureAlgorithm::RsaSha256,
            PrivateKey::Gost(k) => SignatureAlgorithm::from_gost(k.algorithm()),
        }
    }

    /// Signs `data` (RSA: PKCS#1 v1.5 SHA-256; GOST: hash per its algorithm, NCA encoding).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, PkiError> {
        match self {
            PrivateKey::Rsa(k) => {
                let mut sig = vec![0u8; k.pair.public_modulus_len()];
                k.pair
                    .sign(
                        &awssig::RSA_PKCS1_SHA256,
                        &SystemRandom::new(),
                        data,
                        &mut sig,
                    )
                    .map_err(|e| PkiError::Key(format!("RSA signing failed: {e}")))?;
                Ok(sig)
            }
            PrivateKey::Gost(k) => Ok(k.sign(data)),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> Result<PublicKey, PkiError> {
        match self {
            PrivateKey::Rsa(k) => Ok(PublicKey::Rsa(k.public_key_der())),
            PrivateKey::Gost(k) => Ok(PublicKey::Gost(k.verifying_key())),
        }
    }
}

/// GOST 2015 key OIDs may not tell 256 from 512; the curve parameter does.
fn refine_gost_by_params(
    g: GostAlgorithm,
    alg: &crate::asn1::Tlv<'_>,
) -> Result<GostAlgorithm, PkiError> {
    let mut r = alg.reader();
    r.read()?;
    if let Some(params) = r.optional(tag::SEQUENCE)? {
        if let Some(curve) = params.reader().optional(tag::OID)? {
            let c = curve.oid()?;
            for cand in GostAlgorithm::ALL {
                if cand.curve_oid() == c {
                    return Ok(cand);
                }
            }
        }
    }
    Ok(g)
}

/// A public key from a certificate.
#[derive(Clone, Debug)]
pub enum PublicKey {
    /// PKCS#1 RSAPublicKey DER.
    Rsa(Vec<u8>),
    Gost(VerifyingKey),
}

impl PublicKey {
    /// From a SubjectPublicKeyInfo TLV.
    pub fn from_spki(spki: &crate::asn1::Tlv<'_>) -> Result<Self, PkiError> {
        let mut r = spki.reader();
        let alg = r.expect(tag::SEQUENCE, "SubjectPublicKeyInfo algorithm")?;
        let alg_oid = alg
            .reader()
            .expect(tag::OID, "public key algorithm")?
            .oid()?;
        let bits = r
            .expect(tag::BIT_STRING, "subjectPublicKey")?
            .bit_string()?;
        if alg_oid == oid::RSA_ENCRYPTION {
            return Ok(PublicKey::Rsa(bits.to_vec()));
        }
        let g = GostAlgorithm::from_key_oid(&alg_oid)
            .ok_or_else(|| PkiError::UnsupportedAlgorithm(format!("public key {alg_oid}")))?;
        let g = refine_gost_by_params(g, &alg)?;
        let os = parse_single(bits, "GOST public key")?;
        os.check(tag::OCTET_STRING, "GOST public key")?;
        Ok(PublicKey::Gost(VerifyingKey::from_nca_public(
            g, os.content,
        )?))
    }

    /// SubjectPublicKeyInfo DER.
    pub fn to_spki_der(&self) -> Vec<u8> {
        match self {
            PublicKey::Rsa(k) => der::seq(&[
                &der::alg(oid::RSA_ENCRYPTION, Some(&der::null())),
                &der::bits(k),
            ]),
            PublicKey::Gost(k) => {
                let g = k.algorithm();
                let params = der::seq(&[&der::oid(g.curve_oid()), &der::oid(g.digest_oid())]);
                der::seq(&[
                    &der::alg(g.key_oid(), Some(&params)),
                    &der::bits(&der::octets(&k.to_nca_public())),
                ])
            }
        }
    }

    /// Verifies `signature` over `data` with `alg`.
    pub fn verify(
        &self,
        data: &[u8],
        signature: &[u8],
        alg: SignatureAlgorithm,
    ) -> Result<(), PkiError> {
        match (self, alg.gost()) {
            (PublicKey::Rsa(k), None) => {
                UnparsedPublicKey::new(&awssig::RSA_PKCS1_2048_8192_SHA256, k)
                    .verify(data, signature)
                    .map_err(|_| {
                        PkiError::BadSignature("RSA PKCS#1 v1.5 SHA-256 does not verify".into())
                    })
            }
            (PublicKey::Gost(k), Some(g)) if k.algorithm() == g => {
                k.verify(data, signature).map_err(|_| {
                    PkiError::BadSignature(format!("{} signature does not verify", alg.name()))
                })
            }
            _ => Err(PkiError::BadSignature(format!(
                "{} signature cannot be checked with a {} key",
                alg.name(),
                self.kind()
            ))),
        }
    }

    /// Verifies a signature over a precomputed digest (GOST only; RSA needs the data).
    pub fn verify_digest(
        &self,
        digest: &[u8],
        signature: &[u8],
        alg: SignatureAlgorithm,
    ) -> Result<(), PkiError> {
        match (self, alg.gost()) {
            (PublicKey::Gost(k), Some(g)) if k.algorithm() == g => {
                k.verify_digest(digest, signature).map_err(|_| {
                    PkiError::BadSignature(format!("{} signature does not verify", alg.name()))
                })
            }
            _ => Err(PkiError::UnsupportedAlgorithm(
                "digest-only verification for RSA".into(),
            )),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::Rsa(_) => "RSA",
            PublicKey::Gost(k) => SignatureAlgorithm::from_gost(k.algorithm()).name(),
        }
    }
}
