//! A test PKI built like NCA's, for the sandbox and the tests: a root and an intermediate CA for
//! RSA and for GOST 2015-512, end-entity certificates with IIN/BIN subject fields and role EKUs,
//! a revocation list, an OCSP responder and a TSA (answers computed in-process; callers put
//! them behind HTTP). Never for production: its keys sit in files under a known password.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qaqpa_gost::{GostAlgorithm, SigningKey};

use crate::asn1::{der, parse_single, tag};
use crate::cert::{Bin, Certificate, Iin, Role};
use crate::cms::{
    attribute, digest_alg_der, encode_signed_data_typed, signer_info_typed, SignOptions,
};
use crate::crl::{normalize_serial, Crl};
use crate::error::PkiError;
use crate::keys::{DigestAlgorithm, PrivateKey, PublicKey, RsaPrivateKey, SignatureAlgorithm};
use crate::oid;
use crate::pkcs12::Keystore;
use crate::time::UtcTime;
use crate::validate::TrustStore;

/// The password of every keystore the test PKI writes.
pub const TEST_PASSWORD: &str = "Qwerty12";

/// Which family of keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyKind {
    Rsa,
    Gost2015,
}

impl KeyKind {
    /// The family's short name used in file names and URLs (`rsa`, `gost`).
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "rsa",
            KeyKind::Gost2015 => "gost",
        }
    }

    fn new_key(self) -> Result<PrivateKey, PkiError> {
        Ok(match self {
            KeyKind::Rsa => PrivateKey::Rsa(RsaPrivateKey::generate(2048)?),
            KeyKind::Gost2015 => {
                PrivateKey::Gost(SigningKey::try_generate(GostAlgorithm::Gost2015_512)?)
            }
        })
    }
}

fn rdn(o: &str, value: &str) -> Vec<u8> {
    let v = if o == oid::COUNTRY || o == oid::SERIAL_NUMBER {
        der::printable(value)
    } else {
        der::utf8(value)
    };
    der::set_of(&[&der::seq(&[&der::oid(o), &v])])
}

fn name(attrs: &[(&str, &str)]) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = attrs.iter().map(|(o, v)| rdn(o, v)).collect();
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    der::tlv(tag::SEQUENCE, &refs.concat())
}

fn ext(o: &str, critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        der::seq(&[&der::oid(o), &der::bool(true), &der::octets(value)])
    } else {
        der::seq(&[&der::oid(o), &der::octets(value)])
    }
}

