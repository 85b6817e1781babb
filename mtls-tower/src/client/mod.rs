//! The calling side of mutual TLS: [`MtlsClientConfig`] builds a rustls `ClientConfig` that
//! presents a client certificate, trusts only a pinned server CA bundle, and **authorizes the
//! server by a [`Policy`]** inside the handshake, with the same deny reasons as the server side.
//!
//! ```
//! use mtls_tower::mtls_core::Oid;
//! use mtls_tower::testing::TestPki;
//! use mtls_tower::{MtlsClientConfig, Policy};
//!
//! let pki = TestPki::new();
//! let me = pki.ca.leaf().spiffe("spiffe://prod.example/ns/web/sa/frontend").build();
//! let config = MtlsClientConfig::builder()
//!     .client_cert(me.chain().to_vec(), me.key_der())
//!     .server_ca_certs(vec![pki.ca.cert_der().clone()])
//!     .authorize_server(Policy::spiffe_id("spiffe://prod.example/ns/billing/sa/api")?)
//!     .build()?;
//! // `config.client_config()` goes to tokio-rustls, hyper-util, reqwest or tonic.
//!
//! // The same checks outside a handshake: billing's API is allowed, anyone else is not, and the
//! // error says why.
//! let server = |id: &str| pki.ca.leaf().spiffe(id).ekus(&[Oid::SERVER_AUTH]).build();
//! let api = server("spiffe://prod.example/ns/billing/sa/api");
//! assert!(config.verify_server(api.chain(), "billing.internal").is_ok());
//! let batch = server("spiffe://prod.example/ns/billing/sa/batch");
//! let err = config.verify_server(batch.chain(), "billing.internal").unwrap_err();
//! assert!(err.to_string().contains("spiffe_id"), "{err}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Connecting
//!
//! [`client_config`](MtlsClientConfig::client_config) is a plain rustls `ClientConfig`, for
//! tokio-rustls's `TlsConnector` (and [`server_identity`] for the server's identity on the
//! connection). With feature `hyper-client`, `MtlsClientConfig::connector()` is an
//! `MtlsConnector` for hyper-util's `Client` and tonic's `Endpoint::connect_with_connector`
//! (give tonic an `http://` URI: the connector always speaks TLS, and tonic then adds none of its
//! own). Offer `b"h2"` with [`alpn_protocols`](MtlsClientConfigBuilder::alpn_protocols) for HTTP/2
//! and gRPC.
//!
//! # With reqwest
//!
//! reqwest (with its feature `rustls-no-provider`, or `rustls`) takes the configuration by
//! value: `reqwest::Client::builder().tls_backend_preconfigured(config.to_client_config())`.
//! Three things to know:
//!
//! - **Set `https_only(true)`.** reqwest sends an `http://` URL in plain text, past every check
//!   here; with `https_only` such a request fails instead.
//! - reqwest keeps the configuration it was built with. After a reload
//!   ([`ClientReloadHandle`]), build a new `reqwest::Client` from the handle's
//!   [`current`](ClientReloadHandle::current) configuration; the old client's pooled connections
//!   keep the old one until they close.
//! - A denied server's error is reqwest's connect error: [`ServerDenied::find_in`] finds the
//!   denial in it, with the policy's reason. With `tls_info(true)` each response
//!   carries the server's leaf (`reqwest::tls::TlsInfo::peer_certificate`) for
//!   `ClientIdentity::from_der`.
//!
//! `examples/examples/client_reqwest.rs` is a runnable example (`cargo run -p mtls-examples
//! --features reqwest --example client_reqwest`).
//!
//! # How the server is checked
//!
//! 1. Its chain up to one of the pinned server CAs **valid now** (webpki never reads a trust
//!    anchor's dates; a CA past its `notAfter` no longer vouches here), its validity dates, the
//!    serverAuth EKU (which must be present: a leaf without an EKU extension is refused unless
//!    [`allow_missing_server_auth_eku`](MtlsClientConfigBuilder::allow_missing_server_auth_eku))
//!    and, with CRLs configured, revocation: rustls's webpki verifier, plus those two checks.
//! 2. Then **either** the hostname **or** the policy:
//!    - without [`authorize_server`](MtlsClientConfigBuilder::authorize_server), the server name
//!      the caller connects to must be in the certificate (standard hostname verification);
//!    - with a policy, the policy replaces the hostname check, as go-spiffe's authorizers do: a
//!      SPIFFE server is named by its SPIFFE ID, not by a DNS name it may not carry.
//!      [`verify_hostname_too`](MtlsClientConfigBuilder::verify_hostname_too) asks for both.
//!
//!    One of the two is always on: there is no setting that turns both off. **Make the policy
//!    name the server** (an exact SPIFFE ID, a DNS SAN, a fingerprint): a policy such as
//!    `trust_domain = "prod.example"` alone admits every server certificate the pinned CAs
//!    issued in that domain, as go-spiffe's `AuthorizeMemberOf` does, so any workload of the
//!    domain could answer for `billing.internal`.
//!
//! A denied server fails the handshake: the caller's error is a rustls
//! `InvalidCertificate(Other(..))` holding a [`ServerDenied`] with the policy's deny reason, and
//! the server receives a `bad_certificate` alert.
//!
//! # Defaults
//!
//! | setting | default | loosened by |
//! |---|---|---|
//! | server CAs | the pinned bundle only (never the system roots) | none |
//! | TLS versions | 1.3 only | [`allow_tls12`](MtlsClientConfigBuilder::allow_tls12) (ECDHE + AEAD suites only, as rustls has no others) |
//! | client certificate | required, and its key must match it | none |
//! | server CAs' own dates | a CA vouches only between its `notBefore` and `notAfter` | none |
//! | serverAuth EKU | required in the server's leaf | [`allow_missing_server_auth_eku`](MtlsClientConfigBuilder::allow_missing_server_auth_eku) |
//! | revocation | with CRLs: the whole chain, unknown status refused, expired CRLs refused | [`allow_unknown_revocation_status`](MtlsClientConfigBuilder::allow_unknown_revocation_status), [`allow_expired_crls`](MtlsClientConfigBuilder::allow_expired_crls) |
//! | ALPN | none offered | [`alpn_protocols`](MtlsClientConfigBuilder::alpn_protocols) |
//! | connect and handshake time (`MtlsConnector`) | 10 s | `MtlsConnector::timeout` |
//! | crypto provider | ring (feature `ring`), never installed process-wide | [`crypto_provider`](MtlsClientConfigBuilder::crypto_provider) |

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use mtls_core::{ClientIdentity, Decision, DenyReason, Oid, Policy};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::ca_windows::{CaWindows, PinnedCa};
use crate::pem_files::{self, pem_certs, read, ConfigError, PemProblem, Source};

