//! Private and public GOST keys in NCA RK's encodings, and signing / verifying with them.
//!
//! Must never: print, log or compare a private key in variable time; keep a private key's bytes
//! after the key is dropped; accept a public key that is not a point of the curve's prime-order
//! group.

use std::fmt;

use crypto_bigint::Uint;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::curve::{Affine, CurveParams};
use crate::encoding::{uint_from_le, uint_to_le};
use crate::field::FieldElement;
use crate::params::{CryptoProA, Tc26A256, Tc26A512};
use crate::{digest, signature, GostAlgorithm, GostError};

/// Calls the generic `$f::<Curve, LIMBS>($alg, args…)` for the curve of algorithm `$alg`.
macro_rules! with_curve {
    ($alg:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $alg {
            GostAlgorithm::Gost2004 => $f::<CryptoProA, 4>($alg, $($arg),*),
            GostAlgorithm::Gost2015_256 => $f::<Tc26A256, 4>($alg, $($arg),*),
            GostAlgorithm::Gost2015_512 => $f::<Tc26A512, 8>($alg, $($arg),*),
        }
    };
}

fn check_len(
    what: &'static str,
    algorithm: GostAlgorithm,
    expected: usize,
    actual: usize,
) -> Result<(), GostError> {
    if expected == actual {
        Ok(())
    } else {
        Err(GostError::BadLength {
            what,
            algorithm,
            expected,
            actual,
        })
    }
}

/// A GOST private key. Zeroized on drop; `Debug` shows only the algorithm.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SigningKey {
    #[zeroize(skip)]
    algorithm: GostAlgorithm,
    /// d as `coordinate_len` little-endian bytes, 1 ≤ d < q.
    secret_le: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn private_is_valid<C: CurveParams<L>, const L: usize>(_: GostAlgorithm, le: &[u8]) -> bool {
    let mut d = uint_from_le::<L>(le);
    let ok = signature::is_valid_private::<C, L>(&d);
    d.zeroize();
    ok
}

fn public_of<C: CurveParams<L>, const L: usize>(alg: GostAlgorithm, le: &[u8]) -> VerifyingKey {
    let mut d = uint_from_le::<L>(le);
    let point = signature::public_key::<C, L>(&d);
    d.zeroize();
    VerifyingKey {
        algorithm: alg,
        x_le_y_le: encode_point::<C, L>(&point),
    }
}

fn sign_with<C: CurveParams<L>, const L: usize>(
    _: GostAlgorithm,
    le: &[u8],
    digest: &[u8],
) -> Result<Vec<u8>, GostError> {
    let mut d = uint_from_le::<L>(le);
    let result = signature::sign::<C, L>(&d, digest);
    d.zeroize();
    let (r, s) = result?;
    let mut out = uint_to_le(&r, C::BYTES);
    out.extend_from_slice(&uint_to_le(&s, C::BYTES));
    Ok(out)
}

impl SigningKey {
    /// The key from the bytes NCA stores in a keystore: for GOST 2015, the 32/64 little-endian
    /// bytes of the PKCS#8 OCTET STRING; for GOST 2004, the big-endian magnitude of the DER
    /// INTEGER (leading zero bytes allowed, shorter values left-padded).
    pub fn from_nca_private(alg: GostAlgorithm, raw: &[u8]) -> Result<Self, GostError> {
        let len = alg.coordinate_len();
        let secret_le = match alg {
            GostAlgorithm::Gost2004 => {
                // A DER INTEGER's magnitude: one leading 0x00 when the top bit is set, and
                // possibly shorter than 32 bytes. Only the (public) length decides what is read.
                let magnitude = if raw.len() == len + 1 && raw[0] == 0 {
                    &raw[1..]
                } else {
                    raw
                };
                if magnitude.len() > len || magnitude.is_empty() {
                    return Err(GostError::BadLength {
                        what: "private key",
                        algorithm: alg,
                        expected: len,
                        actual: raw.len(),
                    });
                }
                let mut le: Vec<u8> = magnitude.iter().rev().copied().collect();
                le.resize(len, 0);
                le
            }
            GostAlgorithm::Gost2015_256 | GostAlgorithm::Gost2015_512 => {
                check_len("private key", alg, len, raw.len())?;
                raw.to_vec()
            }
        };
        let key = Self {
            algorithm: alg,
            secret_le,
        };
        if !with_curve!(alg, private_is_valid(&key.secret_le)) {
            return Err(GostError::BadKey("private key is not in [1, q)".into()));
        }
        Ok(key)
    }

    /// A new random key (operating-system randomness). Panics only if the OS has no randomness.
    pub fn generate(alg: GostAlgorithm) -> Self {
        Self::try_generate(alg).expect("operating system randomness is available")
    }

