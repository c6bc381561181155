//! The signature maths of a CMS signed with a real NCA keystore (GOST 2015-512), checked by
//! OpenSSL's GOST engine (Debian libengine-gost-openssl): the key re-wrapped under the Russian
//! OIDs, the signature in RFC 4491 byte order, the engine hashing the signed attributes itself.

mod common;

use common::*;
use qaqpa_pki::asn1::der;
use qaqpa_pki::cms::{self, SignOptions, SignedData};
use qaqpa_pki::{Keystore, PublicKey};

fn engine_verifies(
    dir: &std::path::Path,
    key: &qaqpa_gost::VerifyingKey,
    data: &[u8],
    nca_sig: &[u8],
) -> bool {
    let (key_oid, curve_oid, digest_oid) = key.algorithm().russian_oids();
    let spki = der::seq(&[
        &der::seq(&[
            &der::oid(key_oid),
            &der::seq(&[&der::oid(curve_oid), &der::oid(digest_oid)]),
        ]),
        &der::bits(&der::octets(&key.to_nca_public())),
    ]);
    let public = dir.join("pub.pem");
    std::fs::write(&public, qaqpa_pki::pem::encode("PUBLIC KEY", &spki)).expect("write");
    let sig = dir.join("sig.bin");
    std::fs::write(&sig, qaqpa_gost::nca_signature_to_rfc4491(nca_sig)).expect("write");
    let msg = dir.join("signed_attrs.der");
    std::fs::write(&msg, data).expect("write");
    let out = openssl(&[
        "dgst",
        "-engine",
        "gost",
        "-md_gost12_512",
        "-verify",
        &path_str(&public),
        "-signature",
        &path_str(&sig),
        &path_str(&msg),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("could not load the shared library") && !stderr.contains("invalid engine"),
        "the GOST engine is required (Debian package libengine-gost-openssl): {stderr}"
    );
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

#[test]
fn cms_signed_with_nca_keystores_verifies_in_the_gost_engine() {
    let dir = scratch("gost-engine");
    for rel in [
        "ncanode-go/legal/valid/head.p12",
        "ncanode-go/individual/valid/individual_valid.p12",
    ] {
        let ks = Keystore::from_pkcs12(&read(&nca(rel)), NCA_PASSWORD).expect("open");
        let der = cms::sign(b"GOST 2015 document", &ks, &SignOptions::default()).expect("sign");
        let sd = SignedData::parse(&der).expect("parse");
        let si = &sd.signers[0];
        let attrs = si.signed_attrs.clone().expect("signed attributes");
        let PublicKey::Gost(key) = ks.certificate().public_key().expect("key") else {
            panic!("{rel}: not a GOST key")
        };
        assert!(
            engine_verifies(&dir, &key, &attrs, &si.signature),
            "{rel}: the engine rejects our CMS signature"
        );
        let mut bad = si.signature.clone();
        bad[10] ^= 1;
        assert!(
            !engine_verifies(&dir, &key, &attrs, &bad),
            "{rel}: the engine accepts a flipped signature"
        );
    }
}
