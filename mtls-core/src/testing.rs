//! A small test PKI on rcgen: CAs, intermediates, leaves with chosen names, EKUs, validity and
//! extensions, and rogue CAs. Feature `testing`; for tests, never for production keys.
//!
//! ```
//! use mtls_core::testing::{TestCa, TestPki};
//! use mtls_core::{ClientIdentity, Oid};
//!
//! let pki = TestPki::new();
//! let alice = pki.ca.leaf().common_name("alice").dns("alice.internal").build();
//! let id = ClientIdentity::from_der_chain(alice.chain()).unwrap();
//! assert_eq!(id.subject().common_name(), Some("alice"));
//!
//! // A leaf from another CA with the same names: it must be refused at the handshake.
//! let mallory = pki.rogue_ca.leaf().common_name("alice").dns("alice.internal").build();
//! assert_ne!(mallory.chain()[0], alice.chain()[0]);
//!
//! // A server certificate for a test server.
//! let server = pki.ca.server_cert("localhost");
//! assert!(server.identity().has_extended_key_usage(&Oid::SERVER_AUTH));
//! assert!(server.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
//!
//! // The header a TLS-terminating proxy would forward for alice (RFC 9440), to test proxy setups.
//! let header = mtls_core::testing::client_cert_header(&alice);
//! assert_eq!(mtls_core::forwarded::parse_client_cert(&header).unwrap().as_ref(), alice.der());
//! ```
//!
//! # Panics
//! The builders panic (with a message) when rcgen refuses the parameters, for example a DNS name
//! that is not IA5 text or an OID arc beyond `u64`: this module exists for tests, where a panic
//! is the right report.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use time::OffsetDateTime;

use crate::{ClientIdentity, Oid, SerialNumber};

/// A root CA, a second-level intermediate under it, and an unrelated "rogue" root CA.
#[derive(Debug)]
pub struct TestPki {
    /// The client CA that a server trusts.
    pub ca: TestCa,
    /// An intermediate CA under [`ca`](Self::ca).
    pub intermediate: TestCa,
    /// A CA that nobody trusts; its leaves look legitimate but must be refused.
    pub rogue_ca: TestCa,
}

impl TestPki {
    /// Generates the three CAs (fresh P-256 keys each time).
    pub fn new() -> TestPki {
        let ca = TestCa::new("mtls Test Root CA");
        let intermediate = ca.intermediate("mtls Test Intermediate CA");
        let rogue_ca = TestCa::new("mtls Rogue CA");
        TestPki {
            ca,
            intermediate,
            rogue_ca,
        }
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

/// A certificate authority that issues test certificates.
pub struct TestCa {
    cert: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// Intermediates between this CA and its root, this CA first (empty for a root).
    chain: Vec<CertificateDer<'static>>,
    /// PEM of each certificate in `chain`.
    chain_pem: Vec<String>,
    name: String,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365);
    params
}

fn new_key() -> KeyPair {
    KeyPair::generate().expect("rcgen could not generate a P-256 key")
}

impl TestCa {
    /// A new self-signed root CA with this common name.
    pub fn new(common_name: &str) -> TestCa {
        TestCa::root(ca_params(common_name), common_name)
    }

    fn root(params: CertificateParams, common_name: &str) -> TestCa {
        let key = new_key();
        let cert = params
            .self_signed(&key)
            .expect("rcgen could not self-sign the test CA");
        TestCa {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
            chain: Vec::new(),
            chain_pem: Vec::new(),
            name: common_name.to_owned(),
        }
    }

