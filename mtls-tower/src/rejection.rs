//! Why a request was rejected, and the responses sent for it.

use std::fmt;

use http::{header, HeaderValue, Response, StatusCode};
use mtls_core::DenyReason;

/// Why [`RequireClientCert`](crate::RequireClientCert) (or an extractor) rejected a request.
///
/// Put into the rejection response's extensions so that outer layers can log or count it, and
/// logged as a `tracing` warning. It names policy rules: never send it to the client.
///
/// ```
/// # use mtls_tower::{CertRejection, RejectionKind};
/// fn log_rejection(res: &http::Response<()>) {
///     if let Some(rejection) = res.extensions().get::<CertRejection>() {
///         match rejection.kind() {
///             RejectionKind::MissingCertificate => eprintln!("no client certificate"),
///             RejectionKind::PolicyDenied(reason) => eprintln!("denied: {reason}"),
///             _ => eprintln!("{rejection}"),
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRejection {
    kind: RejectionKind,
    status: StatusCode,
}

/// The kind of a [`CertRejection`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The request carries no verified client certificate: a plaintext listener, optional client
    /// authentication at the handshake, or a server that was never set up for mutual TLS. Or
    /// `axum::serve(mtls_listener, app)` without `MtlsMakeService`, whose requests never carry
    /// the certificate; the listener then logs a warning with the fix.
    MissingCertificate,
    /// The certificate does not satisfy the policy.
    PolicyDenied(DenyReason),
    /// The certificate (or a certificate of its chain) expired after the connection's handshake:
    /// an open connection, or a resumed TLS session, outlived it. Answered as
    /// [`MissingCertificate`](Self::MissingCertificate) is (401, `UNAUTHENTICATED`): the
    /// client needs a new one.
    CertificateExpired,
    /// The certificate's `notBefore` is in the future (a forwarded certificate, or a clock that
    /// went back since the handshake). Answered with 401.
    CertificateNotYetValid,
}

impl CertRejection {
    pub(crate) fn new(kind: RejectionKind, status: StatusCode) -> CertRejection {
        CertRejection { kind, status }
    }

    pub(crate) fn with_status(self, status: StatusCode) -> CertRejection {
        CertRejection { status, ..self }
    }

    /// What went wrong.
    pub fn kind(&self) -> &RejectionKind {
        &self.kind
    }

    /// The status the layer answers with: 401 without a certificate, 403 on a denial (404 for both in
    /// not-found mode).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The policy's reason, for a denial.
    pub fn deny_reason(&self) -> Option<&DenyReason> {
        match &self.kind {
            RejectionKind::PolicyDenied(reason) => Some(reason),
            RejectionKind::MissingCertificate
            | RejectionKind::CertificateExpired
            | RejectionKind::CertificateNotYetValid => None,
        }
    }
}

impl fmt::Display for CertRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RejectionKind::MissingCertificate => f.write_str("no verified client certificate"),
            RejectionKind::CertificateExpired => {
                f.write_str("the client certificate or its chain has expired")
            }
            RejectionKind::CertificateNotYetValid => {
                f.write_str("the client certificate is not valid yet")
            }
            RejectionKind::PolicyDenied(reason) => {
                write!(f, "client certificate denied by policy: {reason}")
            }
        }
    }
}

impl std::error::Error for CertRejection {}

/// Builds the response sent for a rejection.
///
/// Implemented by [`DefaultRejection`] and by every `Fn(&CertRejection) -> Response<B> + Clone`,
/// so [`with_rejection_response`](crate::RequireClientCertLayer::with_rejection_response) takes a
/// closure. Whatever it returns, the layer adds the [`CertRejection`] to the response's extensions.
pub trait RejectionResponse<B>: Clone {
    /// The response for `rejection`. Keep policy details out of it: they help an attacker map
    /// what each certificate may reach.
    fn response(&self, rejection: &CertRejection) -> Response<B>;
}

