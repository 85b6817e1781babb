//! Reading certificates, keys and CRLs for the server and client configurations, and the error
//! both report: one reader for both, so that a file that loads on one side loads the same way
//! on the other, and fails with the same words.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// What is wrong with a PEM (or DER, for CRLs) input.
#[derive(Debug)]
pub(crate) enum PemProblem {
    /// Not readable as PEM of the expected kind.
    Malformed(String),
    /// Readable, but holding none of what was expected.
    Empty,
}

/// Every `CERTIFICATE` in `pem`, in order; none is [`PemProblem::Empty`].
pub(crate) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemProblem> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemProblem::Malformed(e.to_string()))?;
    if certs.is_empty() {
        return Err(PemProblem::Empty);
    }
    Ok(certs)
}

/// The first private key in `pem` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, PemProblem> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => PemProblem::Empty,
        e => PemProblem::Malformed(e.to_string()),
    })
}

/// The CRLs in a CRL file: one DER CRL, or one or more PEM `X509 CRL` blocks.
pub(crate) fn crls(bytes: Vec<u8>) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    if bytes.first() == Some(&0x30) {
        // A DER CRL starts with a SEQUENCE tag; PEM starts with text.
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if crls.is_empty() {
        return Err("no X509 CRL found (expected PEM `-----BEGIN X509 CRL-----` or DER)".into());
    }
    Ok(crls)
}

/// The crate's default crypto provider: ring (feature `ring`), else aws-lc-rs (feature
/// `aws-lc-rs`); `None` with neither. Never installed process-wide.
pub(crate) fn default_provider() -> Option<Arc<CryptoProvider>> {
    #[cfg(feature = "ring")]
    {
        Some(Arc::new(rustls::crypto::ring::default_provider()))
    }
    #[cfg(all(not(feature = "ring"), feature = "aws-lc-rs"))]
    {
        Some(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    {
        None
    }
}

/// Which end of a connection a configuration is for, in [`ConfigError::KeyMismatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigSide {
    /// An `MtlsConfig`: the server's certificate and key.
    Server,
    /// An `MtlsClientConfig`: the client's certificate and key.
    Client,
}

impl fmt::Display for ConfigSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigSide::Server => "server",
            ConfigSide::Client => "client",
        })
    }
}