/// A rustls client configuration for mutual TLS, built by [`MtlsClientConfig::builder`]; see the
/// [module docs](self).
#[derive(Clone)]
pub struct MtlsClientConfig {
    config: Arc<ClientConfig>,
    verifier: Arc<ServerAuthorizer>,
    /// The builder it was made from, to read the same files again ([`Self::rebuild`]).
    recipe: Arc<MtlsClientConfigBuilder>,
}

impl fmt::Debug for MtlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsClientConfig")
            .field("verifier", &self.verifier)
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl MtlsClientConfig {
    /// A builder with the secure defaults of the [module docs](self).
    pub fn builder() -> MtlsClientConfigBuilder {
        MtlsClientConfigBuilder::default()
    }

    /// The rustls configuration, for tokio-rustls's `TlsConnector`, hyper-util, reqwest or tonic.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// An owned copy of the rustls configuration, for APIs that take a `ClientConfig` by value:
    /// reqwest's `ClientBuilder::tls_backend_preconfigured` (formerly `use_preconfigured_tls`),
    /// which takes `impl Any` and fails at `build()` ("Unknown TLS backend") when given the
    /// `Arc` of [`client_config`](Self::client_config). The copy shares this configuration's
    /// verifier, so it authorizes the server the same way. See [With reqwest](self#with-reqwest).
    pub fn to_client_config(&self) -> ClientConfig {
        ClientConfig::clone(&self.config)
    }

    /// Checks a server's chain (leaf first) as a handshake to `server_name` would, now: the chain
    /// to the pinned CAs, dates, EKU and CRLs, then the hostname or the policy. Returns the
    /// server's identity when it passes.
    ///
    /// # Errors
    /// The rustls error the handshake would fail with: for a policy's denial,
    /// `InvalidCertificate(Other(..))` holding a [`ServerDenied`] (its `Display` gives the reason).
    pub fn verify_server(
        &self,
        chain: &[CertificateDer<'_>],
        server_name: &str,
    ) -> Result<ClientIdentity, rustls::Error> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or(rustls::Error::NoCertificatesPresented)?;
        let name = ServerName::try_from(server_name)
            .map_err(|_| rustls::Error::General(format!("invalid server name {server_name:?}")))?;
        self.verifier
            .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())?;
        ClientIdentity::from_der_chain(chain)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
    }
}

/// The server's identity on a connection made with an [`MtlsClientConfig`]: its verified chain,
/// parsed once, for the caller to log or to decide on (`tls.get_ref().1` with tokio-rustls).
/// `None` before the handshake has finished.
///
/// ```no_run
/// # async fn call(config: mtls_tower::MtlsClientConfig) -> std::io::Result<()> {
/// let tcp = tokio::net::TcpStream::connect("billing.internal:8443").await?;
/// let name = "billing.internal".try_into().expect("a valid name");
/// let tls = tokio_rustls::TlsConnector::from(config.client_config()).connect(name, tcp).await?;
/// let server = mtls_tower::client::server_identity(tls.get_ref().1).expect("after the handshake");
/// println!("connected to {:?}", server.spiffe_id());
/// # Ok(())
/// # }
/// ```
pub fn server_identity(connection: &rustls::CommonState) -> Option<ClientIdentity> {
    ClientIdentity::from_der_chain(connection.peer_certificates()?).ok()
}

impl MtlsClientConfig {
    /// Builds the configuration again from the same builder, reading its files again: the
    /// client's chain and key, the server CA bundle and the CRLs as they are now.
    ///
    /// # Errors
    /// As [`MtlsClientConfigBuilder::build`]; `self` is unchanged.
    pub fn rebuild(&self) -> Result<MtlsClientConfig, ConfigError> {
        MtlsClientConfigBuilder::build_shared(&self.recipe)
    }
}

