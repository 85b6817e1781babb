//! [`TrustedProxyLayer`]: take the client identity from a forwarded-certificate header, but only
//! from a proxy that is trusted, and strip such headers from everyone else.
//!
//! Behind a proxy that terminates mutual TLS (Envoy, nginx, HAProxy, a cloud load balancer), the
//! service sees the proxy's connection, and the client's certificate arrives in a header. Trusting
//! that header from anyone is the classic hole: whoever can reach the service can claim any
//! identity. This layer decides per request whether the direct peer is a trusted proxy:
//!
//! - **by the proxy's own mTLS identity** (recommended): the connection's [`ClientCert`] from the
//!   handshake satisfies a [`Policy`] (the proxy's SPIFFE ID, say);
//! - **by peer address** ([`by_peer_address`](TrustedProxyLayer::by_peer_address)), weaker: any
//!   process that can connect from those addresses is trusted.
//!
//! From a trusted proxy, the identity comes from the configured header (exactly one format per
//! layer) and replaces the connection's `ClientCert` (its [`source`](ClientCert::source) names the
//! header). A trusted proxy that sends no header means "no client certificate" (401 from the layers
//! behind), never "the proxy's identity". A malformed header is a 400. From anyone else, every
//! forwarded-certificate header is removed before the handler runs, and the request goes on with
//! the connection's own identity. Either way, the handler never sees these headers.
//!
//! Put it *outside* the layers that enforce policies (add it last with `Router::layer`):
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::{Request, StatusCode};
//! use mtls_tower::testing::TestCa;
//! use mtls_tower::{ClientCert, ForwardedFormat, Policy, RequestClientCertExt, RequireClientCertLayer, TrustedProxyLayer};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let app = Router::new()
//!     .route("/", get(|cert: ClientCert| async move { cert.subject().to_string() }))
//!     .layer(RequireClientCertLayer::new(Policy::cn("alice").unwrap()))
//!     .layer(TrustedProxyLayer::by_identity(
//!         Policy::spiffe_id("spiffe://prod.example/ns/edge/sa/envoy").unwrap(),
//!         ForwardedFormat::Rfc9440, // RFC 9440
//!     ));
//!
//! let ca = TestCa::new("Example CA");
//! let proxy = ca.leaf().spiffe("spiffe://prod.example/ns/edge/sa/envoy").build().identity();
//! let alice = ca.leaf().common_name("alice").build();
//! let header = mtls_tower::testing::client_cert_header(&alice); // `:<base64 DER>:`
//!
//! // The proxy forwards alice's certificate: the handler sees alice.
//! let req = Request::get("/").header("client-cert", &header).with_client_cert(proxy).body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
//!
//! // Anyone else sending the same header gets nothing for it.
//! let mallory = ca.leaf().common_name("mallory").build().identity();
//! let req = Request::get("/").header("client-cert", &header).with_client_cert(mallory).body(Body::empty()).unwrap();
//! assert_eq!(app.oneshot(req).await.unwrap().status(), StatusCode::FORBIDDEN);
//! # });
//! ```

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::HeaderName;
use http::{HeaderMap, Request, Response, StatusCode};
use mtls_core::forwarded::{self, ForwardedError};
use mtls_core::{CertificateDer, ClientIdentity, IpNetwork, Policy};
use tower_layer::Layer;
use tower_service::Service;

use crate::cert::{CertSource, ClientCert};
use crate::layer::ResponseFuture;
use crate::logging::Limiter;
use crate::rejection::fixed_response;