fn key_usage(bits: u16) -> Vec<u8> {
    // DER BIT STRING of the KeyUsage flags (bit 0 = MSB of the first octet).
    let mut bytes = [0u8; 2];
    for i in 0..9 {
        if bits & (1 << i) != 0 {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    let len = if bytes[1] == 0 { 1 } else { 2 };
    let last = bytes[len - 1];
    let unused = if last == 0 {
        0
    } else {
        last.trailing_zeros() as u8
    };
    let mut c = vec![unused];
    c.extend_from_slice(&bytes[..len]);
    der::tlv(tag::BIT_STRING, &c)
}

fn key_id(pk: &PublicKey) -> Vec<u8> {
    use sha1::Digest as _;
    sha1::Sha1::digest(pk.to_spki_der()).to_vec()
}

/// What goes into a certificate.
struct CertSpec<'a> {
    serial: Vec<u8>,
    subject: Vec<u8>,
    public_key: PublicKey,
    not_before: UtcTime,
    not_after: UtcTime,
    ca: bool,
    ku: u16,
    eku: Vec<&'a str>,
    crl_url: Option<String>,
    ocsp_url: Option<String>,
}

fn issue(
    spec: CertSpec<'_>,
    issuer: Option<&Certificate>,
    issuer_key: &PrivateKey,
) -> Result<Certificate, PkiError> {
    let alg = issuer_key.signature_algorithm();
    let issuer_name = issuer
        .map(|c| c.subject().der.clone())
        .unwrap_or_else(|| spec.subject.clone());
    let issuer_pk = issuer_key.public_key()?;
    let mut exts = vec![
        ext(oid::EXT_KEY_USAGE, true, &key_usage(spec.ku)),
        ext(
            oid::EXT_SUBJECT_KEY_ID,
            false,
            &der::octets(&key_id(&spec.public_key)),
        ),
        ext(
            oid::EXT_AUTHORITY_KEY_ID,
            false,
            &der::seq(&[&der::ctx_prim(0, &key_id(&issuer_pk))]),
        ),
        ext(
            oid::EXT_POLICIES,
            false,
            &der::seq(&[&der::seq(&[&der::oid(oid::NCA_POLICY)])]),
        ),
    ];
    if spec.ca {
        exts.push(ext(
            oid::EXT_BASIC_CONSTRAINTS,
            true,
            &der::seq(&[&der::bool(true)]),
        ));
    }
    if !spec.eku.is_empty() {
        let oids: Vec<Vec<u8>> = spec.eku.iter().map(|o| der::oid(o)).collect();
        let refs: Vec<&[u8]> = oids.iter().map(|o| o.as_slice()).collect();
        let critical = spec.eku.contains(&oid::EKU_TIME_STAMPING);
        exts.push(ext(
            oid::EXT_EKU,
            critical,
            &der::tlv(tag::SEQUENCE, &refs.concat()),
        ));
    }
    if let Some(u) = &spec.crl_url {
        let dp = der::seq(&[&der::ctx(0, &der::ctx(0, &der::ctx_prim(6, u.as_bytes())))]);
        exts.push(ext(oid::EXT_CRL_DP, false, &der::seq(&[&dp])));
    }
    if let Some(u) = &spec.ocsp_url {
        let ad = der::seq(&[&der::oid(oid::AIA_OCSP), &der::ctx_prim(6, u.as_bytes())]);
        exts.push(ext(oid::EXT_AIA, false, &der::seq(&[&ad])));
    }
    let ext_refs: Vec<&[u8]> = exts.iter().map(|e| e.as_slice()).collect();
    let tbs = der::seq(&[
        &der::ctx(0, &der::small_uint(2)),
        &der::uint(&spec.serial),
        &alg.to_der(),
        &issuer_name,
        &der::seq(&[&spec.not_before.to_der(), &spec.not_after.to_der()]),
        &spec.subject,
        &spec.public_key.to_spki_der(),
        &der::ctx(3, &der::tlv(tag::SEQUENCE, &ext_refs.concat())),
    ]);
    let sig = issuer_key.sign(&tbs)?;
    Certificate::from_der(&der::seq(&[&tbs, &alg.to_der(), &der::bits(&sig)]))
}

fn random_serial() -> Result<Vec<u8>, PkiError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut s = vec![0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut s)
        .map_err(|_| PkiError::Key("no randomness".into()))?;
    s[0] = (s[0] & 0x7f) | 0x10;
    Ok(s)
}

/// One CA family (root → intermediate) with its responder and TSA keys.
pub struct TestCa {
    pub kind: KeyKind,
    pub root: Certificate,
    pub intermediate: Certificate,
    intermediate_key: PrivateKey,
    pub ocsp_responder: Keystore,
    pub tsa: Keystore,
    /// Revoked serials (magnitude) and when.
    revoked: BTreeMap<Vec<u8>, UtcTime>,
    pub crl_url: String,
    pub ocsp_url: String,
}

/// The whole test PKI, files in `dir`.
pub struct TestPki {
    pub dir: PathBuf,
    pub rsa: TestCa,
    pub gost: TestCa,
}

