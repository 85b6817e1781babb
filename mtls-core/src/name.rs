//! Distinguished names: the subject and issuer of a certificate, as RFC 4514 text and by attribute.
//!
//! ```
//! use mtls_core::testing::TestCa;
//! use mtls_core::{ClientIdentity, Oid};
//!
//! let ca = TestCa::new("Example Root CA");
//! let leaf = ca.leaf().common_name("svc-a").organization("Example").org_unit("payments").build();
//! let id = ClientIdentity::from_der(leaf.der()).unwrap();
//!
//! assert_eq!(id.subject().common_name(), Some("svc-a"));
//! assert_eq!(id.subject().values(&Oid::ORGANIZATIONAL_UNIT).collect::<Vec<_>>(), ["payments"]);
//! // RFC 4514 lists the most specific RDN first.
//! assert_eq!(id.subject().to_string(), "CN=svc-a,OU=payments,O=Example");
//! assert!(id.issuer().matches_rfc4514("CN=Example Root CA").unwrap());
//! ```

use std::fmt;
use std::sync::OnceLock;

#[cfg(feature = "x509")]
use x509_parser::der_parser::asn1_rs::{Tag, ToDer};
#[cfg(feature = "x509")]
use x509_parser::x509::X509Name;

use crate::oid::{Oid, OidError};

/// One attribute of a distinguished name: its type and value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NameAttribute {
    oid: Oid,
    value: AttributeValue,
}

/// The value of a name attribute.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum AttributeValue {
    /// A directory string (UTF8String, PrintableString, IA5String, NumericString, VisibleString,
    /// TeletexString read as Latin-1, BMPString, UniversalString), decoded to UTF-8.
    Text(String),
    /// Any other type, or a string type whose bytes are not valid for it: the DER encoding of the
    /// whole value. Policies never match these against text.
    Der(Vec<u8>),
}

impl NameAttribute {
    /// The attribute type.
    pub fn oid(&self) -> &Oid {
        &self.oid
    }

    /// The attribute value.
    pub fn value(&self) -> &AttributeValue {
        &self.value
    }

    /// The value as text, when it is a directory string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            AttributeValue::Text(s) => Some(s),
            AttributeValue::Der(_) => None,
        }
    }
}

impl fmt::Debug for NameAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        write_attribute(&mut out, &self.oid, &self.value);
        write!(f, "NameAttribute({out})")
    }
}

/// A parsed distinguished name (the subject or issuer of a certificate).
///
/// Keeps the relative distinguished names in certificate order (most general first, usually
/// `C`/`O` before `CN`), its RFC 4514 string form (most specific first, as RFC 4514 requires), and the
/// raw DER.
#[derive(Clone)]
pub struct DistinguishedName {
    rdns: Vec<Vec<NameAttribute>>,
    /// Formatted from `rdns` on first use: a policy compares attributes, not this text, so most
    /// connections never need it (only logs, denials and handlers that print the name).
    rfc4514: OnceLock<String>,
    der: Box<[u8]>,
}

// By hand, without `rfc4514`: it is a function of `rdns`, and whether it has been formatted yet
// must not make two equal names unequal.
impl PartialEq for DistinguishedName {
    fn eq(&self, other: &Self) -> bool {
        self.rdns == other.rdns && self.der == other.der
    }
}

impl Eq for DistinguishedName {}

impl std::hash::Hash for DistinguishedName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.rdns.hash(state);
        self.der.hash(state);
    }
}

