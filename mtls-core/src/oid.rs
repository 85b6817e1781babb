//! Object identifiers in dotted-decimal form, with names for the well-known ones.
//!
//! ```
//! use mtls_core::Oid;
//!
//! let eku = Oid::parse("1.3.6.1.5.5.7.3.2").unwrap();
//! assert_eq!(eku, Oid::CLIENT_AUTH);
//! assert_eq!(eku.name(), Some("clientAuth"));
//! // Well-known names are accepted where an OID is expected.
//! assert_eq!(Oid::parse_name_or_dotted("clientAuth").unwrap(), Oid::CLIENT_AUTH);
//! assert!(Oid::parse("1.2.03").is_err()); // leading zero: not canonical
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// An ASN.1 object identifier in canonical dotted-decimal form (`"2.5.4.3"`).
///
/// Comparison is on the canonical text, so two `Oid`s are equal exactly when they name the same
/// object. Construct with [`Oid::parse`] (strict: no leading zeros, at least two arcs, a first arc of
/// 0, 1 or 2) or use the constants for well-known identifiers.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid(Cow<'static, str>);

/// Why a string is not an object identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid OID {input:?}: {reason}")]
pub struct OidError {
    input: String,
    reason: &'static str,
}

impl OidError {
    fn new(input: &str, reason: &'static str) -> Self {
        OidError {
            input: crate::truncate_for_display(input),
            reason,
        }
    }

