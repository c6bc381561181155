//! PKCS#12 keystores: as NCA issues them (BER with indefinite lengths, HMAC-SHA1 MAC, 3DES key
//! bags, RC2-40 certificate bags) and as OpenSSL 3 writes them (PBES2, PBKDF2-HMAC-SHA256,
//! AES-256-CBC, HMAC-SHA-256 MAC). The MAC is checked over the original bytes before anything is
//! decrypted. Decrypted key material stays in zeroizing buffers; passwords are never printed.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyIvInit};
use hmac::{KeyInit, Mac};
use zeroize::Zeroizing;

use crate::asn1::{der, parse_single, tag, Reader, Tlv};
use crate::cert::Certificate;
use crate::error::PkiError;
use crate::keys::{PrivateKey, PublicKey};
use crate::oid;

/// Highest iteration count accepted (OpenSSL writes 2,048, NCA 1,024): bounds the work a
/// hostile file can cause.
const MAX_ITERATIONS: u64 = 1_000_000;

/// A signing key with its certificate and the rest of the chain found in the keystore.
#[derive(Debug)]
pub struct Keystore {
    key: PrivateKey,
    certificate: Certificate,
    chain: Vec<Certificate>,
}

#[derive(Clone, Copy)]
enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest as _;
        match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }
    fn out_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }
    fn from_oid(o: &str) -> Result<Self, PkiError> {
        match o {
            oid::SHA1 | oid::HMAC_SHA1 => Ok(Hash::Sha1),
            oid::SHA256 | oid::HMAC_SHA256 => Ok(Hash::Sha256),
            _ => Err(PkiError::UnsupportedAlgorithm(format!("keystore hash {o}"))),
        }
    }
}

/// The password as PKCS#12 wants it: BMPString (UTF-16BE) with a trailing zero character.
fn bmp_password(password: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(password.len() * 2 + 2));
    for u in password.encode_utf16() {
        out.extend_from_slice(&u.to_be_bytes());
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// RFC 7292 appendix B.2 key derivation.
fn pkcs12_kdf(
    hash: Hash,
    password: &[u8],
    salt: &[u8],
    id: u8,
    iterations: u64,
    n: usize,
) -> Zeroizing<Vec<u8>> {
    let v = 64usize;
    let u = hash.out_len();
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let len = v * src.len().div_ceil(v);
        src.iter().cycle().take(len).copied().collect()
    };
    let mut i_buf = Zeroizing::new([fill(salt), fill(password)].concat());
    let d = vec![id; v];
    let mut out = Zeroizing::new(Vec::with_capacity(n + u));
    while out.len() < n {
        let mut a = Zeroizing::new(hash.digest(&[d.as_slice(), &i_buf].concat()));
        for _ in 1..iterations {
            a = Zeroizing::new(hash.digest(&a));
        }
        out.extend_from_slice(&a);
        if out.len() >= n {
            break;
        }
        let b: Vec<u8> = a.iter().cycle().take(v).copied().collect();
        for block in i_buf.chunks_mut(v) {
            let mut carry = 1u16;
            for k in (0..v).rev() {
                let s = u16::from(block[k]) + u16::from(b[k]) + carry;
                block[k] = s as u8;
                carry = s >> 8;
            }
        }
    }
    out.truncate(n);
    out
}

