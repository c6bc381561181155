//! A small ASN.1 reader (DER and the BER that NCA keystores use: indefinite lengths, constructed
//! strings) and a DER writer. It keeps every element's original bytes so signatures are checked
//! over exactly what was signed; it must never panic or recurse without bound on hostile input.

use std::borrow::Cow;

use crate::error::PkiError;
use crate::time::UtcTime;

/// Universal tags used in this crate.
pub mod tag {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const OID: u8 = 0x06;
    pub const ENUMERATED: u8 = 0x0a;
    pub const UTF8_STRING: u8 = 0x0c;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    pub const PRINTABLE_STRING: u8 = 0x13;
    pub const IA5_STRING: u8 = 0x16;
    pub const UTC_TIME: u8 = 0x17;
    pub const GENERALIZED_TIME: u8 = 0x18;
    pub const BMP_STRING: u8 = 0x1e;
    pub const CONSTRUCTED: u8 = 0x20;
    pub const CONTEXT: u8 = 0x80;
}

/// Deepest nesting accepted; real structures stay below 20.
const MAX_DEPTH: usize = 64;

/// One element: its tag byte, its content octets and its complete original encoding.
#[derive(Clone, Copy, Debug)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
    depth: usize,
}

/// Reads consecutive elements from a byte slice.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    depth: usize,
}

fn malformed(what: &str) -> PkiError {
    PkiError::Malformed(what.to_string())
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader {
            data,
            pos: 0,
            depth: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The tag of the next element, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// Reads the next element (any tag).
    pub fn read(&mut self) -> Result<Tlv<'a>, PkiError> {
        let (tlv, used) = parse_one(&self.data[self.pos..], self.depth)?;
        self.pos += used;
        Ok(tlv)
    }

    /// Reads the next element and checks its tag.
    pub fn expect(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, PkiError> {
        match self.peek_tag() {
            Some(t) if t == tag => self.read(),
            Some(t) => Err(PkiError::Malformed(format!(
                "{what}: expected tag 0x{tag:02x}, found 0x{t:02x}"
            ))),
            None => Err(PkiError::Malformed(format!("{what}: missing"))),
        }
    }

    /// Reads the next element only when it carries `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, PkiError> {
        if self.peek_tag() == Some(tag) {
            self.read().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails when anything is left over.
    pub fn finish(&self, what: &str) -> Result<(), PkiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(PkiError::Malformed(format!("{what}: trailing data")))
        }
    }
}

/// Parses one element at the start of `data`; returns it and the number of bytes used.
fn parse_one(data: &[u8], depth: usize) -> Result<(Tlv<'_>, usize), PkiError> {
    if depth > MAX_DEPTH {
        return Err(malformed("ASN.1 nesting too deep"));
    }
    let tag = *data
        .first()
        .ok_or_else(|| malformed("truncated ASN.1 element"))?;
    if tag & 0x1f == 0x1f {
        return Err(malformed("high-number ASN.1 tags are not supported"));
    }
    let first = *data
        .get(1)
        .ok_or_else(|| malformed("truncated ASN.1 length"))?;
    let mut header = 2usize;
    if first == 0x80 {
        // Indefinite length: constructed only; children up to an end-of-contents marker.
        if tag & tag::CONSTRUCTED == 0 {
            return Err(malformed("indefinite length on a primitive element"));
        }
        let mut pos = header;
        loop {
            let rest = data
                .get(pos..)
                .ok_or_else(|| malformed("truncated BER element"))?;
            if rest.len() < 2 {
                return Err(malformed("BER element without end-of-contents"));
            }
            if rest[0] == 0 && rest[1] == 0 {
                let tlv = Tlv {
                    tag,
                    content: &data[header..pos],
                    raw: &data[..pos + 2],
                    depth,
                };
                return Ok((tlv, pos + 2));
            }
            let (_, used) = parse_one(rest, depth + 1)?;
            pos += used;
        }
    }
    let len = if first & 0x80 == 0 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(malformed("unsupported ASN.1 length"));
        }
        let bytes = data
            .get(2..2 + n)
            .ok_or_else(|| malformed("truncated ASN.1 length"))?;
        header += n;
        bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize)
    };
    let end = header
        .checked_add(len)
        .ok_or_else(|| malformed("ASN.1 length overflow"))?;
    let content = data
        .get(header..end)
        .ok_or_else(|| malformed("truncated ASN.1 element"))?;
    Ok((
        Tlv {
            tag,
            content,
            raw: &data[..end],
            depth,
        },
        end,
    ))
}