    /// A new random key, or the randomness error.
    pub fn try_generate(alg: GostAlgorithm) -> Result<Self, GostError> {
        let len = alg.coordinate_len();
        loop {
            // Rejection sampling: uniform candidates of the key's length, kept only below q.
            let mut bytes = Zeroizing::new(vec![0u8; len]);
            getrandom::fill(bytes.as_mut_slice())
                .map_err(|e| GostError::Randomness(e.to_string()))?;
            if with_curve!(alg, private_is_valid(bytes.as_slice())) {
                return Ok(Self {
                    algorithm: alg,
                    secret_le: bytes.to_vec(),
                });
            }
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> GostAlgorithm {
        self.algorithm
    }

    /// The public key d·G.
    pub fn verifying_key(&self) -> VerifyingKey {
        with_curve!(self.algorithm, public_of(&self.secret_le))
    }

    /// Hashes `message` with the algorithm's digest and signs it (NCA encoding LE(r)‖LE(s)).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let digest = digest(self.algorithm, message);
        self.sign_digest(&digest)
            .expect("operating system randomness is available")
    }

    /// Signs a digest computed by the caller (NCA encoding LE(r)‖LE(s); the digest is read as a
    /// little-endian integer).
    pub fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, GostError> {
        check_len(
            "digest",
            self.algorithm,
            self.algorithm.digest_len(),
            digest.len(),
        )?;
        with_curve!(self.algorithm, sign_with(&self.secret_le, digest))
    }

    /// The inverse of [`Self::from_nca_private`]: 2015 keys as little-endian bytes, 2004 keys as the
    /// 32-byte big-endian magnitude (a DER INTEGER needs a leading 0x00 when the top bit is set).
    pub fn to_nca_private(&self) -> Zeroizing<Vec<u8>> {
        match self.algorithm {
            GostAlgorithm::Gost2004 => {
                Zeroizing::new(self.secret_le.iter().rev().copied().collect())
            }
            GostAlgorithm::Gost2015_256 | GostAlgorithm::Gost2015_512 => {
                Zeroizing::new(self.secret_le.clone())
            }
        }
    }
}

/// A GOST public key (a point of the curve's prime-order group), in NCA's encoding.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VerifyingKey {
    algorithm: GostAlgorithm,
    x_le_y_le: Vec<u8>,
}

fn encode_point<C: CurveParams<L>, const L: usize>(point: &Affine<C::F, L>) -> Vec<u8> {
    let mut out = uint_to_le(&point.x.to_uint(), C::BYTES);
    out.extend_from_slice(&uint_to_le(&point.y.to_uint(), C::BYTES));
    out
}

fn decode_point<C: CurveParams<L>, const L: usize>(bytes: &[u8]) -> Option<Affine<C::F, L>> {
    let x = uint_from_le::<L>(&bytes[..C::BYTES]);
    let y = uint_from_le::<L>(&bytes[C::BYTES..2 * C::BYTES]);
    Affine::from_coordinates::<C>(&x, &y)
}

fn public_is_valid<C: CurveParams<L>, const L: usize>(_: GostAlgorithm, bytes: &[u8]) -> bool {
    decode_point::<C, L>(bytes).is_some_and(|p| signature::is_valid_public::<C, L>(&p))
}

fn verify_with<C: CurveParams<L>, const L: usize>(
    _: GostAlgorithm,
    key: &[u8],
    digest: &[u8],
    sig: &[u8],
) -> bool {
    let Some(point) = decode_point::<C, L>(key) else {
        return false;
    };
    let alpha = uint_from_le::<L>(digest);
    let r: Uint<L> = uint_from_le(&sig[..C::BYTES]);
    let s: Uint<L> = uint_from_le(&sig[C::BYTES..2 * C::BYTES]);
    signature::verify::<C, L>(&point, &alpha, &r, &s)
}

impl VerifyingKey {
    /// The key from the contents of the OCTET STRING inside a SubjectPublicKeyInfo's BIT STRING:
    /// LE(x)‖LE(y). The point is checked to be on the curve and in its prime-order group.
    pub fn from_nca_public(alg: GostAlgorithm, x_le_y_le: &[u8]) -> Result<Self, GostError> {
        check_len("public key", alg, alg.public_key_len(), x_le_y_le.len())?;
        if !with_curve!(alg, public_is_valid(x_le_y_le)) {
            return Err(GostError::BadKey(format!(
                "public key is not a point of the {alg:?} curve's prime-order group"
            )));
        }
        Ok(Self {
            algorithm: alg,
            x_le_y_le: x_le_y_le.to_vec(),
        })
    }

    /// LE(x)‖LE(y), as in a certificate (and in RFC 4491, so also what OpenSSL's engine reads).
    pub fn to_nca_public(&self) -> Vec<u8> {
        self.x_le_y_le.clone()
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> GostAlgorithm {
        self.algorithm
    }

    /// Verifies an NCA-encoded signature LE(r)‖LE(s) over `message` (hashed here).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), GostError> {
        self.verify_digest(&digest(self.algorithm, message), signature)
    }