fn hmac(hash: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
    match hash {
        Hash::Sha1 => {
            let mut m = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key)
                .expect("HMAC takes any key length");
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Hash::Sha256 => {
            let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
                .expect("HMAC takes any key length");
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn iterations_of(t: Option<Tlv<'_>>) -> Result<u64, PkiError> {
    let it = match t {
        Some(t) => t.small_uint()?,
        None => 1,
    };
    if it == 0 || it > MAX_ITERATIONS {
        return Err(PkiError::Malformed(format!(
            "keystore iteration count {it} out of range"
        )));
    }
    Ok(it)
}

fn bad_decrypt() -> PkiError {
    PkiError::Decryption("bad padding after decryption (wrong password or damaged file)".into())
}

/// Decrypts with a PKCS#12 PBE or PBES2 AlgorithmIdentifier.
fn decrypt(alg: &Tlv<'_>, password: &str, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError> {
    let mut r = alg.reader();
    let alg_oid = r.expect(tag::OID, "encryption algorithm")?.oid()?;
    let params = r.expect(tag::SEQUENCE, "encryption parameters")?;
    if alg_oid == oid::PBES2 {
        return decrypt_pbes2(&params, password, data);
    }
    let mut p = params.reader();
    let salt = p.expect(tag::OCTET_STRING, "PBE salt")?.content;
    let iterations = iterations_of(p.optional(tag::INTEGER)?)?;
    let pw = bmp_password(password);
    let out = match alg_oid.as_str() {
        oid::PBE_SHA1_3DES => {
            let key = pkcs12_kdf(Hash::Sha1, &pw, salt, 1, iterations, 24);
            let iv = pkcs12_kdf(Hash::Sha1, &pw, salt, 2, iterations, 8);
            cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
                .map_err(|_| bad_decrypt())?
                .decrypt_padded_vec::<Pkcs7>(data)
                .map_err(|_| bad_decrypt())?
        }
        oid::PBE_SHA1_RC2_40 | oid::PBE_SHA1_RC2_128 => {
            let len = if alg_oid == oid::PBE_SHA1_RC2_40 {
                5
            } else {
                16
            };
            let key = pkcs12_kdf(Hash::Sha1, &pw, salt, 1, iterations, len);
            let iv = pkcs12_kdf(Hash::Sha1, &pw, salt, 2, iterations, 8);
            let cipher = rc2::Rc2::new_with_eff_key_len(&key, len * 8);
            let iv: [u8; 8] = iv.as_slice().try_into().map_err(|_| bad_decrypt())?;
            cbc::Decryptor::<rc2::Rc2>::inner_iv_init(cipher, &iv.into())
                .decrypt_padded_vec::<Pkcs7>(data)
                .map_err(|_| bad_decrypt())?
        }
        other => {
            return Err(PkiError::UnsupportedAlgorithm(format!(
                "keystore encryption {other}"
            )))
        }
    };
    Ok(Zeroizing::new(out))
}

fn decrypt_pbes2(
    params: &Tlv<'_>,
    password: &str,
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, PkiError> {
    let mut p = params.reader();
    let kdf = p.expect(tag::SEQUENCE, "PBES2 key derivation")?;
    let enc = p.expect(tag::SEQUENCE, "PBES2 encryption scheme")?;
    let mut k = kdf.reader();
    let kdf_oid = k.expect(tag::OID, "PBES2 KDF")?.oid()?;
    if kdf_oid != oid::PBKDF2 {
        return Err(PkiError::UnsupportedAlgorithm(format!(
            "PBES2 KDF {kdf_oid}"
        )));
    }
    let kp = k.expect(tag::SEQUENCE, "PBKDF2 parameters")?;
    let mut kr = kp.reader();
    let salt = kr.expect(tag::OCTET_STRING, "PBKDF2 salt")?.content;
    let iterations = iterations_of(Some(kr.expect(tag::INTEGER, "PBKDF2 iterations")?))?;
    let _key_len = kr.optional(tag::INTEGER)?;
    let prf = match kr.optional(tag::SEQUENCE)? {
        Some(a) => Hash::from_oid(&a.reader().expect(tag::OID, "PBKDF2 PRF")?.oid()?)?,
        None => Hash::Sha1,
    };
    let mut e = enc.reader();
    let enc_oid = e.expect(tag::OID, "PBES2 cipher")?.oid()?;
    let iv = e.expect(tag::OCTET_STRING, "PBES2 IV")?.content;
    let key_len = match enc_oid.as_str() {
        oid::AES256_CBC => 32,
        oid::AES128_CBC => 16,
        other => {
            return Err(PkiError::UnsupportedAlgorithm(format!(
                "PBES2 cipher {other}"
            )))
        }
    };
    let mut key = Zeroizing::new(vec![0u8; key_len]);
    let iterations =
        u32::try_from(iterations).map_err(|_| PkiError::Malformed("iterations".into()))?;
    match prf {
        Hash::Sha1 => {
            pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password.as_bytes(), salt, iterations, &mut key)
        }
        Hash::Sha256 => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, iterations, &mut key)
        }
    }
    let out = if key_len == 32 {
        cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, iv)
            .map_err(|_| PkiError::Malformed("PBES2 IV length".into()))?
            .decrypt_padded_vec::<Pkcs7>(data)
            .map_err(|_| bad_decrypt())?
    } else {
        cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, iv)
            .map_err(|_| PkiError::Malformed("PBES2 IV length".into()))?
            .decrypt_padded_vec::<Pkcs7>(data)
            .map_err(|_| bad_decrypt())?
    };
    Ok(Zeroizing::new(out))
}

