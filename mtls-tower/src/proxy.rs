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
//! the connection's own identity. Either way, the handler never sees any of the headers listed
//! [below](#the-headers-it-strips).
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
//!
//! # The headers it strips
//!
//! From every request, trusted or not, before the handler runs: the configured format's header,
//! the names added with [`also_strip`](TrustedProxyLayer::also_strip), and every header below,
//! in any letter case and with `_` in place of any `-`. "Starts with" rows are families: each
//! proxy adds several fields (the certificate, its chain, subject and issuer DNs, serial, validity,
//! verification result), and a handler fooled by a forged `X-SSL-Client-Verify: SUCCESS` is as
//! fooled as by a forged certificate. [`TrustedProxyLayer::strips`] answers for one name.
//!
//! | name | matches | set by |
//! |---|---|---|
//! | `x-forwarded-client-cert` | exactly | Envoy, Istio (XFCC) |
//! | `client-cert` | exactly | RFC 9440 (Cloudflare, Google Cloud, nginx and HAProxy configs) |
//! | `client-cert-chain` | exactly | RFC 9440 |
//! | `x-ssl-` | starts with | nginx, HAProxy and F5 conventions (`X-SSL-Client-Cert`, `X-SSL-Client-Verify`, `X-SSL-Client-S-DN`, `X-SSL-Cert`) |
//! | `ssl-client-` | starts with | Apache mod_ssl's variables as headers (`SSL_CLIENT_CERT`, `SSL_CLIENT_S_DN`, `SSL_CLIENT_VERIFY`) |
//! | `x-client-cert` | starts with | `X-Client-Cert`, `X-Client-Certificate`, Google Cloud load balancers' `X-Client-Cert-*` |
//! | `x-client-verif` | starts with | common nginx and HAProxy configs (`X-Client-Verify`, `X-Client-Verified`) |
//! | `x-client-dn` | exactly | common nginx and HAProxy configs |
//! | `x-client-s-dn` | exactly | common nginx and HAProxy configs |
//! | `x-client-i-dn` | exactly | common nginx and HAProxy configs |
//! | `x-client-subject` | starts with | common proxy configs |
//! | `x-client-issuer` | starts with | common proxy configs |
//! | `x-client-serial` | starts with | common proxy configs |
//! | `x-client-fingerprint` | starts with | common proxy configs |
//! | `x-client-san` | starts with | common proxy configs (`X-Client-SAN`, `X-Client-SANs`) |
//! | `x-client-cn` | exactly | common proxy configs |
//! | `x-forwarded-ssl-client-` | starts with | Traefik 1.x (`X-Forwarded-Ssl-Client-Cert`, `-Infos`) |
//! | `x-forwarded-tls-client-cert` | starts with | Traefik (`X-Forwarded-Tls-Client-Cert`, `-Info`) |
//! | `x-amzn-mtls-` | starts with | AWS Application Load Balancer (`X-Amzn-Mtls-Clientcert`, `-Subject`, `-Issuer`, `-Serial-Number`, `-Validity`, `-Leaf`) |
//! | `x-arr-clientcert` | exactly | IIS Application Request Routing, Azure App Service |
//! | `cf-client-cert-` | starts with | Cloudflare certificate forwarding (`Cf-Client-Cert-Der-Base64`, `-Sha256`) |
//! | `cf-cert-` | starts with | Cloudflare's TLS client auth managed transform (`Cf-Cert-Verified`, `Cf-Cert-Subject-Dn`, ...) |
//! | `l5d-client-id` | exactly | Linkerd (the meshed client's identity) |
//!
//! Without a `TrustedProxyLayer`, nothing is stripped: a service that is reached only directly and
//! never reads such headers needs none, and one that reads them needs this layer.

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
    /// Plain base64 DER in the named header, optionally followed by the rest of the chain,
    /// `,`-separated: Caddy's `{http.request.tls.client.certificate_der_base64}`
    /// (`header_up X-Client-Cert {http.request.tls.client.certificate_der_base64}`), HAProxy's
    /// `%[ssl_c_der,base64]`, and Traefik's `X-Forwarded-Tls-Client-Cert` (leaf, then chain).
    /// An empty value means the client presented no certificate.
    Base64Der(HeaderName),
}