    /// The text that failed to parse (shortened when very long).
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// Short names of well-known OIDs: attribute types, extended key usages, extensions.
///
/// The attribute short names are those of RFC 4514 §3 plus the ones OpenSSL and Go print.
const KNOWN: &[(&str, &str)] = &[
    // Attribute types (RFC 4514 §3, RFC 4519).
    ("CN", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("serialNumber", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("title", "2.5.4.12"),
    ("postalCode", "2.5.4.17"),
    ("GN", "2.5.4.42"),
    ("initials", "2.5.4.43"),
    ("generationQualifier", "2.5.4.44"),
    ("dnQualifier", "2.5.4.46"),
    ("pseudonym", "2.5.4.65"),
    ("organizationIdentifier", "2.5.4.97"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("emailAddress", "1.2.840.113549.1.9.1"),
    // Extended key usages (RFC 5280 §4.2.1.12).
    ("anyExtendedKeyUsage", "2.5.29.37.0"),
    ("serverAuth", "1.3.6.1.5.5.7.3.1"),
    ("clientAuth", "1.3.6.1.5.5.7.3.2"),
    ("codeSigning", "1.3.6.1.5.5.7.3.3"),
    ("emailProtection", "1.3.6.1.5.5.7.3.4"),
    ("timeStamping", "1.3.6.1.5.5.7.3.8"),
    ("OCSPSigning", "1.3.6.1.5.5.7.3.9"),
    // Certificate extensions (RFC 5280 §4.2).
    ("subjectKeyIdentifier", "2.5.29.14"),
    ("keyUsage", "2.5.29.15"),
    ("subjectAltName", "2.5.29.17"),
    ("issuerAltName", "2.5.29.18"),
    ("basicConstraints", "2.5.29.19"),
    ("nameConstraints", "2.5.29.30"),
    ("cRLDistributionPoints", "2.5.29.31"),
    ("certificatePolicies", "2.5.29.32"),
    ("authorityKeyIdentifier", "2.5.29.35"),
    ("extKeyUsage", "2.5.29.37"),
    ("authorityInfoAccess", "1.3.6.1.5.5.7.1.1"),
    // Certificate policy identifiers that are common enough to be named.
    ("anyPolicy", "2.5.29.32.0"),
];

/// A well-known OID's DER content octets and its dotted text.
type KnownDer = (Box<[u8]>, &'static str);

/// The DER content octets of every [`KNOWN`] OID, encoded once: a certificate names a dozen or
/// more OIDs (its attribute types, extensions, key usages), nearly all of them well known, and
/// looking them up here spares the decimal formatting and the allocation of each, about half of
/// the cost of reading a leaf into a `ClientIdentity`.
fn known_der() -> &'static [KnownDer] {
    static TABLE: std::sync::OnceLock<Vec<KnownDer>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        KNOWN
            .iter()
            .filter_map(|&(_, dotted)| Some((encode_der_content(dotted)?, dotted)))
            .collect()
    })
}

/// The DER content octets of a dotted OID whose arcs fit in a `u64` (X.690 §8.19); `None` when
/// the text is not such an OID. Only used to build [`known_der`]: a test checks that each entry
/// decodes back to its text.
fn encode_der_content(dotted: &str) -> Option<Box<[u8]>> {
    let mut arcs = dotted.split('.').map(|a| a.parse::<u64>().ok());
    let (first, second) = (arcs.next()??, arcs.next()??);
    let mut out = Vec::new();
    let mut push = |v: u64| {
        // Base 128, most significant group first, the high bit set on all but the last.
        let groups = (64 - v.leading_zeros()).div_ceil(7).max(1);
        for g in (0..groups).rev() {
            let byte = ((v >> (7 * g)) & 0x7f) as u8;
            out.push(if g == 0 { byte } else { byte | 0x80 });
        }
    };
    push(first.checked_mul(40)?.checked_add(second)?);
    for arc in arcs {
        push(arc?);
    }
    Some(out.into_boxed_slice())
}

impl Oid {
    /// `commonName` (2.5.4.3).
    pub const COMMON_NAME: Oid = Oid::from_static("2.5.4.3");
    /// `serialNumber` attribute (2.5.4.5), not to be confused with the certificate serial.
    pub const SERIAL_NUMBER: Oid = Oid::from_static("2.5.4.5");
    /// `countryName` (2.5.4.6).
    pub const COUNTRY: Oid = Oid::from_static("2.5.4.6");
    /// `localityName` (2.5.4.7).
    pub const LOCALITY: Oid = Oid::from_static("2.5.4.7");
    /// `stateOrProvinceName` (2.5.4.8).
    pub const STATE_OR_PROVINCE: Oid = Oid::from_static("2.5.4.8");
    /// `organizationName` (2.5.4.10).
    pub const ORGANIZATION: Oid = Oid::from_static("2.5.4.10");
    /// `organizationalUnitName` (2.5.4.11).
    pub const ORGANIZATIONAL_UNIT: Oid = Oid::from_static("2.5.4.11");
    /// `emailAddress` (1.2.840.113549.1.9.1), the PKCS #9 attribute.
    pub const EMAIL_ADDRESS: Oid = Oid::from_static("1.2.840.113549.1.9.1");
    /// `domainComponent` (0.9.2342.19200300.100.1.25).
    pub const DOMAIN_COMPONENT: Oid = Oid::from_static("0.9.2342.19200300.100.1.25");
    /// `userId` (0.9.2342.19200300.100.1.1).
    pub const USER_ID: Oid = Oid::from_static("0.9.2342.19200300.100.1.1");

    /// Extended key usage `id-kp-serverAuth`.
    pub const SERVER_AUTH: Oid = Oid::from_static("1.3.6.1.5.5.7.3.1");
    /// Extended key usage `id-kp-clientAuth`.
    pub const CLIENT_AUTH: Oid = Oid::from_static("1.3.6.1.5.5.7.3.2");
    /// Extended key usage `id-kp-codeSigning`.
    pub const CODE_SIGNING: Oid = Oid::from_static("1.3.6.1.5.5.7.3.3");
    /// Extended key usage `id-kp-emailProtection`.
    pub const EMAIL_PROTECTION: Oid = Oid::from_static("1.3.6.1.5.5.7.3.4");
    /// Extended key usage `id-kp-timeStamping`.
    pub const TIME_STAMPING: Oid = Oid::from_static("1.3.6.1.5.5.7.3.8");
    /// Extended key usage `id-kp-OCSPSigning`.
    pub const OCSP_SIGNING: Oid = Oid::from_static("1.3.6.1.5.5.7.3.9");
    /// `anyExtendedKeyUsage`.
    pub const ANY_EXTENDED_KEY_USAGE: Oid = Oid::from_static("2.5.29.37.0");

    /// A constant OID. The text must already be canonical dotted decimal; this is checked by the
    /// unit tests for every constant this crate defines, and is not public so that users cannot
    /// build a non-canonical `Oid`.
    const fn from_static(dotted: &'static str) -> Oid {
        Oid(Cow::Borrowed(dotted))
    }

    /// Parses a dotted-decimal OID such as `"1.3.6.1.5.5.7.3.2"`.
    ///
    /// Strict: at least two arcs, first arc 0, 1 or 2, second arc below 40 when the first is 0 or 1,
    /// decimal digits only, no leading zeros, no empty arcs. Names are not accepted here; see
    /// [`Oid::parse_name_or_dotted`].
    pub fn parse(s: &str) -> Result<Oid, OidError> {
        if s.is_empty() {
            return Err(OidError::new(s, "empty"));
        }
        let mut arcs = 0usize;
        let mut first = 0u8;
        for (i, arc) in s.split('.').enumerate() {
            if arc.is_empty() {
                return Err(OidError::new(
                    s,
                    "empty arc (two dots, or a dot at either end)",
                ));
            }
            if !arc.bytes().all(|b| b.is_ascii_digit()) {
                return Err(OidError::new(
                    s,
                    "arcs must be decimal numbers separated by dots",
                ));
            }
            if arc.len() > 1 && arc.starts_with('0') {
                return Err(OidError::new(s, "an arc has a leading zero"));
            }
            match i {
                0 => {
                    first = match arc {
                        "0" => 0,
                        "1" => 1,
                        "2" => 2,
                        _ => return Err(OidError::new(s, "the first arc must be 0, 1 or 2")),
                    }
                }
                1 if first < 2
                    && (arc.len() > 2 || arc.parse::<u8>().map_or(true, |v| v >= 40)) =>
                {
                    return Err(OidError::new(
                        s,
                        "the second arc must be below 40 when the first is 0 or 1",
                    ))
                }
                _ => {}
            }
            arcs += 1;
        }
        if arcs < 2 {
            return Err(OidError::new(s, "an OID has at least two arcs"));
        }
        Ok(Oid(Cow::Owned(s.to_owned())))
    }

    /// Parses either a well-known short name (`"clientAuth"`, `"CN"`, `"OU"`, `"emailAddress"`,
    /// ...; case-insensitive) or a dotted-decimal OID.
    pub fn parse_name_or_dotted(s: &str) -> Result<Oid, OidError> {
        if let Some(oid) = Oid::from_name(s) {
            return Ok(oid);
        }
        if s.starts_with(|c: char| c.is_ascii_digit()) {
            return Oid::parse(s);
        }
        Err(OidError::new(
            s,
            "not a dotted-decimal OID nor a known name (such as clientAuth, serverAuth, CN, O, OU, C, L, ST, emailAddress, serialNumber)",
        ))
    }

    /// The OID for a well-known short name (case-insensitive), if there is one.
    pub fn from_name(name: &str) -> Option<Oid> {
        KNOWN
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, dotted)| Oid::from_static(dotted))
    }

