//! [`MtlsConfig`]: a rustls server configuration for mutual TLS, secure by default.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mtls_core::ClientIdentity;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::verifier::{client_cas_valid_until, ClientCa, ClientVerifier};
pub(crate) use crate::pem_files::ConfigError;
use crate::pem_files::{pem_certs, read, PemProblem, Source};

/// A rustls [`ServerConfig`] for mutual TLS, built by [`MtlsConfig::builder`].
///
/// What the defaults enforce, and the named opt-in that loosens each:
///
/// | default | opt-in |
/// |---|---|
/// | a client certificate is required at the handshake | [`client_auth_optional`](MtlsConfigBuilder::client_auth_optional) (then enforce per route with the layer) |
/// | only the configured client CA bundle is trusted; an empty bundle or one holding a non-CA certificate is an error | none |
/// | TLS 1.3 only | [`allow_tls12`](MtlsConfigBuilder::allow_tls12) (ECDHE + AEAD suites only, as rustls offers no others) |
/// | the client leaf must list the clientAuth EKU | [`allow_missing_client_auth_eku`](MtlsConfigBuilder::allow_missing_client_auth_eku) (then a leaf *without* an EKU extension is accepted; a serverAuth-only leaf never is) |
/// | a client CA vouches only within its own validity period (webpki ignores a trust anchor's dates), and a connection ends when the earliest client CA valid at its handshake expires | none |
/// | with CRLs: every certificate of the chain is checked, unknown status and expired CRLs are refused | [`allow_unknown_revocation_status`](MtlsConfigBuilder::allow_unknown_revocation_status), [`allow_expired_crls`](MtlsConfigBuilder::allow_expired_crls) |
/// | ALPN `h2`, `http/1.1` | [`alpn_protocols`](MtlsConfigBuilder::alpn_protocols) |
///
/// The crypto provider is the one given to [`crypto_provider`](MtlsConfigBuilder::crypto_provider),
/// else ring (feature `ring`, default) or aws-lc-rs (feature `aws-lc-rs`); it is never installed as
/// the process default.
#[derive(Clone)]
pub struct MtlsConfig {
    server_config: Arc<ServerConfig>,
    expiry: Option<CertExpiry>,
    /// With CRLs that must be current: the earliest `nextUpdate`.
    revocation_valid_until: Option<SystemTime>,
    /// The client certificate verifier inside `server_config`, to verify a resumed session's
    /// stored chain again (rustls keeps its own private).
    verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    /// The client CAs and their validity periods: a connection ends when the earliest of those
    /// valid at its handshake expires.
    client_cas: Arc<[ClientCa]>,
    /// [`MtlsConfigBuilder::expiry_warning`]: used at build, at each reload, and every six hours.
    expiry_warning: Duration,
    /// The builder this configuration came from, to read its files again
    /// ([`MtlsConfig::rebuild`]); `None` for a bare `rustls::ServerConfig`.
    recipe: Option<Arc<MtlsConfigBuilder>>,
    /// How each of [`files`](MtlsConfig::files) looked just *before* it was read: a watch
    /// starts from these, so that a change that lands between the read and the start of the
    /// watch is still seen.
    stamps: Vec<Option<FileStamp>>,
}

/// What a file looks like from outside, read through symlinks: enough to tell that it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    pub(crate) modified: Option<SystemTime>,
    pub(crate) len: u64,
    /// Device and inode: a new file behind the same name (a rename, a swapped `..data`
    /// symlink) is a change even when it keeps the old modification time and size.
    #[cfg(unix)]
    id: (u64, u64),
}

impl FileStamp {
    /// `None` when the file cannot be looked at (missing, a dangling link, no permission).
    pub(crate) fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            id: {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            },
        })
    }

    /// The stamps of `paths`, in order.
    pub(crate) fn all<P: AsRef<Path>>(paths: &[P]) -> Vec<Option<FileStamp>> {
        paths.iter().map(|p| FileStamp::of(p.as_ref())).collect()
    }
}

/// When the certificates of a configuration expire: for metrics and alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertExpiry {
    /// The server certificate's `notAfter`.
    pub server_not_after: SystemTime,
    /// Each client CA (RFC 4514 subject) and its `notAfter`.
    pub client_cas: Vec<(String, SystemTime)>,
}

impl CertExpiry {
    /// Time left until the server certificate expires (`None` when it already has).
    pub fn server_time_left(&self) -> Option<Duration> {
        self.server_not_after.duration_since(SystemTime::now()).ok()
    }