/// The remote address of the connection a request arrived on, as a request extension. Put there by
/// [`AddClientCert::with_remote_addr`][add-client-cert-remote-addr] (which
/// [`serve`][serve-fn] uses); [`TrustedProxyLayer::by_peer_address`] reads it.
///
#[cfg_attr(
    feature = "server",
    doc = "[add-client-cert-remote-addr]: crate::AddClientCert::with_remote_addr"
)]
#[cfg_attr(
    not(feature = "server"),
    doc = "[add-client-cert-remote-addr]: https://docs.rs/mtls-tower/latest/mtls_tower/struct.AddClientCert.html#method.with_remote_addr"
)]
#[cfg_attr(
    all(feature = "server", feature = "axum"),
    doc = "[serve-fn]: crate::serve"
)]
#[cfg_attr(
    not(all(feature = "server", feature = "axum")),
    doc = "[serve-fn]: https://docs.rs/mtls-tower/latest/mtls_tower/fn.serve.html"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The header format a [`TrustedProxyLayer`] reads, one per layer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedFormat {
    /// Envoy's `x-forwarded-client-cert`. The last element (the one the adjacent proxy added) must
    /// carry the `Cert` (Envoy: `forward_client_cert_details: SANITIZE_SET` with
    /// `set_current_client_cert_details: { cert: true }`); its `Chain`, when present, is used too,
    /// and a `Hash` must match the `Cert`.
    Xfcc,
    /// RFC 9440 `Client-Cert` (and `Client-Cert-Chain` when present).
    Rfc9440,
    /// nginx's `$ssl_client_escaped_cert` (URL-encoded PEM) in the named header, such as
    /// `X-SSL-Client-Cert` (`proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;`).
    NginxEscapedCert(HeaderName),
}

impl ForwardedFormat {
    /// The header that carries the client certificate in this format.
    fn header(&self) -> HeaderName {
        match self {
            ForwardedFormat::Xfcc => HeaderName::from_static("x-forwarded-client-cert"),
            ForwardedFormat::Rfc9440 => HeaderName::from_static("client-cert"),
            ForwardedFormat::NginxEscapedCert(name) => name.clone(),
        }
    }
}

/// RFC 9440's chain header, read after `Client-Cert`.
const CLIENT_CERT_CHAIN: HeaderName = HeaderName::from_static("client-cert-chain");

/// Every header name that carries a client certificate in some proxy's convention, with dashes and
/// with underscores (some servers map `_` to `-`, so both spellings can reach a handler). Built at
/// compile time: stripping them runs on every request.
static FORWARDED_HEADERS: [HeaderName; 22] = [
    HeaderName::from_static("x-forwarded-client-cert"),
    HeaderName::from_static("x_forwarded_client_cert"),
    HeaderName::from_static("client-cert"),
    HeaderName::from_static("client_cert"),
    HeaderName::from_static("client-cert-chain"),
    HeaderName::from_static("client_cert_chain"),
    HeaderName::from_static("x-ssl-client-cert"),
    HeaderName::from_static("x_ssl_client_cert"),
    HeaderName::from_static("x-client-cert"),
    HeaderName::from_static("x_client_cert"),
    HeaderName::from_static("ssl-client-cert"),
    HeaderName::from_static("ssl_client_cert"),
    HeaderName::from_static("x-ssl-cert"),
    HeaderName::from_static("x_ssl_cert"),
    HeaderName::from_static("x-client-certificate"),
    HeaderName::from_static("x_client_certificate"),
    HeaderName::from_static("x-arr-clientcert"),
    HeaderName::from_static("x_arr_clientcert"),
    HeaderName::from_static("x-amzn-mtls-clientcert"),
    HeaderName::from_static("x_amzn_mtls_clientcert"),
    HeaderName::from_static("x-amzn-mtls-clientcert-leaf"),
    HeaderName::from_static("x_amzn_mtls_clientcert_leaf"),
];

#[derive(Clone)]
enum Trust {
    Identity(Policy),
    Addresses(Arc<[IpNetwork]>),
}

#[derive(Clone)]
struct ProxyConfig {
    trust: Trust,
    format: ForwardedFormat,
    /// `format.header()`, built once: it is read and stripped on every request.
    header: HeaderName,
    proxy_identity_without_header: bool,
    #[cfg(feature = "server")]
    reverify: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
}

/// The [`Layer`] described in the [module docs](self).
#[derive(Clone)]
#[must_use]
pub struct TrustedProxyLayer {
    config: Arc<ProxyConfig>,
}

