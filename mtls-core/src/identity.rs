//! The verified client certificate, parsed once into an identity.
//!
//! A [`ClientIdentity`] is built from the DER of a certificate that the TLS stack has *already
//! verified*; parsing is not verification. Build it once per connection and share it (`Arc`):
//! every accessor is a cheap read of owned data.
//!
//! ```
//! use mtls_core::testing::TestCa;
//! use mtls_core::{ClientIdentity, Oid};
//!
//! let ca = TestCa::new("Example CA");
//! let leaf = ca
//!     .leaf()
//!     .common_name("billing")
//!     .dns("billing.internal")
//!     .spiffe("spiffe://prod.example/ns/billing/sa/api")
//!     .build();
//!
//! let id = ClientIdentity::from_der_chain(leaf.chain()).unwrap();
//! assert_eq!(id.subject().common_name(), Some("billing"));
//! assert_eq!(id.dns_names(), ["billing.internal"]);
//! assert_eq!(id.spiffe_id().unwrap().trust_domain().as_str(), "prod.example");
//! assert!(id.has_extended_key_usage(&Oid::CLIENT_AUTH));
//! assert!(!id.is_ca());
//! println!("{}", id.fingerprint_sha256()); // sha256:...
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Version;

use crate::dns::normalize_dns_name;
use crate::email::normalize_email;
use crate::fingerprint::{Fingerprint, SerialNumber};
use crate::name::DistinguishedName;
use crate::oid::{Oid, OidError};
use crate::spiffe::SpiffeId;

/// A client certificate's identity: the leaf parsed once, plus the DER chain it came with.
///
/// Cheap to read, `Send + Sync`, meant to be put in an `Arc` and shared by every request of a
/// connection. Construct with [`from_der`](Self::from_der) or
/// [`from_der_chain`](Self::from_der_chain).
#[derive(Clone)]
pub struct ClientIdentity {
    subject: DistinguishedName,
    issuer: DistinguishedName,
    serial: SerialNumber,
    not_before: SystemTime,
    not_after: SystemTime,
    dns_names: Vec<String>,
    uris: Vec<String>,
    ip_addresses: Vec<IpAddr>,
    emails: Vec<String>,
    other_names: Vec<OtherName>,
    spiffe_id: Option<SpiffeId>,
    extended_key_usage: Option<Vec<Oid>>,
    key_usage: Option<KeyUsage>,
    basic_constraints: Option<BasicConstraints>,
    certificate_policies: Vec<Oid>,
    extensions: Vec<Extension>,
    /// SHA-256 of `chain[0]`, computed on first use: most connections are decided without it,
    /// and hashing every leaf costs about 2 % of a handshake.
    fingerprint: OnceLock<Fingerprint>,
    chain: Vec<CertificateDer<'static>>,
    /// The validity periods of `chain[1..]` (notBefore, notAfter), read when the identity is built.
    chain_validity: Vec<(SystemTime, SystemTime)>,
    /// DNS SANs lower-cased without trailing dot, malformed ones left out: the policy engine's
    /// hash lookups use these so that evaluation does not allocate.
    pub(crate) dns_normalized: Vec<Box<str>>,
    /// Email SANs with lower-cased domains, malformed ones left out.
    pub(crate) emails_normalized: Vec<Box<str>>,
}

/// Why a certificate could not be read as a client identity. Only the leaf of a chain is parsed
/// (the rest is kept as DER), so every error is about the leaf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// No certificate was given.
    #[error("the certificate chain is empty: there is no client certificate")]
    EmptyChain,
    /// The bytes are not a DER X.509 certificate.
    #[error("not a valid DER X.509 certificate: {reason}")]
    Malformed {
        /// What the parser reported.
        reason: String,
    },
    /// The certificate is followed by extra bytes.
    #[error("{len} bytes of trailing data after the DER certificate")]
    TrailingData {
        /// Number of extra bytes.
        len: usize,
    },
    /// Only X.509 version 3 certificates are accepted (as webpki does).
    #[error("the certificate is X.509 {version}; only v3 certificates are supported")]
    UnsupportedVersion {
        /// The version found (`"v1"`, `"v2"`, ...).
        version: String,
    },
    /// The same extension appears twice (RFC 5280 §4.2 forbids it).
    #[error("the certificate has the extension {oid} more than once")]
    DuplicateExtension {
        /// The repeated extension.
        oid: Oid,
    },
    /// A known extension could not be parsed.
    #[error("the certificate has a malformed {} extension ({oid}): {reason}", oid.name().unwrap_or("X.509"))]
    MalformedExtension {
        /// The extension.
        oid: Oid,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate of the chain after the leaf could not be read far enough to find its
    /// validity period.
    #[error("certificate {position} of the chain (0 is the leaf) has no readable validity period: {reason}")]
    MalformedChain {
        /// Where in the chain, 0 being the leaf.
        position: usize,
        /// What the parser reported.
        reason: String,
    },
}

/// An `otherName` subject alternative name: a type OID and its value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OtherName {
    type_id: Oid,
    value: Box<[u8]>,
}

impl OtherName {
    /// The `type-id` OID (for example 1.3.6.1.4.1.311.20.2.3, the Microsoft UPN).
    pub fn type_id(&self) -> &Oid {
        &self.type_id
    }