/// What the bags of a keystore held.
#[derive(Default)]
struct Bags {
    keys: Vec<(PrivateKey, Option<Vec<u8>>)>,
    certs: Vec<(Certificate, Option<Vec<u8>>)>,
}

fn local_key_id(attrs: Option<Tlv<'_>>) -> Result<Option<Vec<u8>>, PkiError> {
    let Some(attrs) = attrs else { return Ok(None) };
    let mut r = attrs.reader();
    while !r.is_empty() {
        let a = r.expect(tag::SEQUENCE, "bag attribute")?;
        let mut ar = a.reader();
        let t = ar.expect(tag::OID, "bag attribute type")?.oid()?;
        if t == oid::LOCAL_KEY_ID {
            let set = ar.expect(tag::SET, "localKeyId values")?;
            let v = set.reader().expect(tag::OCTET_STRING, "localKeyId")?;
            return Ok(Some(v.octets()?.into_owned()));
        }
    }
    Ok(None)
}

fn read_safe_contents(data: &[u8], password: &str, bags: &mut Bags) -> Result<(), PkiError> {
    let top = parse_single(data, "SafeContents")?;
    top.check(tag::SEQUENCE, "SafeContents")?;
    let mut r = top.reader();
    while !r.is_empty() {
        let bag = r.expect(tag::SEQUENCE, "SafeBag")?;
        let mut b = bag.reader();
        let bag_id = b.expect(tag::OID, "bagId")?.oid()?;
        let value = b.expect(tag::CONTEXT | tag::CONSTRUCTED, "bagValue")?;
        let id = local_key_id(b.optional(tag::SET)?)?;
        let inner = value.reader().read()?;
        match bag_id.as_str() {
            oid::SHROUDED_KEY_BAG => {
                let mut e = inner.reader();
                let alg = e.expect(tag::SEQUENCE, "EncryptedPrivateKeyInfo algorithm")?;
                let enc = e.read()?;
                let pkcs8 = decrypt(&alg, password, &enc.octets()?)?;
                bags.keys.push((PrivateKey::from_pkcs8_der(&pkcs8)?, id));
            }
            oid::KEY_BAG => bags.keys.push((PrivateKey::from_pkcs8_der(inner.raw)?, id)),
            oid::CERT_BAG => {
                let mut c = inner.reader();
                let cert_type = c.expect(tag::OID, "certId")?.oid()?;
                if cert_type != oid::X509_CERTIFICATE {
                    continue;
                }
                let v = c.expect(tag::CONTEXT | tag::CONSTRUCTED, "certValue")?;
                let os = v.reader().read()?;
                let cert = Certificate::from_der(&os.octets()?)?;
                bags.certs.push((cert, id));
            }
            _ => {} // CRL and secret bags are not needed to sign
        }
    }
    Ok(())
}