/// Why a distinguished name could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The DER is not a well-formed X.501 Name.
    #[error("malformed distinguished name DER: {0}")]
    Der(String),
    /// The DER Name has bytes after its end.
    #[error("distinguished name DER has {0} trailing bytes")]
    TrailingData(usize),
    /// An RFC 4514 string could not be parsed.
    #[error("invalid distinguished name {input:?}: {reason}")]
    Rfc4514 {
        /// The text (shortened when very long).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl DistinguishedName {
    /// Parses a DER-encoded X.501 `Name` (feature `x509`).
    #[cfg(feature = "x509")]
    pub fn from_der(der: &[u8]) -> Result<DistinguishedName, NameError> {
        use x509_parser::prelude::FromDer;
        let (rest, name) = X509Name::from_der(der).map_err(|e| NameError::Der(e.to_string()))?;
        if !rest.is_empty() {
            return Err(NameError::TrailingData(rest.len()));
        }
        DistinguishedName::from_x509(&name).map_err(|e| NameError::Der(e.to_string()))
    }

    #[cfg(feature = "x509")]
    pub(crate) fn from_x509(name: &X509Name<'_>) -> Result<DistinguishedName, OidError> {
        let rdns: Vec<Vec<NameAttribute>> = name
            .iter_rdn()
            .map(|rdn| {
                rdn.iter()
                    .map(|atv| {
                        Ok(NameAttribute {
                            oid: Oid::from_der_oid(atv.attr_type())?,
                            value: decode_value(atv.attr_value()),
                        })
                    })
                    .collect()
            })
            .collect::<Result<_, OidError>>()?;
        Ok(DistinguishedName {
            rdns,
            rfc4514: OnceLock::new(),
            der: name.as_raw().into(),
        })
    }

    /// The RFC 4514 string form, most specific RDN first: `CN=svc-a,O=Example,C=GB`.
    ///
    /// Well-known attribute types use their short names (`CN`, `O`, `OU`, `C`, `L`, `ST`, `STREET`,
    /// `DC`, `UID`, `emailAddress`, `serialNumber`, ...), others their dotted OID; non-string values
    /// appear as `#` followed by the hex of their DER encoding.
    ///
    /// Formatted on the first call and kept.
    pub fn as_str(&self) -> &str {
        self.rfc4514.get_or_init(|| format_rfc4514(&self.rdns))
    }

    /// The raw DER of the `Name`.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Whether the name has no attributes at all (an empty subject is legal when the certificate
    /// has a critical SAN extension).
    pub fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }

    /// The relative distinguished names in certificate order (most general first).
    pub fn rdns(&self) -> impl Iterator<Item = &[NameAttribute]> {
        self.rdns.iter().map(Vec::as_slice)
    }

    /// Every attribute in certificate order.
    pub fn attributes(&self) -> impl Iterator<Item = &NameAttribute> {
        self.rdns.iter().flatten()
    }

    /// All text values of the attribute `oid`, in certificate order. Repeated attributes (several
    /// `OU`s) yield every value; non-text values are skipped.
    pub fn values<'a>(&'a self, oid: &'a Oid) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes()
            .filter(move |a| &a.oid == oid)
            .filter_map(NameAttribute::as_str)
    }

    /// Whether the attribute `oid` has the text value `value` (exact, case-sensitive comparison).
    pub fn has_value(&self, oid: &Oid, value: &str) -> bool {
        self.values(oid).any(|v| v == value)
    }

    /// The common name. When there are several, the last one in certificate order (the most
    /// specific), as Go and OpenSSL report it; see [`values`](Self::values) for all of them.
    pub fn common_name(&self) -> Option<&str> {
        self.values_static(Oid::COMMON_NAME).last()
    }

    /// The organization values (`O`).
    pub fn organizations(&self) -> impl Iterator<Item = &str> {
        self.values_static(Oid::ORGANIZATION)
    }

    /// The organizational unit values (`OU`).
    pub fn organizational_units(&self) -> impl Iterator<Item = &str> {
        self.values_static(Oid::ORGANIZATIONAL_UNIT)
    }

    /// The country values (`C`).
    pub fn countries(&self) -> impl Iterator<Item = &str> {
        self.values_static(Oid::COUNTRY)
    }

    /// The locality values (`L`).
    pub fn localities(&self) -> impl Iterator<Item = &str> {
        self.values_static(Oid::LOCALITY)
    }

    /// The state or province values (`ST`).
    pub fn states_or_provinces(&self) -> impl Iterator<Item = &str> {
        self.values_static(Oid::STATE_OR_PROVINCE)
    }

    /// The PKCS #9 `emailAddress` values (deprecated in favour of email SANs, but still seen).
    pub fn email_addresses(&self) -> impl Iterator<Item = &str> {
        self.values_static(Oid::EMAIL_ADDRESS)
    }

    /// The `serialNumber` attribute values (not the certificate serial number).
    pub fn serial_numbers(&self) -> impl Iterator<Item = &str> {
        self.values_static(Oid::SERIAL_NUMBER)
    }

    fn values_static(&self, oid: Oid) -> impl Iterator<Item = &str> {
        self.attributes()
            .filter(move |a| a.oid == oid)
            .filter_map(NameAttribute::as_str)
    }

    /// Whether this name equals the RFC 4514 string `dn`: the same RDNs in the same order, each
    /// with the same attributes (in any order within a multi-valued RDN), values compared exactly.
    ///
    /// `dn` may use short names or dotted OIDs for attribute types, and optional spaces after the
    /// `,` and `+` separators and around `=`, as OpenSSL prints them.
    pub fn matches_rfc4514(&self, dn: &str) -> Result<bool, NameError> {
        Ok(self.matches_parsed(&parse_rfc4514(dn)?))
    }

    /// Compares against a name parsed by [`parse_rfc4514`] (RFC 4514 order, most specific first).
    pub(crate) fn matches_parsed(&self, parsed: &[Vec<(Oid, String)>]) -> bool {
        if parsed.len() != self.rdns.len() {
            return false;
        }
        // Within a multi-valued RDN the attributes form a set, so compare them as multisets:
        // every wanted attribute occurs as often in `have` as in `want` (no allocation: RDNs are
        // tiny, and this runs on the policy allow path).
        parsed
            .iter()
            .zip(self.rdns.iter().rev())
            .all(|(want, have)| {
                want.len() == have.len()
                    && want.iter().all(|(oid, value)| {
                        let wanted = want.iter().filter(|(o, v)| o == oid && v == value).count();
                        let present = have
                            .iter()
                            .filter(|a| &a.oid == oid && a.as_str() == Some(value.as_str()))
                            .count();
                        wanted == present
                    })
            })
    }
}