    /// Time left until the client CA that expires first expires (`None` when one already has).
    pub fn earliest_ca_time_left(&self) -> Option<Duration> {
        let first = self.client_cas.iter().map(|(_, t)| *t).min()?;
        first.duration_since(SystemTime::now()).ok()
    }

    /// Logs a warning if the server certificate expires within `window` (or has expired).
    fn warn_if_expiring(&self, window: Duration) {
        match self.server_time_left() {
            None => tracing::warn!(
                target: "mtls_tower::expiry",
                "the server certificate has expired"
            ),
            Some(left) if left < window => tracing::warn!(
                target: "mtls_tower::expiry",
                days_left = left.as_secs() / 86400,
                "the server certificate expires soon"
            ),
            Some(_) => {}
        }
    }
}

impl MtlsConfig {
    /// Starts a configuration.
    pub fn builder() -> MtlsConfigBuilder {
        MtlsConfigBuilder::default()
    }

    /// The rustls configuration, for a listener or any other rustls-based server.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server_config.clone()
    }

    /// When the server certificate and the client CAs expire (`None` for a configuration made
    /// from a bare `rustls::ServerConfig`).
    pub fn expiry(&self) -> Option<&CertExpiry> {
        self.expiry.as_ref()
    }

    /// With CRLs and without [`allow_expired_crls`](MtlsConfigBuilder::allow_expired_crls): the
    /// earliest `nextUpdate` of the CRLs, after which a full handshake would be refused (an
    /// expired CRL). Connections admitted under this configuration end then (`serve` closes
    /// them, and a session resumed later is refused), so that a revocation published after it
    /// cannot be missed by an old connection. A reload with fresh CRLs moves it for new
    /// connections. `None` without CRLs, or with expired CRLs allowed.
    pub fn revocation_valid_until(&self) -> Option<SystemTime> {
        self.revocation_valid_until
    }

    /// The files this configuration was read from, in the order server certificate chain,
    /// server private key, client CA bundle, CRL files; inputs given in memory are not listed.
    /// [`ReloadHandle::follow_files`](crate::ReloadHandle::follow_files) watches exactly these.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pki = mtls_core::testing::TestPki::new();
    /// # let server = pki.ca.server_cert("localhost");
    /// # let dir = std::env::temp_dir().join(format!("mtls-doc-files-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let (cert, key, ca) = (dir.join("server.pem"), dir.join("server.key"), dir.join("ca.pem"));
    /// # std::fs::write(&cert, server.chain_pem())?;
    /// # std::fs::write(&key, server.key_pem())?;
    /// # std::fs::write(&ca, pki.ca.cert_pem())?;
    /// use mtls_tower::MtlsConfig;
    ///
    /// let config = MtlsConfig::builder()
    ///     .server_cert_pem_files(&cert, &key)
    ///     .client_ca_pem_file(&ca)
    ///     .build()?;
    /// assert_eq!(config.files(), [cert.as_path(), key.as_path(), ca.as_path()]);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn files(&self) -> Vec<&Path> {
        self.recipe
            .as_deref()
            .map_or_else(Vec::new, MtlsConfigBuilder::files)
    }

    /// Reads the same files again, with the same settings, into a new configuration: what a
    /// reload after a rotation does. Inputs given in memory are used as they were. An error (a
    /// file half-written, a key that does not match yet) leaves `self` as it was.
    /// [`ConfigError::NotRebuildable`] for a configuration made from a bare
    /// `rustls::ServerConfig`.
    pub fn rebuild(&self) -> Result<MtlsConfig, ConfigError> {
        match &self.recipe {
            Some(recipe) => MtlsConfigBuilder::build_shared(recipe),
            None => Err(ConfigError::NotRebuildable),
        }
    }

    /// The earliest `notAfter` among the client CAs valid at `now`, past which a connection
    /// admitted at `now` is not served (`None` for a bare `rustls::ServerConfig`, or without a
    /// CA valid now).
    pub(crate) fn client_cas_valid_until(&self, now: SystemTime) -> Option<SystemTime> {
        client_cas_valid_until(&self.client_cas, now)
    }

    /// How [`files`](Self::files) looked just before this configuration read them.
    pub(crate) fn file_stamps(&self) -> &[Option<FileStamp>] {
        &self.stamps
    }

    /// The client certificate verifier this configuration's handshakes use, for those who build
    /// their own rustls configuration (a second listener, a QUIC endpoint) or check a chain
    /// outside a handshake. `None` for a configuration made from a bare `rustls::ServerConfig`.
    ///
    /// It applies every check of the table above: the chain must lead to one of the client CAs
    /// at the `now` it is given, each certificate of it must be absent from the CRLs (with the
    /// same rules on unknown status and expired CRLs), and the leaf must list the clientAuth
    /// EKU unless that was loosened. Whether a certificate is *required* is its
    /// `client_auth_mandatory()`. What it does not do is the work of a
    /// [`RequireClientCertLayer`](crate::RequireClientCertLayer) policy: any client of these
    /// CAs passes.
    ///
    /// ```
    /// use mtls_core::testing::TestPki;
    /// use mtls_tower::MtlsConfig;
    /// use rustls::pki_types::UnixTime;
    ///
    /// let pki = TestPki::new();
    /// let server = pki.ca.server_cert("localhost");
    /// let config = MtlsConfig::builder()
    ///     .server_cert(server.chain().to_vec(), server.key_der())
    ///     .client_ca_certs(vec![pki.ca.cert_der().clone()])
    ///     .build()?;
    /// let verifier = config.client_cert_verifier().expect("built by MtlsConfig");
    ///
    /// let alice = pki.ca.leaf().common_name("alice").build();
    /// let stranger = pki.rogue_ca.leaf().common_name("alice").build();
    /// let now = UnixTime::now();
    /// assert!(verifier.verify_client_cert(&alice.chain()[0], &alice.chain()[1..], now).is_ok());
    /// assert!(verifier.verify_client_cert(&stranger.chain()[0], &[], now).is_err());
    /// # Ok::<(), mtls_tower::ConfigError>(())
    /// ```
    pub fn client_cert_verifier(
        &self,
    ) -> Option<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
        self.verifier.clone()
    }

    /// Logs a warning if the server certificate expires within this configuration's warning
    /// window (or has expired); nothing without expiry information.
    pub(crate) fn warn_if_expiring(&self) {
        if let Some(expiry) = &self.expiry {
            expiry.warn_if_expiring(self.expiry_warning);
        }
    }
}

