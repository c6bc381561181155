//! Instants in UTC as ASN.1 carries them (UTCTime, GeneralizedTime), shown in UTC and in Astana
//! time (UTC+5, Kazakhstan's single time zone since 2024-03-01). Never reads the local time zone.

use std::fmt;

use crate::error::PkiError;

/// Astana's offset from UTC, in seconds.
pub const ASTANA_OFFSET_SECS: i64 = 5 * 3600;

/// How far a revocation answer's (OCSP) or a CRL's production time may lie after the instant
/// checked: the responder's or the CA's clock may run ahead of ours, and an answer fetched just
/// now may carry the second after the one we took as "now".
pub const CLOCK_SKEW_SECS: i64 = 300;

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime(pub i64);

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn bad(s: &str) -> PkiError {
    PkiError::Malformed(format!("bad time '{s}'"))
}

fn digits(s: &str, from: usize, n: usize) -> Result<i64, PkiError> {
    let part = s.get(from..from + n).ok_or_else(|| bad(s))?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(s));
    }
    part.parse().map_err(|_| bad(s))
}

impl UtcTime {
    /// Builds an instant from calendar fields (UTC), checking ranges.
    pub fn from_fields(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Result<Self, PkiError> {
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return Err(PkiError::Malformed(format!(
                "bad date {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"
            )));
        }
        Ok(UtcTime(
            days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s,
        ))
    }

    /// The current instant.
    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        UtcTime(secs)
    }

    /// `YYMMDDHHMMSSZ` (RFC 5280: YY < 50 is 20YY).
    pub fn parse_utc_time(s: &str) -> Result<Self, PkiError> {
        if s.len() != 13 || !s.ends_with('Z') {
            return Err(bad(s));
        }
        let yy = digits(s, 0, 2)?;
        let y = if yy < 50 { 2000 + yy } else { 1900 + yy };
        Self::from_fields(
            y,
            digits(s, 2, 2)?,
            digits(s, 4, 2)?,
            digits(s, 6, 2)?,
            digits(s, 8, 2)?,
            digits(s, 10, 2)?,
        )
    }

    /// `YYYYMMDDHHMMSS[.f*]Z`.
    pub fn parse_generalized_time(s: &str) -> Result<Self, PkiError> {
        if !s.is_ascii() || s.len() < 15 || !s.ends_with('Z') {
            return Err(bad(s));
        }
        let frac = &s[14..s.len() - 1];
        let frac_ok = frac.is_empty()
            || (frac.starts_with('.')
                && frac.len() > 1
                && frac[1..].bytes().all(|b| b.is_ascii_digit()));
        if !frac_ok {
            return Err(bad(s));
        }
        Self::from_fields(
            digits(s, 0, 4)?,
            digits(s, 4, 2)?,
            digits(s, 6, 2)?,
            digits(s, 8, 2)?,
            digits(s, 10, 2)?,
            digits(s, 12, 2)?,
        )
    }

    /// RFC 3339: `2026-09-01T12:00:00Z` or with an offset `+05:00`; fractions are dropped.
    pub fn parse_rfc3339(s: &str) -> Result<Self, PkiError> {
        if !s.is_ascii() {
            return Err(bad(s));
        }
        let b = s.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(bad(s));
        }
        let base = Self::from_fields(
            digits(s, 0, 4)?,
            digits(s, 5, 2)?,
            digits(s, 8, 2)?,
            digits(s, 11, 2)?,
            digits(s, 14, 2)?,
            digits(s, 17, 2)?,
        )?;
        let mut rest = &s[19..];
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return Err(bad(s));
            }
            rest = &r[n..];
        }
        if rest == "Z" || rest == "z" {
            return Ok(base);
        }
        if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":"
        {
            let off = digits(rest, 1, 2)? * 3600 + digits(rest, 4, 2)? * 60;
            let off = if rest.starts_with('+') { off } else { -off };
            return Ok(UtcTime(base.0 - off));
        }
        Err(bad(s))
    }

    fn fields(self, offset: i64) -> (i64, i64, i64, i64, i64, i64) {
        let t = self.0 + offset;
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
    }

    /// `2026-09-01T12:00:00Z`.
    pub fn to_rfc3339(self) -> String {
        let (y, m, d, h, mi, s) = self.fields(0);
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }

    /// `2026-09-01 17:00:00 (Astana, UTC+5)`.
    pub fn to_astana(self) -> String {
        let (y, m, d, h, mi, s) = self.fields(ASTANA_OFFSET_SECS);
        format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} (Astana, UTC+5)")
    }

    /// DER encoding for certificate validity and signingTime: UTCTime before 2050, else
    /// GeneralizedTime (RFC 5280 4.1.2.5).
    pub fn to_der(self) -> Vec<u8> {
        let (y, m, d, h, mi, s) = self.fields(0);
        if (1950..2050).contains(&y) {
            let txt = format!("{:02}{m:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100);
            crate::asn1::der::tlv(crate::asn1::tag::UTC_TIME, txt.as_bytes())
        } else {
            self.to_der_generalized()
        }
    }

    /// DER GeneralizedTime.
    pub fn to_der_generalized(self) -> Vec<u8> {
        let (y, m, d, h, mi, s) = self.fields(0);
        let txt = format!("{y:04}{m:02}{d:02}{h:02}{mi:02}{s:02}Z");
        crate::asn1::der::tlv(crate::asn1::tag::GENERALIZED_TIME, txt.as_bytes())
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}", self.to_rfc3339(), self.to_astana())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_generalized_times_agree() {
        let a = UtcTime::parse_utc_time("260811093000Z").expect("utc");
        let b = UtcTime::parse_generalized_time("20260811093000Z").expect("gen");
        assert_eq!(a, b);
        assert_eq!(a.to_rfc3339(), "2026-08-11T09:30:00Z");
        assert_eq!(a.to_astana(), "2026-08-11 14:30:00 (Astana, UTC+5)");
    }

    #[test]
    fn rfc3339_offsets_are_applied() {
        let a = UtcTime::parse_rfc3339("2026-08-11T14:30:00+05:00").expect("parse");
        assert_eq!(a.to_rfc3339(), "2026-08-11T09:30:00Z");
        assert!(UtcTime::parse_rfc3339("2026-13-11T14:30:00Z").is_err());
        assert!(UtcTime::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn der_time_round_trips() {
        let t = UtcTime::parse_rfc3339("2049-12-31T23:59:59Z").expect("t");
        let enc = t.to_der();
        let tlv = crate::asn1::parse_single(&enc, "t").expect("tlv");
        assert_eq!(tlv.time().expect("time"), t);
        let t2 = UtcTime::parse_rfc3339("2050-01-01T00:00:00Z").expect("t");
        assert_eq!(t2.to_der()[0], crate::asn1::tag::GENERALIZED_TIME);
    }
}
