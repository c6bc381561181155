//! X.509 certificates: parsing, the NCA subject fields (IIN, BIN, roles), extensions, and
//! signature checks. It keeps the original DER so signatures are checked over exactly what the
//! issuer signed; it never trusts a certificate by itself (see `validate`).

use std::fmt;
use std::ops::Range;

use crate::asn1::{parse_single, tag, Reader, Tlv};
use crate::error::PkiError;
use crate::keys::{PublicKey, SignatureAlgorithm};
use crate::oid;
use crate::time::UtcTime;

/// An individual identification number (ИИН): 12 digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iin(String);

/// A business identification number (БИН): 12 digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bin(String);

fn twelve_digits(s: &str, what: &str) -> Result<String, PkiError> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err(PkiError::Malformed(format!(
            "{what} must be 12 digits, got '{s}'"
        )))
    }
}

impl Iin {
    pub fn new(s: &str) -> Result<Self, PkiError> {
        twelve_digits(s, "IIN").map(Iin)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Bin {
    pub fn new(s: &str) -> Result<Self, PkiError> {
        twelve_digits(s, "BIN").map(Bin)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Iin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Bin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A holder's role, from NCA's Extended Key Usage OIDs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// 1.2.398.3.3.4.1.1
    Individual,
    /// 1.2.398.3.3.4.1.2 (legal entity, no finer role)
    Organisation,
    /// 1.2.398.3.3.4.1.2.1
    FirstHead,
    /// 1.2.398.3.3.4.1.2.2
    SigningRight,
    /// 1.2.398.3.3.4.1.2.3
    FinancialSigningRight,
    /// 1.2.398.3.3.4.1.2.4
    Hr,
    /// 1.2.398.3.3.4.1.2.5
    Employee,
    /// 1.2.398.3.3.4.1.2.6
    InformationSystem,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Individual,
        Role::Organisation,
        Role::FirstHead,
        Role::SigningRight,
        Role::FinancialSigningRight,
        Role::Hr,
        Role::Employee,
        Role::InformationSystem,
    ];

    pub fn oid(&self) -> &'static str {
        match self {
            Role::Individual => oid::ROLE_INDIVIDUAL,
            Role::Organisation => oid::ROLE_ORGANISATION,
            Role::FirstHead => oid::ROLE_FIRST_HEAD,
            Role::SigningRight => oid::ROLE_SIGNING_RIGHT,
            Role::FinancialSigningRight => oid::ROLE_FINANCIAL,
            Role::Hr => oid::ROLE_HR,
            Role::Employee => oid::ROLE_EMPLOYEE,
            Role::InformationSystem => oid::ROLE_INFORMATION_SYSTEM,
        }
    }

    pub fn from_oid(o: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.oid() == o)
    }

    /// The machine name APIs use (`first_head`, `signing_right`…).
    pub fn code(&self) -> &'static str {
        match self {
            Role::Individual => "individual",
            Role::Organisation => "organisation",
            Role::FirstHead => "first_head",
            Role::SigningRight => "signing_right",
            Role::FinancialSigningRight => "financial_signing_right",
            Role::Hr => "hr",
            Role::Employee => "employee",
            Role::InformationSystem => "information_system",
        }
    }

    pub fn from_code(code: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Words as a report shows them.
    pub fn describe(&self) -> &'static str {
        match self {
            Role::Individual => "individual",
            Role::Organisation => "organisation",
            Role::FirstHead => "first head",
            Role::SigningRight => "employee with signing right",
            Role::FinancialSigningRight => "employee with financial signing right",
            Role::Hr => "HR officer",
            Role::Employee => "employee",
            Role::InformationSystem => "information system",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.describe(), self.oid())
    }
}

/// A distinguished name: its DER and its attributes in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    pub der: Vec<u8>,
    pub attributes: Vec<(String, String)>,
}