/// A client configuration that can be swapped while in use: connections made after a swap use
/// the new configuration, those already open keep theirs. A reload that fails (a file half
/// written, a key that does not match its new certificate) keeps the configuration in use and
/// returns the error, as the server's reload does.
///
/// ```
/// use mtls_tower::client::ClientReloadHandle;
/// use mtls_tower::testing::TestPki;
/// use mtls_tower::MtlsClientConfig;
///
/// let pki = TestPki::new();
/// let dir = std::env::temp_dir().join(format!("mtls-doc-reload-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let me = pki.ca.leaf().common_name("frontend").build();
/// std::fs::write(dir.join("me.pem"), me.chain_pem())?;
/// std::fs::write(dir.join("me.key"), me.key_pem())?;
/// std::fs::write(dir.join("ca.pem"), pki.ca.cert_pem())?;
/// let handle = ClientReloadHandle::new(
///     MtlsClientConfig::builder()
///         .client_cert_pem_files(dir.join("me.pem"), dir.join("me.key"))
///         .server_ca_pem_file(dir.join("ca.pem"))
///         .build()?,
/// );
/// // A rotation caught half way keeps what works.
/// std::fs::write(dir.join("ca.pem"), "not PEM")?;
/// assert!(handle.reload().is_err());
/// let server = pki.ca.server_cert("billing.internal");
/// assert!(handle.current().verify_server(server.chain(), "billing.internal").is_ok());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClientReloadHandle {
    current: Arc<std::sync::RwLock<MtlsClientConfig>>,
}

impl ClientReloadHandle {
    /// A handle serving `config` until it is replaced.
    pub fn new(config: MtlsClientConfig) -> ClientReloadHandle {
        ClientReloadHandle {
            current: Arc::new(std::sync::RwLock::new(config)),
        }
    }

    /// The configuration in use now.
    pub fn current(&self) -> MtlsClientConfig {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The rustls configuration in use now, for the next connection.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current().client_config()
    }

    /// Reads the files again ([`MtlsClientConfig::rebuild`]) and, if everything is valid,
    /// swaps the new configuration in.
    ///
    /// # Errors
    /// What [`MtlsClientConfig::rebuild`] found; the configuration in use stays.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let next = self.current().rebuild()?;
        self.replace(next);
        Ok(())
    }

    /// Swaps in `config`, for configurations built in memory.
    pub fn replace(&self, config: MtlsClientConfig) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
    }
}

impl From<MtlsClientConfig> for Arc<ClientConfig> {
    fn from(config: MtlsClientConfig) -> Arc<ClientConfig> {
        config.config
    }
}

#[cfg(feature = "hyper-client")]
mod connector;
#[cfg(feature = "hyper-client")]
pub use connector::{MtlsClientStream, MtlsConnector, DEFAULT_CONNECT_TIMEOUT};

/// Why the server was refused by the policy of
/// [`authorize_server`](MtlsClientConfigBuilder::authorize_server): inside the rustls error of
/// the failed handshake, as `rustls::Error::InvalidCertificate(CertificateError::Other(e))`
/// where `e.0` downcasts to this type.
///
/// `Debug` prints the `Display` sentence: rustls shows this error with `{:?}`, so a failed
/// connection reads `invalid peer certificate: Other(OtherError(server CN=... refused by the
/// server policy: ...))`.
#[derive(Clone, thiserror::Error)]
#[error("server {subject} refused by the server policy: {reason}")]
pub struct ServerDenied {
    subject: String,
    reason: DenyReason,
}

impl fmt::Debug for ServerDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl ServerDenied {
    /// The policy's reason, naming the rule that failed.
    pub fn reason(&self) -> &DenyReason {
        &self.reason
    }

    /// The server certificate's subject (RFC 4514).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Finds the denial inside the error of a failed call, however the client library wrapped
    /// it: reqwest's and hyper-util's errors, tonic's transport error, an `io::Error` from
    /// tokio-rustls, or the rustls error itself. `None` when the call failed for another reason
    /// (the chain did not verify, the server was unreachable, ...).
    ///
    /// It walks the [`source`](std::error::Error::source) chain and looks inside each
    /// `io::Error` too, since `io::Error::source` skips the error it wraps.
    ///
    /// ```
    /// use mtls_tower::mtls_core::{DenyKind, Oid};
    /// use mtls_tower::testing::TestPki;
    /// use mtls_tower::{MtlsClientConfig, Policy, ServerDenied};
    ///
    /// let pki = TestPki::new();
    /// let me = pki.ca.leaf().common_name("frontend").build();
    /// let config = MtlsClientConfig::builder()
    ///     .client_cert(me.chain().to_vec(), me.key_der())
    ///     .server_ca_certs(vec![pki.ca.cert_der().clone()])
    ///     .authorize_server(Policy::spiffe_id("spiffe://prod.example/ns/billing/sa/api")?)
    ///     .build()?;
    /// let batch = pki.ca.leaf().spiffe("spiffe://prod.example/ns/billing/sa/batch")
    ///     .ekus(&[Oid::SERVER_AUTH]).build();
    /// let err = config.verify_server(batch.chain(), "billing.internal").unwrap_err();
    /// // As tokio-rustls would return it.
    /// let io = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
    /// let denied = ServerDenied::find_in(&io).expect("a policy denial");
    /// assert_eq!(denied.reason().kind(), DenyKind::NoMatch, "{denied}");
    /// assert!(denied.reason().rule().starts_with("spiffe_id"), "{denied}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn find_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a ServerDenied> {
        // Bounded: an error chain is short, and a cyclic `source` would otherwise spin forever.
        let mut next = Some(error);
        for _ in 0..32 {
            let e = next?;
            if let Some(denied) = e.downcast_ref::<ServerDenied>() {
                return Some(denied);
            }
            if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) =
                e.downcast_ref::<rustls::Error>()
            {
                return other.0.downcast_ref::<ServerDenied>();
            }
            next = match e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => e.source(),
            };
        }
        None
    }
}

