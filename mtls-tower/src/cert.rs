//! [`ClientCert`]: the verified client identity of a connection, carried as a request extension.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderName;
use http::StatusCode;
use mtls_core::ClientIdentity;

use crate::rejection::{CertRejection, RejectionKind};

/// The verified client certificate of the connection a request arrived on, as a request extension.
///
/// The server inserts one into every request of a connection whose client presented a certificate
/// that the TLS handshake verified; [`RequireClientCertLayer`](crate::RequireClientCertLayer)
/// rejects requests without one (401). Cheap to clone: the parsed [`ClientIdentity`] is shared
/// behind an `Arc`, parsed once per connection.
///
/// With the `axum` feature, `ClientCert` is an extractor: a handler that takes `ClientCert` answers
/// 401 when there is none, one that takes `Option<ClientCert>` serves both.
///
/// A certificate speaks for its connection only while it is valid: from the leaf's `notBefore`
/// to [`valid_until`](Self::valid_until), the earliest `notAfter` of the chain. The layer, the
/// `#[require_cert]` guards, the extractor and `grpc::client_cert` (feature `tonic`)
/// answer a request that starts after that as if it had no certificate (401, `UNAUTHENTICATED`),
/// with a [`CertificateExpired`](RejectionKind::CertificateExpired) rejection; `serve` also closes
/// the connection then. Code that takes the extension itself (`Extension<ClientCert>`,
/// `extensions().get::<ClientCert>()`, [`MtlsStream::client_cert`][stream-client-cert])
/// gets it unchecked: ask [`is_current_at`](Self::is_current_at), or use the extractor.
///
/// ```
/// use mtls_tower::ClientCert;
///
/// async fn whoami(cert: ClientCert) -> String {
///     format!("hello {}", cert.subject())
/// }
/// ```
///
#[cfg_attr(
    feature = "server",
    doc = "[stream-client-cert]: crate::MtlsStream::client_cert"
)]
#[cfg_attr(
    not(feature = "server"),
    doc = "[stream-client-cert]: https://docs.rs/mtls-tower/latest/mtls_tower/struct.MtlsStream.html#method.client_cert"
)]
#[derive(Clone)]
pub struct ClientCert {
    identity: Arc<ClientIdentity>,
    source: CertSource,
    valid_until: SystemTime,
}

/// Where a [`ClientCert`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertSource {
    /// The client certificate of this connection's TLS handshake.
    TlsHandshake,
    /// Forwarded by a trusted proxy in this header, after the proxy itself was authenticated.
    TrustedProxy {
        /// The header the certificate came in.
        header: HeaderName,
    },
}

impl ClientCert {
    /// A certificate verified by this connection's TLS handshake.
    ///
    /// Only code that has verified the chain (the TLS stack) should build one: whatever is in the
    /// request extensions is believed by every layer and extractor.
    ///
    /// [`valid_until`](Self::valid_until) is read from the chain now, so build it when the chain
    /// has just been verified.
    pub fn from_handshake(identity: Arc<ClientIdentity>) -> ClientCert {
        ClientCert::new(identity, CertSource::TlsHandshake)
    }

    /// A certificate forwarded by a trusted proxy in `header`.
    ///
    /// Its [`valid_until`](Self::valid_until) is the earliest `notAfter` of every certificate
    /// forwarded with it ([`ClientIdentity::chain_not_after`]): this server did not verify the
    /// chain, so none of it is passed over as unused.
    pub fn from_trusted_proxy(identity: Arc<ClientIdentity>, header: HeaderName) -> ClientCert {
        let valid_until = identity.chain_not_after();
        ClientCert {
            identity,
            source: CertSource::TrustedProxy { header },
            valid_until,
        }
    }

    fn new(identity: Arc<ClientIdentity>, source: CertSource) -> ClientCert {
        let valid_until = identity.valid_until(SystemTime::now());
        ClientCert {
            identity,
            source,
            valid_until,
        }
    }