/// Parses exactly one element filling `data`.
pub fn parse_single<'a>(data: &'a [u8], what: &str) -> Result<Tlv<'a>, PkiError> {
    let mut r = Reader::new(data);
    let t = r.read()?;
    r.finish(what)?;
    Ok(t)
}

impl<'a> Tlv<'a> {
    /// A reader over the children of a constructed element.
    pub fn reader(&self) -> Reader<'a> {
        Reader {
            data: self.content,
            pos: 0,
            depth: self.depth + 1,
        }
    }

    pub fn is_constructed(&self) -> bool {
        self.tag & tag::CONSTRUCTED != 0
    }

    /// Checks the tag.
    pub fn check(&self, tag: u8, what: &str) -> Result<(), PkiError> {
        if self.tag == tag {
            Ok(())
        } else {
            Err(PkiError::Malformed(format!(
                "{what}: expected tag 0x{tag:02x}, found 0x{:02x}",
                self.tag
            )))
        }
    }

    /// The value of a string type, joining BER constructed chunks.
    pub fn octets(&self) -> Result<Cow<'a, [u8]>, PkiError> {
        if !self.is_constructed() {
            return Ok(Cow::Borrowed(self.content));
        }
        let mut out = Vec::new();
        let mut r = self.reader();
        while !r.is_empty() {
            let chunk = r.read()?;
            out.extend_from_slice(&chunk.octets()?);
        }
        Ok(Cow::Owned(out))
    }

    /// An OBJECT IDENTIFIER in dotted form.
    pub fn oid(&self) -> Result<String, PkiError> {
        self.check(tag::OID, "object identifier")?;
        decode_oid(self.content)
    }

    /// A non-negative INTEGER's magnitude without leading zeros.
    pub fn uint_bytes(&self) -> Result<&'a [u8], PkiError> {
        self.check(tag::INTEGER, "integer")?;
        let c = self.content;
        if c.is_empty() {
            return Err(malformed("empty integer"));
        }
        if c[0] & 0x80 != 0 {
            return Err(malformed(
                "negative integer where a positive one was expected",
            ));
        }
        let start = c.iter().position(|b| *b != 0).unwrap_or(c.len());
        Ok(&c[start..])
    }

    /// A small INTEGER.
    pub fn small_uint(&self) -> Result<u64, PkiError> {
        let b = self.uint_bytes()?;
        if b.len() > 8 {
            return Err(malformed("integer too large"));
        }
        Ok(b.iter().fold(0u64, |a, x| (a << 8) | *x as u64))
    }

    /// BIT STRING of whole octets (signatures, keys): the unused-bits octet must be zero.
    pub fn bit_string(&self) -> Result<&'a [u8], PkiError> {
        match self.flags()? {
            (0, rest) => Ok(rest),
            _ => Err(malformed(
                "bit string with unused bits where whole octets are required",
            )),
        }
    }

    /// BIT STRING used as flags (KeyUsage): any unused-bit count up to 7.
    pub fn flags(&self) -> Result<(u8, &'a [u8]), PkiError> {
        self.check(tag::BIT_STRING, "bit string")?;
        match self.content.split_first() {
            Some((unused, rest)) if *unused < 8 => Ok((*unused, rest)),
            _ => Err(malformed("bad bit string")),
        }
    }

    /// A UTCTime or GeneralizedTime.
    pub fn time(&self) -> Result<UtcTime, PkiError> {
        let s = std::str::from_utf8(self.content).map_err(|_| malformed("time is not ASCII"))?;
        match self.tag {
            tag::UTC_TIME => UtcTime::parse_utc_time(s),
            tag::GENERALIZED_TIME => UtcTime::parse_generalized_time(s),
            t => Err(PkiError::Malformed(format!(
                "expected a time, found tag 0x{t:02x}"
            ))),
        }
    }

    /// A character string of any of the usual X.520 types, as UTF-8.
    pub fn text(&self) -> Result<String, PkiError> {
        match self.tag {
            tag::BMP_STRING => {
                if !self.content.len().is_multiple_of(2) {
                    return Err(malformed("odd-length BMPString"));
                }
                let units: Vec<u16> = self
                    .content
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                Ok(String::from_utf16_lossy(&units)
                    .trim_end_matches('\0')
                    .to_string())
            }
            _ => Ok(String::from_utf8_lossy(self.content).into_owned()),
        }
    }
}