    /// The well-known short name of this OID (`"CN"`, `"clientAuth"`, ...), if it has one.
    pub fn name(&self) -> Option<&'static str> {
        KNOWN
            .iter()
            .find(|(_, dotted)| *dotted == self.as_str())
            .map(|(n, _)| *n)
    }

    /// The dotted-decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Decodes the content octets of a DER `OBJECT IDENTIFIER` (without tag and length).
    ///
    /// Arcs of any size are decoded exactly (UUID-based `2.25.<128-bit>` OIDs included), and the
    /// first sub-identifier is split per X.690 §8.19.4 even when it exceeds one byte
    /// (`2.999` is `0x88 0x37`). Non-minimal encodings (a sub-identifier starting with `0x80`) and
    /// a truncated last sub-identifier are errors.
    pub fn from_der_content(content: &[u8]) -> Result<Oid, OidError> {
        let err = |reason| OidError {
            input: content.iter().map(|b| format!("{b:02x}")).collect(),
            reason,
        };
        if content.is_empty() {
            return Err(err("empty OBJECT IDENTIFIER"));
        }
        // A well-known OID: the exact bytes of its (valid, minimal) encoding, so no check is
        // skipped; the text is a static string.
        if let Some((_, dotted)) = known_der().iter().find(|(der, _)| **der == *content) {
            return Ok(Oid(Cow::Borrowed(dotted)));
        }
        if content.last().is_some_and(|b| b & 0x80 != 0) {
            return Err(err("the last sub-identifier is truncated"));
        }
        let mut out = String::new();
        let mut first = true;
        for sub in content.split_inclusive(|b| b & 0x80 == 0) {
            if sub[0] == 0x80 {
                return Err(err("a sub-identifier is not minimally encoded"));
            }
            let mut arc = Decimal::zero();
            for b in sub {
                arc.mul_add(128, u32::from(b & 0x7f));
            }
            if first {
                // X.690 §8.19.4: the first sub-identifier is 40 * arc1 + arc2, where arc1 is 0 or
                // 1 when the value is below 80 and 2 otherwise (then arc2 may be any size).
                let (arc1, sub_by) = match arc.small() {
                    Some(v) if v < 40 => (0, 0),
                    Some(v) if v < 80 => (1, 40),
                    _ => (2, 80),
                };
                arc.sub_small(sub_by);
                out.push_str(&format!("{arc1}."));
                first = false;
            } else {
                out.push('.');
            }
            out.push_str(&arc.to_string());
        }
        Ok(Oid(Cow::Owned(out)))
    }

    /// Converts an OID as parsed by x509-parser, decoding its DER content ourselves: x509-parser's
    /// own text form mis-splits large first sub-identifiers and prints arcs beyond `u64` in hex,
    /// which would make a policy on such an OID never match (and `not(..)` of it always match).
    #[cfg(feature = "x509")]
    pub(crate) fn from_der_oid(
        oid: &x509_parser::der_parser::oid::Oid<'_>,
    ) -> Result<Oid, OidError> {
        Oid::from_der_content(oid.as_bytes())
    }
}