    /// For tests: a `ClientCert` as if the handshake had verified `identity`, to put on a request
    /// with [`RequestClientCertExt`] and drive a router with `oneshot`, no TLS involved.
    pub fn for_tests(identity: ClientIdentity) -> ClientCert {
        ClientCert::from_handshake(Arc::new(identity))
    }

    /// The parsed identity.
    pub fn identity(&self) -> &ClientIdentity {
        &self.identity
    }

    /// The shared identity, to keep beyond the request without copying it.
    pub fn identity_arc(&self) -> &Arc<ClientIdentity> {
        &self.identity
    }

    /// Where the certificate came from.
    pub fn source(&self) -> &CertSource {
        &self.source
    }

    /// The end of this certificate's authority: the earliest `notAfter` of the leaf and of the
    /// other certificates of its chain that were valid when it was built
    /// ([`ClientIdentity::valid_until`]); for a forwarded certificate, of every certificate
    /// forwarded with it.
    pub fn valid_until(&self) -> SystemTime {
        self.valid_until
    }

    /// Whether the certificate may speak for a request that starts at `now`: `now` lies between
    /// the leaf's `notBefore` and [`valid_until`](Self::valid_until), both inclusive (RFC 5280).
    pub fn is_current_at(&self, now: SystemTime) -> bool {
        self.identity.not_before() <= now && now <= self.valid_until
    }
}

/// The request's certificate when it may speak for the request now; otherwise the rejection: 401
/// without one, or with one outside its validity. The one place every check (layer, guard,
/// extractor, gRPC helper) asks, so that none of them can serve an expired certificate.
///
/// Security: a connection outlives its handshake, and a TLS session outlives its connection
/// (resumption re-uses the stored chain without verifying it again). This per-request date check
/// is what makes sure no request is served on a certificate past its end, whatever the
/// connection's path (`serve`, `axum::serve`, a hand-written loop, a trusted proxy).
pub(crate) fn current(cert: Option<&ClientCert>) -> Result<&ClientCert, CertRejection> {
    let Some(cert) = cert else {
        return Err(CertRejection::new(
            RejectionKind::MissingCertificate,
            StatusCode::UNAUTHORIZED,
        ));
    };
    let now = SystemTime::now();
    if cert.is_current_at(now) {
        return Ok(cert);
    }
    let kind = if now > cert.valid_until {
        RejectionKind::CertificateExpired
    } else {
        RejectionKind::CertificateNotYetValid
    };
    Err(CertRejection::new(kind, StatusCode::UNAUTHORIZED))
}

impl Deref for ClientCert {
    type Target = ClientIdentity;

    fn deref(&self) -> &ClientIdentity {
        &self.identity
    }
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCert")
            .field("subject", &self.identity.subject())
            .field("spiffe_id", &self.identity.spiffe_id())
            .field("fingerprint", self.identity.fingerprint_sha256())
            .field("source", &self.source)
            .field("valid_until", &self.valid_until)
            .finish()
    }
}

/// Puts a [`ClientCert`] on a request or request builder, for tests.
///
/// ```
/// use mtls_tower::{ClientCert, RequestClientCertExt};
/// use mtls_core::testing::TestCa;
///
/// let ca = TestCa::new("Test CA");
/// let req = http::Request::get("/").with_client_cert(ca.leaf().build().identity()).body(()).unwrap();
/// assert!(req.extensions().get::<ClientCert>().is_some());
/// ```
pub trait RequestClientCertExt: Sized {
    /// Adds `ClientCert::for_tests(identity)` to the request's extensions.
    #[must_use]
    fn with_client_cert(self, identity: ClientIdentity) -> Self;
}

impl<B> RequestClientCertExt for http::Request<B> {
    fn with_client_cert(mut self, identity: ClientIdentity) -> Self {
        self.extensions_mut()
            .insert(ClientCert::for_tests(identity));
        self
    }
}

impl RequestClientCertExt for http::request::Builder {
    fn with_client_cert(self, identity: ClientIdentity) -> Self {
        self.extension(ClientCert::for_tests(identity))
    }
}
