//! Mutual TLS that is real for Axum and Tower services: enforce, per request, *which* client may
//! call, proven by its certificate.
//!
//! - [`ClientCert`]: the connection's verified client identity, as a request extension and (feature
//!   `axum`) an extractor.
//! - [`RequireClientCertLayer`]: a Tower layer that rejects requests without a verified certificate
//!   (401) or whose certificate fails a [`Policy`] (403, or 404), fail-closed, with the reason in
//!   the response extensions and the log but never in the body.
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::{Request, StatusCode};
//! use mtls_core::testing::TestCa;
//! use mtls_tower::{ClientCert, ClientIdentity, Policy, RequestClientCertExt, RequireClientCertLayer};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let policy = Policy::san("*.billing.internal").unwrap();
//! let app = Router::new()
//!     .route("/invoices", get(|cert: ClientCert| async move { format!("hello {}", cert.subject()) }))
//!     .layer(RequireClientCertLayer::new(policy));
//!
//! let ca = TestCa::new("Example CA");
//! let billing = ca.leaf().dns("api.billing.internal").build().identity();
//! let web = ca.leaf().dns("www.web.internal").build().identity();
//!
//! let request = |identity: Option<ClientIdentity>| {
//!     let req = Request::get("/invoices").body(Body::empty()).unwrap();
//!     match identity {
//!         Some(id) => req.with_client_cert(id), // the server does this from the handshake
//!         None => req,
//!     }
//! };
//! let status = |req: Request<Body>| async { app.clone().oneshot(req).await.unwrap().status() };
//! assert_eq!(status(request(Some(billing))).await, StatusCode::OK);
//! assert_eq!(status(request(None)).await, StatusCode::UNAUTHORIZED);
//! assert_eq!(status(request(Some(web))).await, StatusCode::FORBIDDEN);
//! # });
//! ```
//!
//! In production, the `ClientCert` is put on each request by the server from the TLS handshake;
//! in tests, [`RequestClientCertExt::with_client_cert`] does it with a certificate from
//! `mtls_core::testing` (feature `testing`), no TLS involved.
//!
//! # Serving mutual TLS
//!
//! [`MtlsConfig`] builds a rustls server configuration that pins the client CA bundle, requires a
//! client certificate with the clientAuth EKU, speaks TLS 1.3 only and checks the CRLs you give it
//! (for the whole chain); every loosening
//! is a named opt-in. [`MtlsListener`] accepts TCP and runs each handshake in a task of its own,
//! with a timeout and a bound on handshakes in flight, and parses the verified chain once per
//! connection; [`serve`] (or `axum::serve` with [`MtlsMakeService`]) puts that [`ClientCert`] on
//! every request of the connection.
//!
//! ```
//! use axum::{routing::get, Router};
//! use mtls_core::testing::TestPki;
//! use mtls_tower::testing::Outcome;
//! use mtls_tower::{ClientCert, MtlsConfig, MtlsListener, Policy, RequireClientCertLayer};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let pki = TestPki::new();
//! let server_cert = pki.ca.server_cert("localhost");
//! let config = MtlsConfig::builder()
//!     .server_cert(server_cert.chain().to_vec(), server_cert.key_der()) // or _pem_files(..)
//!     .client_ca_certs(vec![pki.ca.cert_der().clone()])                 // or client_ca_pem_file(..)
//!     .build()?;
//!
//! let app = Router::new()
//!     .route("/", get(|cert: ClientCert| async move { format!("hello {}", cert.subject()) }))
//!     .layer(RequireClientCertLayer::new(Policy::cn("alice")?));
//!
//! let listener = MtlsListener::bind("127.0.0.1:0", config).await?;
//! let addr = listener.local_addr();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(mtls_tower::serve_with_shutdown(listener, app, async { let _ = stopped.await; }));
//!
//! // A client with a certificate from the pinned CA (mtls_tower::testing, feature `testing`):
//! let alice = pki.ca.leaf().common_name("alice").build();
//! let client = mtls_tower::testing::TestClient::new(&pki.ca).with_cert(&alice);
//! assert_eq!(client.get(addr, "/").await, Outcome::Status(200, "hello CN=alice".into()));
//! // One from the same CA that the policy does not allow, and one from another CA:
//! let bob = pki.ca.leaf().common_name("bob").build();
//! assert_eq!(client.clone().with_cert(&bob).get(addr, "/").await.status(), Some(403));
//! let mallory = pki.rogue_ca.leaf().common_name("alice").build();
//! assert!(client.with_cert(&mallory).get(addr, "/").await.refused_with("UnknownCA"));
//!
//! stop.send(()).unwrap();
//! server.await??;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! See the [`deploying`] guide for what is checked where, rotation, CRLs and proxies.
//!
//! # Features
//! - `axum` (default): extractors, `IntoResponse` for [`CertRejection`], and with `server` the
//!   `axum::serve` integration ([`serve`], [`MtlsMakeService`]).
//! - `server` (default): [`MtlsConfig`], [`MtlsListener`], [`AddClientCert`] (tokio, rustls).
//! - `ring` (default) / `aws-lc-rs`: the crypto provider [`MtlsConfig`] uses unless given one.
//! - `tonic`: gRPC. [`grpc`][grpc-module]: rejections as gRPC statuses, the certificate in tonic
//!   handlers, clients' deadlines (`grpc::GrpcTimeoutLayer`),
//!   `#[require_cert]` on service methods; [`serve`] takes a tonic `Routes`.
//! - `serde`: policies from configuration files.
//! - `testing`: [`testing`][testing-module], the test PKI and an HTTPS test client that presents
//!   a chosen client certificate.
//!
//! The attribute: [`require_cert`][require-cert] (its full syntax). The policy keys, the same
//! in code, attribute and configuration files: [`mtls_core::policy`], section "Rules".
//!
// Links to feature-gated modules: intra-doc links when the feature is on, docs.rs otherwise, so
// that `cargo doc` is clean with any feature set.
#![cfg_attr(feature = "tonic", doc = "[grpc-module]: crate::grpc")]
#![cfg_attr(
    not(feature = "tonic"),
    doc = "[grpc-module]: https://docs.rs/mtls-tower/latest/mtls_tower/grpc/index.html"
)]
#![cfg_attr(feature = "macros", doc = "[require-cert]: crate::require_cert")]
#![cfg_attr(
    not(feature = "macros"),
    doc = "[require-cert]: https://docs.rs/mtls-tower/latest/mtls_tower/attr.require_cert.html"
)]
#![cfg_attr(feature = "testing", doc = "[testing-module]: crate::testing")]
#![cfg_attr(
    not(feature = "testing"),
    doc = "[testing-module]: https://docs.rs/mtls-tower/latest/mtls_tower/testing/index.html"
)]
// The same for items of the `server` feature, named in the text above as shortcut links: with
// the feature they resolve as intra-doc links, without it these definitions take over.
#![cfg_attr(
    not(feature = "server"),
    doc = "[`MtlsConfig`]: https://docs.rs/mtls-tower/latest/mtls_tower/struct.MtlsConfig.html"
)]
#![cfg_attr(
    not(feature = "server"),
    doc = "[`MtlsListener`]: https://docs.rs/mtls-tower/latest/mtls_tower/struct.MtlsListener.html"
)]
#![cfg_attr(
    not(feature = "server"),
    doc = "[`AddClientCert`]: https://docs.rs/mtls-tower/latest/mtls_tower/struct.AddClientCert.html"
)]
#![cfg_attr(
    not(all(feature = "server", feature = "axum")),
    doc = "[`serve`]: https://docs.rs/mtls-tower/latest/mtls_tower/fn.serve.html"
)]
#![cfg_attr(
    not(all(feature = "server", feature = "axum")),
    doc = "[`MtlsMakeService`]: https://docs.rs/mtls-tower/latest/mtls_tower/struct.MtlsMakeService.html"
)]
// docs.rs (`--cfg docsrs`, nightly): a badge on each item that needs a feature. `doc_cfg` took
// over `doc_auto_cfg` (removed in Rust 1.92) and marks feature-gated items by itself.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "server", feature = "client"))]
mod ca_windows;
mod cert;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "axum")]
mod extract;
#[cfg(feature = "tonic")]
pub mod grpc;
mod layer;
pub mod logging;
#[cfg(any(feature = "server", feature = "client"))]
mod pem_files;
pub mod proxy;
mod rejection;
#[cfg(feature = "server")]
mod server;