impl fmt::Display for DistinguishedName {
    /// The RFC 4514 form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DistinguishedName({:?})", self.as_str())
    }
}

#[cfg(feature = "x509")]
fn decode_value(any: &x509_parser::der_parser::asn1_rs::Any<'_>) -> AttributeValue {
    let data = any.data;
    let text = match any.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_owned),
        // T.61 strings in the wild hold Latin-1; read each byte as the same code point.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if data.len().is_multiple_of(2) {
                let units = data
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]));
                char::decode_utf16(units)
                    .collect::<Result<String, _>>()
                    .ok()
            } else {
                None
            }
        }
        Tag::UniversalString => {
            if data.len().is_multiple_of(4) {
                data.chunks_exact(4)
                    .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect::<Option<String>>()
            } else {
                None
            }
        }
        _ => None,
    };
    match text {
        Some(t) => AttributeValue::Text(t),
        None => AttributeValue::Der(any.to_der_vec().unwrap_or_else(|_| data.to_vec())),
    }
}

fn format_rfc4514(rdns: &[Vec<NameAttribute>]) -> String {
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            write_attribute(&mut out, &atv.oid, &atv.value);
        }
    }
    out
}

fn write_attribute(out: &mut String, oid: &Oid, value: &AttributeValue) {
    out.push_str(oid.name().unwrap_or(oid.as_str()));
    out.push('=');
    match value {
        AttributeValue::Text(s) => escape_value(out, s),
        AttributeValue::Der(der) => {
            out.push('#');
            for b in der {
                out.push_str(&format!("{b:02x}"));
            }
        }
    }
}

/// RFC 4514 §2.4 escaping.
fn escape_value(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
}