/// True when two AlgorithmIdentifiers name the same algorithm: equal OIDs, and parameters equal
/// or one absent and the other NULL (NCA writes the inner one without, the outer with NULL).
pub fn same_algorithm(a: &Tlv<'_>, b: &Tlv<'_>) -> Result<bool, PkiError> {
    let mut ra = a.reader();
    let mut rb = b.reader();
    if ra.expect(tag::OID, "algorithm")?.content != rb.expect(tag::OID, "algorithm")?.content {
        return Ok(false);
    }
    let pa = if ra.is_empty() {
        None
    } else {
        Some(ra.read()?.raw)
    };
    let pb = if rb.is_empty() {
        None
    } else {
        Some(rb.read()?.raw)
    };
    let null: &[u8] = &[tag::NULL, 0];
    Ok(ra.is_empty()
        && rb.is_empty()
        && match (pa, pb) {
            (None, None) => true,
            (Some(x), None) | (None, Some(x)) => x == null,
            (Some(x), Some(y)) => x == y,
        })
}

/// Decodes the content octets of an OID.
pub fn decode_oid(c: &[u8]) -> Result<String, PkiError> {
    if c.is_empty() {
        return Err(malformed("empty object identifier"));
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut v: u64 = 0;
    for (i, b) in c.iter().enumerate() {
        if v > (u64::MAX >> 8) {
            return Err(malformed("object identifier arc too large"));
        }
        v = (v << 7) | (*b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let (a, b2) = if v < 40 {
                    (0, v)
                } else if v < 80 {
                    (1, v - 40)
                } else {
                    (2, v - 80)
                };
                arcs.push(a);
                arcs.push(b2);
            } else {
                arcs.push(v);
            }
            v = 0;
        } else if i + 1 == c.len() {
            return Err(malformed("truncated object identifier"));
        }
    }
    Ok(arcs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join("."))
}

/// DER writing helpers: every function returns a complete encoding.
pub mod der {
    use super::tag;

