//! axum extractors for [`ClientCert`] (feature `axum`).

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use http::StatusCode;

use crate::cert::ClientCert;
use crate::logging::Limiter;
use crate::rejection::{CertRejection, RejectionKind};

/// `ClientCert` as an extractor: the connection's verified certificate, or a 401 rejection
/// (a [`CertRejection`] of kind [`MissingCertificate`](RejectionKind::MissingCertificate)).
impl<S: Send + Sync> FromRequestParts<S> for ClientCert {
    type Rejection = CertRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ClientCert>()
            .cloned()
            .ok_or_else(|| {
                static LIMIT: Limiter = Limiter::new();
                if let Some(suppressed) = LIMIT.admit() {
                    tracing::warn!(
                        target: "mtls_tower::reject",
                        suppressed,
                        status = 401u16,
                    method = %parts.method,
                    path = parts.uri.path(),
                        "request rejected by the ClientCert extractor: no verified client certificate"
                    );
                }
                CertRejection::new(RejectionKind::MissingCertificate, StatusCode::UNAUTHORIZED)
            })
    }
}

/// `Option<ClientCert>` as an extractor: `None` when the request has no verified certificate, for
/// handlers that serve both.
impl<S: Send + Sync> OptionalFromRequestParts<S> for ClientCert {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<ClientCert>().cloned())
    }
}