impl ForwardedFormat {
    /// The header that carries the client certificate in this format.
    fn header(&self) -> HeaderName {
        match self {
            ForwardedFormat::Xfcc => HeaderName::from_static("x-forwarded-client-cert"),
            ForwardedFormat::Rfc9440 => HeaderName::from_static("client-cert"),
            ForwardedFormat::NginxEscapedCert(name) | ForwardedFormat::Base64Der(name) => {
                name.clone()
            }
        }
    }
}

/// RFC 9440's chain header, read after `Client-Cert`.
const CLIENT_CERT_CHAIN: HeaderName = HeaderName::from_static("client-cert-chain");

/// How a name in [`FORWARDED_HEADERS`] matches a request's header name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameMatch {
    /// The whole name.
    Exact,
    /// The start of the name: the family of headers one proxy sets.
    Prefix,
}

/// The header names (and name families) that carry a client's identity or its verification in
/// some proxy's convention, lowercase with `-`. A request's header matches with `-` or `_` at each
/// dash (some servers map `_` to `-`, so both spellings can reach a handler). The module docs list
/// the same table; a unit test keeps the two equal, so that what the docs promise is what runs.
///
/// Families are prefixes so that every field a proxy can add is covered (Traefik's `-Info`, AWS
/// ALB's `-Subject`, nginx-style `X-SSL-Client-S-DN`), not only the certificate itself: a handler
/// that reads a forged `X-SSL-Client-Verify: SUCCESS` is fooled as surely as by a forged certificate.
const FORWARDED_HEADERS: [(&str, NameMatch); 23] = [
    ("x-forwarded-client-cert", NameMatch::Exact),
    ("client-cert", NameMatch::Exact),
    ("client-cert-chain", NameMatch::Exact),
    ("x-ssl-", NameMatch::Prefix),
    ("ssl-client-", NameMatch::Prefix),
    ("x-client-cert", NameMatch::Prefix),
    ("x-client-verif", NameMatch::Prefix),
    ("x-client-dn", NameMatch::Exact),
    ("x-client-s-dn", NameMatch::Exact),
    ("x-client-i-dn", NameMatch::Exact),
    ("x-forwarded-tls-client-cert", NameMatch::Prefix),
    ("x-amzn-mtls-", NameMatch::Prefix),
    ("x-arr-clientcert", NameMatch::Exact),
    ("cf-client-cert-", NameMatch::Prefix),
    ("cf-cert-", NameMatch::Prefix),
    ("l5d-client-id", NameMatch::Exact),
    ("x-client-subject", NameMatch::Prefix),
    ("x-client-issuer", NameMatch::Prefix),
    ("x-client-serial", NameMatch::Prefix),
    ("x-client-fingerprint", NameMatch::Prefix),
    ("x-client-san", NameMatch::Prefix),
    ("x-client-cn", NameMatch::Exact),
    ("x-forwarded-ssl-client-", NameMatch::Prefix),
];

/// Whether `name` (a request header name: lowercase, as `http` stores it) is `pattern` (lowercase
/// with `-`), with `_` accepted for each `-`.
fn name_matches(name: &[u8], pattern: &[u8], how: NameMatch) -> bool {
    let long_enough = match how {
        NameMatch::Exact => name.len() == pattern.len(),
        NameMatch::Prefix => name.len() >= pattern.len(),
    };
    long_enough
        && name
            .iter()
            .zip(pattern)
            .all(|(&n, &p)| n == p || (p == b'-' && n == b'_'))
}

/// `name` with `-` for every `_`, the form the matcher compares against.
fn dashed(name: &HeaderName) -> String {
    name.as_str().replace('_', "-")
}