#[doc(hidden)]
#[cfg(feature = "macros")]
pub mod __private;
#[cfg(feature = "macros")]
mod guards;

pub use cert::{CertSource, ClientCert, RequestClientCertExt};
#[cfg(feature = "client")]
pub use client::{ClientReloadHandle, MtlsClientConfig, MtlsClientConfigBuilder, ServerDenied};
#[cfg(feature = "macros")]
pub use guards::{check_policies, PolicyCheckError};
pub use layer::{RequireClientCert, RequireClientCertLayer, ResponseFuture};
#[cfg(any(feature = "server", feature = "client"))]
pub use pem_files::{ConfigError, ConfigSide};
pub use proxy::{ForwardedFormat, PeerAddr, ProxyHeaderError, TrustedProxy, TrustedProxyLayer};
pub use rejection::{CertRejection, DefaultRejection, RejectionKind, RejectionResponse};
#[cfg(feature = "server")]
pub use server::limits;
#[cfg(all(feature = "server", feature = "axum"))]
pub use server::{serve, serve_with_shutdown, MtlsMakeService, RequestBody, RequestBodyError};
#[cfg(feature = "server")]
pub use server::{
    AddClientCert, CertExpiry, MtlsConfig, MtlsConfigBuilder, MtlsListener, MtlsListenerBuilder,
    MtlsStream, ReloadHandle, DEFAULT_EXPIRY_WARNING, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_HANDSHAKES,
};

