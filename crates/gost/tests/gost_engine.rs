//! Independent check against OpenSSL's GOST engine (Debian `libengine-gost-openssl`): our
//! signatures verify there, the engine's verify here, and tampered ones fail both ways.
//!
//! Re-wrapping: the engine only knows the Russian OIDs, so the public key (the same bytes,
//! LE(x)‖LE(y), as in an NCA certificate) goes into a SubjectPublicKeyInfo with the TC26/CryptoPro
//! OIDs of the same curve; the signature goes over in RFC 4491 order BE(s)‖BE(r), i.e. NCA's bytes
//! reversed. GOST 2004 uses GOST 34.311-95 with the *test* S-box, which the engine does not offer
//! (its gost94 uses CryptoPro's), so 2004 signatures are checked over the digest with `pkeyutl`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{children, tlv};
use qaqpa_gost::{
    digest, nca_signature_to_rfc4491, rfc4491_signature_to_nca, GostAlgorithm, GostError,
    SigningKey, VerifyingKey,
};

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("qaqpa-gost-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
    fn write(&self, file: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(file);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(args: &[&str]) -> Output {
    let output = Command::new("openssl").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `openssl` ({e}): install openssl and libengine-gost-openssl (.ci/apt-packages)")
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("invalid engine") && !stderr.contains("could not load the shared library"),
        "OpenSSL's GOST engine is missing: apt-get install libengine-gost-openssl\n{stderr}"
    );
    output
}

fn ok(output: &Output) -> bool {
    output.status.success()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(contents);
    out
}

fn der_oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted
        .split('.')
        .map(|a| a.parse().expect("numeric arc"))
        .collect();
    let mut body = Vec::new();
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        body.extend(tmp.iter().rev());
    };
    push(arcs[0] * 40 + arcs[1]);
    for &a in &arcs[2..] {
        push(a);
    }
    der(0x06, &body)
}