impl Keystore {
    /// Opens a PKCS#12 file (DER or BER) with its password.
    pub fn from_pkcs12(data: &[u8], password: &str) -> Result<Keystore, PkiError> {
        let pfx = parse_single(data, "PKCS#12 file")?;
        pfx.check(tag::SEQUENCE, "PKCS#12 PFX")?;
        let mut r = pfx.reader();
        let version = r.expect(tag::INTEGER, "PFX version")?.small_uint()?;
        if version != 3 {
            return Err(PkiError::Malformed(format!(
                "PKCS#12 version {version}, expected 3"
            )));
        }
        let auth_safe = r.expect(tag::SEQUENCE, "authSafe")?;
        let mut a = auth_safe.reader();
        let ct = a.expect(tag::OID, "authSafe content type")?.oid()?;
        if ct != oid::DATA {
            return Err(PkiError::UnsupportedAlgorithm(format!(
                "public-key integrity mode PKCS#12 ({ct})"
            )));
        }
        let explicit = a.expect(tag::CONTEXT | tag::CONSTRUCTED, "authSafe content")?;
        let auth_bytes = explicit.reader().read()?.octets()?;
        if let Some(mac_data) = r.optional(tag::SEQUENCE)? {
            check_mac(&mac_data, password, &auth_bytes)?;
        }
        r.finish("PKCS#12 PFX")?;

        let mut bags = Bags::default();
        let safe = parse_single(&auth_bytes, "AuthenticatedSafe")?;
        safe.check(tag::SEQUENCE, "AuthenticatedSafe")?;
        let mut s = safe.reader();
        while !s.is_empty() {
            let ci = s.expect(tag::SEQUENCE, "ContentInfo")?;
            let mut c = ci.reader();
            let ct = c.expect(tag::OID, "ContentInfo type")?.oid()?;
            let content = c.expect(tag::CONTEXT | tag::CONSTRUCTED, "ContentInfo content")?;
            let inner = content.reader().read()?;
            match ct.as_str() {
                oid::DATA => read_safe_contents(&inner.octets()?, password, &mut bags)?,
                oid::ENCRYPTED_DATA => {
                    let mut e = inner.reader();
                    e.expect(tag::INTEGER, "EncryptedData version")?;
                    let eci = e.expect(tag::SEQUENCE, "EncryptedContentInfo")?;
                    let mut ei = eci.reader();
                    ei.expect(tag::OID, "encrypted content type")?;
                    let alg = ei.expect(tag::SEQUENCE, "content encryption algorithm")?;
                    let enc = ei.read()?;
                    if enc.tag & 0x1f != 0 || enc.tag & tag::CONTEXT == 0 {
                        return Err(PkiError::Malformed("encryptedContent".into()));
                    }
                    let plain = decrypt(&alg, password, &enc.octets()?)?;
                    read_safe_contents(&plain, password, &mut bags)?;
                }
                other => {
                    return Err(PkiError::UnsupportedAlgorithm(format!(
                        "keystore content type {other}"
                    )))
                }
            }
        }
        Self::assemble(bags)
    }

    fn assemble(mut bags: Bags) -> Result<Keystore, PkiError> {
        if bags.keys.is_empty() {
            return Err(PkiError::IncompleteKeystore("no private key".into()));
        }
        let (key, key_id) = bags.keys.remove(0);
        let public = key.public_key()?;
        let pos = bags
            .certs
            .iter()
            .position(|(_, id)| key_id.is_some() && id == &key_id)
            .or_else(|| {
                bags.certs
                    .iter()
                    .position(|(c, _)| same_key(&c.public_key().ok(), &public))
            })
            .ok_or_else(|| {
                PkiError::IncompleteKeystore("no certificate for the private key".into())
            })?;
        let (certificate, _) = bags.certs.remove(pos);
        if !same_key(&certificate.public_key().ok(), &public) {
            return Err(PkiError::IncompleteKeystore(
                "the certificate does not match the private key".into(),
            ));
        }
        let rest: Vec<Certificate> = bags.certs.into_iter().map(|(c, _)| c).collect();
        let chain = crate::cert::order_chain(&certificate, rest);
        Ok(Keystore {
            key,
            certificate,
            chain,
        })
    }

