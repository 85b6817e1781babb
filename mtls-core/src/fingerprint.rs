//! SHA-256 certificate fingerprints and certificate serial numbers.
//!
//! ```
//! use mtls_core::{Fingerprint, SerialNumber};
//!
//! let fp = Fingerprint::of_der(b"not really a certificate");
//! assert_eq!(Fingerprint::parse(&fp.to_string()).unwrap(), fp);
//! // The OpenSSL form (`openssl x509 -fingerprint -sha256`) is accepted too.
//! let openssl = fp.as_bytes().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
//! assert_eq!(Fingerprint::parse(&format!("sha256:{openssl}")).unwrap(), fp);
//!
//! assert_eq!(SerialNumber::parse("00:0A:ff").unwrap().to_string(), "0aff");
//! ```

use std::fmt;
use std::str::FromStr;

#[cfg(feature = "x509")]
use sha2::{Digest, Sha256};

/// The SHA-256 digest of a certificate's DER encoding.
///
/// Displays as `sha256:` followed by 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

/// Why a string is not a fingerprint or a serial number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct HexValueError {
    what: &'static str,
    input: String,
    reason: &'static str,
}

impl HexValueError {
    fn new(what: &'static str, input: &str, reason: &'static str) -> Self {
        HexValueError {
            what,
            input: crate::truncate_for_display(input),
            reason,
        }
    }
}

impl Fingerprint {
    #[cfg(feature = "x509")]
    /// The fingerprint of `der`.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Parses `sha256:` followed by 64 hex digits, optionally separated by `:` between bytes
    /// (the OpenSSL form). The prefix is required so that a future digest cannot be mistaken for
    /// this one; hex digits are case-insensitive.
    pub fn parse(s: &str) -> Result<Fingerprint, HexValueError> {
        const WHAT: &str = "SHA-256 fingerprint";
        let hex = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("SHA256:"))
            .ok_or_else(|| {
                HexValueError::new(WHAT, s, "expected `sha256:` followed by 64 hex digits")
            })?;
        let bytes = parse_hex_bytes(hex).ok_or_else(|| {
            HexValueError::new(
                WHAT,
                s,
                "expected 64 hex digits, optionally with `:` between bytes",
            )
        })?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| {
            HexValueError::new(WHAT, s, "a SHA-256 fingerprint is 32 bytes (64 hex digits)")
        })?;
        Ok(Fingerprint(arr))
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = HexValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fingerprint::parse(s)
    }
}

/// A certificate serial number: sign and magnitude of the DER INTEGER, without leading zero bytes.
///
/// RFC 5280 requires positive serials, but certificates with negative ones exist; a negative serial
/// is never equal to a positive one (`-81` is not `81`). Displays as lower-case hex without
/// separators (`"0aff"`, `"-81"`; zero is `"00"`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SerialNumber {
    negative: bool,
    magnitude: Box<[u8]>,
}

impl SerialNumber {
    /// A non-negative serial from its big-endian magnitude bytes, leading zero bytes ignored.
    pub fn from_bytes(bytes: &[u8]) -> SerialNumber {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        SerialNumber {
            negative: false,
            magnitude: bytes[start..].into(),
        }
    }

    /// From the content octets of a DER INTEGER (two's complement, big-endian), as certificates
    /// encode serials.
    pub fn from_der_integer(content: &[u8]) -> SerialNumber {
        match content.first() {
            Some(b) if b & 0x80 != 0 => {
                // Negative: the magnitude is the two's complement (invert, add one).
                let mut mag: Vec<u8> = content.iter().map(|b| !b).collect();
                for byte in mag.iter_mut().rev() {
                    let (v, overflow) = byte.overflowing_add(1);
                    *byte = v;
                    if !overflow {
                        break;
                    }
                }
                let mut serial = SerialNumber::from_bytes(&mag);
                serial.negative = true;
                serial
            }
            _ => SerialNumber::from_bytes(content),
        }
    }

    /// Whether the serial is negative (non-conforming to RFC 5280, but seen in the wild).
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// Parses hex, with or without `:` between bytes and an optional `0x` prefix; case-insensitive;
    /// leading zeros ignored (`"0x0aFF"`, `"0a:ff"` and `"aff"` are the same serial).
    pub fn parse(s: &str) -> Result<SerialNumber, HexValueError> {
        const WHAT: &str = "serial number";
        let hex = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        if hex.is_empty() {
            return Err(HexValueError::new(WHAT, s, "empty"));
        }
        let bytes = if hex.contains(':') {
            parse_hex_bytes(hex)
        } else if !hex.len().is_multiple_of(2) {
            parse_hex_bytes(&format!("0{hex}"))
        } else {
            parse_hex_bytes(hex)
        }
        .ok_or_else(|| {
            HexValueError::new(
                WHAT,
                s,
                "expected hex digits, optionally with `:` between bytes",
            )
        })?;
        if bytes.len() > 20 {
            // RFC 5280 §4.1.2.2: conforming serials are at most 20 octets.
            return Err(HexValueError::new(
                WHAT,
                s,
                "longer than the 20 bytes RFC 5280 allows",
            ));
        }
        Ok(SerialNumber::from_bytes(&bytes))
    }