    /// A new self-signed root CA valid from `not_before` to `not_after`: for tests of a client
    /// CA that expires, or is not valid yet.
    pub fn with_validity(
        common_name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> TestCa {
        let mut params = ca_params(common_name);
        params.not_before = OffsetDateTime::from(not_before);
        params.not_after = OffsetDateTime::from(not_after);
        TestCa::root(params, common_name)
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, common_name: &str) -> TestCa {
        self.intermediate_from(ca_params(common_name), common_name)
    }

    /// An intermediate CA signed by this one, valid from `not_before` to `not_after`: for tests
    /// of a chain that expires before its leaf.
    pub fn intermediate_with_validity(
        &self,
        common_name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> TestCa {
        let mut params = ca_params(common_name);
        params.not_before = OffsetDateTime::from(not_before);
        params.not_after = OffsetDateTime::from(not_after);
        self.intermediate_from(params, common_name)
    }

    fn intermediate_from(&self, mut params: CertificateParams, common_name: &str) -> TestCa {
        params.use_authority_key_identifier_extension = true;
        let key = new_key();
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("rcgen could not sign the test intermediate");
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.chain.iter().cloned());
        let mut chain_pem = vec![cert.pem()];
        chain_pem.extend(self.chain_pem.iter().cloned());
        TestCa {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
            chain,
            chain_pem,
            name: common_name.to_owned(),
        }
    }

    /// Starts a leaf certificate issued by this CA. By default: common name `test-client`, the
    /// clientAuth EKU, digitalSignature key usage, valid from an hour ago for 30 days.
    pub fn leaf(&self) -> LeafBuilder<'_> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        params.not_before = OffsetDateTime::from(now - Duration::from_secs(3600));
        params.not_after = OffsetDateTime::from(now + Duration::from_secs(30 * 86400));
        LeafBuilder {
            ca: self,
            params,
            common_name: Some("test-client".into()),
            ekus: vec![Oid::CLIENT_AUTH],
            eku_extension: true,
            policies: Vec::new(),
        }
    }

    /// A server certificate for `host` (a DNS name, also covering 127.0.0.1 and ::1), with the
    /// serverAuth EKU, for a test server.
    pub fn server_cert(&self, host: &str) -> TestCert {
        self.leaf()
            .common_name(host)
            .dns(host)
            .ip(IpAddr::from([127, 0, 0, 1]))
            .ip(IpAddr::from(std::net::Ipv6Addr::LOCALHOST))
            .ekus(&[Oid::SERVER_AUTH])
            .build()
    }

    /// This CA's certificate (DER).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// This CA's certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// This CA's private key (PKCS #8 PEM), for tools such as openssl in end-to-end tests.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The common name this CA was created with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rcgen issuer, to sign other objects with this CA.
    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// This CA certificate's serial number (to revoke an intermediate in its parent's CRL).
    pub fn serial(&self) -> SerialNumber {
        ClientIdentity::from_der(&self.cert)
            .expect("a test CA certificate is always parseable")
            .serial()
            .clone()
    }

    /// A CRL from this CA revoking `serials`, current from an hour ago for a week.
    pub fn crl(&self, serials: &[&SerialNumber]) -> TestCrl {
        let now = SystemTime::now();
        self.crl_with_validity(
            serials,
            now - Duration::from_secs(3600),
            now + Duration::from_secs(7 * 86400),
        )
    }

    /// A CRL from this CA revoking `serials`, whose `nextUpdate` passed an hour ago.
    pub fn expired_crl(&self, serials: &[&SerialNumber]) -> TestCrl {
        let now = SystemTime::now();
        self.crl_with_validity(
            serials,
            now - Duration::from_secs(7 * 86400),
            now - Duration::from_secs(3600),
        )
    }

    /// A CRL from this CA revoking `serials`, current from an hour ago until `next_update`.
    pub fn crl_until(&self, serials: &[&SerialNumber], next_update: SystemTime) -> TestCrl {
        self.crl_with_validity(
            serials,
            SystemTime::now() - Duration::from_secs(3600),
            next_update,
        )
    }

    fn crl_with_validity(
        &self,
        serials: &[&SerialNumber],
        this_update: SystemTime,
        next_update: SystemTime,
    ) -> TestCrl {
        let params = rcgen::CertificateRevocationListParams {
            this_update: OffsetDateTime::from(this_update),
            next_update: OffsetDateTime::from(next_update),
            crl_number: rcgen::SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(s.as_bytes()),
                    revocation_time: OffsetDateTime::from(this_update),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&self.issuer)
            .expect("rcgen could not sign the test CRL");
        TestCrl {
            pem: crl.pem().expect("rcgen could not PEM-encode the test CRL"),
            der: crl.der().clone(),
        }
    }
}

/// A certificate revocation list issued by a [`TestCa`].
#[derive(Debug, Clone)]
pub struct TestCrl {
    der: CertificateRevocationListDer<'static>,
    pem: String,
}

impl TestCrl {
    /// The CRL (DER).
    pub fn der(&self) -> &CertificateRevocationListDer<'static> {
        &self.der
    }