    /// Builds a keystore from parts (the test PKI, PEM files).
    pub fn from_parts(
        key: PrivateKey,
        certificate: Certificate,
        chain: Vec<Certificate>,
    ) -> Result<Self, PkiError> {
        let public = key.public_key()?;
        if !same_key(&certificate.public_key().ok(), &public) {
            return Err(PkiError::IncompleteKeystore(
                "the certificate does not match the private key".into(),
            ));
        }
        Ok(Keystore {
            key,
            certificate,
            chain,
        })
    }

    /// The private key.
    pub fn signing_key(&self) -> &PrivateKey {
        &self.key
    }

    /// The key's certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The other certificates in the keystore, issuer order first (intermediate, then root).
    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }

    /// Writes a PKCS#12 file as OpenSSL 3 does by default: PBES2 (PBKDF2-HMAC-SHA256, 2,048
    /// iterations, AES-256-CBC) for both bags, HMAC-SHA-256 MAC.
    pub fn to_pkcs12(&self, password: &str) -> Result<Vec<u8>, PkiError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key_id = crate::keys::sha256(self.certificate.der());
        let attrs = der::set_of(&[&der::seq(&[
            &der::oid(oid::LOCAL_KEY_ID),
            &der::set_of(&[&der::octets(&key_id[..20])]),
        ])]);
        let pkcs8 = self.key.to_pkcs8_der();
        let (alg, enc) = encrypt_pbes2(&rng, password, &pkcs8)?;
        let key_bag = der::seq(&[
            &der::oid(oid::SHROUDED_KEY_BAG),
            &der::ctx(0, &der::seq(&[&alg, &der::octets(&enc)])),
            &attrs,
        ]);
        let mut cert_bags = vec![der::seq(&[
            &der::oid(oid::CERT_BAG),
            &der::ctx(
                0,
                &der::seq(&[
                    &der::oid(oid::X509_CERTIFICATE),
                    &der::ctx(0, &der::octets(self.certificate.der())),
                ]),
            ),
            &attrs,
        ])];
        for c in &self.chain {
            cert_bags.push(der::seq(&[
                &der::oid(oid::CERT_BAG),
                &der::ctx(
                    0,
                    &der::seq(&[
                        &der::oid(oid::X509_CERTIFICATE),
                        &der::ctx(0, &der::octets(c.der())),
                    ]),
                ),
            ]));
        }
        let certs_plain = der::tlv(tag::SEQUENCE, &cert_bags.concat());
        let (calg, cenc) = encrypt_pbes2(&rng, password, &certs_plain)?;
        let enc_data = der::seq(&[
            &der::small_uint(0),
            &der::seq(&[&der::oid(oid::DATA), &calg, &der::ctx_prim(0, &cenc)]),
        ]);
        let auth = der::seq(&[
            &der::seq(&[&der::oid(oid::ENCRYPTED_DATA), &der::ctx(0, &enc_data)]),
            &der::seq(&[
                &der::oid(oid::DATA),
                &der::ctx(0, &der::octets(&der::tlv(tag::SEQUENCE, &key_bag))),
            ]),
        ]);
        let salt = random(&rng, 8)?;
        let iterations = 2048u64;
        let mac_key = pkcs12_kdf(
            Hash::Sha256,
            &bmp_password(password),
            &salt,
            3,
            iterations,
            32,
        );
        let mac = hmac(Hash::Sha256, &mac_key, &auth);
        let mac_data = der::seq(&[
            &der::seq(&[
                &der::alg(oid::SHA256, Some(&der::null())),
                &der::octets(&mac),
            ]),
            &der::octets(&salt),
            &der::small_uint(iterations),
        ]);
        Ok(der::seq(&[
            &der::small_uint(3),
            &der::seq(&[&der::oid(oid::DATA), &der::ctx(0, &der::octets(&auth))]),
            &mac_data,
        ]))
    }
}