impl Name {
    pub fn parse(t: &Tlv<'_>) -> Result<Name, PkiError> {
        t.check(tag::SEQUENCE, "Name")?;
        let mut attributes = Vec::new();
        let mut r = t.reader();
        while !r.is_empty() {
            let rdn = r.expect(tag::SET, "RelativeDistinguishedName")?;
            let mut rr = rdn.reader();
            while !rr.is_empty() {
                let atv = rr.expect(tag::SEQUENCE, "AttributeTypeAndValue")?;
                let mut a = atv.reader();
                let ty = a.expect(tag::OID, "attribute type")?.oid()?;
                let v = a.read()?;
                attributes.push((ty, v.text()?));
            }
        }
        Ok(Name {
            der: t.raw.to_vec(),
            attributes,
        })
    }

    /// The first value of attribute `oid`.
    pub fn get(&self, o: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(t, _)| t == o)
            .map(|(_, v)| v.as_str())
    }

    /// All values of attribute `oid`.
    pub fn all<'a>(&'a self, o: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes
            .iter()
            .filter(move |(t, _)| t == o)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .attributes
            .iter()
            .map(|(t, v)| {
                let short = match t.as_str() {
                    oid::CN => "CN",
                    oid::SURNAME => "SN",
                    oid::SERIAL_NUMBER => "serialNumber",
                    oid::COUNTRY => "C",
                    oid::LOCALITY => "L",
                    oid::STATE => "ST",
                    oid::ORGANISATION => "O",
                    oid::ORG_UNIT => "OU",
                    oid::GIVEN_NAME => "G",
                    oid::EMAIL => "E",
                    other => other,
                };
                format!("{short}={v}")
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// KeyUsage bits (RFC 5280 order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyUsage(pub u16);

impl KeyUsage {
    pub const DIGITAL_SIGNATURE: u16 = 1 << 0;
    pub const NON_REPUDIATION: u16 = 1 << 1;
    pub const KEY_ENCIPHERMENT: u16 = 1 << 2;
    pub const DATA_ENCIPHERMENT: u16 = 1 << 3;
    pub const KEY_AGREEMENT: u16 = 1 << 4;
    pub const KEY_CERT_SIGN: u16 = 1 << 5;
    pub const CRL_SIGN: u16 = 1 << 6;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// Names of the bits that are set.
    pub fn names(self) -> Vec<&'static str> {
        let all = [
            "digitalSignature",
            "nonRepudiation",
            "keyEncipherment",
            "dataEncipherment",
            "keyAgreement",
            "keyCertSign",
            "cRLSign",
            "encipherOnly",
            "decipherOnly",
        ];
        all.iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    /// DER BIT STRING content bits from the mask.
    pub(crate) fn from_bits(bits: &[u8]) -> KeyUsage {
        let mut v = 0u16;
        for (i, byte) in bits.iter().take(2).enumerate() {
            for b in 0..8 {
                if byte & (0x80 >> b) != 0 {
                    v |= 1 << (i * 8 + b);
                }
            }
        }
        KeyUsage(v)
    }
}

/// The extensions this crate reads.
#[derive(Clone, Debug, Default)]
pub struct Extensions {
    pub key_usage: Option<KeyUsage>,
    pub extended_key_usage: Vec<String>,
    pub policies: Vec<String>,
    /// BasicConstraints cA.
    pub is_ca: bool,
    pub crl_distribution_points: Vec<String>,
    pub freshest_crl: Vec<String>,
    pub ocsp_urls: Vec<String>,
    pub ca_issuers: Vec<String>,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
    /// Critical extensions we do not understand (a validator must refuse these).
    pub unknown_critical: Vec<String>,
}

/// What a report shows about a certificate holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectInfo {
    pub iin: Option<Iin>,
    pub bin: Option<Bin>,
    pub common_name: Option<String>,
    pub surname: Option<String>,
    pub given_name: Option<String>,
    pub organisation: Option<String>,
    pub country: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<Role>,
}

impl SubjectInfo {
    /// The most specific role (e.g. first head rather than organisation).
    pub fn main_role(&self) -> Option<&Role> {
        self.roles
            .iter()
            .find(|r| !matches!(r, Role::Organisation))
            .or_else(|| self.roles.first())
    }
}

/// An X.509 certificate.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    tbs: Range<usize>,
    spki: Range<usize>,
    serial: Vec<u8>,
    signature_oid: String,
    signature: Vec<u8>,
    issuer: Name,
    subject: Name,
    not_before: UtcTime,
    not_after: UtcTime,
    extensions: Extensions,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Certificate(serial {}, subject {})",
            self.serial_hex(),
            self.subject
        )
    }
}