impl fmt::Debug for TrustedProxyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let trust = match &self.config.trust {
            Trust::Identity(p) => format!("identity: {p}"),
            Trust::Addresses(nets) => format!("addresses: {nets:?}"),
        };
        f.debug_struct("TrustedProxyLayer")
            .field("trust", &trust)
            .field("format", &self.config.format)
            .finish_non_exhaustive()
    }
}

impl TrustedProxyLayer {
    /// Trusts a peer whose own verified client certificate (from this connection's handshake)
    /// satisfies `proxy_policy`, and reads the client's certificate from `format`.
    pub fn by_identity(proxy_policy: Policy, format: ForwardedFormat) -> Self {
        TrustedProxyLayer::new(Trust::Identity(proxy_policy), format)
    }

    /// Trusts a peer by its address alone: any process that can connect from one of `networks` can
    /// claim any client identity. Prefer [`by_identity`](Self::by_identity); use this only where the
    /// proxy cannot present a certificate and the network path is locked down. The address comes
    /// from the [`PeerAddr`] request extension (set by [`serve`][serve-fn]); a request without
    /// it is never trusted.
    ///
    #[cfg_attr(
        all(feature = "server", feature = "axum"),
        doc = "[serve-fn]: crate::serve"
    )]
    #[cfg_attr(
        not(all(feature = "server", feature = "axum")),
        doc = "[serve-fn]: https://docs.rs/mtls-tower/latest/mtls_tower/fn.serve.html"
    )]
    pub fn by_peer_address(
        networks: impl IntoIterator<Item = IpNetwork>,
        format: ForwardedFormat,
    ) -> Self {
        TrustedProxyLayer::new(Trust::Addresses(networks.into_iter().collect()), format)
    }

    fn new(trust: Trust, format: ForwardedFormat) -> Self {
        TrustedProxyLayer {
            config: Arc::new(ProxyConfig {
                trust,
                header: format.header(),
                format,
                proxy_identity_without_header: false,
                #[cfg(feature = "server")]
                reverify: None,
            }),
        }
    }

    fn map(mut self, f: impl FnOnce(&mut ProxyConfig)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// When a trusted proxy sends no header, keep the proxy's own identity (instead of "no client
    /// certificate"). For proxies that also call the service on their own behalf.
    pub fn allow_proxy_identity_without_header(self) -> Self {
        self.map(|c| c.proxy_identity_without_header = true)
    }

    /// Re-verifies every forwarded chain against `client_cas` before believing it, so that a
    /// compromised or misconfigured proxy cannot mint identities the CA never issued: signatures up
    /// to one of `client_cas`, validity dates, and an EKU extension, if present, that includes
    /// clientAuth (webpki's rule).
    ///
    /// Weaker than the listener's handshake in two ways: a leaf *without* an EKU extension passes
    /// (the handshake refuses it unless
    /// [`allow_missing_client_auth_eku`](crate::MtlsConfigBuilder::allow_missing_client_auth_eku)),
    /// and no CRL is checked (revocation is the proxy's job here).
    ///
    /// # Errors
    /// When `client_cas` is empty or a certificate in it is not usable as a root.
    #[cfg(feature = "server")]
    pub fn reverify_with(
        self,
        client_cas: Vec<CertificateDer<'static>>,
    ) -> Result<Self, crate::ConfigError> {
        let mut roots = rustls::RootCertStore::empty();
        if client_cas.is_empty() {
            return Err(crate::ConfigError::NoCertificates {
                what: "proxy re-verification CA bundle",
                source_name: "(in memory)".into(),
            });
        }
        for ca in client_cas {
            roots.add(ca).map_err(|e| crate::ConfigError::Malformed {
                what: "proxy re-verification CA bundle",
                source_name: "(in memory)".into(),
                reason: e.to_string(),
            })?;
        }
        let provider = crate::server::default_provider()?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|source| crate::ConfigError::Verifier {
                    inputs: "proxy re-verification CA bundle (in memory)".into(),
                    source,
                })?;
        Ok(self.map(|c| c.reverify = Some(verifier)))
    }
}