    /// An element with the given tag and content.
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(content.len() + 6);
        out.push(tag);
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(bytes.len() - 1);
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    /// SEQUENCE of the given encoded elements.
    pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(tag::SEQUENCE, &parts.concat())
    }

    /// SET OF, sorted as DER requires.
    pub fn set_of(parts: &[&[u8]]) -> Vec<u8> {
        let mut v: Vec<&[u8]> = parts.to_vec();
        v.sort();
        tlv(tag::SET, &v.concat())
    }

    /// Context-specific constructed [n] (EXPLICIT, or IMPLICIT of a constructed type).
    pub fn ctx(n: u8, content: &[u8]) -> Vec<u8> {
        tlv(tag::CONTEXT | tag::CONSTRUCTED | n, content)
    }

    /// Context-specific primitive [n].
    pub fn ctx_prim(n: u8, content: &[u8]) -> Vec<u8> {
        tlv(tag::CONTEXT | n, content)
    }

    pub fn octets(b: &[u8]) -> Vec<u8> {
        tlv(tag::OCTET_STRING, b)
    }

    pub fn null() -> Vec<u8> {
        vec![tag::NULL, 0]
    }

    pub fn bool(b: bool) -> Vec<u8> {
        vec![tag::BOOLEAN, 1, if b { 0xff } else { 0 }]
    }

    pub fn utf8(s: &str) -> Vec<u8> {
        tlv(tag::UTF8_STRING, s.as_bytes())
    }

    pub fn printable(s: &str) -> Vec<u8> {
        tlv(tag::PRINTABLE_STRING, s.as_bytes())
    }

    /// BIT STRING with no unused bits.
    pub fn bits(b: &[u8]) -> Vec<u8> {
        let mut c = Vec::with_capacity(b.len() + 1);
        c.push(0);
        c.extend_from_slice(b);
        tlv(tag::BIT_STRING, &c)
    }

    /// A non-negative INTEGER from big-endian magnitude bytes.
    pub fn uint(b: &[u8]) -> Vec<u8> {
        let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
        let mag = &b[start..];
        let mut c = Vec::with_capacity(mag.len() + 1);
        if mag.is_empty() || mag[0] & 0x80 != 0 {
            c.push(0);
        }
        c.extend_from_slice(mag);
        tlv(tag::INTEGER, &c)
    }

    pub fn small_uint(v: u64) -> Vec<u8> {
        uint(&v.to_be_bytes())
    }

    /// OBJECT IDENTIFIER from dotted form; panics never: a malformed constant yields an empty OID.
    pub fn oid(dotted: &str) -> Vec<u8> {
        let arcs: Vec<u64> = dotted.split('.').filter_map(|a| a.parse().ok()).collect();
        let mut c = Vec::new();
        if arcs.len() >= 2 {
            push_base128(&mut c, arcs[0] * 40 + arcs[1]);
            for a in &arcs[2..] {
                push_base128(&mut c, *a);
            }
        }
        tlv(tag::OID, &c)
    }

    fn push_base128(out: &mut Vec<u8>, mut v: u64) {
        let mut tmp = [0u8; 10];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                break;
            }
        }
        let last = tmp.len() - 1;
        for (k, b) in tmp.iter().enumerate().skip(i) {
            out.push(if k == last { *b } else { *b | 0x80 });
        }
    }

    /// AlgorithmIdentifier with optional encoded parameters.
    pub fn alg(oid_dotted: &str, params: Option<&[u8]>) -> Vec<u8> {
        match params {
            Some(p) => seq(&[&oid(oid_dotted), p]),
            None => seq(&[&oid(oid_dotted)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_round_trips() {
        for o in [
            "1.2.398.3.10.1.1.2.3.2",
            "1.2.840.113549.1.12.10.1.2",
            "2.5.4.5",
        ] {
            let enc = der::oid(o);
            let t = parse_single(&enc, "oid").expect("parse");
            assert_eq!(t.oid().expect("oid"), o);
        }
    }

    #[test]
    fn indefinite_length_with_constructed_octets_is_joined() {
        // [0] indefinite { OCTET STRING constructed indefinite { "ab", "c" } }
        let data = [
            0xa0, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0,
        ];
        let t = parse_single(&data, "test").expect("parse");
        let inner = t.reader().read().expect("inner");
        assert_eq!(&*inner.octets().expect("octets"), b"abc");
    }

    #[test]
    fn truncated_and_deep_inputs_are_errors_not_panics() {
        assert!(parse_single(&[0x30, 0x05, 0x02], "x").is_err());
        let deep = [0x30u8, 0x80].repeat(200);
        assert!(parse_single(&deep, "x").is_err());
        assert!(parse_single(&[0x04, 0x80, 0, 0], "x").is_err());
    }
}