/// Builds an [`MtlsClientConfig`]. Every loosening of the defaults is a named method.
#[must_use]
#[derive(Default)]
pub struct MtlsClientConfigBuilder {
    client: Option<(
        Source<Vec<CertificateDer<'static>>>,
        Source<PrivateKeyDer<'static>>,
    )>,
    server_ca: Option<Source<Vec<CertificateDer<'static>>>>,
    crls: Vec<Source<Vec<CertificateRevocationListDer<'static>>>>,
    policy: Option<Policy>,
    verify_hostname_too: bool,
    allow_missing_server_auth_eku: bool,
    allow_tls12: bool,
    allow_unknown_revocation_status: bool,
    allow_expired_crls: bool,
    alpn: Vec<Vec<u8>>,
    provider: Option<Arc<CryptoProvider>>,
}

impl fmt::Debug for MtlsClientConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsClientConfigBuilder")
            .field("policy", &self.policy.as_ref().map(ToString::to_string))
            .field("verify_hostname_too", &self.verify_hostname_too)
            .field("allow_tls12", &self.allow_tls12)
            .field(
                "allow_unknown_revocation_status",
                &self.allow_unknown_revocation_status,
            )
            .field("allow_expired_crls", &self.allow_expired_crls)
            .finish_non_exhaustive()
    }
}

fn load_certs(
    what: &'static str,
    source: &Source<Vec<CertificateDer<'static>>>,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let name = source.name();
    match source {
        Source::File(path) => pem_certs(what, &name, &read(what, path)?),
        Source::Memory(certs) if certs.is_empty() => Err(ConfigError::NoCertificates {
            what,
            source_name: name,
        }),
        Source::Memory(certs) => Ok(certs.clone()),
    }
}

impl MtlsClientConfigBuilder {
    /// The client's certificate chain (leaf first) and private key, from PEM files.
    pub fn client_cert_pem_files(mut self, chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.client = Some((
            Source::File(chain.as_ref().to_owned()),
            Source::File(key.as_ref().to_owned()),
        ));
        self
    }