fn random(rng: &aws_lc_rs::rand::SystemRandom, n: usize) -> Result<Vec<u8>, PkiError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut v = vec![0u8; n];
    rng.fill(&mut v)
        .map_err(|_| PkiError::Key("no randomness".into()))?;
    Ok(v)
}

fn encrypt_pbes2(
    rng: &aws_lc_rs::rand::SystemRandom,
    password: &str,
    plain: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    let salt = random(rng, 16)?;
    let iv = random(rng, 16)?;
    let iterations = 2048u32;
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, iterations, key.as_mut_slice());
    let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(key.as_slice(), &iv)
        .map_err(|_| PkiError::Key("AES key setup".into()))?
        .encrypt_padded_vec::<Pkcs7>(plain);
    let kdf = der::seq(&[
        &der::oid(oid::PBKDF2),
        &der::seq(&[
            &der::octets(&salt),
            &der::small_uint(u64::from(iterations)),
            &der::alg(oid::HMAC_SHA256, Some(&der::null())),
        ]),
    ]);
    let alg = der::seq(&[
        &der::oid(oid::PBES2),
        &der::seq(&[&kdf, &der::alg(oid::AES256_CBC, Some(&der::octets(&iv)))]),
    ]);
    Ok((alg, enc))
}

fn same_key(a: &Option<PublicKey>, b: &PublicKey) -> bool {
    match a {
        Some(a) => a.to_spki_der() == b.to_spki_der(),
        None => false,
    }
}

fn check_mac(mac_data: &Tlv<'_>, password: &str, auth_bytes: &[u8]) -> Result<(), PkiError> {
    let mut m = mac_data.reader();
    let digest_info = m.expect(tag::SEQUENCE, "MAC DigestInfo")?;
    let salt = m.expect(tag::OCTET_STRING, "MAC salt")?.content;
    let iterations = iterations_of(m.optional(tag::INTEGER)?)?;
    let mut d = digest_info.reader();
    let alg = d.expect(tag::SEQUENCE, "MAC algorithm")?;
    let hash = Hash::from_oid(&alg.reader().expect(tag::OID, "MAC algorithm")?.oid()?)?;
    let expected = d.expect(tag::OCTET_STRING, "MAC value")?.content;
    let mut candidates = vec![bmp_password(password)];
    if password.is_empty() {
        candidates.push(Zeroizing::new(Vec::new())); // OpenSSL's "no password" variant
    }
    for pw in candidates {
        let key = pkcs12_kdf(hash, &pw, salt, 3, iterations, hash.out_len());
        if constant_time_eq(&hmac(hash, &key, auth_bytes), expected) {
            return Ok(());
        }
    }
    Err(PkiError::WrongPassword)
}

/// Parses any PKCS#12 Reader-level structure check without a password: used by `inspect`.
pub fn looks_like_pkcs12(data: &[u8]) -> bool {
    let Ok(t) = parse_single(data, "pfx") else {
        return false;
    };
    let mut r: Reader<'_> = t.reader();
    matches!(r.read().and_then(|v| v.small_uint()), Ok(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_matches_rfc7292_vector_from_openssl() {
        // Vector from OpenSSL's test/pkcs12_format_test / widely published:
        // password "smeg", salt 0A58CF64530D823F, id 1, 1 iteration, 24 bytes.
        let pw = bmp_password("smeg");
        let salt = [0x0A, 0x58, 0xCF, 0x64, 0x53, 0x0D, 0x82, 0x3F];
        let key = pkcs12_kdf(Hash::Sha1, &pw, &salt, 1, 1, 24);
        let hex: String = key.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex, "8AAAE6297B6CB04642AB5B077851284EB7128F1A2A7FBCA3");
    }
}