fn range_of(outer: &[u8], inner: &[u8]) -> Range<usize> {
    let start = inner.as_ptr() as usize - outer.as_ptr() as usize;
    start..start + inner.len()
}

fn parse_general_name_uris(t: &Tlv<'_>, out: &mut Vec<String>) -> Result<(), PkiError> {
    // GeneralNames: uniformResourceIdentifier is [6] IA5String.
    let mut r = t.reader();
    while !r.is_empty() {
        let g = r.read()?;
        if g.tag == tag::CONTEXT | 6 {
            out.push(String::from_utf8_lossy(g.content).into_owned());
        }
    }
    Ok(())
}

fn parse_dps(value: &[u8], out: &mut Vec<String>) -> Result<(), PkiError> {
    let seq = parse_single(value, "CRLDistributionPoints")?;
    let mut r = seq.reader();
    while !r.is_empty() {
        let dp = r.expect(tag::SEQUENCE, "DistributionPoint")?;
        let mut d = dp.reader();
        if let Some(name) = d.optional(tag::CONTEXT | tag::CONSTRUCTED)? {
            let full = name.reader().read()?;
            if full.tag == tag::CONTEXT | tag::CONSTRUCTED {
                parse_general_name_uris(&full, out)?;
            }
        }
    }
    Ok(())
}

fn parse_extensions(t: &Tlv<'_>) -> Result<Extensions, PkiError> {
    let mut ext = Extensions::default();
    let seq = t.reader().expect(tag::SEQUENCE, "Extensions")?;
    let mut r = seq.reader();
    while !r.is_empty() {
        let e = r.expect(tag::SEQUENCE, "Extension")?;
        let mut er = e.reader();
        let id = er.expect(tag::OID, "extnID")?.oid()?;
        let critical = match er.optional(tag::BOOLEAN)? {
            Some(b) => b.content.first().copied().unwrap_or(0) != 0,
            None => false,
        };
        let value = er.expect(tag::OCTET_STRING, "extnValue")?.content;
        match id.as_str() {
            oid::EXT_KEY_USAGE => {
                ext.key_usage = Some(KeyUsage::from_bits(
                    parse_single(value, "KeyUsage")?.flags()?.1,
                ));
            }
            oid::EXT_EKU => {
                let s = parse_single(value, "ExtendedKeyUsage")?;
                let mut sr = s.reader();
                while !sr.is_empty() {
                    ext.extended_key_usage
                        .push(sr.expect(tag::OID, "KeyPurposeId")?.oid()?);
                }
            }
            oid::EXT_POLICIES => {
                let s = parse_single(value, "CertificatePolicies")?;
                let mut sr = s.reader();
                while !sr.is_empty() {
                    let p = sr.expect(tag::SEQUENCE, "PolicyInformation")?;
                    ext.policies
                        .push(p.reader().expect(tag::OID, "policyIdentifier")?.oid()?);
                }
            }
            oid::EXT_BASIC_CONSTRAINTS => {
                let s = parse_single(value, "BasicConstraints")?;
                if let Some(b) = s.reader().optional(tag::BOOLEAN)? {
                    ext.is_ca = b.content.first().copied().unwrap_or(0) != 0;
                }
            }
            oid::EXT_CRL_DP => parse_dps(value, &mut ext.crl_distribution_points)?,
            oid::EXT_FRESHEST_CRL => parse_dps(value, &mut ext.freshest_crl)?,
            oid::EXT_AIA => {
                let s = parse_single(value, "AuthorityInfoAccess")?;
                let mut sr = s.reader();
                while !sr.is_empty() {
                    let ad = sr.expect(tag::SEQUENCE, "AccessDescription")?;
                    let mut ar = ad.reader();
                    let method = ar.expect(tag::OID, "accessMethod")?.oid()?;
                    let loc = ar.read()?;
                    if loc.tag == tag::CONTEXT | 6 {
                        let url = String::from_utf8_lossy(loc.content).into_owned();
                        match method.as_str() {
                            oid::AIA_OCSP => ext.ocsp_urls.push(url),
                            oid::AIA_CA_ISSUERS => ext.ca_issuers.push(url),
                            _ => {}
                        }
                    }
                }
            }
            oid::EXT_SUBJECT_KEY_ID => {
                let s = parse_single(value, "SubjectKeyIdentifier")?;
                ext.subject_key_id = Some(s.content.to_vec());
            }
            oid::EXT_AUTHORITY_KEY_ID => {
                let s = parse_single(value, "AuthorityKeyIdentifier")?;
                if let Some(k) = s.reader().optional(tag::CONTEXT)? {
                    ext.authority_key_id = Some(k.content.to_vec());
                }
            }
            _ if critical => ext.unknown_critical.push(id),
            _ => {}
        }
    }
    Ok(ext)
}