    /// The CRL (PEM, `-----BEGIN X509 CRL-----`).
    pub fn pem(&self) -> &str {
        &self.pem
    }
}

/// Builds a leaf certificate; finish with [`build`](Self::build).
#[must_use = "call .build() to issue the certificate"]
pub struct LeafBuilder<'a> {
    ca: &'a TestCa,
    params: CertificateParams,
    common_name: Option<String>,
    ekus: Vec<Oid>,
    eku_extension: bool,
    policies: Vec<Oid>,
}

impl fmt::Debug for LeafBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafBuilder")
            .field("ca", &self.ca.name)
            .field("common_name", &self.common_name)
            .finish_non_exhaustive()
    }
}

fn arcs(oid: &Oid) -> Vec<u64> {
    oid.as_str()
        .split('.')
        .map(|a| {
            a.parse()
                .expect("the test PKI supports OID arcs up to u64::MAX")
        })
        .collect()
}

fn ia5(s: &str) -> rcgen::string::Ia5String {
    s.try_into().expect("SAN text must be IA5 (ASCII)")
}

/// DER of an OBJECT IDENTIFIER.
fn oid_der(oid: &Oid) -> Vec<u8> {
    let a = arcs(oid);
    let mut body = Vec::new();
    let mut push_base128 = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        body.extend(tmp);
    };
    push_base128(a[0] * 40 + a[1]);
    for &v in &a[2..] {
        push_base128(v);
    }
    der_tlv(0x06, &body)
}

/// A DER TLV (definite length, short or long form), for hand-built test structures.
pub(crate) fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