impl<S> Layer<S> for TrustedProxyLayer {
    type Service = TrustedProxy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrustedProxy {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`TrustedProxyLayer`].
#[derive(Clone)]
pub struct TrustedProxy<S> {
    inner: S,
    config: Arc<ProxyConfig>,
}

impl<S: fmt::Debug> fmt::Debug for TrustedProxy<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedProxy")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> TrustedProxy<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the middleware, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Why a trusted proxy's header was refused (in the 400 response's extensions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The header could not be parsed.
    #[error("bad forwarded client certificate from a trusted proxy: {error}")]
    Malformed {
        /// The header.
        header: HeaderName,
        /// What is wrong (its message names the header too).
        error: ForwardedError,
    },
    /// The header appears more than once where one value is expected.
    #[error("{header} header sent more than once by a trusted proxy")]
    Repeated {
        /// The header.
        header: HeaderName,
    },
    /// The header value is not visible ASCII.
    #[error("{header} header from a trusted proxy contains bytes that are not visible ASCII")]
    NotText {
        /// The header.
        header: HeaderName,
    },
    /// The XFCC element from the adjacent proxy carries no certificate.
    #[error("the last x-forwarded-client-cert element has no Cert; configure the proxy to forward the certificate")]
    NoCertInXfcc,
    /// An XFCC `Chain` that does not start with its `Cert`.
    #[error("the x-forwarded-client-cert Chain does not start with its Cert")]
    ChainMismatch,
    /// The forwarded certificate is not a readable X.509 certificate.
    #[error("forwarded certificate is not a valid certificate: {0}")]
    Identity(#[from] mtls_core::IdentityError),
    /// Re-verification against the client CA bundle failed.
    #[error("forwarded certificate failed re-verification: {0}")]
    Reverify(String),
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TrustedProxy<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<&'static str>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let trusted = match &config.trust {
            // Only a certificate from this connection's own handshake can vouch for the proxy,
            // and only while it is valid: a pooled upstream connection can outlive it.
            Trust::Identity(policy) => crate::cert::current(req.extensions().get::<ClientCert>())
                .is_ok_and(|c| {
                    *c.source() == CertSource::TlsHandshake && policy.allows(c.identity())
                }),
            Trust::Addresses(nets) => req
                .extensions()
                .get::<PeerAddr>()
                .is_some_and(|PeerAddr(addr)| nets.iter().any(|n| n.contains(addr.ip()))),
        };
        if !trusted {
            static STRIPPED: Limiter = Limiter::new();
            if strip_forwarded(req.headers_mut(), &config.header) {
                if let Some(suppressed) = STRIPPED.admit() {
                    tracing::warn!(
                        target: "mtls_tower::proxy",
                        suppressed,
                        peer = ?req.extensions().get::<PeerAddr>().map(|p| p.0),
                        path = req.uri().path(),
                        "removed forwarded client-certificate header(s) from a peer that is not a trusted proxy"
                    );
                }
            }
            return ResponseFuture::future(self.inner.call(req));
        }
        match forwarded_identity(req.headers(), config) {
            Ok(Some(identity)) => {
                let cert =
                    ClientCert::from_trusted_proxy(Arc::new(identity), config.header.clone());
                req.extensions_mut().insert(cert);
            }
            Ok(None) => {
                if !config.proxy_identity_without_header {
                    // No header from the proxy: the client presented no certificate to it.
                    req.extensions_mut().remove::<ClientCert>();
                }
            }
            Err(error) => {
                static BAD_HEADER: Limiter = Limiter::new();
                if let Some(suppressed) = BAD_HEADER.admit() {
                    tracing::warn!(
                        target: "mtls_tower::proxy",
                        suppressed,
                        peer = ?req.extensions().get::<PeerAddr>().map(|p| p.0),
                        path = req.uri().path(),
                        %error,
                        "rejected request: bad forwarded client-certificate header from a trusted proxy"
                    );
                }
                let mut res = fixed_response(
                    StatusCode::BAD_REQUEST,
                    "bad request\n",
                    "text/plain; charset=utf-8",
                );
                res.extensions_mut().insert(error);
                return ResponseFuture::rejected(res);
            }
        }
        strip_forwarded(req.headers_mut(), &config.header);
        ResponseFuture::future(self.inner.call(req))
    }
}