/// Our public key under the Russian OIDs, as a PEM SubjectPublicKeyInfo the engine reads.
fn russian_spki_pem(key: &VerifyingKey) -> String {
    let (key_oid, curve_oid, digest_oid) = key.algorithm().russian_oids();
    let params = der(0x30, &[der_oid(curve_oid), der_oid(digest_oid)].concat());
    let alg = der(0x30, &[der_oid(key_oid), params].concat());
    let mut bits = vec![0u8];
    bits.extend(der(0x04, &key.to_nca_public()));
    let spki = der(0x30, &[alg, der(0x03, &bits)].concat());
    let b64 = base64_encode(&spki);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The engine's algorithm name, parameter set and digest option for each of ours.
fn engine_names(alg: GostAlgorithm) -> (&'static str, &'static str, &'static str) {
    match alg {
        GostAlgorithm::Gost2004 => ("gost2012_256", "A", "-md_gost12_256"),
        GostAlgorithm::Gost2015_256 => ("gost2012_256", "TCA", "-md_gost12_256"),
        GostAlgorithm::Gost2015_512 => ("gost2012_512", "A", "-md_gost12_512"),
    }
}

/// Does the engine accept `signature` (NCA encoding) by `key` over `message`?
fn engine_accepts(dir: &Scratch, key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let alg = key.algorithm();
    let public = dir.write("pub.pem", russian_spki_pem(key).as_bytes());
    let sig = dir.write("sig.bin", &nca_signature_to_rfc4491(signature));
    match alg {
        GostAlgorithm::Gost2004 => {
            // Digest with the test S-box here; the engine checks the signature equation.
            let hashed = dir.write("digest.bin", &digest(alg, message));
            let out = openssl(&[
                "pkeyutl",
                "-engine",
                "gost",
                "-verify",
                "-pubin",
                "-inkey",
                p(&public),
                "-in",
                p(&hashed),
                "-sigfile",
                p(&sig),
            ]);
            let says_ok =
                String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully");
            ok(&out) && says_ok
        }
        GostAlgorithm::Gost2015_256 | GostAlgorithm::Gost2015_512 => {
            let (_, _, md) = engine_names(alg);
            let data = dir.write("message.bin", message);
            let out = openssl(&[
                "dgst",
                "-engine",
                "gost",
                md,
                "-verify",
                p(&public),
                "-signature",
                p(&sig),
                p(&data),
            ]);
            let says_ok = String::from_utf8_lossy(&out.stdout).contains("Verified OK");
            ok(&out) && says_ok
        }
    }
}

fn our_signatures_verify_in_the_engine(alg: GostAlgorithm) {
    let dir = Scratch::new(&format!("ours-{alg:?}"));
    let key = SigningKey::generate(alg);
    let public = key.verifying_key();
    let message = "Хат ЕСЭДО арқылы жіберілді / письмо отправлено".as_bytes();
    let signature = key.sign(message);
    assert!(
        engine_accepts(&dir, &public, message, &signature),
        "{alg:?}: engine rejects our signature"
    );
    let mut tampered = signature.clone();
    tampered[5] ^= 0x04;
    assert!(
        !engine_accepts(&dir, &public, message, &tampered),
        "{alg:?}: engine accepts a tampered signature"
    );
    assert!(
        !engine_accepts(&dir, &public, b"another message", &signature),
        "{alg:?}: engine accepts another message"
    );
}

fn engine_signatures_verify_here(alg: GostAlgorithm) {
    let dir = Scratch::new(&format!("engine-{alg:?}"));
    let (name, paramset, md) = engine_names(alg);
    let private = dir.path("key.pem");
    let out = openssl(&[
        "genpkey",
        "-engine",
        "gost",
        "-algorithm",
        name,
        "-pkeyopt",
        &format!("paramset:{paramset}"),
        "-out",
        p(&private),
    ]);
    assert!(
        ok(&out),
        "genpkey: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public_der = dir.path("pub.der");
    let out = openssl(&[
        "pkey",
        "-engine",
        "gost",
        "-in",
        p(&private),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        p(&public_der),
    ]);
    assert!(ok(&out), "pkey: {}", String::from_utf8_lossy(&out.stderr));
    let spki_der = std::fs::read(&public_der).expect("public key file");
    let (spki, _) = tlv(&spki_der);
    let parts = children(spki.contents);
    let (octets, _) = tlv(&parts[1].contents[1..]);
    let public =
        VerifyingKey::from_nca_public(alg, octets.contents).expect("engine key is a curve point");

    let message = b"Qaqpa: document 42 registered under number 01-15/777";
    let sig_path = dir.path("sig.bin");
    let out = match alg {
        GostAlgorithm::Gost2004 => {
            let hashed = dir.write("digest.bin", &digest(alg, message));
            openssl(&[
                "pkeyutl",
                "-engine",
                "gost",
                "-sign",
                "-inkey",
                p(&private),
                "-in",
                p(&hashed),
                "-out",
                p(&sig_path),
            ])
        }
        _ => {
            let data = dir.write("message.bin", message);
            openssl(&[
                "dgst",
                "-engine",
                "gost",
                md,
                "-sign",
                p(&private),
                "-out",
                p(&sig_path),
                p(&data),
            ])
        }
    };
    assert!(
        ok(&out),
        "engine signing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let engine_sig = std::fs::read(&sig_path).expect("signature file");
    let signature = rfc4491_signature_to_nca(&engine_sig);
    assert_eq!(
        public.verify(message, &signature),
        Ok(()),
        "{alg:?}: engine signature rejected here"
    );
    let mut tampered = signature.clone();
    tampered[signature.len() - 3] ^= 0x10;
    assert_eq!(
        public.verify(message, &tampered),
        Err(GostError::BadSignature)
    );
    // The byte order matters: the engine's raw bytes are not an NCA signature.
    assert_eq!(
        public.verify(message, &engine_sig),
        Err(GostError::BadSignature)
    );
}

#[test]
fn gost2015_512_signatures_interoperate_with_the_gost_engine() {
    our_signatures_verify_in_the_engine(GostAlgorithm::Gost2015_512);
    engine_signatures_verify_here(GostAlgorithm::Gost2015_512);
}

#[test]
fn gost2015_256_signatures_interoperate_with_the_gost_engine() {
    our_signatures_verify_in_the_engine(GostAlgorithm::Gost2015_256);
    engine_signatures_verify_here(GostAlgorithm::Gost2015_256);
}

#[test]
fn gost2004_signatures_interoperate_with_the_gost_engine_over_the_digest() {
    our_signatures_verify_in_the_engine(GostAlgorithm::Gost2004);
    engine_signatures_verify_here(GostAlgorithm::Gost2004);
}