    /// The client's certificate chain (leaf first) and private key, in memory.
    pub fn client_cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client = Some((Source::Memory(chain), Source::Memory(key)));
        self
    }

    /// The CA certificates that may issue the server's chain, from a PEM file. Only these are
    /// trusted; the system roots never are.
    pub fn server_ca_pem_file(mut self, path: impl AsRef<Path>) -> Self {
        self.server_ca = Some(Source::File(path.as_ref().to_owned()));
        self
    }

    /// The CA certificates that may issue the server's chain, in memory.
    pub fn server_ca_certs(mut self, certs: Vec<CertificateDer<'static>>) -> Self {
        self.server_ca = Some(Source::Memory(certs));
        self
    }

    /// CRLs for the server's chain, from a file (PEM, one or more, or one DER CRL). With any CRL,
    /// every certificate in the chain must have a known status.
    pub fn crl_file(mut self, path: impl AsRef<Path>) -> Self {
        self.crls.push(Source::File(path.as_ref().to_owned()));
        self
    }

    /// CRLs for the server's chain, in memory.
    pub fn crls(mut self, crls: Vec<CertificateRevocationListDer<'static>>) -> Self {
        self.crls.push(Source::Memory(crls));
        self
    }

    /// Authorizes the server by `policy`, evaluated on its verified leaf inside the handshake,
    /// **in place of** hostname verification (see the [module docs](self#how-the-server-is-checked)).
    /// Make the policy name the server: a SPIFFE ID, a DNS SAN, a fingerprint.
    pub fn authorize_server(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// With [`authorize_server`](Self::authorize_server), checks the hostname too: the server
    /// must satisfy the policy **and** carry the name the caller connects to.
    pub fn verify_hostname_too(mut self) -> Self {
        self.verify_hostname_too = true;
        self
    }

    /// Accepts a server leaf without an EKU extension. By default the leaf must name serverAuth:
    /// webpki refuses an EKU extension without it but accepts a leaf with none (RFC 5280's "any
    /// purpose"), and a certificate that never said it may serve is not taken for a server's.
    pub fn allow_missing_server_auth_eku(mut self) -> Self {
        self.allow_missing_server_auth_eku = true;
        self
    }

    /// Allows TLS 1.2 besides 1.3 (rustls offers only ECDHE key exchange with AEAD ciphers).
    pub fn allow_tls12(mut self) -> Self {
        self.allow_tls12 = true;
        self
    }

    /// With CRLs, accepts a certificate that no CRL covers (by default its status must be known).
    pub fn allow_unknown_revocation_status(mut self) -> Self {
        self.allow_unknown_revocation_status = true;
        self
    }

    /// With CRLs, keeps using a CRL past its `nextUpdate` (by default an expired CRL fails).
    pub fn allow_expired_crls(mut self) -> Self {
        self.allow_expired_crls = true;
        self
    }

    /// The ALPN protocols to offer, in order of preference (`b"h2"`, `b"http/1.1"`). None by
    /// default; hyper-util, reqwest and tonic need theirs set here.
    pub fn alpn_protocols(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// The crypto provider, instead of the crate's default (ring). It is never installed
    /// process-wide.
    pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    fn inputs(&self) -> String {
        let ca = self
            .server_ca
            .as_ref()
            .map_or_else(String::new, Source::name);
        let mut inputs = format!("server CA bundle {ca}");
        if !self.crls.is_empty() {
            let crls: Vec<String> = self.crls.iter().map(Source::name).collect();
            inputs.push_str(", CRLs ");
            inputs.push_str(&crls.join(", "));
        }
        inputs
    }

    fn load_server_ca(&self) -> Result<Vec<PinnedCa>, ConfigError> {
        const WHAT: &str = "server CA bundle";
        let source = self.server_ca.as_ref().ok_or(ConfigError::Missing {
            what: WHAT,
            setters: "`server_ca_pem_file(..)` or `server_ca_certs(..)`",
        })?;
        let name = source.name();
        let mut cas = Vec::new();
        for (index, cert) in load_certs(WHAT, source)?.into_iter().enumerate() {
            // Pinning a leaf would trust whatever its key signs: a mixed-up file, refused.
            let malformed = |reason: String| ConfigError::Malformed {
                what: WHAT,
                source_name: name.clone(),
                reason: format!("certificate {index}: {reason}"),
            };
            let id = ClientIdentity::from_der(&cert).map_err(|e| malformed(e.to_string()))?;
            if !id.is_ca() {
                return Err(ConfigError::NotACa {
                    what: WHAT,
                    source_name: name,
                    index,
                    subject: id.subject().to_string(),
                });
            }
            // Added to a store here only to refuse one rustls cannot use as a trust anchor.
            RootCertStore::empty()
                .add(cert.clone())
                .map_err(|e| malformed(e.to_string()))?;
            cas.push(PinnedCa::new(cert, &id));
        }
        Ok(cas)
    }

    fn load_crls(&self) -> Result<Vec<CertificateRevocationListDer<'static>>, ConfigError> {
        Ok(pem_files::load_crls(&self.crls)?
            .into_iter()
            .map(|(_, crl)| crl)
            .collect())
    }

    fn load_client(
        &self,
    ) -> Result<
        (
            Vec<CertificateDer<'static>>,
            PrivateKeyDer<'static>,
            String,
            String,
        ),
        ConfigError,
    > {
        let (chain, key) = self.client.as_ref().ok_or(ConfigError::Missing {
            what: "client certificate",
            setters: "`client_cert_pem_files(..)` or `client_cert(..)`",
        })?;
        let chain_certs = load_certs("client certificate chain", chain)?;
        let key_name = key.name();
        let key_der = match key {
            Source::Memory(key) => key.clone_key(),
            Source::File(path) => pem_files::private_key(&read("client private key", path)?)
                .map_err(|problem| match problem {
                    PemProblem::Empty => ConfigError::NoPrivateKey {
                        what: "client private key",
                        source_name: key_name.clone(),
                    },
                    PemProblem::Malformed(reason) => ConfigError::Malformed {
                        what: "client private key",
                        source_name: key_name.clone(),
                        reason,
                    },
                })?,
        };
        Ok((chain_certs, key_der, chain.name(), key_name))
    }

    /// Reads and checks everything, and builds the configuration.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the input: a missing part, an unreadable or malformed
    /// file, an empty CA bundle, a leaf in the CA bundle, a key that does not match the chain.
    pub fn build(self) -> Result<MtlsClientConfig, ConfigError> {
        MtlsClientConfigBuilder::build_shared(&Arc::new(self))
    }

    fn build_shared(
        recipe: &Arc<MtlsClientConfigBuilder>,
    ) -> Result<MtlsClientConfig, ConfigError> {
        let this = &**recipe;
        let provider = match &this.provider {
            Some(p) => Arc::clone(p),
            None => pem_files::default_provider().ok_or(ConfigError::NoCryptoProvider)?,
        };
        let (chain, key, chain_name, key_name) = this.load_client()?;
        let cas = this.load_server_ca()?;
        let crls = this.load_crls()?;
        let build = {
            let provider = Arc::clone(&provider);
            let (allow_expired_crls, allow_unknown_revocation_status) = (
                this.allow_expired_crls,
                this.allow_unknown_revocation_status,
            );
            move |cas: &[CertificateDer<'static>]| {
                let mut roots = RootCertStore::empty();
                // Each was added once already (load_server_ca), so none fails here.
                roots.add_parsable_certificates(cas.iter().cloned());
                let mut webpki = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                );
                if !crls.is_empty() {
                    webpki = webpki.with_crls(crls.iter().cloned());
                    if !allow_expired_crls {
                        webpki = webpki.enforce_revocation_expiration();
                    }
                    if allow_unknown_revocation_status {
                        webpki = webpki.allow_unknown_revocation_status();
                    }
                }
                webpki.build()
            }
        };
        let windows =
            CaWindows::new(cas, Box::new(build)).map_err(|source| ConfigError::Verifier {
                inputs: this.inputs(),
                source,
            })?;
        let verifier = Arc::new(ServerAuthorizer {
            windows,
            // Without a policy, the hostname is the only name check and stays on.
            verify_hostname: this.policy.is_none() || this.verify_hostname_too,
            require_eku: !this.allow_missing_server_auth_eku,
            policy: this.policy.clone(),
        });
        let versions: &[&'static rustls::SupportedProtocolVersion] = if this.allow_tls12 {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(ConfigError::Rustls)?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_auth_cert(chain, key)
            .map_err(|e| match e {
                source @ rustls::Error::InconsistentKeys(_) => ConfigError::KeyMismatch {
                    side: crate::pem_files::ConfigSide::Client,
                    chain: chain_name,
                    key: key_name,
                    source,
                },
                e => ConfigError::Rustls(e),
            })?;
        config.alpn_protocols = this.alpn.clone();
        Ok(MtlsClientConfig {
            config: Arc::new(config),
            verifier,
            recipe: Arc::clone(recipe),
        })
    }
}

/// The server certificate verifier: webpki's chain checks through the server CAs valid now,
/// the serverAuth EKU, then the hostname or the policy.
struct ServerAuthorizer {
    windows: CaWindows<Arc<WebPkiServerVerifier>>,
    policy: Option<Policy>,
    verify_hostname: bool,
    require_eku: bool,
}