/// Removes every forwarded-certificate header, and `configured` (the layer's own, which for nginx
/// can have any name); returns whether there was any.
fn strip_forwarded(headers: &mut HeaderMap, configured: &HeaderName) -> bool {
    // `HeaderMap::remove` removes every value of the name, not just the first.
    let mut removed = headers.remove(configured).is_some();
    for name in &FORWARDED_HEADERS {
        removed |= headers.remove(name).is_some();
    }
    removed
}

fn single_value<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, ProxyHeaderError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ProxyHeaderError::Repeated {
            header: name.clone(),
        });
    }
    let text = first.to_str().map_err(|_| ProxyHeaderError::NotText {
        header: name.clone(),
    })?;
    Ok(Some(text))
}

/// The client identity the trusted proxy forwarded: `None` when it sent no header.
fn forwarded_identity(
    headers: &HeaderMap,
    config: &ProxyConfig,
) -> Result<Option<ClientIdentity>, ProxyHeaderError> {
    let header = &config.header;
    // The header name is copied into the error only when there is one.
    let malformed = |error| ProxyHeaderError::Malformed {
        header: header.clone(),
        error,
    };
    let chain: Vec<CertificateDer<'static>> = match &config.format {
        ForwardedFormat::Rfc9440 => {
            let Some(value) = single_value(headers, header)? else {
                return Ok(None);
            };
            let leaf = forwarded::parse_client_cert(value).map_err(malformed)?;
            let mut chain = vec![leaf];
            if let Some(value) = single_value(headers, &CLIENT_CERT_CHAIN)? {
                let rest = forwarded::parse_client_cert_chain(value).map_err(|error| {
                    ProxyHeaderError::Malformed {
                        header: CLIENT_CERT_CHAIN,
                        error,
                    }
                })?;
                chain.extend(rest);
            }
            chain
        }
        ForwardedFormat::NginxEscapedCert(_) => {
            let Some(value) = single_value(headers, header)? else {
                return Ok(None);
            };
            if value.is_empty() {
                // nginx sends an empty value when the client presented no certificate.
                return Ok(None);
            }
            vec![forwarded::parse_nginx_escaped_cert(value).map_err(malformed)?]
        }
        ForwardedFormat::Xfcc => {
            // Several header lines form one comma-separated list (RFC 9110 §5.3); the usual single
            // line is parsed in place.
            let not_text = || ProxyHeaderError::NotText {
                header: header.clone(),
            };
            let mut lines = headers.get_all(header).iter();
            let Some(first) = lines.next() else {
                return Ok(None);
            };
            let mut combined = Cow::Borrowed(first.to_str().map_err(|_| not_text())?);
            for line in lines {
                let line = line.to_str().map_err(|_| not_text())?;
                let combined = combined.to_mut();
                combined.push(',');
                combined.push_str(line);
            }
            let elements = forwarded::parse_xfcc(&combined).map_err(&malformed)?;
            // Only the last element was added by the proxy next to us; earlier ones are hearsay.
            let Some(last) = elements.last() else {
                return Ok(None);
            };
            let leaf = last
                .cert_der()
                .map_err(&malformed)?
                .ok_or(ProxyHeaderError::NoCertInXfcc)?;
            // Envoy's `Chain` is the whole chain, leaf first; without it, the leaf alone.
            match last.chain_der().map_err(malformed)? {
                None => vec![leaf],
                Some(chain) if chain.first() == Some(&leaf) => chain,
                Some(_) => return Err(ProxyHeaderError::ChainMismatch),
            }
        }
    };
    #[cfg(feature = "server")]
    if let Some(verifier) = &config.reverify {
        let now = rustls::pki_types::UnixTime::now();
        verifier
            .verify_client_cert(&chain[0], &chain[1..], now)
            .map_err(|e| ProxyHeaderError::Reverify(e.to_string()))?;
    }
    Ok(Some(ClientIdentity::from_der_chain(&chain)?))
}