fn write(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    std::fs::write(path, data).map_err(|e| PkiError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

// One certificate's worth of parameters; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn issue_service(
    kind: KeyKind,
    intermediate: &Certificate,
    intermediate_key: &PrivateKey,
    root: &Certificate,
    cn: &str,
    eku: &str,
    now: UtcTime,
    revocation: Option<(&str, &str)>,
) -> Result<Keystore, PkiError> {
    let key = kind.new_key()?;
    let cert = issue(
        CertSpec {
            serial: random_serial()?,
            subject: name(&[(oid::CN, cn), (oid::COUNTRY, "KZ")]),
            public_key: key.public_key()?,
            not_before: UtcTime(now.0 - 86_400),
            not_after: UtcTime(now.0 + 5 * 365 * 86_400),
            ca: false,
            ku: crate::cert::KeyUsage::DIGITAL_SIGNATURE | crate::cert::KeyUsage::NON_REPUDIATION,
            eku: vec![eku],
            crl_url: revocation.map(|(crl, _)| crl.to_string()),
            ocsp_url: revocation.map(|(_, ocsp)| ocsp.to_string()),
        },
        Some(intermediate),
        intermediate_key,
    )?;
    Keystore::from_parts(key, cert, vec![intermediate.clone(), root.clone()])
}

impl TestCa {
    fn generate(kind: KeyKind, now: UtcTime, base_url: &str) -> Result<TestCa, PkiError> {
        let year = 365 * 86_400;
        let label = match kind {
            KeyKind::Rsa => "RSA",
            KeyKind::Gost2015 => "GOST",
        };
        let crl_url = format!("{base_url}/crl/qaqpa_{}_test.crl", kind.name());
        let ocsp_url = format!("{base_url}/ocsp/{}", kind.name());
        let root_key = kind.new_key()?;
        let root_name = name(&[
            (oid::CN, &format!("QAQPA TEST ROOT ({label})")),
            (oid::COUNTRY, "KZ"),
        ]);
        let root = issue(
            CertSpec {
                serial: random_serial()?,
                subject: root_name,
                public_key: root_key.public_key()?,
                not_before: UtcTime(now.0 - 86_400),
                not_after: UtcTime(now.0 + 20 * year),
                ca: true,
                ku: crate::cert::KeyUsage::KEY_CERT_SIGN | crate::cert::KeyUsage::CRL_SIGN,
                eku: vec![],
                crl_url: None,
                ocsp_url: None,
            },
            None,
            &root_key,
        )?;
        let int_key = kind.new_key()?;
        let intermediate = issue(
            CertSpec {
                serial: random_serial()?,
                subject: name(&[
                    (oid::CN, &format!("QAQPA TEST CA ({label})")),
                    (oid::COUNTRY, "KZ"),
                ]),
                public_key: int_key.public_key()?,
                not_before: UtcTime(now.0 - 86_400),
                not_after: UtcTime(now.0 + 10 * year),
                ca: true,
                ku: crate::cert::KeyUsage::KEY_CERT_SIGN | crate::cert::KeyUsage::CRL_SIGN,
                eku: vec![],
                crl_url: None,
                ocsp_url: None,
            },
            Some(&root),
            &root_key,
        )?;
        let ocsp_responder = issue_service(
            kind,
            &intermediate,
            &int_key,
            &root,
            "OCSP RESPONDER",
            oid::EKU_OCSP_SIGNING,
            now,
            // A responder's own status is not asked of itself (as with id-pkix-ocsp-nocheck).
            None,
        )?;
        let tsa = issue_service(
            kind,
            &intermediate,
            &int_key,
            &root,
            "TSA",
            oid::EKU_TIME_STAMPING,
            now,
            Some((&crl_url, &ocsp_url)),
        )?;
        Ok(TestCa {
            kind,
            root,
            intermediate,
            intermediate_key: int_key,
            ocsp_responder,
            tsa,
            revoked: BTreeMap::new(),
            crl_url,
            ocsp_url,
        })
    }

    /// Issues an end-entity keystore with NCA's subject layout and role EKUs.
    pub fn issue_end_entity(
        &self,
        common_name: &str,
        iin: Option<&Iin>,
        organisation: Option<(&Bin, &str)>,
        role: Role,
        now: UtcTime,
    ) -> Result<Keystore, PkiError> {
        let key = self.kind.new_key()?;
        let iin_txt = iin.map(|i| format!("IIN{i}"));
        let mut attrs: Vec<(&str, &str)> = vec![(oid::CN, common_name)];
        if let Some(i) = &iin_txt {
            attrs.push((oid::SERIAL_NUMBER, i));
        }
        attrs.push((oid::COUNTRY, "KZ"));
        let bin_txt = organisation.map(|(b, _)| format!("BIN{b}"));
        if let (Some((_, org)), Some(b)) = (organisation, &bin_txt) {
            attrs.push((oid::ORGANISATION, org));
            attrs.push((oid::ORG_UNIT, b));
        }
        let mut eku = vec![oid::EKU_EMAIL];
        if role != Role::Individual && role != Role::Organisation {
            eku.push(oid::ROLE_ORGANISATION);
        }
        eku.push(role.oid());
        let cert = issue(
            CertSpec {
                serial: random_serial()?,
                subject: name(&attrs),
                public_key: key.public_key()?,
                not_before: UtcTime(now.0 - 3600),
                not_after: UtcTime(now.0 + 365 * 86_400),
                ca: false,
                ku: crate::cert::KeyUsage::DIGITAL_SIGNATURE
                    | crate::cert::KeyUsage::NON_REPUDIATION
                    | crate::cert::KeyUsage::KEY_AGREEMENT,
                eku,
                crl_url: Some(self.crl_url.clone()),
                ocsp_url: Some(self.ocsp_url.clone()),
            },
            Some(&self.intermediate),
            &self.intermediate_key,
        )?;
        Keystore::from_parts(
            key,
            cert,
            vec![self.intermediate.clone(), self.root.clone()],
        )
    }

    /// Marks a certificate revoked from `at`.
    pub fn revoke(&mut self, cert: &Certificate, at: UtcTime) {
        self.revoked
            .insert(normalize_serial(cert.serial()).to_vec(), at);
    }

    /// A Base CRL valid from `now` for `days` listing every revoked certificate; its CRLNumber
    /// is `now` in seconds.
    pub fn crl(&self, now: UtcTime, days: i64) -> Result<Vec<u8>, PkiError> {
        let entries: Vec<(Vec<u8>, UtcTime)> =
            self.revoked.iter().map(|(s, t)| (s.clone(), *t)).collect();
        self.sign_crl(now, days, &entries, now.0.max(0) as u64, None)
    }

    /// A Delta CRL on top of the Base CRL numbered `base_number`, listing `revoked` (serial
    /// magnitude, time) only; its own number is `base_number + 1`.
    pub fn delta_crl(
        &self,
        now: UtcTime,
        days: i64,
        base_number: u64,
        revoked: &[(Vec<u8>, UtcTime)],
    ) -> Result<Vec<u8>, PkiError> {
        self.sign_crl(now, days, revoked, base_number + 1, Some(base_number))
    }

    fn sign_crl(
        &self,
        now: UtcTime,
        days: i64,
        revoked: &[(Vec<u8>, UtcTime)],
        number: u64,
        delta_base: Option<u64>,
    ) -> Result<Vec<u8>, PkiError> {
        let alg = self.intermediate_key.signature_algorithm();
        let entries: Vec<Vec<u8>> = revoked
            .iter()
            .map(|(s, t)| der::seq(&[&der::uint(s), &t.to_der()]))
            .collect();
        let refs: Vec<&[u8]> = entries.iter().map(|e| e.as_slice()).collect();
        let mut parts = vec![
            der::small_uint(1),
            alg.to_der(),
            self.intermediate.subject().der.clone(),
            now.to_der(),
            UtcTime(now.0 + days * 86_400).to_der(),
        ];
        if !entries.is_empty() {
            parts.push(der::tlv(tag::SEQUENCE, &refs.concat()));
        }
        let mut exts = vec![ext(oid::EXT_CRL_NUMBER, false, &der::small_uint(number))];
        if let Some(b) = delta_base {
            exts.push(ext(oid::EXT_DELTA_CRL, true, &der::small_uint(b)));
        }
        let ext_refs: Vec<&[u8]> = exts.iter().map(|e| e.as_slice()).collect();
        parts.push(der::ctx(0, &der::tlv(tag::SEQUENCE, &ext_refs.concat())));
        let prefs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        let tbs = der::tlv(tag::SEQUENCE, &prefs.concat());
        let sig = self.intermediate_key.sign(&tbs)?;
        Ok(der::seq(&[&tbs, &alg.to_der(), &der::bits(&sig)]))
    }

    /// Answers a DER OCSP request as the responder would (nonce echoed, SHA-1 or SHA-256
    /// CertIDs, good / revoked / unknown from this CA's records).
    pub fn ocsp_respond(&self, request: &[u8], now: UtcTime) -> Result<Vec<u8>, PkiError> {
        let req = parse_single(request, "OCSPRequest")?;
        let tbs = req.reader().expect(tag::SEQUENCE, "tbsRequest")?;
        let mut t = tbs.reader();
        t.optional(tag::CONTEXT | tag::CONSTRUCTED)?;
        t.optional(tag::CONTEXT | tag::CONSTRUCTED | 1)?;
        let list = t.expect(tag::SEQUENCE, "requestList")?;
        let mut nonce_ext = None;
        if let Some(exts) = t.optional(tag::CONTEXT | tag::CONSTRUCTED | 2)? {
            let seq = exts.reader().expect(tag::SEQUENCE, "requestExtensions")?;
            let mut xr = seq.reader();
            while !xr.is_empty() {
                let x = xr.expect(tag::SEQUENCE, "extension")?;
                if x.reader().expect(tag::OID, "extnID")?.oid()? == oid::OCSP_NONCE {
                    nonce_ext = Some(x.raw.to_vec());
                }
            }
        }
        let issuer_bits = {
            let spki = parse_single(self.intermediate.spki_der(), "spki")?;
            let mut r = spki.reader();
            r.read()?;
            r.expect(tag::BIT_STRING, "key")?.bit_string()?.to_vec()
        };
        let mut singles = Vec::new();
        let mut lr = list.reader();
        while !lr.is_empty() {
            let one = lr.expect(tag::SEQUENCE, "Request")?;
            let cert_id = one.reader().expect(tag::SEQUENCE, "CertID")?;
            let mut c = cert_id.reader();
            let h = c
                .expect(tag::SEQUENCE, "hashAlgorithm")?
                .reader()
                .expect(tag::OID, "hash")?
                .oid()?;
            let name_hash = c.expect(tag::OCTET_STRING, "issuerNameHash")?.content;
            let key_hash = c.expect(tag::OCTET_STRING, "issuerKeyHash")?.content;
            let serial = normalize_serial(c.expect(tag::INTEGER, "serial")?.content).to_vec();
            let d = DigestAlgorithm::from_oid(&h)?;
            let ours = d.digest(&self.intermediate.subject().der) == name_hash
                && d.digest(&issuer_bits) == key_hash;
            let status = if !ours {
                der::ctx_prim(2, &[])
            } else if let Some(at) = self.revoked.get(&serial) {
                der::ctx(1, &at.to_der_generalized())
            } else {
                der::ctx_prim(0, &[])
            };
            singles.push(der::seq(&[
                cert_id.raw,
                &status,
                &now.to_der_generalized(),
                &der::ctx(0, &UtcTime(now.0 + 3600).to_der_generalized()),
            ]));
        }
        let refs: Vec<&[u8]> = singles.iter().map(|s| s.as_slice()).collect();
        let mut rd = vec![
            der::ctx(
                1,
                self.ocsp_responder.certificate().subject().der.as_slice(),
            ),
            now.to_der_generalized(),
            der::tlv(tag::SEQUENCE, &refs.concat()),
        ];
        if let Some(n) = nonce_ext {
            rd.push(der::ctx(1, &der::seq(&[&n])));
        }
        let rd_refs: Vec<&[u8]> = rd.iter().map(|p| p.as_slice()).collect();
        let tbs_rd = der::tlv(tag::SEQUENCE, &rd_refs.concat());
        let key = self.ocsp_responder.signing_key();
        let alg = key.signature_algorithm();
        let sig = key.sign(&tbs_rd)?;
        let basic = der::seq(&[
            &tbs_rd,
            &alg.to_der(),
            &der::bits(&sig),
            &der::ctx(0, &der::seq(&[self.ocsp_responder.certificate().der()])),
        ]);
        Ok(der::seq(&[
            &der::tlv(tag::ENUMERATED, &[0]),
            &der::ctx(
                0,
                &der::seq(&[&der::oid(oid::OCSP_BASIC), &der::octets(&basic)]),
            ),
        ]))
    }

    /// Answers a DER time-stamp request (RFC 3161) with a token signed by this CA's TSA.
    pub fn tsa_respond(&self, request: &[u8], now: UtcTime) -> Result<Vec<u8>, PkiError> {
        let req = parse_single(request, "TimeStampReq")?;
        let mut r = req.reader();
        r.expect(tag::INTEGER, "version")?;
        let imprint = r.expect(tag::SEQUENCE, "messageImprint")?;
        let policy = r.optional(tag::OID)?.map(|p| p.oid()).transpose()?;
        let nonce = r.optional(tag::INTEGER)?;
        let policy = policy.unwrap_or_else(|| match self.kind {
            KeyKind::Gost2015 => oid::TSA_POLICY_GOST2015.to_string(),
            KeyKind::Rsa => oid::NCA_POLICY.to_string(),
        });
        let mut tst = vec![
            der::small_uint(1),
            der::oid(&policy),
            imprint.raw.to_vec(),
            der::uint(&random_serial()?),
            now.to_der_generalized(),
        ];
        if let Some(n) = nonce {
            tst.push(n.raw.to_vec());
        }
        let refs: Vec<&[u8]> = tst.iter().map(|p| p.as_slice()).collect();
        let tst_info = der::tlv(tag::SEQUENCE, &refs.concat());
        let cert_hash = crate::keys::sha256(self.tsa.certificate().der());
        let ess = attribute(
            oid::SIGNING_CERTIFICATE_V2,
            &der::seq(&[&der::seq(&[&der::seq(&[&der::octets(&cert_hash)])])]),
        );
        let opts = SignOptions {
            detached: false,
            signing_time: Some(now),
            include_chain: false,
        };
        let si = signer_info_typed(&self.tsa, &tst_info, oid::TST_INFO, &opts, &[ess])?;
        let alg = self.tsa.signing_key().signature_algorithm();
        let token = encode_signed_data_typed(
            &[digest_alg_der(alg)],
            oid::TST_INFO,
            Some(&tst_info),
            &[self.tsa.certificate().der().to_vec()],
            None,
            &[si],
        );
        Ok(der::seq(&[&der::seq(&[&der::small_uint(0)]), &token]))
    }
}

impl TestPki {
    /// Generates both CA families and a set of keystores in `dir`: root/intermediate .cer, CRLs,
    /// person and organisation .p12 (valid and revoked), OCSP responder and TSA .p12 (password
    /// `Qwerty12`). URLs in the certificates point at `http://127.0.0.1:8480`.
    pub fn generate(dir: &Path) -> Result<TestPki, PkiError> {
        Self::generate_with_base_url(dir, "http://127.0.0.1:8480")
    }

    pub fn generate_with_base_url(dir: &Path, base_url: &str) -> Result<TestPki, PkiError> {
        std::fs::create_dir_all(dir).map_err(|e| PkiError::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
        let now = UtcTime::now();
        let mut pki = TestPki {
            dir: dir.to_path_buf(),
            rsa: TestCa::generate(KeyKind::Rsa, now, base_url)?,
            gost: TestCa::generate(KeyKind::Gost2015, now, base_url)?,
        };
        let iin = Iin::new("123456789011")?;
        let bin = Bin::new("123456789021")?;
        for kind in [KeyKind::Rsa, KeyKind::Gost2015] {
            let n = kind.name();
            let ca = pki.ca_mut(kind);
            let people = [
                ("individual", Role::Individual, false),
                ("head", Role::FirstHead, true),
                ("employee_signright", Role::SigningRight, true),
                ("employee", Role::Employee, true),
            ];
            for (label, role, org) in people {
                for revoked in [false, true] {
                    let organisation = if org {
                        Some((&bin, "АО \"ТЕСТ\""))
                    } else {
                        None
                    };
                    let ks = ca.issue_end_entity(
                        "ТЕСТОВ ТЕСТ",
                        Some(&iin),
                        organisation,
                        role.clone(),
                        now,
                    )?;
                    if revoked {
                        ca.revoke(ks.certificate(), UtcTime(now.0 - 60));
                    }
                    let state = if revoked { "revoked" } else { "valid" };
                    write(
                        &dir.join(format!("{n}_{label}_{state}.p12")),
                        &ks.to_pkcs12(TEST_PASSWORD)?,
                    )?;
                }
            }
            write(&dir.join(format!("{n}_root.cer")), ca.root.der())?;
            write(&dir.join(format!("{n}_ca.cer")), ca.intermediate.der())?;
            write(
                &dir.join(format!("{n}_ocsp.p12")),
                &ca.ocsp_responder.to_pkcs12(TEST_PASSWORD)?,
            )?;
            write(
                &dir.join(format!("{n}_tsa.p12")),
                &ca.tsa.to_pkcs12(TEST_PASSWORD)?,
            )?;
            let crl = ca.crl(now, 7)?;
            Crl::from_der(crl.clone())?;
            write(&dir.join(format!("qaqpa_{n}_test.crl")), &crl)?;
        }
        Ok(pki)
    }

    pub fn ca(&self, kind: KeyKind) -> &TestCa {
        match kind {
            KeyKind::Rsa => &self.rsa,
            KeyKind::Gost2015 => &self.gost,
        }
    }

    pub fn ca_mut(&mut self, kind: KeyKind) -> &mut TestCa {
        match kind {
            KeyKind::Rsa => &mut self.rsa,
            KeyKind::Gost2015 => &mut self.gost,
        }
    }

    /// A person's certificate (role individual) with the given IIN.
    pub fn issue_person(
        &self,
        kind: KeyKind,
        iin: &Iin,
        full_name: &str,
    ) -> Result<Keystore, PkiError> {
        self.ca(kind)
            .issue_end_entity(full_name, Some(iin), None, Role::Individual, UtcTime::now())
    }

    /// An organisation's employee certificate with IIN, BIN and role.
    pub fn issue_organisation(
        &self,
        kind: KeyKind,
        iin: &Iin,
        bin: &Bin,
        organisation: &str,
        full_name: &str,
        role: Role,
    ) -> Result<Keystore, PkiError> {
        self.ca(kind).issue_end_entity(
            full_name,
            Some(iin),
            Some((bin, organisation)),
            role,
            UtcTime::now(),
        )
    }

    /// A trust store with both roots and intermediates.
    pub fn trust_store(&self) -> TrustStore {
        let mut t = TrustStore::new();
        for ca in [&self.rsa, &self.gost] {
            t.add_anchor(ca.root.clone());
            t.add_intermediate(ca.intermediate.clone());
        }
        t
    }

    /// The signature algorithm of a family.
    pub fn algorithm(kind: KeyKind) -> SignatureAlgorithm {
        match kind {
            KeyKind::Rsa => SignatureAlgorithm::RsaSha256,
            KeyKind::Gost2015 => SignatureAlgorithm::Gost2015_512,
        }
    }
}

/// An unsigned-shape CRL of `entries` revoked serials (20-byte serials, reason codes), signed
/// by a throwaway RSA key: for memory and speed measurements of CRL parsing.
pub fn synthetic_crl(entries: usize) -> Result<Vec<u8>, PkiError> {
    let key = PrivateKey::Rsa(RsaPrivateKey::generate(2048)?);
    let alg = key.signature_algorithm();
    let at = UtcTime::parse_rfc3339("2026-09-01T00:00:00Z")?;
    let mut list = Vec::with_capacity(entries * 48);
    for i in 0..entries {
        let mut serial = [0u8; 20];
        serial[0] = 0x40;
        serial[12..20]
            .copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
        let reason = ext("2.5.29.21", false, &der::tlv(tag::ENUMERATED, &[1]));
        list.extend_from_slice(&der::seq(&[
            &der::uint(&serial),
            &at.to_der(),
            &der::seq(&[&reason]),
        ]));
    }
    let tbs = der::seq(&[
        &der::small_uint(1),
        &alg.to_der(),
        &name(&[(oid::CN, "SYNTHETIC CRL ISSUER"), (oid::COUNTRY, "KZ")]),
        &at.to_der(),
        &UtcTime(at.0 + 7 * 86_400).to_der(),
        &der::tlv(tag::SEQUENCE, &list),
    ]);
    let sig = key.sign(&tbs)?;
    Ok(der::seq(&[&tbs, &alg.to_der(), &der::bits(&sig)]))
}