pub use mtls_core;

pub use mtls_core::{ClientIdentity, Decision, DenyReason, Policy, PolicyError};
/// `#[require_cert(..)]`: a per-handler (or per-gRPC-method) client-certificate policy whose
/// literals are checked at compile time (feature `macros`, on by default).
///
/// ```
/// use axum::{routing::get, Router};
/// use http::{Request, StatusCode};
/// use mtls_core::testing::TestCa;
/// use mtls_tower::{require_cert, ClientCert, RequestClientCertExt};
/// use tower::ServiceExt;
///
/// #[require_cert(san = "*.billing.internal", not(ou = "contractors"))]
/// async fn invoices(cert: ClientCert) -> String {
///     format!("invoices for {}", cert.subject())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let app = Router::new().route("/invoices", get(invoices));
/// let ca = TestCa::new("Example CA");
/// let call = |id| {
///     let app = app.clone();
///     async move {
///         let req = Request::get("/invoices").with_client_cert(id).body(axum::body::Body::empty()).unwrap();
///         app.oneshot(req).await.unwrap().status()
///     }
/// };
/// assert_eq!(call(ca.leaf().dns("api.billing.internal").build().identity()).await, StatusCode::OK);
/// assert_eq!(call(ca.leaf().dns("www.web.internal").build().identity()).await, StatusCode::FORBIDDEN);
/// # });
/// ```
///
#[cfg(feature = "macros")]
#[doc(inline)]
pub use mtls_macros::require_cert;

#[cfg(feature = "testing")]
pub mod testing;

/// A guide to deploying mutual TLS with this crate: what is checked at the handshake and what per
/// request, certificates, rotation, CRLs, proxies, logs. (Documentation only.)
pub mod deploying {
    #![doc = include_str!("../docs/deploying.md")]
    // Links to `server` items in the guide: intra-doc with the feature, docs.rs without it.
    #![doc = ""]
    #![cfg_attr(feature = "server", doc = "[reload-handle]: crate::ReloadHandle")]
    #![cfg_attr(
        not(feature = "server"),
        doc = "[reload-handle]: https://docs.rs/mtls-tower/latest/mtls_tower/struct.ReloadHandle.html"
    )]
    #![cfg_attr(feature = "server", doc = "[limits-module]: crate::limits")]
    #![cfg_attr(
        not(feature = "server"),
        doc = "[limits-module]: https://docs.rs/mtls-tower/latest/mtls_tower/limits/index.html"
    )]
}

#[cfg(test)]
mod tests;

/// This crate's README (its crates.io page), compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