    /// Verifies an NCA-encoded signature LE(r)‖LE(s) over a digest (read as a little-endian
    /// integer).
    pub fn verify_digest(&self, digest: &[u8], signature: &[u8]) -> Result<(), GostError> {
        let alg = self.algorithm;
        check_len("digest", alg, alg.digest_len(), digest.len())?;
        check_len("signature", alg, alg.signature_len(), signature.len())?;
        if with_curve!(alg, verify_with(&self.x_le_y_le, digest, signature)) {
            Ok(())
        } else {
            Err(GostError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify_and_reject_tampering() {
        for alg in GostAlgorithm::ALL {
            let key = SigningKey::generate(alg);
            let public = key.verifying_key();
            let message = b"Qaqpa signs this letter";
            let sig = key.sign(message);
            assert_eq!(sig.len(), alg.signature_len());
            assert_eq!(public.verify(message, &sig), Ok(()), "{alg:?}");
            assert_eq!(
                public.verify(b"Qaqpa signs this letteR", &sig),
                Err(GostError::BadSignature)
            );
            for i in [0, sig.len() / 2, sig.len() - 1] {
                let mut bad = sig.clone();
                bad[i] ^= 0x01;
                assert_eq!(
                    public.verify(message, &bad),
                    Err(GostError::BadSignature),
                    "{alg:?} byte {i}"
                );
            }
            // Two signatures of one message differ (fresh nonces) and both verify.
            let again = key.sign(message);
            assert_ne!(again, sig);
            assert_eq!(public.verify(message, &again), Ok(()));
        }
    }

    #[test]
    fn private_keys_round_trip_through_nca_encoding() {
        for alg in GostAlgorithm::ALL {
            let key = SigningKey::generate(alg);
            let raw = key.to_nca_private();
            let back = SigningKey::from_nca_private(alg, &raw).expect("valid key");
            assert_eq!(back.verifying_key(), key.verifying_key());
            let public = VerifyingKey::from_nca_public(alg, &key.verifying_key().to_nca_public())
                .expect("valid point");
            assert_eq!(public, key.verifying_key());
        }
    }

    #[test]
    fn gost2004_private_key_accepts_der_integer_magnitudes() {
        let key = SigningKey::generate(GostAlgorithm::Gost2004);
        let be = key.to_nca_private();
        let mut with_sign_byte = vec![0u8];
        with_sign_byte.extend_from_slice(&be);
        let parsed = SigningKey::from_nca_private(GostAlgorithm::Gost2004, &with_sign_byte)
            .expect("leading zero is allowed");
        assert_eq!(parsed.verifying_key(), key.verifying_key());
    }

    #[test]
    fn out_of_range_private_keys_are_refused() {
        for alg in GostAlgorithm::ALL {
            let zero = vec![0u8; alg.coordinate_len()];
            assert!(matches!(
                SigningKey::from_nca_private(alg, &zero),
                Err(GostError::BadKey(_))
            ));
            let all_ones = vec![0xffu8; alg.coordinate_len()];
            assert!(matches!(
                SigningKey::from_nca_private(alg, &all_ones),
                Err(GostError::BadKey(_))
            ));
        }
        assert!(matches!(
            SigningKey::from_nca_private(GostAlgorithm::Gost2015_512, &[1u8; 32]),
            Err(GostError::BadLength {
                expected: 64,
                actual: 32,
                ..
            })
        ));
    }

    #[test]
    fn points_off_the_curve_are_refused() {
        for alg in GostAlgorithm::ALL {
            let mut bytes = SigningKey::generate(alg).verifying_key().to_nca_public();
            bytes[0] ^= 1;
            assert!(matches!(
                VerifyingKey::from_nca_public(alg, &bytes),
                Err(GostError::BadKey(_))
            ));
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let key = SigningKey::from_nca_private(GostAlgorithm::Gost2015_256, &[0x11; 32])
            .expect("0x1111… is below q");
        let shown = format!("{key:?}");
        assert!(!shown.contains("17, 17") && !shown.contains("1111") && shown.contains("redacted"));
    }

    #[test]
    fn wrong_lengths_are_reported_not_panicked_on() {
        let key = SigningKey::generate(GostAlgorithm::Gost2015_512);
        let public = key.verifying_key();
        assert!(matches!(
            key.sign_digest(&[0u8; 32]),
            Err(GostError::BadLength { .. })
        ));
        assert!(matches!(
            public.verify_digest(&[0u8; 64], &[0u8; 64]),
            Err(GostError::BadLength { .. })
        ));
        assert!(matches!(
            VerifyingKey::from_nca_public(GostAlgorithm::Gost2004, &[0u8; 3]),
            Err(GostError::BadLength { .. })
        ));
        // All-zero signatures (r = s = 0) are invalid, not a crash.
        assert_eq!(
            public.verify_digest(&[0u8; 64], &[0u8; 128]),
            Err(GostError::BadSignature)
        );
    }
}