/// An unsigned integer of any size, as base-10^9 limbs (least significant first), for OID arcs.
struct Decimal(Vec<u32>);

impl Decimal {
    const BASE: u64 = 1_000_000_000;

    fn zero() -> Decimal {
        Decimal(vec![0])
    }

    fn mul_add(&mut self, mul: u32, add: u32) {
        let mut carry = u64::from(add);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(mul) + carry;
            *limb = (v % Self::BASE) as u32;
            carry = v / Self::BASE;
        }
        while carry > 0 {
            self.0.push((carry % Self::BASE) as u32);
            carry /= Self::BASE;
        }
    }

    /// The value when it fits in one limb.
    fn small(&self) -> Option<u32> {
        match self.0.as_slice() {
            [v] => Some(*v),
            _ => None,
        }
    }

    /// Subtracts `v`, which must not exceed the value (callers subtract at most 80 from a value of
    /// at least 80).
    fn sub_small(&mut self, v: u32) {
        let mut borrow = u64::from(v);
        for limb in &mut self.0 {
            let cur = u64::from(*limb);
            if cur >= borrow {
                *limb = (cur - borrow) as u32;
                break;
            }
            *limb = (cur + Self::BASE - borrow) as u32;
            borrow = 1;
        }
        while self.0.len() > 1 && self.0.last() == Some(&0) {
            self.0.pop();
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut limbs = self.0.iter().rev();
        if let Some(top) = limbs.next() {
            write!(f, "{top}")?;
        }
        for limb in limbs {
            write!(f, "{limb:09}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Oid {
    /// The dotted-decimal form; use [`Oid::name`] for the short name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "Oid({} {name})", self.0),
            None => write!(f, "Oid({})", self.0),
        }
    }
}

impl FromStr for Oid {
    type Err = OidError;

    /// Same as [`Oid::parse_name_or_dotted`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Oid::parse_name_or_dotted(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_is_canonical_dotted_decimal() {
        for (name, dotted) in KNOWN {
            assert_eq!(Oid::parse(dotted).unwrap().as_str(), *dotted, "{name}");
        }
    }

    #[test]
    fn constants_are_canonical() {
        for oid in [
            Oid::COMMON_NAME,
            Oid::CLIENT_AUTH,
            Oid::SERVER_AUTH,
            Oid::EMAIL_ADDRESS,
            Oid::DOMAIN_COMPONENT,
            Oid::ANY_EXTENDED_KEY_USAGE,
        ] {
            assert_eq!(Oid::parse(oid.as_str()).unwrap(), oid);
        }
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(Oid::from_name("CLIENTAUTH"), Some(Oid::CLIENT_AUTH));
        assert_eq!(Oid::from_name("ou"), Some(Oid::ORGANIZATIONAL_UNIT));
    }

    #[test]
    fn rejects_leading_zero_arcs() {
        assert!(Oid::parse("1.02.3").is_err());
        assert!(Oid::parse("1.0.3").is_ok());
    }

    #[test]
    fn rejects_single_arc_and_empty_arcs() {
        for bad in ["", "1", "1.", ".1.2", "1..2", "1.2.", " 1.2", "1.2 "] {
            assert!(Oid::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_first_arc_above_two_and_large_second_arc_under_zero_or_one() {
        assert!(Oid::parse("3.1").is_err());
        assert!(Oid::parse("1.40").is_err());
        assert!(Oid::parse("0.39").is_ok());
        assert!(Oid::parse("2.999").is_ok());
    }

    #[test]
    fn accepts_arcs_beyond_u64() {
        let big = "2.25.329800735698586629295641978511506172918";
        assert_eq!(Oid::parse(big).unwrap().as_str(), big);
    }

    #[test]
    fn unknown_name_is_an_error_that_lists_known_names() {
        let err = Oid::parse_name_or_dotted("clientAuthentication").unwrap_err();
        assert!(err.to_string().contains("clientAuth"), "{err}");
    }

    /// The slow path of `from_der_content`, for comparison with the table.
    fn decoded_without_the_table(content: &[u8]) -> String {
        // Two more zero arcs make an OID that no table entry is (the table's longest relative
        // of any entry adds one arc: `2.5.29.37.0`), so it takes the decoding path; then the two
        // arcs come off the text again.
        let mut longer = content.to_vec();
        longer.extend_from_slice(&[0x00, 0x00]);
        let text = Oid::from_der_content(&longer).unwrap();
        text.as_str().strip_suffix(".0.0").unwrap().to_owned()
    }

    #[test]
    fn every_well_known_oid_has_a_table_entry_that_decodes_to_its_text() {
        assert_eq!(known_der().len(), KNOWN.len(), "every KNOWN entry encodes");
        for (der, dotted) in known_der() {
            assert_eq!(decoded_without_the_table(der), *dotted, "{der:02x?}");
            let oid = Oid::from_der_content(der).unwrap();
            assert_eq!(oid.as_str(), *dotted);
            assert_eq!(oid, Oid::parse(dotted).unwrap());
        }
    }

    #[test]
    fn the_table_holds_the_known_encodings() {
        // Spot checks against encodings written out by hand (X.690 §8.19).
        let der = |dotted: &str| encode_der_content(dotted).unwrap().into_vec();
        assert_eq!(der("2.5.4.3"), [0x55, 0x04, 0x03]);
        assert_eq!(
            der("1.3.6.1.5.5.7.3.2"),
            [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02]
        );
        assert_eq!(
            der("1.2.840.113549.1.9.1"),
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]
        );
        assert_eq!(
            der("0.9.2342.19200300.100.1.25"),
            [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19]
        );
        assert_eq!(der("2.5.29.37.0"), [0x55, 0x1d, 0x25, 0x00]);
        assert_eq!(encode_der_content("1"), None);
        assert_eq!(encode_der_content("1.x"), None);
    }

    #[test]
    fn a_well_known_prefix_with_more_arcs_is_not_taken_for_the_known_oid() {
        // 2.5.4.3.1: the bytes of CN followed by one more arc.
        assert_eq!(
            Oid::from_der_content(&[0x55, 0x04, 0x03, 0x01])
                .unwrap()
                .as_str(),
            "2.5.4.3.1"
        );
        assert_eq!(
            Oid::from_der_content(&[0x55, 0x04]).unwrap().as_str(),
            "2.5.4"
        );
    }

    #[test]
    fn der_content_decodes_a_multi_byte_first_sub_identifier() {
        // 2.999.1: the first sub-identifier is 80 + 999 = 1079 = 0x88 0x37.
        assert_eq!(
            Oid::from_der_content(&[0x88, 0x37, 0x01]).unwrap().as_str(),
            "2.999.1"
        );
    }

    #[test]
    fn der_content_decodes_small_first_arcs() {
        assert_eq!(
            Oid::from_der_content(&[0x55, 0x04, 0x03]).unwrap(),
            Oid::COMMON_NAME
        );
        assert_eq!(Oid::from_der_content(&[0x27]).unwrap().as_str(), "0.39");
        assert_eq!(Oid::from_der_content(&[0x28]).unwrap().as_str(), "1.0");
        assert_eq!(Oid::from_der_content(&[0x50]).unwrap().as_str(), "2.0");
    }

    #[test]
    fn der_content_decodes_arcs_beyond_u128() {
        // 2.25 followed by the arc 2^140: 0x81, nineteen 0x80, then 0x00 (twenty 7-bit zero groups).
        let mut der = vec![0x69, 0x81];
        der.extend(std::iter::repeat_n(0x80, 19));
        der.push(0x00);
        let oid = Oid::from_der_content(&der).unwrap();
        assert_eq!(
            oid.as_str(),
            "2.25.1393796574908163946345982392040522594123776"
        );
    }

    #[test]
    fn der_content_decodes_a_uuid_arc() {
        // 2.25.329800735698586629295641978511506172918 (RFC 4122 example UUID as an integer).
        let value: u128 = 329_800_735_698_586_629_295_641_978_511_506_172_918;
        let mut groups = Vec::new();
        let mut v = value;
        while v > 0 {
            groups.push((v & 0x7f) as u8);
            v >>= 7;
        }
        groups.reverse();
        let last = groups.len() - 1;
        let mut der = vec![0x69];
        der.extend(
            groups
                .iter()
                .enumerate()
                .map(|(i, g)| if i < last { g | 0x80 } else { *g }),
        );
        assert_eq!(
            Oid::from_der_content(&der).unwrap().as_str(),
            "2.25.329800735698586629295641978511506172918"
        );
    }

    #[test]
    fn der_content_rejects_malformed_encodings() {
        assert!(Oid::from_der_content(&[]).is_err());
        assert!(Oid::from_der_content(&[0x55, 0x84]).is_err()); // truncated
        assert!(Oid::from_der_content(&[0x55, 0x80, 0x01]).is_err()); // non-minimal
    }

    #[test]
    fn debug_shows_the_name() {
        assert_eq!(
            format!("{:?}", Oid::CLIENT_AUTH),
            "Oid(1.3.6.1.5.5.7.3.2 clientAuth)"
        );
    }
}
