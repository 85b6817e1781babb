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
//! let policy = Policy::san_dns("*.billing.internal").unwrap();
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
//! let status = |req| async { app.clone().oneshot(req).await.unwrap().status() };
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
//! # Features
//! - `axum` (default): extractors and `IntoResponse` for [`CertRejection`].
//! - `serde`: policies from configuration files.
//! - `testing`: re-exports the test PKI as [`testing`].

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod cert;
#[cfg(feature = "axum")]
mod extract;
mod layer;
mod rejection;

pub use cert::{CertSource, ClientCert, RequestClientCertExt};
pub use layer::{RequireClientCert, RequireClientCertLayer, ResponseFuture};
pub use rejection::{CertRejection, DefaultRejection, RejectionKind, RejectionResponse};

pub use mtls_core;
pub use mtls_core::{ClientIdentity, Decision, DenyReason, Policy, PolicyError};

/// The test PKI of `mtls-core` (feature `testing`).
#[cfg(feature = "testing")]
pub use mtls_core::testing;

#[cfg(test)]
mod tests;