impl fmt::Debug for ServerAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerAuthorizer")
            .field("policy", &self.policy.as_ref().map(ToString::to_string))
            .field("verify_hostname", &self.verify_hostname)
            .field("require_eku", &self.require_eku)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for ServerAuthorizer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.windows.verify(now, |webpki| {
            match webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(_) => Ok(()),
                // SECURITY: webpki's verifier checks the name last, after the chain, the
                // dates, the EKU and revocation (rustls' `WebPkiServerVerifier::
                // verify_server_cert`), so a name error means everything else held. Only then,
                // and only when a policy stands in for the hostname, is it set aside. The tests
                // of a revoked, an expired and a rogue server *with a wrong name* guard that
                // order.
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) if !self.verify_hostname => Ok(()),
                Err(e) => Err(e),
            }
        })?;
        if self.require_eku || self.policy.is_some() {
            // One parse of the leaf serves both checks.
            let id = ClientIdentity::from_der(end_entity)
                .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
            if self.require_eku && !id.has_extended_key_usage(&Oid::SERVER_AUTH) {
                // No EKU extension (webpki refuses one without serverAuth).
                return Err(CertificateError::InvalidPurpose.into());
            }
            if let Some(policy) = &self.policy {
                if let Decision::Deny(reason) = policy.evaluate(&id) {
                    let denied = ServerDenied {
                        subject: id.subject().to_string(),
                        reason,
                    };
                    return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                        rustls::OtherError(Arc::new(denied)),
                    )));
                }
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.windows.all.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.windows.all.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.windows.all.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mtls_core::testing::{TestCa, TestCert, TestPki};
    use mtls_core::Oid;

    use super::*;

    const API: &str = "spiffe://prod.example/ns/billing/sa/api";

    fn me(pki: &TestPki) -> TestCert {
        pki.ca.leaf().common_name("frontend").build()
    }

    fn builder(pki: &TestPki) -> MtlsClientConfigBuilder {
        let me = me(pki);
        MtlsClientConfig::builder()
            .client_cert(me.chain().to_vec(), me.key_der())
            .server_ca_certs(vec![pki.ca.cert_der().clone()])
    }

    /// A server certificate from `ca` with a SPIFFE ID and no DNS name.
    fn spiffe_server(ca: &TestCa, id: &str) -> TestCert {
        ca.leaf().spiffe(id).ekus(&[Oid::SERVER_AUTH]).build()
    }

    fn cert_error(err: &rustls::Error) -> &CertificateError {
        match err {
            rustls::Error::InvalidCertificate(e) => e,
            other => panic!("not a certificate error: {other:?}"),
        }
    }

    fn is_name_error(err: &rustls::Error) -> bool {
        matches!(
            cert_error(err),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    }

    #[test]
    fn without_a_policy_the_hostname_is_verified() {
        let pki = TestPki::new();
        let config = builder(&pki).build().unwrap();
        let server = pki.ca.server_cert("billing.internal");
        config
            .verify_server(server.chain(), "billing.internal")
            .unwrap();
        let err = config
            .verify_server(server.chain(), "other.internal")
            .unwrap_err();
        assert!(is_name_error(&err), "{err:?}");
    }

    #[test]
    fn a_policy_replaces_the_hostname_check() {
        let pki = TestPki::new();
        let config = builder(&pki)
            .authorize_server(Policy::spiffe_id(API).unwrap())
            .build()
            .unwrap();
        let server = spiffe_server(&pki.ca, API);
        let id = config
            .verify_server(server.chain(), "billing.internal")
            .unwrap();
        assert_eq!(id.spiffe_id().unwrap().to_string(), API);
    }

    #[test]
    fn a_denied_server_fails_with_the_policys_reason() {
        let pki = TestPki::new();
        let config = builder(&pki)
            .authorize_server(Policy::spiffe_id(API).unwrap())
            .build()
            .unwrap();
        let server = spiffe_server(&pki.ca, "spiffe://prod.example/ns/billing/sa/batch");
        let err = config
            .verify_server(server.chain(), "billing.internal")
            .unwrap_err();
        let CertificateError::Other(other) = cert_error(&err) else {
            panic!("{err:?}");
        };
        let denied = other.0.downcast_ref::<ServerDenied>().unwrap();
        assert_eq!(denied.reason().rule(), format!("spiffe_id = \"{API}\""));
        assert_eq!(denied.subject(), "CN=test-client");
        assert!(
            err.to_string().contains("refused by the server policy"),
            "{err}"
        );
    }

    #[test]
    fn a_policy_with_verify_hostname_too_needs_both() {
        let pki = TestPki::new();
        let config = builder(&pki)
            .authorize_server(Policy::spiffe_id(API).unwrap())
            .verify_hostname_too()
            .build()
            .unwrap();
        let named = pki
            .ca
            .leaf()
            .spiffe(API)
            .dns("billing.internal")
            .ekus(&[Oid::SERVER_AUTH])
            .build();
        config
            .verify_server(named.chain(), "billing.internal")
            .unwrap();
        let err = config
            .verify_server(named.chain(), "other.internal")
            .unwrap_err();
        assert!(is_name_error(&err), "{err:?}");
    }

    // A policy stands in for the name only after everything else held: a bad server whose name
    // is also wrong must fail for what makes it bad, never pass for its name.

    #[test]
    fn under_a_policy_a_rogue_server_is_refused_as_unknown() {
        let pki = TestPki::new();
        let config = builder(&pki)
            .authorize_server(Policy::spiffe_id(API).unwrap())
            .build()
            .unwrap();
        let rogue = spiffe_server(&pki.rogue_ca, API);
        let err = config
            .verify_server(rogue.chain(), "billing.internal")
            .unwrap_err();
        assert_eq!(cert_error(&err), &CertificateError::UnknownIssuer);
    }

    #[test]
    fn under_a_policy_an_expired_server_is_refused_as_expired() {
        let pki = TestPki::new();
        let config = builder(&pki)
            .authorize_server(Policy::spiffe_id(API).unwrap())
            .build()
            .unwrap();
        let expired = pki
            .ca
            .leaf()
            .spiffe(API)
            .ekus(&[Oid::SERVER_AUTH])
            .expired()
            .build();
        let err = config
            .verify_server(expired.chain(), "billing.internal")
            .unwrap_err();
        assert!(
            matches!(
                cert_error(&err),
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn under_a_policy_a_revoked_server_is_refused_as_revoked() {
        let pki = TestPki::new();
        let server = spiffe_server(&pki.ca, API);
        let crl = pki.ca.crl(&[&server.serial()]);
        let config = builder(&pki)
            .crls(vec![crl.der().clone()])
            .authorize_server(Policy::spiffe_id(API).unwrap())
            .build()
            .unwrap();
        let err = config
            .verify_server(server.chain(), "billing.internal")
            .unwrap_err();
        assert_eq!(cert_error(&err), &CertificateError::Revoked);
    }

    #[test]
    fn under_a_policy_a_server_without_server_auth_is_refused() {
        let pki = TestPki::new();
        let config = builder(&pki)
            .authorize_server(Policy::spiffe_id(API).unwrap())
            .build()
            .unwrap();
        // A client certificate, offered as a server's.
        let client_only = pki.ca.leaf().spiffe(API).build();
        let err = config
            .verify_server(client_only.chain(), "billing.internal")
            .unwrap_err();
        assert!(!is_name_error(&err), "{err:?}");
        assert!(
            matches!(
                cert_error(&err),
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_server_leaf_without_an_eku_extension_is_refused_unless_allowed() {
        let pki = TestPki::new();
        let no_eku = pki.ca.leaf().dns("billing.internal").no_eku().build();
        let strict = builder(&pki).build().unwrap();
        let err = strict
            .verify_server(no_eku.chain(), "billing.internal")
            .unwrap_err();
        assert_eq!(cert_error(&err), &CertificateError::InvalidPurpose);
        // The same under a policy.
        let strict = builder(&pki)
            .authorize_server(Policy::san("billing.internal").unwrap())
            .build()
            .unwrap();
        let err = strict
            .verify_server(no_eku.chain(), "billing.internal")
            .unwrap_err();
        assert_eq!(cert_error(&err), &CertificateError::InvalidPurpose);
        let loose = builder(&pki)
            .allow_missing_server_auth_eku()
            .build()
            .unwrap();
        loose
            .verify_server(no_eku.chain(), "billing.internal")
            .unwrap();
    }

    #[test]
    fn a_server_ca_past_its_not_after_no_longer_vouches() {
        use std::time::{Duration, SystemTime};
        const DAY: Duration = Duration::from_secs(86_400);
        let pki = TestPki::new();
        let now = SystemTime::now();
        let expired = TestCa::with_validity("Expired CA", now - 30 * DAY, now - DAY);
        let server = expired
            .leaf()
            .dns("billing.internal")
            .ekus(&[Oid::SERVER_AUTH])
            .validity(now - 2 * DAY, now + 30 * DAY)
            .build();
        let me = me(&pki);
        let config = MtlsClientConfig::builder()
            .client_cert(me.chain().to_vec(), me.key_der())
            .server_ca_certs(vec![pki.ca.cert_der().clone(), expired.cert_der().clone()])
            .build()
            .unwrap();
        let err = config
            .verify_server(server.chain(), "billing.internal")
            .unwrap_err();
        assert!(
            matches!(cert_error(&err), CertificateError::ExpiredContext { .. }),
            "{err:?}"
        );
        // The other, valid CA still vouches for its servers.
        config
            .verify_server(
                pki.ca.server_cert("billing.internal").chain(),
                "billing.internal",
            )
            .unwrap();
    }

    #[test]
    fn with_crls_a_server_no_crl_covers_is_refused_unless_allowed() {
        let pki = TestPki::new();
        let server = pki.intermediate.server_cert("billing.internal");
        // A CRL from the root only: the intermediate's leaf has no known status.
        let crl = pki.ca.crl(&[]);
        let strict = builder(&pki).crls(vec![crl.der().clone()]).build().unwrap();
        let err = strict
            .verify_server(server.chain(), "billing.internal")
            .unwrap_err();
        assert_eq!(cert_error(&err), &CertificateError::UnknownRevocationStatus);
        let loose = builder(&pki)
            .crls(vec![crl.der().clone()])
            .allow_unknown_revocation_status()
            .build()
            .unwrap();
        loose
            .verify_server(server.chain(), "billing.internal")
            .unwrap();
    }

    #[test]
    fn an_expired_crl_refuses_the_server_unless_allowed() {
        let pki = TestPki::new();
        let server = pki.ca.server_cert("billing.internal");
        let crl = pki.ca.expired_crl(&[]);
        let strict = builder(&pki).crls(vec![crl.der().clone()]).build().unwrap();
        let err = strict
            .verify_server(server.chain(), "billing.internal")
            .unwrap_err();
        assert!(
            matches!(
                cert_error(&err),
                CertificateError::ExpiredRevocationList
                    | CertificateError::ExpiredRevocationListContext { .. }
            ),
            "{err:?}"
        );
        let loose = builder(&pki)
            .crls(vec![crl.der().clone()])
            .allow_expired_crls()
            .build()
            .unwrap();
        loose
            .verify_server(server.chain(), "billing.internal")
            .unwrap();
    }

    #[test]
    fn no_client_certificate_is_an_error_naming_the_setters() {
        let pki = TestPki::new();
        let err = MtlsClientConfig::builder()
            .server_ca_certs(vec![pki.ca.cert_der().clone()])
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no client certificate configured; call `client_cert_pem_files(..)` or `client_cert(..)`"
        );
    }

    #[test]
    fn no_server_ca_is_an_error_and_an_empty_one_too() {
        let pki = TestPki::new();
        let me = me(&pki);
        let err = MtlsClientConfig::builder()
            .client_cert(me.chain().to_vec(), me.key_der())
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Missing {
                    what: "server CA bundle",
                    ..
                }
            ),
            "{err}"
        );
        let err = MtlsClientConfig::builder()
            .client_cert(me.chain().to_vec(), me.key_der())
            .server_ca_certs(vec![])
            .build()
            .unwrap_err();
        assert!(matches!(err, ConfigError::NoCertificates { .. }), "{err}");
    }

    #[test]
    fn a_leaf_in_the_server_ca_bundle_is_refused() {
        let pki = TestPki::new();
        let me = me(&pki);
        let leaf = pki.ca.server_cert("billing.internal");
        let err = MtlsClientConfig::builder()
            .client_cert(me.chain().to_vec(), me.key_der())
            .server_ca_certs(vec![pki.ca.cert_der().clone(), leaf.chain()[0].clone()])
            .build()
            .unwrap_err();
        assert!(matches!(err, ConfigError::NotACa { index: 1, .. }), "{err}");
    }

    #[test]
    fn a_key_that_does_not_match_the_chain_is_refused() {
        let pki = TestPki::new();
        let mine = me(&pki);
        let other = me(&pki);
        let err = MtlsClientConfig::builder()
            .client_cert(mine.chain().to_vec(), other.key_der())
            .server_ca_certs(vec![pki.ca.cert_der().clone()])
            .build()
            .unwrap_err();
        assert!(matches!(err, ConfigError::KeyMismatch { .. }), "{err}");
        assert!(
            err.to_string().starts_with(
                "the client private key (in memory) does not match the client certificate"
            ),
            "{err}"
        );
    }

    #[test]
    fn files_load_and_a_missing_one_is_named() {
        let pki = TestPki::new();
        let me = me(&pki);
        let dir = std::env::temp_dir().join(format!("mtls-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let chain = write("me.pem", &me.chain_pem());
        let key = write("me.key", me.key_pem());
        let ca = write("ca.pem", pki.ca.cert_pem());
        let crl = write("ca.crl", pki.ca.crl(&[]).pem());
        let config = MtlsClientConfig::builder()
            .client_cert_pem_files(&chain, &key)
            .server_ca_pem_file(&ca)
            .crl_file(&crl)
            .build()
            .unwrap();
        config
            .verify_server(pki.ca.server_cert("b.internal").chain(), "b.internal")
            .unwrap();
        let missing = dir.join("missing.pem");
        let err = MtlsClientConfig::builder()
            .client_cert_pem_files(&chain, &key)
            .server_ca_pem_file(&missing)
            .build()
            .unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "cannot read server CA bundle {}",
                missing.display()
            )),
            "{err}"
        );
        let err = MtlsClientConfig::builder()
            .client_cert_pem_files(&chain, &ca)
            .server_ca_pem_file(&ca)
            .build()
            .unwrap_err();
        assert!(matches!(err, ConfigError::NoPrivateKey { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_shows_the_policy_and_the_loosenings_not_the_keys() {
        let pki = TestPki::new();
        let b = builder(&pki)
            .authorize_server(Policy::spiffe_id(API).unwrap())
            .allow_tls12();
        let text = format!("{b:?}");
        assert!(text.starts_with("MtlsClientConfigBuilder"), "{text}");
        assert!(text.contains(API), "{text}");
        assert!(text.contains("allow_tls12: true"), "{text}");
        let config = b.build().unwrap();
        let text = format!("{config:?}");
        assert!(text.starts_with("MtlsClientConfig"), "{text}");
        assert!(text.contains(API), "{text}");
        assert!(text.contains("verify_hostname: false"), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }

    #[test]
    fn the_given_crypto_provider_is_used_and_the_other_settings_are_kept() {
        let pki = TestPki::new();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = builder(&pki)
            .alpn_protocols(vec![b"h2".to_vec()])
            .crypto_provider(Arc::clone(&provider))
            .build()
            .unwrap();
        let client = config.client_config();
        assert!(Arc::ptr_eq(client.crypto_provider(), &provider));
        assert_eq!(client.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn an_unusable_crl_is_an_error_naming_the_verifiers_inputs() {
        let pki = TestPki::new();
        // A SEQUENCE, so it is taken as DER, but not a CRL.
        let not_a_crl = CertificateRevocationListDer::from(vec![0x30, 0x00]);
        let err = builder(&pki).crls(vec![not_a_crl]).build().unwrap_err();
        assert!(matches!(err, ConfigError::Verifier { .. }), "{err}");
        assert!(
            err.to_string().starts_with(
                "certificate verifier (server CA bundle (in memory), CRLs (in memory)): "
            ),
            "{err}"
        );
    }

    #[test]
    fn alpn_is_offered_only_when_asked() {
        let pki = TestPki::new();
        assert!(builder(&pki)
            .build()
            .unwrap()
            .client_config()
            .alpn_protocols
            .is_empty());
        let config = builder(&pki)
            .alpn_protocols(vec![b"h2".to_vec()])
            .build()
            .unwrap();
        assert_eq!(config.client_config().alpn_protocols, vec![b"h2".to_vec()]);
    }
}