    /// The DER of the `[0] EXPLICIT` value, as in the certificate.
    pub fn value_der(&self) -> &[u8] {
        &self.value
    }

    /// The value as text when it is a UTF8String or IA5String (the usual encoding of UPNs and
    /// similar names).
    pub fn value_str(&self) -> Option<&str> {
        // [0] EXPLICIT { UTF8String | IA5String }, short or long definite lengths.
        let inner = der_content(&self.value, 0xa0)?;
        der_content(inner, 0x0c)
            .or_else(|| der_content(inner, 0x16))
            .and_then(|b| std::str::from_utf8(b).ok())
    }
}

impl fmt::Debug for OtherName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value_str() {
            Some(s) => write!(f, "OtherName({}, {s:?})", self.type_id),
            None => write!(f, "OtherName({}, {} bytes)", self.type_id, self.value.len()),
        }
    }
}

/// The content of a single DER TLV with the expected tag, when `der` is exactly that.
fn der_content(der: &[u8], tag: u8) -> Option<&[u8]> {
    let (&t, rest) = der.split_first()?;
    if t != tag {
        return None;
    }
    let (&len0, rest) = rest.split_first()?;
    let (len, rest) = if len0 < 0x80 {
        (usize::from(len0), rest)
    } else {
        let n = usize::from(len0 & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() == len).then_some(rest)
}

/// The key usage extension's bits (RFC 5280 §4.2.1.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyUsage(u16);

impl KeyUsage {
    /// `digitalSignature`.
    pub fn digital_signature(&self) -> bool {
        self.bit(0)
    }
    /// `nonRepudiation` (also called `contentCommitment`).
    pub fn non_repudiation(&self) -> bool {
        self.bit(1)
    }
    /// `keyEncipherment`.
    pub fn key_encipherment(&self) -> bool {
        self.bit(2)
    }
    /// `dataEncipherment`.
    pub fn data_encipherment(&self) -> bool {
        self.bit(3)
    }
    /// `keyAgreement`.
    pub fn key_agreement(&self) -> bool {
        self.bit(4)
    }
    /// `keyCertSign`.
    pub fn key_cert_sign(&self) -> bool {
        self.bit(5)
    }
    /// `cRLSign`.
    pub fn crl_sign(&self) -> bool {
        self.bit(6)
    }
    /// `encipherOnly`.
    pub fn encipher_only(&self) -> bool {
        self.bit(7)
    }
    /// `decipherOnly`.
    pub fn decipher_only(&self) -> bool {
        self.bit(8)
    }

    fn bit(&self, n: u16) -> bool {
        self.0 & (1 << n) != 0
    }
}

impl fmt::Debug for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 9] = [
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
        let set: Vec<&str> = (0..9u16)
            .filter(|&n| self.bit(n))
            .map(|n| NAMES[usize::from(n)])
            .collect();
        write!(f, "KeyUsage({})", set.join(", "))
    }
}

/// The basic constraints extension (RFC 5280 §4.2.1.9).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BasicConstraints {
    ca: bool,
    path_len_constraint: Option<u32>,
}

impl BasicConstraints {
    /// Whether the certificate is a CA.
    pub fn is_ca(&self) -> bool {
        self.ca
    }

    /// The path length constraint, when present.
    pub fn path_len_constraint(&self) -> Option<u32> {
        self.path_len_constraint
    }
}

/// A certificate extension: OID, criticality and the raw `extnValue` bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Extension {
    oid: Oid,
    critical: bool,
    value: Box<[u8]>,
}

impl Extension {
    /// The extension's OID.
    pub fn oid(&self) -> &Oid {
        &self.oid
    }

    /// Whether the extension is marked critical.
    pub fn is_critical(&self) -> bool {
        self.critical
    }

    /// The content of the `extnValue` OCTET STRING (itself usually DER).
    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

impl fmt::Debug for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extension")
            .field("oid", &self.oid)
            .field("critical", &self.critical)
            .field("len", &self.value.len())
            .finish()
    }
}

impl ClientIdentity {
    /// Parses one DER certificate (the leaf). The chain then holds just that certificate.
    pub fn from_der(der: &[u8]) -> Result<ClientIdentity, IdentityError> {
        // Borrowed here; `from_der_chain` makes the one owned copy the identity keeps.
        ClientIdentity::from_der_chain(&[CertificateDer::from(der)])
    }