impl From<Arc<ServerConfig>> for MtlsConfig {
    /// Wraps a rustls configuration built elsewhere (no expiry information).
    fn from(server_config: Arc<ServerConfig>) -> MtlsConfig {
        MtlsConfig {
            server_config,
            expiry: None,
            revocation_valid_until: None,
            verifier: None,
            client_cas: Arc::new([]),
            expiry_warning: DEFAULT_EXPIRY_WARNING,
            recipe: None,
            stamps: Vec::new(),
        }
    }
}

impl From<MtlsConfig> for Arc<ServerConfig> {
    fn from(config: MtlsConfig) -> Arc<ServerConfig> {
        config.server_config
    }
}

impl fmt::Debug for MtlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsConfig")
            .field("alpn_protocols", &self.server_config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

/// How long before the server certificate expires a warning is logged, unless configured.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86400);

/// The crate's default crypto provider (ring, else aws-lc-rs). Never installed process-wide.
pub(crate) fn default_provider() -> Result<Arc<CryptoProvider>, ConfigError> {
    crate::pem_files::default_provider().ok_or(ConfigError::NoCryptoProvider)
}

/// Each client CA's RFC 4514 subject and `notAfter`.
type CaExpiry = Vec<(String, SystemTime)>;

type ServerKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Where the server certificate chain and key come from: the last of the two setters wins.
enum ServerSource {
    Files { chain: PathBuf, key: PathBuf },
    Memory(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

/// Builds an [`MtlsConfig`]. Every loosening of the defaults is a named method; see
/// [`MtlsConfig`] for the table.
#[must_use]
#[derive(Default)]
pub struct MtlsConfigBuilder {
    server: Option<ServerSource>,
    client_ca: Option<Source<Vec<CertificateDer<'static>>>>,
    crls: Vec<Source<Vec<CertificateRevocationListDer<'static>>>>,
    client_auth_optional: bool,
    allow_tls12: bool,
    allow_missing_client_auth_eku: bool,
    allow_unknown_revocation_status: bool,
    allow_expired_crls: bool,
    alpn: Option<Vec<Vec<u8>>>,
    provider: Option<Arc<CryptoProvider>>,
    expiry_warning: Option<Duration>,
}

impl fmt::Debug for MtlsConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsConfigBuilder")
            .field("client_auth_optional", &self.client_auth_optional)
            .field("allow_tls12", &self.allow_tls12)
            .field(
                "allow_missing_client_auth_eku",
                &self.allow_missing_client_auth_eku,
            )
            .field(
                "allow_unknown_revocation_status",
                &self.allow_unknown_revocation_status,
            )
            .field("allow_expired_crls", &self.allow_expired_crls)
            .finish_non_exhaustive()
    }
}

impl MtlsConfigBuilder {
    /// The server certificate chain (leaf first) and private key, from PEM files.
    pub fn server_cert_pem_files(mut self, chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.server = Some(ServerSource::Files {
            chain: chain.as_ref().to_owned(),
            key: key.as_ref().to_owned(),
        });
        self
    }

    /// The server certificate chain (leaf first) and private key, in memory.
    pub fn server_cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.server = Some(ServerSource::Memory(chain, key));
        self
    }

    /// The client CA bundle, from a PEM file: the only roots client certificates may chain to.
    pub fn client_ca_pem_file(mut self, path: impl AsRef<Path>) -> Self {
        self.client_ca = Some(Source::File(path.as_ref().to_owned()));
        self
    }

    /// The client CA bundle, in memory.
    pub fn client_ca_certs(mut self, certs: Vec<CertificateDer<'static>>) -> Self {
        self.client_ca = Some(Source::Memory(certs));
        self
    }

    /// Adds a CRL file (PEM, possibly several CRLs, or DER). With CRLs configured, every certificate
    /// of a client chain must have a current CRL from its issuer, or the handshake fails (see
    /// [`allow_unknown_revocation_status`](Self::allow_unknown_revocation_status)).
    pub fn crl_file(mut self, path: impl AsRef<Path>) -> Self {
        self.crls.push(Source::File(path.as_ref().to_owned()));
        self
    }

    /// Adds CRLs in memory (DER).
    pub fn crls(mut self, crls: Vec<CertificateRevocationListDer<'static>>) -> Self {
        self.crls.push(Source::Memory(crls));
        self
    }

    /// Lets clients connect without a certificate. Requests on such connections carry no
    /// [`ClientCert`](crate::ClientCert), so `RequireClientCertLayer` answers 401 on the routes it
    /// guards and unguarded routes serve everyone. A certificate that *is* presented is still
    /// fully verified.
    pub fn client_auth_optional(mut self) -> Self {
        self.client_auth_optional = true;
        self
    }

    /// Accepts TLS 1.2 as well as 1.3 (rustls offers only ECDHE key exchange with AEAD suites).
    pub fn allow_tls12(mut self) -> Self {
        self.allow_tls12 = true;
        self
    }

    /// Accepts client leaves without an EKU extension. A leaf whose EKU extension lacks clientAuth
    /// (a serverAuth-only certificate, say) is still refused.
    pub fn allow_missing_client_auth_eku(mut self) -> Self {
        self.allow_missing_client_auth_eku = true;
        self
    }

    /// With CRLs configured, accepts certificates for which no CRL says anything (instead of
    /// refusing them). Certificates a CRL lists are still refused.
    pub fn allow_unknown_revocation_status(mut self) -> Self {
        self.allow_unknown_revocation_status = true;
        self
    }

    /// Uses CRLs past their `nextUpdate` instead of refusing the certificates they cover.
    pub fn allow_expired_crls(mut self) -> Self {
        self.allow_expired_crls = true;
        self
    }

    /// Replaces the ALPN protocols (default `h2`, `http/1.1`).
    pub fn alpn_protocols(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = Some(protocols);
        self
    }

    /// Logs a warning when the server certificate expires within `window` (default 30 days),
    /// at build time and on every reload, and every few hours while a listener runs.
    pub fn expiry_warning(mut self, window: Duration) -> Self {
        self.expiry_warning = Some(window);
        self
    }

    /// The crypto provider to use (it is not installed process-wide).
    pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// The files the configuration reads, in the order chain, key, client CA bundle, CRLs.
    fn files(&self) -> Vec<&Path> {
        let mut files = Vec::new();
        if let Some(ServerSource::Files { chain, key }) = &self.server {
            files.push(chain.as_path());
            files.push(key.as_path());
        }
        if let Some(Source::File(ca)) = &self.client_ca {
            files.push(ca.as_path());
        }
        files.extend(self.crls.iter().filter_map(|c| match c {
            Source::File(p) => Some(p.as_path()),
            Source::Memory(_) => None,
        }));
        files
    }

    /// The names of the server chain and key inputs, for errors about the pair.
    fn server_names(&self) -> (String, String) {
        match &self.server {
            Some(ServerSource::Files { chain, key }) => {
                (chain.display().to_string(), key.display().to_string())
            }
            _ => ("(in memory)".into(), "(in memory)".into()),
        }
    }

    /// The client CA bundle and CRL inputs, for errors about the verifier built from them.
    fn verifier_inputs(&self) -> String {
        let ca = self
            .client_ca
            .as_ref()
            .map_or_else(String::new, Source::name);
        let mut inputs = format!("client CA bundle {ca}");
        if !self.crls.is_empty() {
            let crls: Vec<String> = self.crls.iter().map(Source::name).collect();
            inputs.push_str(", CRLs ");
            inputs.push_str(&crls.join(", "));
        }
        inputs
    }

    fn provider(&self) -> Result<Arc<CryptoProvider>, ConfigError> {
        match &self.provider {
            Some(p) => Ok(p.clone()),
            None => default_provider(),
        }
    }

    fn load_server(&self) -> Result<ServerKey, ConfigError> {
        match &self.server {
            Some(ServerSource::Files {
                chain: chain_path,
                key: key_path,
            }) => {
                const WHAT: &str = "server certificate chain";
                let chain = pem_certs(
                    WHAT,
                    &chain_path.display().to_string(),
                    &read(WHAT, chain_path)?,
                )?;
                let key_pem = read("server private key", key_path)?;
                let key = crate::pem_files::private_key(&key_pem).map_err(|e| match e {
                    PemProblem::Empty => ConfigError::NoPrivateKey {
                        what: "server private key",
                        source_name: key_path.display().to_string(),
                    },
                    PemProblem::Malformed(reason) => ConfigError::Malformed {
                        what: "server private key",
                        source_name: key_path.display().to_string(),
                        reason,
                    },
                })?;
                Ok((chain, key))
            }
            Some(ServerSource::Memory(chain, _)) if chain.is_empty() => {
                Err(ConfigError::NoCertificates {
                    what: "server certificate chain",
                    source_name: "(in memory)".into(),
                })
            }
            Some(ServerSource::Memory(chain, key)) => Ok((chain.clone(), key.clone_key())),
            None => Err(ConfigError::Missing {
                what: "server certificate",
                setters: "`server_cert_pem_files(..)` or `server_cert(..)`",
            }),
        }
    }

    /// The client CAs, and each one's subject with its `notAfter` (for [`CertExpiry`]).
    fn load_client_ca(&self) -> Result<(Vec<ClientCa>, CaExpiry), ConfigError> {
        const WHAT: &str = "client CA bundle";
        let source = self.client_ca.as_ref().ok_or(ConfigError::Missing {
            what: WHAT,
            setters: "`client_ca_pem_file(..)` or `client_ca_certs(..)`",
        })?;
        let name = source.name();
        let certs = match source {
            Source::File(path) => pem_certs(WHAT, &name, &read(WHAT, path)?)?,
            Source::Memory(certs) if certs.is_empty() => {
                return Err(ConfigError::NoCertificates {
                    what: WHAT,
                    source_name: name,
                })
            }
            Source::Memory(certs) => certs.clone(),
        };
        // Each certificate is added to a store here only to refuse one rustls cannot use as a
        // trust anchor, with its name and index; the verifier builds its own stores.
        let mut roots = RootCertStore::empty();
        let mut cas = Vec::new();
        let mut expiry = Vec::new();
        for (index, cert) in certs.into_iter().enumerate() {
            // Pinning a leaf as a "CA" would trust whatever its key signs, and hints at a mixed-up
            // file: refuse anything that is not a CA certificate.
            let id = ClientIdentity::from_der(&cert).map_err(|e| ConfigError::Malformed {
                what: WHAT,
                source_name: name.clone(),
                reason: format!("certificate {index}: {e}"),
            })?;
            if !id.is_ca() {
                return Err(ConfigError::NotACa {
                    what: WHAT,
                    source_name: name,
                    index,
                    subject: id.subject().to_string(),
                });
            }
            expiry.push((id.subject().to_string(), id.not_after()));
            cas.push(ClientCa::new(cert.clone(), &id));
            roots.add(cert).map_err(|e| ConfigError::Malformed {
                what: WHAT,
                source_name: name.clone(),
                reason: format!("certificate {index}: {e}"),
            })?;
        }
        Ok((cas, expiry))
    }

    /// Each CRL, with the name of the input it came from.
    fn load_crls(
        &self,
    ) -> Result<Vec<(String, CertificateRevocationListDer<'static>)>, ConfigError> {
        crate::pem_files::load_crls(&self.crls)
    }

    /// Reads and checks everything, and builds the configuration. The configuration keeps this
    /// builder, so that [`MtlsConfig::rebuild`] can read the same files again.
    pub fn build(self) -> Result<MtlsConfig, ConfigError> {
        MtlsConfigBuilder::build_shared(&Arc::new(self))
    }

    fn build_shared(recipe: &Arc<MtlsConfigBuilder>) -> Result<MtlsConfig, ConfigError> {
        let this = &**recipe;
        // Looked at before anything is read: if a file changes while it is read, the stamp is
        // already out of date and a watch builds again.
        let stamps = FileStamp::all(&this.files());
        let provider = this.provider()?;
        let (chain, key) = this.load_server()?;
        let (chain_name, key_name) = this.server_names();
        let (client_cas, ca_expiry) = this.load_client_ca()?;
        let server_not_after = ClientIdentity::from_der(&chain[0])
            .map_err(|e| ConfigError::Malformed {
                what: "server certificate chain",
                source_name: chain_name.clone(),
                reason: format!("certificate 0: {e}"),
            })?
            .not_after();
        let crls = this.load_crls()?;
        let revocation_valid_until = if this.allow_expired_crls {
            None
        } else {
            let mut earliest: Option<SystemTime> = None;
            for (name, crl) in &crls {
                let next = mtls_core::identity::crl_next_update(crl.as_ref()).map_err(|e| {
                    ConfigError::Malformed {
                        what: "CRL",
                        source_name: name.clone(),
                        reason: e.to_string(),
                    }
                })?;
                if let Some(next) = next {
                    earliest = Some(earliest.map_or(next, |e| e.min(next)));
                }
            }
            earliest
        };

        let crls: Vec<_> = crls.into_iter().map(|(_, crl)| crl).collect();
        let build_verifier = {
            let provider = provider.clone();
            let (client_auth_optional, allow_expired_crls, allow_unknown_revocation_status) = (
                this.client_auth_optional,
                this.allow_expired_crls,
                this.allow_unknown_revocation_status,
            );
            move |cas: &[CertificateDer<'static>]| {
                let mut roots = RootCertStore::empty();
                // Each was added once already (load_client_ca), so none fails here.
                roots.add_parsable_certificates(cas.iter().cloned());
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                if !crls.is_empty() {
                    verifier = verifier.with_crls(crls.iter().cloned());
                    if !allow_expired_crls {
                        verifier = verifier.enforce_revocation_expiration();
                    }
                    if allow_unknown_revocation_status {
                        verifier = verifier.allow_unknown_revocation_status();
                    }
                }
                if client_auth_optional {
                    verifier = verifier.allow_unauthenticated();
                }
                verifier.build()
            }
        };
        let verifier = ClientVerifier::new(
            client_cas.clone(),
            Box::new(build_verifier),
            !this.allow_missing_client_auth_eku,
        )
        .map_err(|source| ConfigError::Verifier {
            inputs: this.verifier_inputs(),
            source,
        })?;
        let verifier = Arc::new(verifier);
        let client_verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> = verifier.clone();

        let versions: &[&'static rustls::SupportedProtocolVersion] = if this.allow_tls12 {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(ConfigError::Rustls)?
            .with_client_cert_verifier(verifier);
        let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
            source @ rustls::Error::InconsistentKeys(_) => ConfigError::KeyMismatch {
                side: crate::pem_files::ConfigSide::Server,
                chain: chain_name,
                key: key_name.clone(),
                source,
            },
            // Anything else is about the pair: a key type rustls cannot sign with, or a leaf
            // it refuses.
            e => ConfigError::Malformed {
                what: "server certificate and key",
                source_name: format!("{chain_name} and {key_name}"),
                reason: e.to_string(),
            },
        })?;
        config.alpn_protocols = this
            .alpn
            .clone()
            .unwrap_or_else(|| vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        let expiry = CertExpiry {
            server_not_after,
            client_cas: ca_expiry,
        };
        let config = MtlsConfig {
            server_config: Arc::new(config),
            expiry: Some(expiry),
            revocation_valid_until,
            verifier: Some(client_verifier),
            client_cas: client_cas.into(),
            expiry_warning: this.expiry_warning.unwrap_or(DEFAULT_EXPIRY_WARNING),
            recipe: Some(Arc::clone(recipe)),
            stamps,
        };
        config.warn_if_expiring();
        Ok(config)
    }
}