/// Parses an RFC 4514 distinguished name into RDNs (most specific first), each a list of
/// `(type, value)` pairs. Hex-encoded (`#...`) values are refused: compare those by OID instead.
pub(crate) fn parse_rfc4514(input: &str) -> Result<Vec<Vec<(Oid, String)>>, NameError> {
    let err = |reason: String| NameError::Rfc4514 {
        input: crate::truncate_for_display(input),
        reason,
    };
    if input.trim().is_empty() {
        return Err(err(
            "empty; write at least one attribute, such as CN=Example CA".into(),
        ));
    }
    let mut rdns = Vec::new();
    let mut rdn = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        // Attribute type, up to '='.
        let mut ty = String::new();
        let mut saw_equals = false;
        for c in chars.by_ref() {
            if c == '=' {
                saw_equals = true;
                break;
            }
            ty.push(c);
        }
        if !saw_equals {
            return Err(err(format!(
                "`{}` has no `=`; write attributes as TYPE=value",
                ty.trim()
            )));
        }
        let ty = ty.trim();
        if ty.is_empty() {
            return Err(err("an attribute type is missing before `=`".into()));
        }
        let oid = Oid::parse_name_or_dotted(ty).map_err(|e| err(e.to_string()))?;
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek() == Some(&'#') {
            return Err(err(format!(
                "hex-encoded value for {ty} is not supported here; write the value as text"
            )));
        }
        // Value, up to an unescaped ',' or '+' (or the end).
        let mut bytes: Vec<u8> = Vec::new();
        let mut trailing_unescaped_spaces = 0usize;
        let mut separator = None;
        while let Some(c) = chars.next() {
            match c {
                ',' | '+' => {
                    separator = Some(c);
                    break;
                }
                '\\' => {
                    trailing_unescaped_spaces = 0;
                    match chars.next() {
                        Some(e @ ('"' | '+' | ',' | ';' | '<' | '>' | '\\' | ' ' | '#' | '=')) => {
                            bytes.push(e as u8)
                        }
                        Some(h1) if h1.is_ascii_hexdigit() => match chars.next() {
                            Some(h2) if h2.is_ascii_hexdigit() => {
                                let hex = [h1 as u8, h2 as u8];
                                let s =
                                    std::str::from_utf8(&hex).map_err(|e| err(e.to_string()))?;
                                bytes.push(
                                    u8::from_str_radix(s, 16).map_err(|e| err(e.to_string()))?,
                                );
                            }
                            _ => return Err(err(
                                "`\\` must be followed by two hex digits or a special character"
                                    .into(),
                            )),
                        },
                        _ => {
                            return Err(err(
                                "`\\` must be followed by two hex digits or a special character"
                                    .into(),
                            ))
                        }
                    }
                }
                '"' | ';' | '<' | '>' => {
                    return Err(err(format!("`{c}` must be escaped as `\\{c}`")));
                }
                c => {
                    if c == ' ' {
                        trailing_unescaped_spaces += 1;
                    } else {
                        trailing_unescaped_spaces = 0;
                    }
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        bytes.truncate(bytes.len() - trailing_unescaped_spaces);
        let value = String::from_utf8(bytes)
            .map_err(|_| err("escaped bytes do not form valid UTF-8".into()))?;
        if value.is_empty() {
            return Err(err(format!("the value of {ty} is empty")));
        }
        rdn.push((oid, value));
        match separator {
            Some('+') => {}
            Some(_) => rdns.push(std::mem::take(&mut rdn)),
            None => {
                rdns.push(rdn);
                return Ok(rdns);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built names: a SEQUENCE of SETs of SEQUENCE { OID, value }.
    use crate::testing::der_tlv as tlv;

    fn atv(oid_der: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let mut c = tlv(0x06, oid_der);
        c.extend(tlv(tag, value));
        tlv(0x30, &c)
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const OU: &[u8] = &[0x55, 0x04, 0x0b];
    const O: &[u8] = &[0x55, 0x04, 0x0a];

    fn name(rdns: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let mut seq = Vec::new();
        for rdn in rdns {
            seq.extend(tlv(0x31, &rdn.concat()));
        }
        tlv(0x30, &seq)
    }

    #[test]
    fn repeated_attributes_yield_every_value_in_order() {
        let der = name(&[
            vec![atv(O, 0x0c, b"Example")],
            vec![atv(OU, 0x0c, b"eng")],
            vec![atv(OU, 0x0c, b"payments")],
            vec![atv(CN, 0x0c, b"svc")],
        ]);
        let dn = DistinguishedName::from_der(&der).unwrap();
        let ous: Vec<_> = dn.organizational_units().collect();
        assert_eq!(ous, ["eng", "payments"]);
        assert_eq!(dn.as_str(), "CN=svc,OU=payments,OU=eng,O=Example");
    }

    #[test]
    fn multi_valued_rdn_compares_as_a_multiset() {
        let der = name(&[vec![atv(CN, 0x0c, b"a"), atv(O, 0x0c, b"evil")]]);
        let dn = DistinguishedName::from_der(&der).unwrap();
        assert!(!dn.matches_rfc4514("CN=a+CN=a").unwrap());
        assert!(dn.matches_rfc4514("O=evil+CN=a").unwrap());
    }

    #[test]
    fn multi_valued_rdn_is_joined_with_plus() {
        let der = name(&[vec![atv(CN, 0x0c, b"a"), atv(OU, 0x0c, b"b")]]);
        let dn = DistinguishedName::from_der(&der).unwrap();
        assert_eq!(dn.as_str(), "CN=a+OU=b");
        assert!(dn.matches_rfc4514("OU=b+CN=a").unwrap());
    }

    #[test]
    fn special_characters_are_escaped() {
        let der = name(&[vec![atv(CN, 0x0c, b"#a, b+c\\ ")]]);
        let dn = DistinguishedName::from_der(&der).unwrap();
        assert_eq!(dn.as_str(), "CN=\\#a\\, b\\+c\\\\\\ ");
        assert!(dn.matches_rfc4514(dn.as_str()).unwrap());
    }

    #[test]
    fn bmp_and_universal_strings_are_decoded() {
        let bmp = [0x00, b'h', 0x00, b'i', 0x00, 0xe9];
        let uni = [0, 0, 0, b'o', 0, 0, 0, b'k'];
        let der = name(&[vec![atv(CN, 0x1e, &bmp)], vec![atv(OU, 0x1c, &uni)]]);
        let dn = DistinguishedName::from_der(&der).unwrap();
        assert_eq!(dn.common_name(), Some("hié"));
        assert_eq!(dn.organizational_units().next(), Some("ok"));
    }

    #[test]
    fn non_string_values_are_kept_as_der_and_never_match_text() {
        let der = name(&[vec![atv(CN, 0x04, b"\x01\x02")]]);
        let dn = DistinguishedName::from_der(&der).unwrap();
        assert_eq!(dn.common_name(), None);
        assert_eq!(dn.as_str(), "CN=#04020102");
        assert!(!dn.has_value(&Oid::COMMON_NAME, "#04020102"));
    }

    #[test]
    fn invalid_utf8_in_utf8string_is_kept_as_der() {
        let der = name(&[vec![atv(CN, 0x0c, b"\xff")]]);
        let dn = DistinguishedName::from_der(&der).unwrap();
        assert_eq!(dn.common_name(), None);
    }

    #[test]
    fn common_name_is_the_last_when_repeated() {
        let der = name(&[
            vec![atv(CN, 0x0c, b"first")],
            vec![atv(CN, 0x0c, b"second")],
        ]);
        let dn = DistinguishedName::from_der(&der).unwrap();
        assert_eq!(dn.common_name(), Some("second"));
        assert!(dn.has_value(&Oid::COMMON_NAME, "first"));
    }

    #[test]
    fn empty_name_is_empty() {
        let dn = DistinguishedName::from_der(&[0x30, 0x00]).unwrap();
        assert!(dn.is_empty());
        assert_eq!(dn.as_str(), "");
    }

    #[test]
    fn malformed_der_and_trailing_bytes_are_errors() {
        assert!(matches!(
            DistinguishedName::from_der(&[0x30, 0x05, 0x31]),
            Err(NameError::Der(_))
        ));
        assert_eq!(
            DistinguishedName::from_der(&[0x30, 0x00, 0x00]),
            Err(NameError::TrailingData(1))
        );
    }

    #[test]
    fn rfc4514_match_requires_same_rdns_in_order() {
        let der = name(&[vec![atv(O, 0x0c, b"Example")], vec![atv(CN, 0x0c, b"CA")]]);
        let dn = DistinguishedName::from_der(&der).unwrap();
        assert!(dn.matches_rfc4514("CN=CA,O=Example").unwrap());
        assert!(dn.matches_rfc4514("cn=CA, o=Example").unwrap());
        assert!(dn.matches_rfc4514("2.5.4.3=CA,2.5.4.10=Example").unwrap());
        assert!(!dn.matches_rfc4514("O=Example,CN=CA").unwrap());
        assert!(!dn.matches_rfc4514("CN=CA").unwrap());
        assert!(!dn.matches_rfc4514("CN=ca,O=Example").unwrap());
    }

    #[test]
    fn rfc4514_parse_handles_hex_escapes() {
        let parsed = parse_rfc4514("CN=caf\\c3\\a9").unwrap();
        assert_eq!(parsed, vec![vec![(Oid::COMMON_NAME, "café".to_owned())]]);
    }

    #[test]
    fn rfc4514_parse_errors() {
        for bad in [
            "", "CN", "=x", "CN=", "CN=a,", "XX=a", "CN=#0403", "CN=a;b", "CN=a\\", "CN=a\\zz",
            "CN=\\ff",
        ] {
            assert!(parse_rfc4514(bad).is_err(), "{bad:?}");
        }
    }
}