/// Why an `MtlsConfig` (server) or an `MtlsClientConfig` (client) could not be built. Every
/// error names the input it is about: the file's path, or `(in memory)` for certificates and
/// keys given as values.
///
/// `Debug` prints the same sentence as `Display`, so that a `main` returning
/// `Result<(), Box<dyn Error>>` shows `Error: cannot read server private key server.key: No such
/// file or directory (os error 2)` rather than a nest of variant names. Match on the variants
/// for the structure.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Io {
        /// What the file was for ("server certificate chain", "client CA bundle", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An input is not valid: not PEM (or DER, for CRLs), or not a usable certificate or key.
    #[error("{what} {source_name} is not valid: {reason}")]
    Malformed {
        /// What the input was for.
        what: &'static str,
        /// The file, or `(in memory)`.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A certificate file or list holds no certificate.
    #[error("{what} {source_name} holds no certificates")]
    NoCertificates {
        /// What the input was for.
        what: &'static str,
        /// The file, or `(in memory)`.
        source_name: String,
    },
    /// A CA bundle (the server's client CAs, or a client's server CAs) holds a certificate that
    /// is not a CA: pinning it would trust whatever its key signs.
    #[error("{what} {source_name} holds a leaf certificate, not a CA (certificate {index}, {subject}); a {what} must hold only CA certificates")]
    NotACa {
        /// Which bundle: "client CA bundle" or "server CA bundle".
        what: &'static str,
        /// The file, or `(in memory)`.
        source_name: String,
        /// Position in the bundle, from 0.
        index: usize,
        /// The certificate's subject, RFC 4514.
        subject: String,
    },
    /// The private key input holds no key.
    #[error("{what} {source_name} holds no private key")]
    NoPrivateKey {
        /// Which key: "server private key" or "client private key".
        what: &'static str,
        /// The file, or `(in memory)`.
        source_name: String,
    },
    /// The private key does not belong to the certificate: often a rotation caught half way,
    /// the new certificate written and the old key still in place.
    #[error("the {side} private key {key} does not match the {side} certificate {chain} (if they are being replaced, write both, then reload): {source}")]
    KeyMismatch {
        /// Whose certificate and key.
        side: ConfigSide,
        /// The certificate chain's file, or `(in memory)`.
        chain: String,
        /// The key's file, or `(in memory)`.
        key: String,
        /// What rustls found.
        #[source]
        source: rustls::Error,
    },
    /// A required part was not configured.
    #[error("no {what} configured; call {setters}")]
    Missing {
        /// What is missing.
        what: &'static str,
        /// The builder methods that set it.
        setters: &'static str,
    },
    /// Neither the `ring` nor the `aws-lc-rs` feature is enabled and no provider was given.
    #[error("no crypto provider: enable the `ring` or `aws-lc-rs` feature of mtls-tower, or call `crypto_provider(..)`")]
    NoCryptoProvider,
    /// rustls refused the certificate verifier built from a CA bundle and the CRLs (for example
    /// an unusable CRL).
    #[error("certificate verifier ({inputs}): {source}")]
    Verifier {
        /// The inputs it was built from: `client CA bundle ca.pem, CRLs a.crl, b.crl`.
        inputs: String,
        /// What rustls found.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// rustls refused the protocol versions for the crypto provider, or the certificate.
    #[error("cannot build the TLS configuration: {0}")]
    Rustls(#[source] rustls::Error),
    /// `MtlsConfig::rebuild` (or a reload from files) on a configuration made from a bare
    /// `rustls::ServerConfig`, which has no files to read again.
    #[error("this configuration was made from a rustls ServerConfig, not by MtlsConfig::builder(), so it has no files to read again; reload it with ReloadHandle::reload or reload_with")]
    NotRebuildable,
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The Display text already carries the source's message.
        fmt::Display::fmt(self, f)
    }
}

/// Reads `path`, naming it and `what` it is for on failure.
pub(crate) fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Io {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The certificates in `pem` (from input `name`, for `what`); none is an error.
pub(crate) fn pem_certs(
    what: &'static str,
    name: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    certificates(pem).map_err(|problem| match problem {
        PemProblem::Malformed(reason) => ConfigError::Malformed {
            what,
            source_name: name.to_owned(),
            reason,
        },
        PemProblem::Empty => ConfigError::NoCertificates {
            what,
            source_name: name.to_owned(),
        },
    })
}

/// Where a PEM/DER input came from, for error messages.
#[derive(Clone)]
pub(crate) enum Source<T> {
    File(PathBuf),
    Memory(T),
}

impl<T> Source<T> {
    /// The file's path, or `(in memory)`.
    pub(crate) fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Memory(_) => "(in memory)".to_owned(),
        }
    }
}

/// Every CRL of `sources`, in order, each with the name of the input it came from.
pub(crate) fn load_crls(
    sources: &[Source<Vec<CertificateRevocationListDer<'static>>>],
) -> Result<Vec<(String, CertificateRevocationListDer<'static>)>, ConfigError> {
    const WHAT: &str = "CRL file";
    let mut out = Vec::new();
    for source in sources {
        let name = source.name();
        match source {
            Source::Memory(crls) => out.extend(crls.iter().map(|c| (name.clone(), c.clone()))),
            Source::File(path) => {
                let crls = crls(read(WHAT, path)?).map_err(|reason| ConfigError::Malformed {
                    what: WHAT,
                    source_name: name.clone(),
                    reason,
                })?;
                out.extend(crls.into_iter().map(|c| (name.clone(), c)));
            }
        }
    }
    Ok(out)
}
