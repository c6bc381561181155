//! The GOST hash functions NCA RK signs with: GOST 34.311-95 (= GOST R 34.11-94 with the *test*
//! S-box, not CryptoPro's) for GOST 2004, Streebog-256/512 (GOST 34.11-2015) for GOST 2015.
//!
//! Output bytes are exactly what the RustCrypto crates produce, which is what NCA puts in CMS
//! messageDigest attributes and XML DigestValue; signatures read them as a little-endian integer.

use gost94::Digest as _;

use crate::GostAlgorithm;

/// The digest of `data` with the hash of `alg`.
pub fn digest(alg: GostAlgorithm, data: &[u8]) -> Vec<u8> {
    let mut hasher = GostHasher::new(alg);
    hasher.update(data);
    hasher.finalize()
}

/// An incremental hasher for the digest of a GOST algorithm (for large or streamed content).
#[derive(Clone)]
pub struct GostHasher {
    inner: HasherState,
}

#[derive(Clone)]
enum HasherState {
    Gost94Test(gost94::Gost94Test),
    Streebog256(streebog::Streebog256),
    Streebog512(streebog::Streebog512),
}

impl std::fmt::Debug for GostHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.inner {
            HasherState::Gost94Test(_) => "GOST 34.311-95 (test S-box)",
            HasherState::Streebog256(_) => "Streebog-256",
            HasherState::Streebog512(_) => "Streebog-512",
        };
        f.debug_struct("GostHasher").field("hash", &name).finish()
    }
}

impl GostHasher {
    /// A fresh hasher for `alg`'s digest.
    pub fn new(alg: GostAlgorithm) -> Self {
        let inner = match alg {
            GostAlgorithm::Gost2004 => HasherState::Gost94Test(gost94::Gost94Test::new()),
            GostAlgorithm::Gost2015_256 => HasherState::Streebog256(streebog::Streebog256::new()),
            GostAlgorithm::Gost2015_512 => HasherState::Streebog512(streebog::Streebog512::new()),
        };
        Self { inner }
    }

    /// Feeds more data.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.inner {
            HasherState::Gost94Test(h) => h.update(data),
            HasherState::Streebog256(h) => h.update(data),
            HasherState::Streebog512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finalize(self) -> Vec<u8> {
        match self.inner {
            HasherState::Gost94Test(h) => h.finalize().to_vec(),
            HasherState::Streebog256(h) => h.finalize().to_vec(),
            HasherState::Streebog512(h) => h.finalize().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 5831 §7.3.1 (GOST R 34.11-94 with the test parameter set).
    #[test]
    fn gost34311_test_sbox_matches_rfc5831_examples() {
        let cases: [(&[u8], &str); 6] = [
            (
                b"",
                "ce85b99cc46752fffee35cab9a7b0278abb4c2d2055cff685af4912c49490f8d",
            ),
            (
                b"a",
                "d42c539e367c66e9c88a801f6649349c21871b4344c6a573f849fdce62f314dd",
            ),
            (
                b"abc",
                "f3134348c44fb1b2a277729e2285ebb5cb5e0f29c975bc753b70497c06a4d51d",
            ),
            (
                b"message digest",
                "ad4434ecb18f2c99b60cbe59ec3d2469582b65273f48de72db2fde16a4889a4d",
            ),
            (
                b"This is message, length=32 bytes",
                "b1c466d37519b82e8319819ff32595e047a28cb6f83eff1c6916a815a637fffa",
            ),
            (
                b"Suppose the original message has length = 50 bytes",
                "471aba57a60a770d3a76130635c1fbea4ef14de51f78b4ae57dd893b62f55208",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(hex(&digest(GostAlgorithm::Gost2004, message)), expected);
        }
    }

    /// GOST R 34.11-2012 / RFC 6986 §10.1, message M1 (63 bytes "0123…012").
    #[test]
    fn streebog_matches_rfc6986_m1() {
        let m1 = b"012345678901234567890123456789012345678901234567890123456789012";
        assert_eq!(
            hex(&digest(GostAlgorithm::Gost2015_512, m1)),
            "1b54d01a4af5b9d5cc3d86d68d285462b19abc2475222f35c085122be4ba1ffa\
             00ad30f8767b3a82384c6574f024c311e2a481332b08ef7f41797891c1646f48"
        );
        assert_eq!(
            hex(&digest(GostAlgorithm::Gost2015_256, m1)),
            "9d151eefd8590b89daa6ba6cb74af9275dd051026bb149a452fd84e5e57b5500"
        );
    }

    /// RFC 6986 §10.2, message M2 (72 bytes, cp1251 text "Се ветри, Стрибожи внуци…").
    #[test]
    fn streebog_matches_rfc6986_m2() {
        let m2: Vec<u8> = [
            0xd1, 0xe5, 0x20, 0xe2, 0xe5, 0xf2, 0xf0, 0xe8, 0x2c, 0x20, 0xd1, 0xf2, 0xf0, 0xe8,
            0xe1, 0xee, 0xe6, 0xe8, 0x20, 0xe2, 0xed, 0xf3, 0xf6, 0xe8, 0x2c, 0x20, 0xe2, 0xe5,
            0xfe, 0xf2, 0xfa, 0x20, 0xf1, 0x20, 0xec, 0xee, 0xf0, 0xff, 0x20, 0xf1, 0xf2, 0xf0,
            0xe5, 0xeb, 0xe0, 0xec, 0xe8, 0x20, 0xed, 0xe0, 0x20, 0xf5, 0xf0, 0xe0, 0xe1, 0xf0,
            0xfb, 0xff, 0x20, 0xef, 0xeb, 0xfa, 0xea, 0xfb, 0x20, 0xc8, 0xe3, 0xee, 0xf0, 0xe5,
            0xe2, 0xfb,
        ]
        .to_vec();
        assert_eq!(
            hex(&digest(GostAlgorithm::Gost2015_512, &m2)),
            "1e88e62226bfca6f9994f1f2d51569e0daf8475a3b0fe61a5300eee46d961376\
             035fe83549ada2b8620fcd7c496ce5b33f0cb9dddc2b6460143b03dabac9fb28"
        );
        assert_eq!(
            hex(&digest(GostAlgorithm::Gost2015_256, &m2)),
            "9dd2fe4e90409e5da87f53976d7405b0c0cac628fc669a741d50063c557e8f50"
        );
    }

    #[test]
    fn incremental_hashing_equals_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for alg in GostAlgorithm::ALL {
            let mut hasher = GostHasher::new(alg);
            for chunk in data.chunks(37) {
                hasher.update(chunk);
            }
            assert_eq!(hasher.finalize(), digest(alg, &data), "{alg:?}");
            assert_eq!(digest(alg, &data).len(), alg.digest_len());
        }
    }
}