impl LeafBuilder<'_> {
    /// Sets the subject common name (`None` via [`no_common_name`](Self::no_common_name)).
    pub fn common_name(mut self, cn: &str) -> Self {
        self.common_name = Some(cn.to_owned());
        self
    }

    /// Leaves the subject without a common name.
    pub fn no_common_name(mut self) -> Self {
        self.common_name = None;
        self
    }

    /// Adds an organization (`O`).
    pub fn organization(mut self, o: &str) -> Self {
        self.params
            .distinguished_name
            .push(DnType::OrganizationName, o);
        self
    }

    /// Adds an organizational unit (`OU`). rcgen keeps one value per attribute type.
    pub fn org_unit(mut self, ou: &str) -> Self {
        self.params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ou);
        self
    }

    /// Adds a subject attribute by OID (one value per attribute type).
    pub fn subject_attr(mut self, oid: &Oid, value: &str) -> Self {
        self.params
            .distinguished_name
            .push(DnType::CustomDnType(arcs(oid)), value);
        self
    }

    /// Adds a DNS-name SAN.
    pub fn dns(mut self, name: &str) -> Self {
        self.params
            .subject_alt_names
            .push(SanType::DnsName(ia5(name)));
        self
    }

    /// Adds a URI SAN.
    pub fn uri(mut self, uri: &str) -> Self {
        self.params.subject_alt_names.push(SanType::URI(ia5(uri)));
        self
    }

    /// Adds a SPIFFE ID as a URI SAN (the text is not validated, so invalid IDs can be tested).
    pub fn spiffe(self, id: &str) -> Self {
        self.uri(id)
    }

    /// Adds an IP-address SAN.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.params.subject_alt_names.push(SanType::IpAddress(ip));
        self
    }

    /// Adds an email (`rfc822Name`) SAN.
    pub fn email(mut self, email: &str) -> Self {
        self.params
            .subject_alt_names
            .push(SanType::Rfc822Name(ia5(email)));
        self
    }

    /// Adds an `otherName` SAN with a UTF8String value.
    pub fn other_name_utf8(mut self, type_id: &[u64], value: &str) -> Self {
        self.params
            .subject_alt_names
            .push(SanType::OtherName((type_id.to_vec(), value.into())));
        self
    }

    /// Adds an extended key usage to the list (which starts as `[clientAuth]`).
    pub fn eku(mut self, eku: &Oid) -> Self {
        self.eku_extension = true;
        if !self.ekus.contains(eku) {
            self.ekus.push(eku.clone());
        }
        self
    }

    /// Replaces the extended key usages (an empty slice gives an EKU extension with no
    /// purposes, which is malformed per RFC 5280; use [`no_eku`](Self::no_eku) to omit it).
    pub fn ekus(mut self, ekus: &[Oid]) -> Self {
        self.eku_extension = true;
        self.ekus = ekus.to_vec();
        self
    }

    /// Omits the EKU extension entirely.
    pub fn no_eku(mut self) -> Self {
        self.eku_extension = false;
        self.ekus.clear();
        self
    }

    /// Sets the validity period.
    pub fn validity(mut self, not_before: SystemTime, not_after: SystemTime) -> Self {
        self.params.not_before = OffsetDateTime::from(not_before);
        self.params.not_after = OffsetDateTime::from(not_after);
        self
    }

    /// Makes a certificate that expired an hour ago.
    pub fn expired(self) -> Self {
        let now = SystemTime::now();
        self.validity(
            now - Duration::from_secs(30 * 86400),
            now - Duration::from_secs(3600),
        )
    }

    /// Makes a certificate that becomes valid in a day.
    pub fn not_yet_valid(self) -> Self {
        let now = SystemTime::now();
        self.validity(
            now + Duration::from_secs(86400),
            now + Duration::from_secs(30 * 86400),
        )
    }

    /// Sets the serial number (big-endian bytes).
    pub fn serial(mut self, serial: &[u8]) -> Self {
        self.params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
        self
    }

    /// Marks the certificate as a CA (basic constraints `cA` true), to test CA-as-leaf refusal.
    pub fn ca(mut self, is_ca: bool) -> Self {
        self.params.is_ca = if is_ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        self
    }

    /// Adds a certificate policy OID.
    pub fn certificate_policy(mut self, policy: &Oid) -> Self {
        self.policies.push(policy.clone());
        self
    }

    /// Adds a custom extension with raw `extnValue` content.
    pub fn extension(mut self, oid: &Oid, critical: bool, value: &[u8]) -> Self {
        let mut ext = CustomExtension::from_oid_content(&arcs(oid), value.to_vec());
        ext.set_criticality(critical);
        self.params.custom_extensions.push(ext);
        self
    }

    /// Issues the certificate with a fresh P-256 key.
    pub fn build(mut self) -> TestCert {
        if let Some(cn) = &self.common_name {
            self.params
                .distinguished_name
                .push(DnType::CommonName, cn.as_str());
        }
        if self.eku_extension {
            if self.ekus.is_empty() {
                // An EKU extension with an empty SEQUENCE, which rcgen will not emit by itself.
                let ext = CustomExtension::from_oid_content(&[2, 5, 29, 37], der_tlv(0x30, &[]));
                self.params.custom_extensions.push(ext);
            }
            self.params.extended_key_usages = self
                .ekus
                .iter()
                .map(|oid| match oid {
                    o if *o == Oid::CLIENT_AUTH => ExtendedKeyUsagePurpose::ClientAuth,
                    o if *o == Oid::SERVER_AUTH => ExtendedKeyUsagePurpose::ServerAuth,
                    o if *o == Oid::ANY_EXTENDED_KEY_USAGE => ExtendedKeyUsagePurpose::Any,
                    o => ExtendedKeyUsagePurpose::Other(arcs(o)),
                })
                .collect();
        }
        if !self.policies.is_empty() {
            // certificatePolicies ::= SEQUENCE OF PolicyInformation { policyIdentifier }
            let infos: Vec<u8> = self
                .policies
                .iter()
                .flat_map(|p| der_tlv(0x30, &oid_der(p)))
                .collect();
            self.params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &[2, 5, 29, 32],
                    der_tlv(0x30, &infos),
                ));
        }
        let key = new_key();
        let cert = self
            .params
            .signed_by(&key, &self.ca.issuer)
            .expect("rcgen could not sign the test leaf");
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.ca.chain.iter().cloned());
        let mut chain_pem = vec![cert.pem()];
        chain_pem.extend(self.ca.chain_pem.iter().cloned());
        TestCert {
            cert_pem: cert.pem(),
            chain,
            chain_pem,
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// An issued test certificate with its private key and its chain (leaf, then intermediates; the
/// root is not included, as a TLS peer would send it).
#[derive(Clone)]
pub struct TestCert {
    chain: Vec<CertificateDer<'static>>,
    /// PEM of each certificate in `chain`.
    chain_pem: Vec<String>,
    cert_pem: String,
    key_der: Vec<u8>,
    key_pem: String,
}

impl fmt::Debug for TestCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCert")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl TestCert {
    /// The leaf certificate's DER.
    pub fn der(&self) -> &[u8] {
        self.chain[0].as_ref()
    }

    /// The chain, leaf first, without the root.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The chain as concatenated PEM (leaf first), as servers and curl expect in a cert file.
    pub fn chain_pem(&self) -> String {
        self.chain_pem.concat()
    }

    /// The private key (PKCS #8 DER), for rustls.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// The private key (PKCS #8 PEM).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The leaf's serial number (to revoke it in a CRL).
    pub fn serial(&self) -> SerialNumber {
        self.identity().serial().clone()
    }

    /// The parsed identity of this certificate's chain.
    pub fn identity(&self) -> ClientIdentity {
        ClientIdentity::from_der_chain(&self.chain)
            .expect("a test certificate is always a parseable identity")
    }
}

