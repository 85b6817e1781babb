//! axum extractors for [`ClientCert`] (feature `axum`).

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::cert::ClientCert;
use crate::logging::Limiter;
use crate::rejection::CertRejection;
#[cfg(doc)]
use crate::rejection::RejectionKind;

/// `ClientCert` as an extractor: the connection's verified certificate, or a 401 rejection
/// (a [`CertRejection`] of kind [`MissingCertificate`](RejectionKind::MissingCertificate), or
/// [`CertificateExpired`](RejectionKind::CertificateExpired) when the connection outlived it).
impl<S: Send + Sync> FromRequestParts<S> for ClientCert {
    type Rejection = CertRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match crate::cert::current(parts.extensions.get::<ClientCert>()) {
            Ok(cert) => Ok(cert.clone()),
            Err(rejection) => {
                static LIMIT: Limiter = Limiter::new();
                if let Some(suppressed) = LIMIT.admit() {
                    tracing::warn!(
                        target: "mtls_tower::reject",
                        suppressed,
                        status = 401u16,
                        method = %parts.method,
                        path = parts.uri.path(),
                        reason = %rejection,
                        "request rejected by the ClientCert extractor"
                    );
                }
                Err(rejection)
            }
        }
    }
}

/// `Option<ClientCert>` as an extractor: `None` when the request has no verified certificate, or
/// only one past its validity, for handlers that serve both.
impl<S: Send + Sync> OptionalFromRequestParts<S> for ClientCert {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        // An expired certificate is no certificate: a handler that serves both must not see it
        // as the caller's identity.
        Ok(crate::cert::current(parts.extensions.get::<ClientCert>())
            .ok()
            .cloned())
    }
}