    /// The big-endian magnitude, without leading zeros (empty for the serial 0).
    pub fn as_bytes(&self) -> &[u8] {
        &self.magnitude
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.magnitude.is_empty() {
            return f.write_str("00");
        }
        if self.negative {
            f.write_str("-")?;
        }
        write_hex(f, &self.magnitude)
    }
}

impl fmt::Debug for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SerialNumber({self})")
    }
}

impl FromStr for SerialNumber {
    type Err = HexValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SerialNumber::parse(s)
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// Bytes displayed as lowercase hex, without a prefix.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, self.0)
    }
}

/// One hex digit's value, either case.
pub(crate) fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Two hex digits' byte.
pub(crate) fn hex_pair(p: &[u8]) -> Option<u8> {
    match p {
        [h, l] => Some((hex_digit(*h)? << 4) | hex_digit(*l)?),
        _ => None,
    }
}

/// Hex to bytes: either contiguous pairs (`"0aff"`) or `:`-separated pairs (`"0a:ff"`).
pub(crate) fn parse_hex_bytes(hex: &str) -> Option<Vec<u8>> {
    let pair = hex_pair;
    if hex.is_empty() {
        return None;
    }
    if hex.contains(':') {
        hex.split(':').map(|p| pair(p.as_bytes())).collect()
    } else if hex.len().is_multiple_of(2) {
        hex.as_bytes().chunks(2).map(pair).collect()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_sha256_of_der() {
        // SHA-256 of the empty string.
        assert_eq!(
            Fingerprint::of_der(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn fingerprint_requires_prefix_and_exact_length() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(Fingerprint::parse(hex).is_err());
        assert!(Fingerprint::parse(&format!("sha256:{}", &hex[2..])).is_err());
        assert!(Fingerprint::parse(&format!("sha256:{hex}00")).is_err());
        assert!(Fingerprint::parse(&format!("sha1:{hex}")).is_err());
        assert!(Fingerprint::parse(&format!("sha256:{hex}")).is_ok());
    }

    #[test]
    fn fingerprint_rejects_malformed_separators() {
        assert!(Fingerprint::parse("sha256:e3:b0c4").is_err());
        assert!(Fingerprint::parse("sha256::e3").is_err());
        assert!(Fingerprint::parse("sha256:zz").is_err());
    }

    #[test]
    fn serial_forms_are_equivalent() {
        let a = SerialNumber::parse("0x0aFF").unwrap();
        assert_eq!(a, SerialNumber::parse("0a:ff").unwrap());
        assert_eq!(a, SerialNumber::parse("aff").unwrap());
        assert_eq!(a, SerialNumber::from_bytes(&[0, 0x0a, 0xff]));
    }

    #[test]
    fn negative_der_serial_is_not_its_magnitude() {
        // DER INTEGER content ff 7f is -129 (0x81).
        let neg = SerialNumber::from_der_integer(&[0xff, 0x7f]);
        assert!(neg.is_negative());
        assert_eq!(neg.to_string(), "-81");
        assert_ne!(neg, SerialNumber::parse("ff7f").unwrap());
        assert_ne!(neg, SerialNumber::parse("81").unwrap());
    }

    #[test]
    fn positive_der_serial_with_leading_zero_is_its_magnitude() {
        assert_eq!(
            SerialNumber::from_der_integer(&[0x00, 0xff]),
            SerialNumber::parse("ff").unwrap()
        );
        assert_eq!(SerialNumber::from_der_integer(&[0x80]).to_string(), "-80");
    }

    #[test]
    fn serial_zero_displays_as_00() {
        assert_eq!(SerialNumber::parse("0").unwrap().to_string(), "00");
    }

    #[test]
    fn serial_rejects_garbage_and_oversize() {
        for bad in ["", "0x", "xyz", "0a:f", "0a::ff", &"ab".repeat(21)] {
            assert!(SerialNumber::parse(bad).is_err(), "{bad:?}");
        }
    }
}