/// The RFC 9440 `Client-Cert` header value for `cert`'s leaf: `:<base64 DER>:`, as a proxy would
/// send it.
pub fn client_cert_header(cert: &TestCert) -> String {
    format!(":{}:", base64_encode(cert.der()))
}

/// The RFC 9440 `Client-Cert-Chain` header value for `cert`'s chain after the leaf.
pub fn client_cert_chain_header(cert: &TestCert) -> String {
    cert.chain()[1..]
        .iter()
        .map(|c| format!(":{}:", base64_encode(c.as_ref())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// nginx's `$ssl_client_escaped_cert` for `cert`'s leaf: its PEM, URL-encoded.
pub fn nginx_escaped_cert_header(cert: &TestCert) -> String {
    url_encode(cert.cert_pem())
}

/// Plain base64 DER of `cert`'s whole chain, leaf first, `,`-separated, as Traefik's
/// `X-Forwarded-Tls-Client-Cert` carries it (for a leaf alone, as Caddy and HAProxy send it, use
/// [`base64_encode`] on [`TestCert::der`]).
pub fn base64_der_header(cert: &TestCert) -> String {
    cert.chain()
        .iter()
        .map(|c| base64_encode(c.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

/// An Envoy `x-forwarded-client-cert` element for `cert`: `Hash` (SHA-256 of the DER), `Cert`
/// (URL-encoded PEM), `Subject`, and the DNS and URI SANs, as Envoy's `SANITIZE_SET` emits it.
pub fn xfcc_header(cert: &TestCert) -> String {
    let id = cert.identity();
    let mut out = format!(
        "Hash={};Cert=\"{}\";Subject=\"{}\"",
        crate::fingerprint::Hex(id.fingerprint_sha256().as_bytes()),
        url_encode(cert.cert_pem()),
        id.subject().as_str().replace('"', "\\\"")
    );
    for uri in id.uris() {
        out.push_str(&format!(";URI={uri}"));
    }
    for dns in id.dns_names() {
        out.push_str(&format!(";DNS={dns}"));
    }
    out
}

/// Standard padded base64 (RFC 4648 §4), for building test inputs such as RFC 9440 headers.
pub fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Percent-encodes every byte except RFC 3986 unreserved characters, as nginx and Envoy encode
/// PEM in headers.
pub fn url_encode(text: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_pem_starts_with_the_leaf_pem() {
        let ca = TestCa::new("PEM CA");
        let int = ca.intermediate("PEM Int");
        let leaf = int.leaf().build();
        let pem = leaf.chain_pem();
        assert!(pem.starts_with(leaf.cert_pem().trim_end()));
        assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
    }

    #[test]
    fn oid_der_encodes_large_arcs() {
        let oid = Oid::parse("1.3.6.1.4.1.311.20.2.3").unwrap();
        assert_eq!(
            oid_der(&oid),
            [0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03]
        );
    }

    #[test]
    fn expired_leaf_is_not_valid_now() {
        let ca = TestCa::new("Expiry CA");
        let id = ca.leaf().expired().build().identity();
        assert!(!id.is_valid_at(SystemTime::now()));
    }
}