/// Whether `name` is one of the [`FORWARDED_HEADERS`].
fn is_forwarded_header(name: &[u8]) -> bool {
    FORWARDED_HEADERS
        .iter()
        .any(|&(pattern, how)| name_matches(name, pattern.as_bytes(), how))
}

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
    /// The configured header and the names added with [`TrustedProxyLayer::also_strip`], with
    /// `-` for every `_`: stripped like [`FORWARDED_HEADERS`], whichever of the two a request or
    /// the configuration spells.
    own_names: Vec<String>,
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
    /// it is never trusted. An IPv4-mapped IPv6 peer (`::ffff:10.1.2.3`, an IPv4 client as a
    /// dual-stack listener on `[::]` sees it) is the IPv4 peer it maps: it matches `10.1.0.0/16`.
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
                own_names: vec![dashed(&format.header())],
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

    /// Strips `name` too, from every request, as the [well-known names](self#the-headers-it-strips)
    /// are: for a header your own proxy sets with the client's identity or its verification result
    /// under a name of its own (`proxy_set_header X-Caller-Dn $ssl_client_s_dn;`). `_` in the
    /// request matches `-` in `name` and the other way round, as for the built-in names. The
    /// configured format's header is always stripped and needs no call.
    ///
    /// ```
    /// use http::HeaderName;
    /// use mtls_tower::{ForwardedFormat, Policy, TrustedProxyLayer};
    ///
    /// let layer = TrustedProxyLayer::by_identity(
    ///     Policy::spiffe_id("spiffe://prod.example/ns/edge/sa/proxy").unwrap(),
    ///     ForwardedFormat::Xfcc,
    /// )
    /// .also_strip(HeaderName::from_static("x-caller-dn"));
    /// assert!(layer.strips(&HeaderName::from_static("x_caller_dn")));
    /// ```
    // A `HeaderName`, like the rest of the API: a name that is not a header name cannot be given.
    #[allow(clippy::needless_pass_by_value)]
    pub fn also_strip(self, name: HeaderName) -> Self {
        self.map(|c| c.own_names.push(dashed(&name)))
    }

    /// Whether this layer removes a request header called `name` before the handler runs: one of
    /// the [well-known names](self#the-headers-it-strips), the configured format's header, or one
    /// added with [`also_strip`](Self::also_strip).
    pub fn strips(&self, name: &HeaderName) -> bool {
        self.config.strips(name.as_str().as_bytes())
    }

    /// When a trusted proxy sends no header, keep the proxy's own identity (instead of "no client
    /// certificate"). For proxies that also call the service on their own behalf. A header that
    /// says the client presented no certificate (nginx's, Caddy's or HAProxy's empty value, an
    /// XFCC header without elements) still means no certificate: an anonymous client never runs
    /// as the proxy.
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

