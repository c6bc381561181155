//! Signing with NCA RK's real GOST 2015 test keys: the private key from each keystore in
//! ../shared/specs/nca gives exactly the public key of its certificate, signs, and the signature
//! verifies with the certificate's key; each certificate verifies with the intermediate CA. (13 keystores: the 12 of ncanode-go and
//! gokalkan's; NCA has no GOST 2004 keystore in the public material.)
//!
//! The keystores are PKCS#12 as NCA writes them (BER, pbeWithSHA1And3-KeyTripleDES-CBC key bag).
//! OpenSSL cannot export the key (it does not know the Kazakh key OID), so this test finds the
//! encrypted key bag itself and decrypts it with OpenSSL's PKCS12KDF and DES-EDE3-CBC; crates/pki
//! has the real keystore reader. The certificate comes from `openssl pkcs12 -nokeys -legacy`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{children, oid, parse_signed, read_der, tlv, Tlv};
use qaqpa_gost::{GostAlgorithm, GostError, SigningKey, VerifyingKey};

const PASSWORD: &str = "Qwerty12";

fn run(args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `openssl` ({e}): install openssl"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Contents of an OCTET STRING, primitive or (BER) constructed.
fn octets(t: &Tlv<'_>) -> Vec<u8> {
    match t.tag {
        0x04 => t.contents.to_vec(),
        0x24 => children(t.contents).iter().flat_map(octets).collect(),
        other => panic!("expected an OCTET STRING, found tag {other:#x}"),
    }
}

/// The first pkcs8ShroudedKeyBag's (salt, iterations, ciphertext).
fn shrouded_key_bag(p12: &[u8]) -> (Vec<u8>, u32, Vec<u8>) {
    let (pfx, _) = tlv(p12);
    let auth_safe = children(children(pfx.contents)[1].contents);
    assert_eq!(oid(auth_safe[0].contents), "1.2.840.113549.1.7.1");
    let safe_bytes = octets(&children(auth_safe[1].contents)[0]);
    let (safe, _) = tlv(&safe_bytes);
    for content_info in children(safe.contents) {
        let parts = children(content_info.contents);
        if oid(parts[0].contents) != "1.2.840.113549.1.7.1" {
            continue; // encrypted data: the certificate bag
        }
        let bags_bytes = octets(&children(parts[1].contents)[0]);
        let (bags, _) = tlv(&bags_bytes);
        for bag in children(bags.contents) {
            let fields = children(bag.contents);
            if oid(fields[0].contents) != "1.2.840.113549.1.12.10.1.2" {
                continue;
            }
            let epki = children(children(fields[1].contents)[0].contents);
            let alg = children(epki[0].contents);
            assert_eq!(
                oid(alg[0].contents),
                "1.2.840.113549.1.12.1.3",
                "3DES key bag"
            );
            let params = children(alg[1].contents);
            let iterations = params[1]
                .contents
                .iter()
                .fold(0u32, |a, b| (a << 8) | *b as u32);
            return (params[0].contents.to_vec(), iterations, octets(&epki[1]));
        }
    }
    panic!("no pkcs8ShroudedKeyBag in the keystore");
}

fn pkcs12_kdf(salt: &[u8], iterations: u32, id: u8, len: usize) -> String {
    let mut bmp_password = String::new();
    for c in PASSWORD.encode_utf16().chain([0]) {
        bmp_password.push_str(&format!("{c:04x}"));
    }
    let out = run(&[
        "kdf",
        "-keylen",
        &len.to_string(),
        "-kdfopt",
        "digest:SHA1",
        "-kdfopt",
        &format!("hexpass:{bmp_password}"),
        "-kdfopt",
        &format!("hexsalt:{}", hex(salt)),
        "-kdfopt",
        &format!("iter:{iterations}"),
        "-kdfopt",
        &format!("id:{id}"),
        "PKCS12KDF",
    ]);
    String::from_utf8_lossy(&out)
        .trim()
        .replace(':', "")
        .to_lowercase()
}

struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The raw private key bytes (inside the PKCS#8 privateKey) and the key algorithm OID.
fn private_key(relative: &str, scratch: &Scratch) -> (String, Vec<u8>) {
    let p12 = read_der(relative);
    let (salt, iterations, ciphertext) = shrouded_key_bag(&p12);
    let key = pkcs12_kdf(&salt, iterations, 1, 24);
    let iv = pkcs12_kdf(&salt, iterations, 2, 8);
    let encrypted = scratch.0.join("key.enc");
    std::fs::write(&encrypted, &ciphertext).expect("temp file");
    let pkcs8 = run(&[
        "enc",
        "-d",
        "-des-ede3-cbc",
        "-K",
        &key,
        "-iv",
        &iv,
        "-in",
        encrypted.to_str().expect("utf-8"),
    ]);
    let (info, _) = tlv(&pkcs8);
    let fields = children(info.contents);
    let alg_oid = oid(children(fields[1].contents)[0].contents);
    let inner = octets(&fields[2]);
    // NCA's 2015 keys: the privateKey OCTET STRING holds another OCTET STRING (LE bytes).
    let raw = match inner.first() {
        Some(0x04) => octets(&tlv(&inner).0),
        Some(0x02) => {
            let (int, _) = tlv(&inner);
            int.contents.to_vec()
        }
        _ => inner,
    };
    (alg_oid, raw)
}

fn certificate(relative: &str) -> Vec<u8> {
    let path = common::nca_dir().join(relative);
    let pem = run(&[
        "pkcs12",
        "-legacy",
        "-nokeys",
        "-clcerts",
        "-in",
        path.to_str().expect("utf-8"),
        "-passin",
        &format!("pass:{PASSWORD}"),
    ]);
    let text = String::from_utf8_lossy(&pem);
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("certificate in keystore");
    let body: String = text[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    common::base64_decode(&body)
}

const KEYSTORES: [&str; 13] = [
    "gokalkan/gost1.p12",
    "ncanode-go/individual/valid/individual_valid.p12",
    "ncanode-go/individual/revoked/individual_revoked.p12",
    "ncanode-go/legal/valid/employee.p12",
    "ncanode-go/legal/valid/employee_signright.p12",
    "ncanode-go/legal/valid/head.p12",
    "ncanode-go/legal/valid/infosystem.p12",
    "ncanode-go/legal/valid/treasury_client.p12",
    "ncanode-go/legal/revoked/employee.p12",
    "ncanode-go/legal/revoked/employee_signright.p12",
    "ncanode-go/legal/revoked/head.p12",
    "ncanode-go/legal/revoked/infosystem.p12",
    "ncanode-go/legal/revoked/treasury_client.p12",
];

#[test]
fn real_nca_keys_match_their_certificates_and_sign_verifiably() {
    let intermediate = parse_signed(&read_der("ncanode-go/nca_gost2022_test.cer"));
    let (_, ca_key_bytes) = intermediate.subject_key.expect("CA certificate");
    let ca_key =
        VerifyingKey::from_nca_public(GostAlgorithm::Gost2015_512, &ca_key_bytes).expect("CA key");
    for (i, keystore) in KEYSTORES.iter().enumerate() {
        let scratch = Scratch(
            std::env::temp_dir().join(format!("qaqpa-gost-p12-{}-{i}", std::process::id())),
        );
        std::fs::create_dir_all(&scratch.0).expect("temp dir");

        let cert = parse_signed(&certificate(keystore));
        let alg = GostAlgorithm::from_signature_oid(&cert.signature_oid).expect("GOST certificate");
        assert_eq!(
            alg,
            GostAlgorithm::Gost2015_512,
            "{keystore}: signed by the 2015-512 CA"
        );
        assert_eq!(
            ca_key.verify(&cert.tbs, &cert.signature),
            Ok(()),
            "{keystore}: certificate signature"
        );
        let (cert_key_oid, cert_key_bytes) = cert.subject_key.expect("end-entity key");
        let alg_of_key = GostAlgorithm::from_key_oid(&cert_key_oid).expect("GOST key");
        assert_eq!(alg_of_key, GostAlgorithm::Gost2015_512, "{keystore}");

        let (key_oid, raw) = private_key(keystore, &scratch);
        assert_eq!(
            key_oid,
            alg_of_key.key_oid(),
            "{keystore}: PKCS#8 algorithm"
        );
        let signing = SigningKey::from_nca_private(alg_of_key, &raw).expect("valid private key");
        let public =
            VerifyingKey::from_nca_public(alg_of_key, &cert_key_bytes).expect("certificate key");
        assert_eq!(
            signing.verifying_key(),
            public,
            "{keystore}: private key matches the certificate"
        );
        assert_eq!(&signing.to_nca_private()[..], &raw[..]);

        let message = format!("Qaqpa test document signed with {keystore}");
        let signature = signing.sign(message.as_bytes());
        assert_eq!(
            public.verify(message.as_bytes(), &signature),
            Ok(()),
            "{keystore}"
        );
        let mut tampered = signature.clone();
        tampered[0] ^= 1;
        assert_eq!(
            public.verify(message.as_bytes(), &tampered),
            Err(GostError::BadSignature)
        );
    }
}