    /// Parses the leaf of a chain (leaf first, as rustls presents `peer_certificates()`) and keeps
    /// an owned copy of the whole chain.
    ///
    /// Only the leaf is parsed into fields; the rest of the chain was already verified by the TLS
    /// stack and is kept as DER for logging or forwarding. Of the other certificates only the
    /// validity period is read, for [`valid_until`](Self::valid_until).
    pub fn from_der_chain(chain: &[CertificateDer<'_>]) -> Result<ClientIdentity, IdentityError> {
        let leaf = chain.first().ok_or(IdentityError::EmptyChain)?;
        let mut id = parse_leaf(leaf.as_ref())?;
        id.chain_validity = chain
            .iter()
            .enumerate()
            .skip(1)
            .map(|(position, cert)| {
                validity_of(cert.as_ref()).map_err(|e| IdentityError::MalformedChain {
                    position,
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        id.chain = chain.iter().map(|c| c.clone().into_owned()).collect();
        Ok(id)
    }

    /// The subject distinguished name.
    pub fn subject(&self) -> &DistinguishedName {
        &self.subject
    }

    /// The issuer distinguished name.
    pub fn issuer(&self) -> &DistinguishedName {
        &self.issuer
    }

    /// The certificate serial number.
    pub fn serial(&self) -> &SerialNumber {
        &self.serial
    }

    /// The start of the validity period.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// The end of the validity period.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Whether `time` lies within the validity period (both ends inclusive, as RFC 5280 says).
    pub fn is_valid_at(&self, time: SystemTime) -> bool {
        self.not_before <= time && time <= self.not_after
    }

    /// Whether the leaf and every other certificate of the chain are within their dates at
    /// `at`: the strict reading, for a chain that cannot be verified again.
    pub fn chain_valid_at(&self, at: SystemTime) -> bool {
        self.is_valid_at(at)
            && self
                .chain_validity
                .iter()
                .all(|(not_before, not_after)| *not_before <= at && at <= *not_after)
    }

    /// The earliest `notAfter` of the leaf and of every other certificate of the chain, valid or
    /// not: for a chain that nobody here verified (a forwarded one).
    pub fn chain_not_after(&self) -> SystemTime {
        self.chain_validity
            .iter()
            .map(|(_, not_after)| *not_after)
            .fold(self.not_after, SystemTime::min)
    }

    /// Until when the chain this identity came with holds, seen at `at`: the earliest `notAfter`
    /// of the leaf and of every other certificate of the chain that is valid at `at`.
    ///
    /// A chain is only as good as its shortest-lived link: when an intermediate expires, a
    /// handshake with this chain fails, so access granted by it must end then too. Certificates
    /// that are not valid at `at` cannot be on the path the TLS stack verified at `at` (it checks
    /// every certificate's dates), so a client that also sends an expired, unused certificate is
    /// not cut short by it. A valid but unused extra certificate does count: the answer may be
    /// earlier than needed, never later. The trust anchor is not in the chain; its dates are not
    /// checked (neither does webpki).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use mtls_core::testing::TestCa;
    ///
    /// let root = TestCa::new("Root");
    /// let now = SystemTime::now();
    /// let leaf = root.leaf().validity(now - Duration::from_secs(60), now + Duration::from_secs(600)).build();
    /// let id = leaf.identity();
    /// assert_eq!(id.valid_until(now), id.not_after());
    /// ```
    pub fn valid_until(&self, at: SystemTime) -> SystemTime {
        self.chain_validity
            .iter()
            .filter(|(not_before, not_after)| *not_before <= at && at <= *not_after)
            .map(|(_, not_after)| *not_after)
            .fold(self.not_after, SystemTime::min)
    }

    /// DNS-name SANs exactly as the certificate has them.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// URI SANs exactly as the certificate has them.
    pub fn uris(&self) -> &[String] {
        &self.uris
    }

    /// IP-address SANs.
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ip_addresses
    }

    /// Email (`rfc822Name`) SANs exactly as the certificate has them.
    pub fn emails(&self) -> &[String] {
        &self.emails
    }

    /// `otherName` SANs (UPNs and the like).
    pub fn other_names(&self) -> &[OtherName] {
        &self.other_names
    }

    /// The SPIFFE ID, per the X.509-SVID rules for a leaf: the certificate has exactly one URI SAN,
    /// which is a valid SPIFFE ID with a non-root path; it is not a CA; its key usage (when present)
    /// has neither keyCertSign nor cRLSign. Otherwise `None`: a certificate with several URI SANs has
    /// no SPIFFE ID, even if one of them is `spiffe://...`.
    pub fn spiffe_id(&self) -> Option<&SpiffeId> {
        self.spiffe_id.as_ref()
    }

    /// The extended key usages, or `None` when the certificate has no EKU extension (which is not
    /// the same as an empty list; see [`has_extended_key_usage`](Self::has_extended_key_usage)).
    pub fn extended_key_usage(&self) -> Option<&[Oid]> {
        self.extended_key_usage.as_deref()
    }

    /// Whether the EKU extension lists `eku` explicitly. `anyExtendedKeyUsage` does not stand in
    /// for other purposes here, and a certificate without the extension has none.
    pub fn has_extended_key_usage(&self, eku: &Oid) -> bool {
        self.extended_key_usage
            .as_deref()
            .is_some_and(|ekus| ekus.contains(eku))
    }

    /// The key usage extension, when present.
    pub fn key_usage(&self) -> Option<KeyUsage> {
        self.key_usage
    }

    /// The basic constraints extension, when present.
    pub fn basic_constraints(&self) -> Option<BasicConstraints> {
        self.basic_constraints
    }

    /// Whether the certificate is a CA (basic constraints `cA` true).
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.is_some_and(|b| b.ca)
    }

    /// Certificate policy OIDs from the certificate policies extension.
    pub fn certificate_policies(&self) -> &[Oid] {
        &self.certificate_policies
    }

    /// Every extension in certificate order.
    pub fn extensions(&self) -> &[Extension] {
        &self.extensions
    }

    /// The extension with this OID, if present (duplicates are rejected at parse time).
    pub fn extension(&self, oid: &Oid) -> Option<&Extension> {
        self.extensions.iter().find(|e| &e.oid == oid)
    }

    /// The SHA-256 fingerprint of the leaf's DER.
    ///
    /// Computed on the first call and kept: the identity is parsed once per connection, and the
    /// hash is paid only by a connection whose policy, handler or log reads it.
    pub fn fingerprint_sha256(&self) -> &Fingerprint {
        self.fingerprint
            .get_or_init(|| Fingerprint::of_der(self.der()))
    }

    /// Whether the fingerprint has not been computed yet (for tests of its laziness).
    #[cfg(test)]
    pub(crate) fn fingerprint_is_unset(&self) -> bool {
        self.fingerprint.get().is_none()
    }

    /// The DER chain as presented, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf's DER.
    pub fn der(&self) -> &[u8] {
        self.chain.first().map_or(&[], |c| c.as_ref())
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("serial", &self.serial)
            .field("spiffe_id", &self.spiffe_id)
            .field("dns_names", &self.dns_names)
            .field("uris", &self.uris)
            .field("ip_addresses", &self.ip_addresses)
            .field("emails", &self.emails)
            .field("fingerprint", self.fingerprint_sha256())
            .finish_non_exhaustive()
    }
}

/// `None` when the platform's `SystemTime` cannot hold the date (GeneralizedTime allows year 1,
/// before Windows' epoch of 1601).
fn to_system_time(unix: i64) -> Option<SystemTime> {
    let d = Duration::from_secs(unix.unsigned_abs());
    if unix >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(d)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(d)
    }
}

/// The validity period (notBefore, notAfter) of a DER certificate, read without parsing the rest
/// of it: the `Certificate` and `tbsCertificate` SEQUENCEs are entered, the optional version,
/// the serial number, the signature algorithm and the issuer are stepped over, and the
/// `Validity` is parsed by x509-parser.
///
/// ```
/// use mtls_core::identity::validity_of;
/// use mtls_core::testing::TestCa;
///
/// let ca = TestCa::new("Test CA");
/// let leaf = ca.leaf().build();
/// let (not_before, not_after) = validity_of(leaf.der())?;
/// assert_eq!(not_after, leaf.identity().not_after());
/// assert!(not_before < not_after);
/// # Ok::<(), mtls_core::IdentityError>(())
/// ```
pub fn validity_of(der: &[u8]) -> Result<(SystemTime, SystemTime), IdentityError> {
    use x509_parser::asn1_rs::{Any, Class, FromDer as _, Tag};
    use x509_parser::certificate::Validity;

    let malformed = |reason: &str| IdentityError::Malformed {
        reason: reason.to_owned(),
    };
    let sequence = |input| -> Result<&[u8], IdentityError> {
        let (_, any) = Any::from_der(input).map_err(|e| malformed(&e.to_string()))?;
        if any.tag() != Tag::Sequence {
            return Err(malformed("expected a SEQUENCE"));
        }
        Ok(any.data)
    };
    let skip = |input| -> Result<&[u8], IdentityError> {
        let (rest, _) = Any::from_der(input).map_err(|e| malformed(&e.to_string()))?;
        Ok(rest)
    };
    let tbs = sequence(sequence(der)?)?;
    let (_, first) = Any::from_der(tbs).map_err(|e| malformed(&e.to_string()))?;
    // `version [0] EXPLICIT` is absent in v1 certificates.
    let mut rest = if first.class() == Class::ContextSpecific && first.tag() == Tag(0) {
        skip(tbs)?
    } else {
        tbs
    };
    for _ in 0..3 {
        // serialNumber, signature, issuer
        rest = skip(rest)?;
    }
    let (_, validity) = Validity::from_der(rest).map_err(|e| malformed(&e.to_string()))?;
    let time = |t: x509_parser::time::ASN1Time, which: &str| {
        to_system_time(t.timestamp())
            .ok_or_else(|| malformed(&format!("{which} is out of this platform's time range")))
    };
    Ok((
        time(validity.not_before, "notBefore")?,
        time(validity.not_after, "notAfter")?,
    ))
}

/// A DER CRL's `nextUpdate` (`None` when it has none), the time until which its revocation
/// statuses may be believed.
///
/// ```
/// use mtls_core::identity::crl_next_update;
/// use mtls_core::testing::TestCa;
/// use std::time::{Duration, SystemTime};
///
/// let ca = TestCa::new("Test CA");
/// let until = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
/// let crl = ca.crl_until(&[], until);
/// assert_eq!(crl_next_update(crl.der())?, Some(until));
/// # Ok::<(), mtls_core::IdentityError>(())
/// ```
pub fn crl_next_update(der: &[u8]) -> Result<Option<SystemTime>, IdentityError> {
    use x509_parser::revocation_list::CertificateRevocationList;
    let (_, crl) =
        CertificateRevocationList::from_der(der).map_err(|e| IdentityError::Malformed {
            reason: format!("CRL: {e}"),
        })?;
    crl.next_update()
        .map(|t| {
            to_system_time(t.timestamp()).ok_or_else(|| IdentityError::Malformed {
                reason: "the CRL's nextUpdate is out of this platform's time range".into(),
            })
        })
        .transpose()
}

fn parse_leaf(der: &[u8]) -> Result<ClientIdentity, IdentityError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| IdentityError::Malformed {
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(IdentityError::TrailingData { len: rest.len() });
    }
    let version = cert.version();
    if version != X509Version::V3 {
        return Err(IdentityError::UnsupportedVersion {
            version: format!("v{}", version.0 + 1),
        });
    }

    let bad_oid = |e: OidError| IdentityError::Malformed {
        reason: e.to_string(),
    };
    let mut id = ClientIdentity {
        subject: DistinguishedName::from_x509(cert.subject()).map_err(bad_oid)?,
        issuer: DistinguishedName::from_x509(cert.issuer()).map_err(bad_oid)?,
        serial: SerialNumber::from_der_integer(cert.raw_serial()),
        not_before: to_system_time(cert.validity().not_before.timestamp()).ok_or_else(|| {
            IdentityError::Malformed {
                reason: "notBefore is out of this platform's time range".into(),
            }
        })?,
        not_after: to_system_time(cert.validity().not_after.timestamp()).ok_or_else(|| {
            IdentityError::Malformed {
                reason: "notAfter is out of this platform's time range".into(),
            }
        })?,
        dns_names: Vec::new(),
        uris: Vec::new(),
        ip_addresses: Vec::new(),
        emails: Vec::new(),
        other_names: Vec::new(),
        spiffe_id: None,
        extended_key_usage: None,
        key_usage: None,
        basic_constraints: None,
        certificate_policies: Vec::new(),
        extensions: Vec::with_capacity(cert.extensions().len()),
        fingerprint: OnceLock::new(),
        chain: Vec::new(),
        chain_validity: Vec::new(),
        dns_normalized: Vec::new(),
        emails_normalized: Vec::new(),
    };

    for ext in cert.extensions() {
        let oid = Oid::from_der_oid(&ext.oid).map_err(bad_oid)?;
        // RFC 5280 §4.2: "A certificate MUST NOT include more than one instance of a particular
        // extension." A second SAN or EKU could otherwise be read differently by different parsers.
        if id.extensions.iter().any(|e| e.oid == oid) {
            return Err(IdentityError::DuplicateExtension { oid });
        }
        let malformed = |reason: String| IdentityError::MalformedExtension {
            oid: oid.clone(),
            reason,
        };
        match ext.parsed_extension() {
            ParsedExtension::ParseError { error } => return Err(malformed(error.to_string())),
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(s) => id.dns_names.push((*s).to_owned()),
                        GeneralName::URI(s) => id.uris.push((*s).to_owned()),
                        GeneralName::RFC822Name(s) => id.emails.push((*s).to_owned()),
                        GeneralName::IPAddress(bytes) => {
                            let ip = match *bytes {
                                [a, b, c, d] => IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)),
                                b if b.len() == 16 => {
                                    let mut arr = [0u8; 16];
                                    arr.copy_from_slice(b);
                                    IpAddr::V6(Ipv6Addr::from(arr))
                                }
                                b => {
                                    return Err(malformed(format!(
                                        "an IP address SAN has {} bytes (expected 4 or 16)",
                                        b.len()
                                    )))
                                }
                            };
                            id.ip_addresses.push(ip);
                        }
                        GeneralName::OtherName(type_id, value) => id.other_names.push(OtherName {
                            type_id: Oid::from_der_oid(type_id).map_err(bad_oid)?,
                            value: (*value).into(),
                        }),
                        GeneralName::Invalid(tag, _) => {
                            return Err(malformed(format!(
                                "a general name with tag {} could not be decoded",
                                tag.0
                            )))
                        }
                        // Directory names, X.400 and EDI party names and registered IDs carry no
                        // identity that any policy rule reads.
                        _ => {}
                    }
                }
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                let mut list = Vec::new();
                for (set, oid) in [
                    (eku.any, Oid::ANY_EXTENDED_KEY_USAGE),
                    (eku.server_auth, Oid::SERVER_AUTH),
                    (eku.client_auth, Oid::CLIENT_AUTH),
                    (eku.code_signing, Oid::CODE_SIGNING),
                    (eku.email_protection, Oid::EMAIL_PROTECTION),
                    (eku.time_stamping, Oid::TIME_STAMPING),
                    (eku.ocsp_signing, Oid::OCSP_SIGNING),
                ] {
                    if set {
                        list.push(oid);
                    }
                }
                for other in &eku.other {
                    list.push(Oid::from_der_oid(other).map_err(bad_oid)?);
                }
                id.extended_key_usage = Some(list);
            }
            ParsedExtension::KeyUsage(ku) => id.key_usage = Some(KeyUsage(ku.flags)),
            ParsedExtension::BasicConstraints(bc) => {
                id.basic_constraints = Some(BasicConstraints {
                    ca: bc.ca,
                    path_len_constraint: bc.path_len_constraint,
                })
            }
            ParsedExtension::CertificatePolicies(policies) => {
                id.certificate_policies = policies
                    .iter()
                    .map(|p| Oid::from_der_oid(&p.policy_id).map_err(bad_oid))
                    .collect::<Result<_, _>>()?;
            }
            _ => {}
        }
        id.extensions.push(Extension {
            oid,
            critical: ext.critical,
            value: ext.value.into(),
        });
    }

    // X.509-SVID: exactly one URI SAN (§2); a leaf SVID is not a CA and does not set keyCertSign
    // or cRLSign (§4.1-4.3); a leaf's SPIFFE ID has a non-root path (§5.2). Anything else has no
    // SPIFFE ID, so SPIFFE rules never match it.
    let signs_certs = id
        .key_usage
        .is_some_and(|ku| ku.key_cert_sign() || ku.crl_sign());
    if id.uris.len() == 1 && !id.is_ca() && !signs_certs {
        id.spiffe_id = SpiffeId::parse(&id.uris[0])
            .ok()
            .filter(|s| !s.path().is_empty());
    }
    id.dns_normalized = id
        .dns_names
        .iter()
        .filter_map(|n| normalize_dns_name(n).map(|c| c.into_owned().into_boxed_str()))
        .collect();
    id.emails_normalized = id
        .emails
        .iter()
        .filter_map(|e| normalize_email(e).map(String::into_boxed_str))
        .collect();
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestCa;

    fn ca() -> TestCa {
        TestCa::new("Identity Test CA")
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn validity_of_reads_what_the_full_parse_reads() {
        let ca = ca();
        let now = SystemTime::now();
        let leaf = ca.leaf().validity(now - HOUR, now + 5 * HOUR).build();
        let id = leaf.identity();
        assert_eq!(
            validity_of(leaf.der()).unwrap(),
            (id.not_before(), id.not_after())
        );
        // A CA certificate too (no SANs, other extensions).
        let (_, ca_not_after) = validity_of(ca.cert_der()).unwrap();
        assert!(ca_not_after > now + 300 * 24 * HOUR);
    }

    #[test]
    fn validity_of_refuses_bytes_that_are_not_a_certificate() {
        assert!(validity_of(b"").is_err());
        assert!(validity_of(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
        let ca = ca();
        let der = ca.leaf().build().der().to_vec();
        assert!(validity_of(&der[..der.len() / 3]).is_err());
    }

    #[test]
    fn valid_until_is_the_leaf_not_after_without_intermediates() {
        let ca = ca();
        let now = SystemTime::now();
        let id = ca
            .leaf()
            .validity(now - HOUR, now + HOUR)
            .build()
            .identity();
        assert_eq!(id.valid_until(now), id.not_after());
    }

    #[test]
    fn valid_until_is_the_earliest_not_after_of_the_chain() {
        let root = ca();
        let now = SystemTime::now();
        let short = root.intermediate_with_validity("Short", now - HOUR, now + 2 * HOUR);
        let leaf = short.leaf().validity(now - HOUR, now + 10 * HOUR).build();
        let id = leaf.identity();
        assert_eq!(id.chain().len(), 2);
        let (_, intermediate_end) = validity_of(id.chain()[1].as_ref()).unwrap();
        assert!(intermediate_end < id.not_after());
        assert_eq!(id.valid_until(now), intermediate_end);
    }

    #[test]
    fn valid_until_ignores_a_certificate_not_valid_at_the_time() {
        // An extra certificate that was already expired cannot be on the verified path: it must
        // not cut the connection short.
        let root = ca();
        let now = SystemTime::now();
        let expired = root.intermediate_with_validity("Old", now - 10 * HOUR, now - HOUR);
        let leaf = root.leaf().validity(now - HOUR, now + HOUR).build();
        let chain = [leaf.chain()[0].clone(), expired.cert_der().clone()];
        let id = ClientIdentity::from_der_chain(&chain).unwrap();
        assert_eq!(id.valid_until(now), id.not_after());
    }

    #[test]
    fn an_unreadable_certificate_after_the_leaf_is_an_error() {
        let ca = ca();
        let leaf = ca.leaf().build();
        let chain = [
            leaf.chain()[0].clone(),
            CertificateDer::from(vec![0x30, 0x00]),
        ];
        assert!(matches!(
            ClientIdentity::from_der_chain(&chain),
            Err(IdentityError::MalformedChain { position: 1, .. })
        ));
    }

    #[test]
    fn parses_subject_issuer_and_serial() {
        let ca = ca();
        let leaf = ca.leaf().common_name("svc").serial(&[0x01, 0x02]).build();
        let id = ClientIdentity::from_der(leaf.der()).unwrap();
        assert_eq!(id.subject().common_name(), Some("svc"));
        assert_eq!(id.issuer().common_name(), Some("Identity Test CA"));
        assert_eq!(id.serial().to_string(), "0102");
    }

    #[test]
    fn parses_every_san_kind() {
        let ca = ca();
        let leaf = ca
            .leaf()
            .dns("a.internal")
            .dns("B.Internal.")
            .uri("https://example.com/x")
            .ip("10.0.0.7".parse().unwrap())
            .ip("fd00::7".parse().unwrap())
            .email("ops@Example.com")
            .other_name_utf8(&[1, 3, 6, 1, 4, 1, 311, 20, 2, 3], "user@corp")
            .build();
        let id = ClientIdentity::from_der(leaf.der()).unwrap();
        assert_eq!(id.dns_names(), ["a.internal", "B.Internal."]);
        assert_eq!(
            &*id.dns_normalized,
            [Box::from("a.internal"), Box::from("b.internal")]
        );
        assert_eq!(id.uris(), ["https://example.com/x"]);
        assert_eq!(id.ip_addresses().len(), 2);
        assert_eq!(id.emails(), ["ops@Example.com"]);
        assert_eq!(&*id.emails_normalized, [Box::from("ops@example.com")]);
        assert_eq!(id.other_names().len(), 1);
        assert_eq!(
            id.other_names()[0].type_id().as_str(),
            "1.3.6.1.4.1.311.20.2.3"
        );
        assert_eq!(id.other_names()[0].value_str(), Some("user@corp"));
    }

    #[test]
    fn single_spiffe_uri_is_the_spiffe_id() {
        let ca = ca();
        let leaf = ca.leaf().spiffe("spiffe://prod.example/ns/a").build();
        let id = ClientIdentity::from_der(leaf.der()).unwrap();
        assert_eq!(
            id.spiffe_id().unwrap().as_str(),
            "spiffe://prod.example/ns/a"
        );
    }

    #[test]
    fn several_uri_sans_mean_no_spiffe_id() {
        let ca = ca();
        let leaf = ca
            .leaf()
            .spiffe("spiffe://prod.example/ns/a")
            .uri("https://example.com")
            .build();
        let id = ClientIdentity::from_der(leaf.der()).unwrap();
        assert!(id.spiffe_id().is_none());
        assert_eq!(id.uris().len(), 2);
    }

    #[test]
    fn invalid_spiffe_uri_means_no_spiffe_id() {
        let ca = ca();
        let leaf = ca.leaf().uri("spiffe://Prod.Example/ns/a").build();
        let id = ClientIdentity::from_der(leaf.der()).unwrap();
        assert!(id.spiffe_id().is_none());
    }

    #[test]
    fn spiffe_id_without_path_is_not_a_leaf_svid() {
        let ca = ca();
        let id = ClientIdentity::from_der(ca.leaf().spiffe("spiffe://prod.example").build().der())
            .unwrap();
        assert_eq!(id.uris(), ["spiffe://prod.example"]);
        assert!(id.spiffe_id().is_none());
    }

    #[test]
    fn certificate_with_an_oid_whose_first_sub_identifier_is_large_is_read_exactly() {
        let ca = ca();
        let oid = Oid::parse("2.999.1").unwrap();
        let id = ClientIdentity::from_der(
            ca.leaf()
                .extension(&oid, false, &[5, 0])
                .eku(&oid)
                .build()
                .der(),
        )
        .unwrap();
        assert!(id.extension(&oid).is_some());
        assert!(id.has_extended_key_usage(&oid));
    }

    #[test]
    fn ca_certificate_has_no_spiffe_id() {
        let ca = ca();
        let leaf = ca
            .leaf()
            .spiffe("spiffe://prod.example/ns/a")
            .ca(true)
            .build();
        let id = ClientIdentity::from_der(leaf.der()).unwrap();
        assert!(id.is_ca());
        assert!(id.spiffe_id().is_none());
    }

    #[test]
    fn default_leaf_has_client_auth_eku_and_is_not_ca() {
        let ca = ca();
        let id = ClientIdentity::from_der(ca.leaf().build().der()).unwrap();
        assert_eq!(id.extended_key_usage(), Some(&[Oid::CLIENT_AUTH][..]));
        assert!(!id.is_ca());
        assert!(id.key_usage().unwrap().digital_signature());
    }

    #[test]
    fn missing_eku_extension_is_none_not_empty() {
        let ca = ca();
        let id = ClientIdentity::from_der(ca.leaf().no_eku().build().der()).unwrap();
        assert_eq!(id.extended_key_usage(), None);
        assert!(!id.has_extended_key_usage(&Oid::CLIENT_AUTH));
    }

    #[test]
    fn custom_eku_oids_are_kept() {
        let ca = ca();
        let custom = Oid::parse("1.3.6.1.4.1.99999.1").unwrap();
        let leaf = ca.leaf().eku(&Oid::SERVER_AUTH).eku(&custom).build();
        let id = ClientIdentity::from_der(leaf.der()).unwrap();
        assert!(id.has_extended_key_usage(&Oid::SERVER_AUTH));
        assert!(id.has_extended_key_usage(&custom));
        assert!(id.has_extended_key_usage(&Oid::CLIENT_AUTH));
    }

    #[test]
    fn certificate_policies_and_custom_extensions_are_exposed() {
        let ca = ca();
        let policy = Oid::parse("2.23.140.1.2.1").unwrap();
        let ext = Oid::parse("1.3.6.1.4.1.99999.7").unwrap();
        let leaf = ca
            .leaf()
            .certificate_policy(&policy)
            .extension(&ext, true, &[0x05, 0x00])
            .build();
        let id = ClientIdentity::from_der(leaf.der()).unwrap();
        assert_eq!(id.certificate_policies(), [policy]);
        let e = id.extension(&ext).unwrap();
        assert!(e.is_critical());
        assert_eq!(e.value(), [0x05, 0x00]);
    }

    #[test]
    fn validity_is_read() {
        let ca = ca();
        let nb = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let na = nb + Duration::from_secs(3600);
        let id = ClientIdentity::from_der(ca.leaf().validity(nb, na).build().der()).unwrap();
        assert_eq!(id.not_before(), nb);
        assert_eq!(id.not_after(), na);
        assert!(id.is_valid_at(nb + Duration::from_secs(1)));
        assert!(!id.is_valid_at(na + Duration::from_secs(1)));
    }

    #[test]
    fn fingerprint_is_sha256_of_leaf_der() {
        let ca = ca();
        let leaf = ca.leaf().build();
        let id = ClientIdentity::from_der(leaf.der()).unwrap();
        assert_eq!(*id.fingerprint_sha256(), Fingerprint::of_der(leaf.der()));
    }

    #[test]
    fn the_fingerprint_is_computed_on_first_use_and_kept() {
        let ca = ca();
        let leaf = ca.leaf().build();
        let id = ClientIdentity::from_der(leaf.der()).unwrap();
        assert!(
            id.fingerprint.get().is_none(),
            "parsing must not hash the leaf"
        );
        let first: *const Fingerprint = id.fingerprint_sha256();
        assert!(std::ptr::eq(first, id.fingerprint_sha256()), "hashed once");
        assert_eq!(
            id.clone().fingerprint.get(),
            Some(&Fingerprint::of_der(leaf.der())),
            "a clone keeps the computed value"
        );
    }

    #[test]
    fn the_subject_text_is_formatted_on_first_use_and_the_same_as_before() {
        let ca = ca();
        let id = ClientIdentity::from_der(ca.leaf().common_name("lazy").build().der()).unwrap();
        assert_eq!(id.subject().as_str(), "CN=lazy");
        assert_eq!(id.subject().to_string(), "CN=lazy");
        assert_eq!(
            format!("{:?}", id.subject()),
            "DistinguishedName(\"CN=lazy\")"
        );
    }

    #[test]
    fn chain_is_kept_leaf_first() {
        let ca = ca();
        let int = ca.intermediate("Intermediate");
        let leaf = int.leaf().common_name("deep").build();
        assert_eq!(leaf.chain().len(), 2);
        let id = ClientIdentity::from_der_chain(leaf.chain()).unwrap();
        assert_eq!(id.chain().len(), 2);
        assert_eq!(id.der(), leaf.der());
        assert_eq!(id.issuer().common_name(), Some("Intermediate"));
    }

    #[test]
    fn empty_chain_is_an_error() {
        assert_eq!(
            ClientIdentity::from_der_chain(&[]).unwrap_err(),
            IdentityError::EmptyChain
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x01", b"hello world"] {
            assert!(matches!(
                ClientIdentity::from_der(bad),
                Err(IdentityError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn trailing_data_is_an_error() {
        let ca = ca();
        let mut der = ca.leaf().build().der().to_vec();
        der.extend_from_slice(&[0, 0]);
        assert_eq!(
            ClientIdentity::from_der(&der).unwrap_err(),
            IdentityError::TrailingData { len: 2 }
        );
    }

    #[test]
    fn duplicate_extension_is_an_error() {
        let ca = ca();
        let oid = Oid::parse("1.3.6.1.4.1.99999.9").unwrap();
        let der = ca
            .leaf()
            .extension(&oid, false, &[0x05, 0x00])
            .extension(&oid, false, &[0x05, 0x00])
            .build();
        assert_eq!(
            ClientIdentity::from_der(der.der()).unwrap_err(),
            IdentityError::DuplicateExtension { oid }
        );
    }

    #[test]
    fn version_one_is_unsupported() {
        let ca = ca();
        let der = ca.leaf().build().der().to_vec();
        // The TBS starts with `[0] EXPLICIT INTEGER 2` (v3); rewrite it to v1. The signature no
        // longer verifies, which parsing does not check.
        let pos = der
            .windows(5)
            .position(|w| w == [0xa0, 0x03, 0x02, 0x01, 0x02])
            .unwrap();
        let mut v1 = der.clone();
        v1[pos + 4] = 0x00;
        assert_eq!(
            ClientIdentity::from_der(&v1).unwrap_err(),
            IdentityError::UnsupportedVersion {
                version: "v1".into()
            }
        );
    }

    #[test]
    fn malformed_known_extension_is_an_error() {
        let ca = ca();
        // An EKU extension whose value is not a SEQUENCE OF OID.
        let eku = Oid::parse("2.5.29.37").unwrap();
        let leaf = ca
            .leaf()
            .no_eku()
            .extension(&eku, false, &[0x04, 0x00])
            .build();
        assert!(matches!(
            ClientIdentity::from_der(leaf.der()),
            Err(IdentityError::MalformedExtension { .. })
        ));
    }

    #[test]
    fn errors_name_the_problem() {
        let err = IdentityError::DuplicateExtension {
            oid: Oid::parse("2.5.29.17").unwrap(),
        };
        assert_eq!(
            err.to_string(),
            "the certificate has the extension 2.5.29.17 more than once"
        );
    }

    #[test]
    fn der_content_reads_long_form_lengths() {
        let mut v = vec![0x0c, 0x81, 200];
        v.extend(std::iter::repeat_n(b'a', 200));
        assert_eq!(der_content(&v, 0x0c).map(<[u8]>::len), Some(200));
        assert_eq!(der_content(&v[..100], 0x0c), None);
    }
}