impl ProxyConfig {
    /// Whether a request header called `name` is removed before the handler runs.
    fn strips(&self, name: &[u8]) -> bool {
        is_forwarded_header(name)
            || self
                .own_names
                .iter()
                .any(|own| name_matches(name, own.as_bytes(), NameMatch::Exact))
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
            Trust::Addresses(nets) => {
                req.extensions()
                    .get::<PeerAddr>()
                    .is_some_and(|PeerAddr(addr)| {
                        // On a dual-stack listener (`[::]`), an IPv4 peer is seen as `::ffff:a.b.c.d`:
                        // it is the IPv4 peer `a.b.c.d`, and matches the IPv4 networks. The address
                        // as seen matches too, for networks written in the mapped form.
                        let ip = addr.ip();
                        let canonical = ip.to_canonical();
                        nets.iter().any(|n| n.contains(ip) || n.contains(canonical))
                    })
            }
        };
        if !trusted {
            static STRIPPED: Limiter = Limiter::new();
            if strip_forwarded(req.headers_mut(), config) {
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
            Ok(Forwarded::Client(identity)) => {
                let cert = ClientCert::from_trusted_proxy(identity, config.header.clone());
                req.extensions_mut().insert(cert);
            }
            Ok(Forwarded::NoHeader) => {
                if !config.proxy_identity_without_header {
                    // No header from the proxy: the client presented no certificate to it.
                    req.extensions_mut().remove::<ClientCert>();
                }
            }
            Ok(Forwarded::NoCertificate) => {
                // SECURITY: the proxy said its client has no certificate. Keeping the proxy's
                // own identity here would let any anonymous client act as the proxy.
                req.extensions_mut().remove::<ClientCert>();
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
        strip_forwarded(req.headers_mut(), config);
        ResponseFuture::future(self.inner.call(req))
    }
}

/// Removes every header that [`ProxyConfig::strips`]; returns whether there was any.
fn strip_forwarded(headers: &mut HeaderMap, config: &ProxyConfig) -> bool {
    // Every name is looked at, not a fixed list looked up: the families are prefixes, and each
    // can come with `-` or `_`. The common case (nothing to strip) allocates nothing.
    let found: Vec<HeaderName> = headers
        .keys()
        .filter(|name| config.strips(name.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in &found {
        // `HeaderMap::remove` removes every value of the name, not just the first.
        headers.remove(name);
    }
    !found.is_empty()
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

/// What a trusted proxy's request says about its client.
enum Forwarded {
    /// The client's certificate.
    Client(Arc<ClientIdentity>),
    /// No header at all: the client presented no certificate, or (with
    /// `allow_proxy_identity_without_header`) the proxy calls on its own behalf.
    NoHeader,
    /// A header saying that the client presented no certificate (an empty value: nginx, Caddy
    /// and HAProxy send one). Never the proxy's own identity, whatever the configuration:
    /// a client without a certificate must not run as the proxy.
    NoCertificate,
}

/// What the trusted proxy forwarded.
fn forwarded_identity(
    headers: &HeaderMap,
    config: &ProxyConfig,
) -> Result<Forwarded, ProxyHeaderError> {
    let header = &config.header;
    // The header name is copied into the error only when there is one.
    let malformed = |error| ProxyHeaderError::Malformed {
        header: header.clone(),
        error,
    };
    let chain: Vec<CertificateDer<'static>> = match &config.format {
        ForwardedFormat::Rfc9440 => {
            let Some(value) = single_value(headers, header)? else {
                return Ok(Forwarded::NoHeader);
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
                return Ok(Forwarded::NoHeader);
            };
            if value.is_empty() {
                // nginx sends an empty value when the client presented no certificate.
                return Ok(Forwarded::NoCertificate);
            }
            vec![forwarded::parse_nginx_escaped_cert(value).map_err(malformed)?]
        }
        ForwardedFormat::Base64Der(_) => {
            let Some(value) = single_value(headers, header)? else {
                return Ok(Forwarded::NoHeader);
            };
            if value.is_empty() {
                // Caddy and HAProxy send an empty value when the client presented no certificate.
                return Ok(Forwarded::NoCertificate);
            }
            forwarded::parse_base64_der(value).map_err(malformed)?
        }
        ForwardedFormat::Xfcc => {
            // Several header lines form one comma-separated list (RFC 9110 §5.3); the usual single
            // line is parsed in place.
            let not_text = || ProxyHeaderError::NotText {
                header: header.clone(),
            };
            let mut lines = headers.get_all(header).iter();
            let Some(first) = lines.next() else {
                return Ok(Forwarded::NoHeader);
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
                // A header with no element: no certificate, as for the other formats' empty value.
                return Ok(Forwarded::NoCertificate);
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
    Ok(Forwarded::Client(Arc::new(ClientIdentity::from_der_chain(
        &chain,
    )?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of the module docs' table of stripped headers: (name, how it matches).
    fn documented_names() -> Vec<(String, NameMatch)> {
        include_str!("proxy.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `"))
            .map(|row| {
                let (name, rest) = row.split_once('`').unwrap();
                let how = match rest.split('|').nth(1).unwrap().trim() {
                    "exactly" => NameMatch::Exact,
                    "starts with" => NameMatch::Prefix,
                    other => panic!("unknown match {other:?} for {name}"),
                };
                (name.to_owned(), how)
            })
            .collect()
    }

    #[test]
    fn the_documented_table_of_stripped_headers_is_the_one_the_code_uses() {
        let code: Vec<(String, NameMatch)> = FORWARDED_HEADERS
            .iter()
            .map(|&(name, how)| (name.to_owned(), how))
            .collect();
        let mut documented = documented_names();
        let mut code_sorted = code.clone();
        documented.sort_by(|a, b| a.0.cmp(&b.0));
        code_sorted.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(documented, code_sorted);
    }

    #[test]
    fn the_layer_debug_shows_whom_it_trusts_and_the_format() {
        let layer = TrustedProxyLayer::by_identity(
            Policy::spiffe_id("spiffe://prod.example/ns/edge/sa/proxy").unwrap(),
            ForwardedFormat::Xfcc,
        );
        let text = format!("{layer:?}");
        assert!(text.starts_with("TrustedProxyLayer"), "{text}");
        assert!(
            text.contains("spiffe://prod.example/ns/edge/sa/proxy"),
            "{text}"
        );
        assert!(text.contains("Xfcc"), "{text}");
        let by_address = TrustedProxyLayer::by_peer_address(
            [IpNetwork::parse("10.0.0.0/8").unwrap()],
            ForwardedFormat::Rfc9440,
        );
        assert!(format!("{by_address:?}").contains("10.0.0.0/8"));
        let service = layer.layer("inner");
        let text = format!("{service:?}");
        assert!(text.starts_with("TrustedProxy"), "{text}");
        assert!(text.contains("\"inner\""), "{text}");
    }

    /// A service that is never ready.
    #[derive(Clone)]
    struct NeverReady;

    impl Service<Request<()>> for NeverReady {
        type Response = Response<&'static str>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            std::future::ready(Ok(Response::new("called")))
        }
    }

    #[test]
    fn the_service_is_ready_only_when_the_inner_one_is() {
        // Back-pressure from the inner service (a concurrency limit, a load shedder) must reach
        // the caller, never be swallowed by this layer.
        let layer = TrustedProxyLayer::by_identity(
            Policy::spiffe_id("spiffe://prod.example/ns/edge/sa/proxy").unwrap(),
            ForwardedFormat::Xfcc,
        );
        let mut service = layer.layer(NeverReady);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(service.poll_ready(&mut cx).is_pending());
    }

    #[test]
    fn an_exact_name_matches_only_itself() {
        assert!(name_matches(
            b"client-cert",
            b"client-cert",
            NameMatch::Exact
        ));
        assert!(!name_matches(
            b"client-cert-x",
            b"client-cert",
            NameMatch::Exact
        ));
        assert!(!name_matches(
            b"client-cer",
            b"client-cert",
            NameMatch::Exact
        ));
    }

    #[test]
    fn a_prefix_matches_the_names_that_start_with_it() {
        assert!(name_matches(
            b"x-ssl-client-verify",
            b"x-ssl-",
            NameMatch::Prefix
        ));
        assert!(name_matches(b"x-ssl-", b"x-ssl-", NameMatch::Prefix));
        assert!(!name_matches(b"x-ssl", b"x-ssl-", NameMatch::Prefix));
        assert!(!name_matches(b"x-sslx", b"x-ssl-", NameMatch::Prefix));
    }

    #[test]
    fn an_underscore_stands_for_a_dash_and_for_nothing_else() {
        assert!(name_matches(b"x_ssl_cert", b"x-ssl-", NameMatch::Prefix));
        assert!(name_matches(
            b"client_cert",
            b"client-cert",
            NameMatch::Exact
        ));
        // `_` is not a wildcard: it matches a `-` only.
        assert!(!name_matches(
            b"client_cert",
            b"clientscert",
            NameMatch::Exact
        ));
        // And a `-` in the request does not match an `_` in a user's name.
        assert!(!name_matches(
            b"x-caller-dn",
            b"x_caller_dn",
            NameMatch::Exact
        ));
    }

    #[test]
    fn common_request_headers_are_not_forwarded_identity_headers() {
        for name in [
            "host",
            "content-type",
            "cookie",
            "authorization",
            "x-client-id",
            "x-client-ip",
            "x-forwarded-for",
            "x-request-id",
            "cf-connecting-ip",
            "l5d-dst-override",
            "client-id",
        ] {
            assert!(!is_forwarded_header(name.as_bytes()), "{name}");
        }
    }
}
