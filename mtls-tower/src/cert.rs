//! [`ClientCert`]: the verified client identity of a connection, carried as a request extension.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use http::HeaderName;
use mtls_core::ClientIdentity;

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
/// ```
/// use mtls_tower::ClientCert;
///
/// async fn whoami(cert: ClientCert) -> String {
///     format!("hello {}", cert.subject())
/// }
/// ```
#[derive(Clone)]
pub struct ClientCert {
    identity: Arc<ClientIdentity>,
    source: CertSource,
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
    pub fn from_handshake(identity: Arc<ClientIdentity>) -> ClientCert {
        ClientCert {
            identity,
            source: CertSource::TlsHandshake,
        }
    }

    /// A certificate forwarded by a trusted proxy in `header`.
    pub fn from_trusted_proxy(identity: Arc<ClientIdentity>, header: HeaderName) -> ClientCert {
        ClientCert {
            identity,
            source: CertSource::TrustedProxy { header },
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