impl<B, F> RejectionResponse<B> for F
where
    F: Fn(&CertRejection) -> Response<B> + Clone,
{
    fn response(&self, rejection: &CertRejection) -> Response<B> {
        self(rejection)
    }
}

/// The default rejection responses: the status and a short fixed body that says nothing about the
/// policy or the certificate, as plain text or as `application/problem+json` (RFC 9457).
///
/// A 404 (not-found mode) is the exception in both styles: an empty body and no headers, exactly
/// what axum answers for a route that does not exist, so that a hidden route cannot be told from
/// a missing one by its body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultRejection {
    problem_json: bool,
}

impl DefaultRejection {
    /// Plain-text bodies (`client certificate required`, `forbidden`; a 404 is empty).
    pub const fn text() -> DefaultRejection {
        DefaultRejection {
            problem_json: false,
        }
    }

    /// `application/problem+json` bodies with `type`, `title` and `status` only.
    pub const fn problem_json() -> DefaultRejection {
        DefaultRejection { problem_json: true }
    }

    /// The fixed body for a status, and its content type.
    fn body(&self, status: StatusCode) -> (&'static str, &'static str) {
        if self.problem_json {
            let body = match status {
                StatusCode::UNAUTHORIZED => {
                    r#"{"type":"about:blank","title":"Client certificate required","status":401}"#
                }
                _ => r#"{"type":"about:blank","title":"Forbidden","status":403}"#,
            };
            (body, "application/problem+json")
        } else {
            let body = match status {
                StatusCode::UNAUTHORIZED => "client certificate required\n",
                _ => "forbidden\n",
            };
            (body, "text/plain; charset=utf-8")
        }
    }
}

impl<B: From<&'static str> + 'static> RejectionResponse<B> for DefaultRejection {
    fn response(&self, rejection: &CertRejection) -> Response<B> {
        if rejection.status() == StatusCode::NOT_FOUND {
            // As axum's fallback for a missing route: the status, an empty body, no headers.
            let mut res = Response::new(not_found_body());
            *res.status_mut() = StatusCode::NOT_FOUND;
            return res;
        }
        let (body, content_type) = self.body(rejection.status());
        fixed_response(rejection.status(), body, content_type)
    }
}

/// The body of a not-found rejection: empty, and, for an axum body, of no stated length.
///
/// Security: a hidden route must not be told from a missing one. axum's fallback for a missing
/// route answers `HEAD` without a `content-length`, while a response that leaves a route carries
/// the length its body states (axum sets it, then drops the body for `HEAD`). An empty body of
/// unknown length gets no `content-length` from axum, and `GET` still gets hyper's
/// `content-length: 0`, as the fallback does; `tests/tests/hidden.rs` compares the bytes.
fn not_found_body<B: From<&'static str> + 'static>() -> B {
    #[cfg(feature = "axum")]
    {
        let body: Box<dyn std::any::Any> = Box::new(axum::body::Body::new(EmptyOfUnknownLength));
        if let Ok(body) = body.downcast::<B>() {
            return *body;
        }
    }
    B::from("")
}

/// An empty body whose size hint says nothing (see [`not_found_body`]).
#[cfg(feature = "axum")]
struct EmptyOfUnknownLength;

#[cfg(feature = "axum")]
impl http_body::Body for EmptyOfUnknownLength {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        true
    }
}

/// A response with a fixed body, for rejections.
pub(crate) fn fixed_response<B: From<&'static str>>(
    status: StatusCode,
    body: &'static str,
    content_type: &'static str,
) -> Response<B> {
    let mut res = Response::new(B::from(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for CertRejection {
    /// The default plain-text response, with the rejection in its extensions.
    fn into_response(self) -> axum_core::response::Response {
        let mut res: axum_core::response::Response =
            RejectionResponse::response(&DefaultRejection::text(), &self);
        res.extensions_mut().insert(self);
        res
    }
}