impl Certificate {
    /// Parses a DER certificate.
    pub fn from_der(data: &[u8]) -> Result<Certificate, PkiError> {
        let der = data.to_vec();
        let top = parse_single(&der, "certificate")?;
        top.check(tag::SEQUENCE, "Certificate")?;
        let mut r = top.reader();
        let tbs = r.expect(tag::SEQUENCE, "tbsCertificate")?;
        let sig_alg = r.expect(tag::SEQUENCE, "signatureAlgorithm")?;
        let signature_oid = sig_alg
            .reader()
            .expect(tag::OID, "signatureAlgorithm")?
            .oid()?;
        let signature = r
            .expect(tag::BIT_STRING, "signatureValue")?
            .bit_string()?
            .to_vec();
        r.finish("Certificate")?;

        let mut t = tbs.reader();
        if t.peek_tag() == Some(tag::CONTEXT | tag::CONSTRUCTED) {
            t.read()?; // version
        }
        let serial = t.expect(tag::INTEGER, "serialNumber")?.content.to_vec();
        let inner_alg = t.expect(tag::SEQUENCE, "signature")?;
        if !crate::asn1::same_algorithm(&inner_alg, &sig_alg)? {
            return Err(PkiError::Malformed(
                "the signed and the outer signature algorithms differ".into(),
            ));
        }
        let issuer = Name::parse(&t.expect(tag::SEQUENCE, "issuer")?)?;
        let validity = t.expect(tag::SEQUENCE, "validity")?;
        let mut v = validity.reader();
        let not_before = v.read()?.time()?;
        let not_after = v.read()?.time()?;
        let subject = Name::parse(&t.expect(tag::SEQUENCE, "subject")?)?;
        let spki = t.expect(tag::SEQUENCE, "subjectPublicKeyInfo")?;
        let mut extensions = Extensions::default();
        while !t.is_empty() {
            let x = t.read()?;
            if x.tag == tag::CONTEXT | tag::CONSTRUCTED | 3 {
                extensions = parse_extensions(&x)?;
            }
        }
        let tbs_range = range_of(&der, tbs.raw);
        let spki_range = range_of(&der, spki.raw);
        Ok(Certificate {
            tbs: tbs_range,
            spki: spki_range,
            serial,
            signature_oid,
            signature,
            issuer,
            subject,
            not_before,
            not_after,
            extensions,
            der,
        })
    }

    /// Parses the first CERTIFICATE block of a PEM text.
    pub fn from_pem(text: &str) -> Result<Certificate, PkiError> {
        Self::all_from_pem(text)?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Malformed("no CERTIFICATE block in PEM".into()))
    }

    /// All CERTIFICATE blocks of a PEM text.
    pub fn all_from_pem(text: &str) -> Result<Vec<Certificate>, PkiError> {
        crate::pem::parse(text)?
            .into_iter()
            .filter(|b| b.label == "CERTIFICATE")
            .map(|b| Certificate::from_der(&b.der))
            .collect()
    }

    /// DER or PEM, whichever `data` is.
    pub fn from_der_or_pem(data: &[u8]) -> Result<Certificate, PkiError> {
        if crate::pem::looks_like_pem(data) {
            Self::from_pem(&String::from_utf8_lossy(data))
        } else {
            Self::from_der(data)
        }
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn to_pem(&self) -> String {
        crate::pem::encode("CERTIFICATE", &self.der)
    }

    /// The signed part (TBSCertificate) as it was encoded.
    pub fn tbs_der(&self) -> &[u8] {
        &self.der[self.tbs.clone()]
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.der[self.spki.clone()]
    }

    /// The serial number's INTEGER content octets (two's complement, as encoded).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The serial in hex, without leading zero bytes.
    pub fn serial_hex(&self) -> String {
        let start = self
            .serial
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(self.serial.len());
        hex(&self.serial[start..])
    }

    pub fn issuer(&self) -> &Name {
        &self.issuer
    }

    pub fn subject(&self) -> &Name {
        &self.subject
    }

    pub fn not_before(&self) -> UtcTime {
        self.not_before
    }

    pub fn not_after(&self) -> UtcTime {
        self.not_after
    }

    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    pub fn signature_oid(&self) -> &str {
        &self.signature_oid
    }

    pub fn signature_value(&self) -> &[u8] {
        &self.signature
    }

    /// The algorithm the issuer signed this certificate with.
    pub fn signature_algorithm(&self) -> Result<SignatureAlgorithm, PkiError> {
        SignatureAlgorithm::from_oid(&self.signature_oid)
    }

    /// The subject's public key.
    pub fn public_key(&self) -> Result<PublicKey, PkiError> {
        let spki = parse_single(self.spki_der(), "SubjectPublicKeyInfo")?;
        PublicKey::from_spki(&spki)
    }

    /// The algorithm a signature by this certificate's key uses.
    pub fn key_signature_algorithm(&self) -> Result<SignatureAlgorithm, PkiError> {
        Ok(match self.public_key()? {
            PublicKey::Rsa(_) => SignatureAlgorithm::RsaSha256,
            PublicKey::Gost(k) => SignatureAlgorithm::from_gost(k.algorithm()),
        })
    }

    /// True when `self` names `issuer` as its issuer (DN bytes, then key identifiers).
    pub fn is_issued_by_name(&self, issuer: &Certificate) -> bool {
        if self.issuer.der != issuer.subject.der {
            return false;
        }
        match (
            &self.extensions.authority_key_id,
            &issuer.extensions.subject_key_id,
        ) {
            (Some(a), Some(s)) => a == s,
            _ => true,
        }
    }

    /// Checks the issuer's signature over this certificate.
    pub fn verify_issued_by(&self, issuer: &Certificate) -> Result<(), PkiError> {
        let alg = self.signature_algorithm()?;
        issuer
            .public_key()?
            .verify(self.tbs_der(), &self.signature, alg)
            .map_err(|e| PkiError::BadSignature(format!("certificate {} : {e}", self.serial_hex())))
    }

    /// Verifies `signature` over `data` made with this certificate's key.
    pub fn verify_signature(
        &self,
        data: &[u8],
        signature: &[u8],
        alg: SignatureAlgorithm,
    ) -> Result<(), PkiError> {
        self.public_key()?.verify(data, signature, alg)
    }

    pub fn is_self_issued(&self) -> bool {
        self.issuer.der == self.subject.der
    }

    /// IIN, BIN, names and roles as NCA writes them.
    pub fn subject_info(&self) -> SubjectInfo {
        let s = &self.subject;
        let iin = s
            .all(oid::SERIAL_NUMBER)
            .find_map(|v| v.strip_prefix("IIN").and_then(|d| Iin::new(d).ok()));
        let bin = s
            .all(oid::ORG_UNIT)
            .find_map(|v| v.strip_prefix("BIN").and_then(|d| Bin::new(d).ok()));
        let roles = self
            .extensions
            .extended_key_usage
            .iter()
            .filter_map(|o| Role::from_oid(o))
            .collect();
        SubjectInfo {
            iin,
            bin,
            common_name: s.get(oid::CN).map(str::to_string),
            surname: s.get(oid::SURNAME).map(str::to_string),
            given_name: s.get(oid::GIVEN_NAME).map(str::to_string),
            organisation: s.get(oid::ORGANISATION).map(str::to_string),
            country: s.get(oid::COUNTRY).map(str::to_string),
            email: s.get(oid::EMAIL).map(str::to_string),
            roles,
        }
    }

    /// A multi-line description for `inspect`.
    pub fn describe(&self) -> String {
        let info = self.subject_info();
        let mut out = String::new();
        out.push_str(&format!("Subject:    {}\n", self.subject));
        out.push_str(&format!("Issuer:     {}\n", self.issuer));
        out.push_str(&format!("Serial:     {}\n", self.serial_hex()));
        if let Some(i) = &info.iin {
            out.push_str(&format!("IIN:        {i}\n"));
        }
        if let Some(b) = &info.bin {
            out.push_str(&format!("BIN:        {b}\n"));
        }
        if let Some(o) = &info.organisation {
            out.push_str(&format!("Organisation: {o}\n"));
        }
        for r in &info.roles {
            out.push_str(&format!("Role:       {r}\n"));
        }
        out.push_str(&format!("Not before: {}\n", self.not_before));
        out.push_str(&format!("Not after:  {}\n", self.not_after));
        let alg = self
            .key_signature_algorithm()
            .map(|a| a.name().to_string())
            .unwrap_or_else(|e| e.to_string());
        out.push_str(&format!("Key:        {alg}\n"));
        out.push_str(&format!("Signed with: {}\n", self.signature_oid));
        if let Some(ku) = self.extensions.key_usage {
            out.push_str(&format!("Key usage:  {}\n", ku.names().join(", ")));
        }
        if !self.extensions.policies.is_empty() {
            out.push_str(&format!(
                "Policies:   {}\n",
                self.extensions.policies.join(", ")
            ));
        }
        for u in &self.extensions.crl_distribution_points {
            out.push_str(&format!("CRL:        {u}\n"));
        }
        for u in &self.extensions.freshest_crl {
            out.push_str(&format!("Delta CRL:  {u}\n"));
        }
        for u in &self.extensions.ocsp_urls {
            out.push_str(&format!("OCSP:       {u}\n"));
        }
        out
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Certificate {}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Orders `rest` as the chain above `leaf` (issuer, issuer's issuer, ...); unrelated
/// certificates follow at the end.
pub fn order_chain(leaf: &Certificate, mut rest: Vec<Certificate>) -> Vec<Certificate> {
    let mut out = Vec::new();
    let mut current = leaf.clone();
    while let Some(pos) = rest.iter().position(|c| current.is_issued_by_name(c)) {
        let next = rest.remove(pos);
        let self_signed = next.is_self_issued();
        out.push(next.clone());
        if self_signed {
            break;
        }
        current = next;
    }
    out.extend(rest);
    out
}

/// Reads a sequence of certificates (CMS `certificates` [0] content).
pub(crate) fn read_certificate_set(t: &Tlv<'_>) -> Result<Vec<Certificate>, PkiError> {
    let mut out = Vec::new();
    let mut r: Reader<'_> = t.reader();
    while !r.is_empty() {
        let c = r.read()?;
        if c.tag == tag::SEQUENCE {
            out.push(Certificate::from_der(c.raw)?);
        }
    }
    Ok(out)
}
