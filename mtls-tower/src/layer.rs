//! [`RequireClientCertLayer`]: enforce a client-certificate policy in front of any Tower service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use mtls_core::{Decision, Policy};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::cert::ClientCert;
use crate::logging::Limiter;
use crate::rejection::{CertRejection, DefaultRejection, RejectionKind, RejectionResponse};

/// A [`Layer`] that lets a request through only when it carries a verified [`ClientCert`] that
/// satisfies a [`Policy`].
///
/// - no `ClientCert` in the request: **401**. This is the fail-closed answer to a server that was
///   meant to be mutual TLS and is not (a plaintext listener, optional client auth, a
///   misconfiguration);
/// - the policy denies: **403**, or **404** with [`deny_as_not_found`](Self::deny_as_not_found);
/// - otherwise the inner service is called.
///
/// Bodies reveal nothing about the policy or the certificate; the [`CertRejection`] (with the
/// policy's reason) goes into the response's extensions and into a `tracing` warning.
///
/// Layers stack: a request must pass every `RequireClientCertLayer` it goes through, so a route's
/// policy (`Router::route_layer`) adds to the router-wide one (`Router::layer`) and cannot switch
/// it off.
#[derive(Clone)]
#[must_use]
pub struct RequireClientCertLayer<R = DefaultRejection> {
    config: Arc<Enforcement>,
    responder: R,
}

/// What a layer or a `#[require_cert]` guard enforces, and how it answers: the one decision both
/// share.
#[derive(Clone)]
pub(crate) struct Enforcement {
    /// `None`: any verified certificate.
    policy: Option<Policy>,
    not_found: bool,
    shadow: bool,
}

impl fmt::Debug for Enforcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enforcement")
            .field("policy", &self.policy.as_ref().map(ToString::to_string))
            .field("not_found", &self.not_found)
            .field("shadow", &self.shadow)
            .finish()
    }
}

impl Enforcement {
    /// Report-only mode.
    #[cfg(all(feature = "tonic", feature = "macros"))]
    pub(crate) fn is_shadow(&self) -> bool {
        self.shadow
    }

    pub(crate) fn new(policy: Option<Policy>, not_found: bool, shadow: bool) -> Enforcement {
        Enforcement {
            policy,
            not_found,
            shadow,
        }
    }

    /// Judges one request: `None` lets it through; `Some` is the rejection to answer with. Every
    /// rejection is logged; in shadow mode it is logged and `None` is returned. The allow path does
    /// not allocate.
    ///
    /// `method` and `path` are only logged: the HTTP method and the URI's path (never the query),
    /// or `"grpc"` and the Rust method for a `#[require_cert]` on a tonic service method.
    pub(crate) fn judge(
        &self,
        cert: Option<&ClientCert>,
        method: &str,
        path: &str,
    ) -> Option<CertRejection> {
        let rejection = match crate::cert::current(cert) {
            // No certificate, or one past its validity: 401; in not-found mode 404, since a
            // route that answers 401 where a missing one answers 404 is not hidden.
            Err(rejection) if self.not_found => rejection.with_status(StatusCode::NOT_FOUND),
            Err(rejection) => rejection,
            Ok(cert) => {
                let policy = self.policy.as_ref()?;
                // `evaluate` allocates only to build a denial's reason.
                let Decision::Deny(reason) = policy.evaluate(cert) else {
                    return None;
                };
                let status = if self.not_found {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::FORBIDDEN
                };
                CertRejection::new(RejectionKind::PolicyDenied(reason), status)
            }
        };
        log_rejection(&rejection, cert, method, path, self.shadow);
        (!self.shadow).then_some(rejection)
    }
}

impl<R> fmt::Debug for RequireClientCertLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireClientCertLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RequireClientCertLayer {
    fn enforcing(policy: Option<Policy>) -> Self {
        RequireClientCertLayer {
            config: Arc::new(Enforcement::new(policy, false, false)),
            responder: DefaultRejection::text(),
        }
    }

    /// Requires a verified client certificate that satisfies `policy`.
    pub fn new(policy: Policy) -> Self {
        RequireClientCertLayer::enforcing(Some(policy))
    }

    /// Requires a verified client certificate, any one: for servers where the handshake's CA pin
    /// is the whole authorization, or in front of routes with their own policies.
    pub fn any_verified() -> Self {
        RequireClientCertLayer::enforcing(None)
    }

    /// Default bodies as `application/problem+json` instead of plain text.
    pub fn problem_json(self) -> Self {
        RequireClientCertLayer {
            config: self.config,
            responder: DefaultRejection::problem_json(),
        }
    }
}

impl<R> RequireClientCertLayer<R> {
    fn map_config(mut self, f: impl FnOnce(&mut Enforcement)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Answers every rejection with 404 instead of 401 or 403 (policy denials, and requests
    /// without a current certificate on a `client_auth_optional()` server), so that a client
    /// the layer turns away cannot tell a protected route from a missing one.
    ///
    /// The default 404 is axum's own for a route that does not exist: an empty body, nothing
    /// else. After `.grpc()` (feature `tonic`) it is `UNIMPLEMENTED`, as tonic answers for an
    /// unknown service. If your router has a fallback of its own, answer the same with
    /// [`with_rejection_response`](Self::with_rejection_response).
    ///
    /// Where the layer sits decides what is hidden. To hide a route for every method, wrap its
    /// whole `MethodRouter` and give it to `route_service`: the layer then answers before axum's
    /// method routing, so a method the route does not serve gets the same 404 instead of a 405
    /// that would give the route away. (`MethodRouter::layer` is not enough: axum adds an
    /// `allow` header to the answer for a method it does not serve.) `route_layer(..)` and
    /// `#[require_cert(deny = "not_found")]` hide only the methods the route serves.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use mtls_tower::{Policy, RequireClientCertLayer};
    /// use tower_layer::Layer;
    ///
    /// let hidden = RequireClientCertLayer::new(Policy::san("*.ops.internal")?).deny_as_not_found();
    /// let app: Router = Router::new()
    ///     .route("/", get(|| async { "public" }))
    ///     .route_service("/admin", hidden.layer(get(|| async { "admin" })));
    /// # Ok::<(), mtls_tower::PolicyError>(())
    /// ```
    pub fn deny_as_not_found(self) -> Self {
        self.map_config(|c| c.not_found = true)
    }

    /// Report-only mode: evaluate and log what would be rejected (missing certificates included),
    /// and let every request through. For rolling a policy out on live traffic; it enforces
    /// nothing.
    pub fn shadow(self) -> Self {
        self.map_config(|c| c.shadow = true)
    }

    /// Replaces the rejection responses. `f` gets the [`CertRejection`] (with its suggested
    /// status) and returns the response; the layer adds the rejection to its extensions.
    ///
    /// ```
    /// use http::{Response, StatusCode};
    /// use mtls_tower::{CertRejection, RequireClientCertLayer};
    ///
    /// let layer = RequireClientCertLayer::any_verified().with_rejection_response(
    ///     |rejection: &CertRejection| {
    ///         Response::builder()
    ///             .status(rejection.status())
    ///             .header("cache-control", "no-store")
    ///             .body(axum::body::Body::from("nope"))
    ///             .unwrap()
    ///     },
    /// );
    /// ```
    pub fn with_rejection_response<F>(self, f: F) -> RequireClientCertLayer<F> {
        RequireClientCertLayer {
            config: self.config,
            responder: f,
        }
    }

    /// The policy, or `None` for [`any_verified`](RequireClientCertLayer::any_verified).
    pub fn policy(&self) -> Option<&Policy> {
        self.config.policy.as_ref()
    }
}

impl<S, R: Clone> Layer<S> for RequireClientCertLayer<R> {
    type Service = RequireClientCert<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireClientCert {
            inner,
            config: self.config.clone(),
            responder: self.responder.clone(),
        }
    }
}

/// The service made by [`RequireClientCertLayer`].
#[derive(Clone)]
pub struct RequireClientCert<S, R = DefaultRejection> {
    inner: S,
    config: Arc<Enforcement>,
    responder: R,
}

impl<S: fmt::Debug, R> fmt::Debug for RequireClientCert<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireClientCert")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, R> RequireClientCert<S, R> {
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

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for RequireClientCert<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: RejectionResponse<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let cert = req.extensions().get::<ClientCert>();
        // Only the path is logged: query strings may carry secrets.
        let Some(rejection) = self
            .config
            .judge(cert, req.method().as_str(), req.uri().path())
        else {
            return ResponseFuture::future(self.inner.call(req));
        };
        let mut response = self.responder.response(&rejection);
        response.extensions_mut().insert(rejection);
        ResponseFuture::rejected(response)
    }
}

/// The warn event for a rejection (or, in shadow mode, a would-be rejection).
fn log_rejection(
    rejection: &CertRejection,
    cert: Option<&ClientCert>,
    method: &str,
    path: &str,
    shadow: bool,
) {
    let subject = cert.map(|c| c.subject().as_str());
    let spiffe_id = cert.and_then(|c| c.spiffe_id()).map(|s| s.as_str());
    let fingerprint = cert.map(|c| tracing::field::display(c.fingerprint_sha256()));
    let rule = rejection.deny_reason().map(tracing::field::display);
    // One limiter per kind of line, so that a flood of one kind cannot hide the first of another.
    static LIMITS: [Limiter; 6] = [
        Limiter::new(),
        Limiter::new(),
        Limiter::new(),
        Limiter::new(),
        Limiter::new(),
        Limiter::new(),
    ];
    let (message, limiter) = match (rejection.kind(), shadow) {
        (RejectionKind::CertificateExpired | RejectionKind::CertificateNotYetValid, false) => (
            "request rejected: client certificate outside its validity period",
            &LIMITS[4],
        ),
        (RejectionKind::CertificateExpired | RejectionKind::CertificateNotYetValid, true) => (
            "shadow mode: would reject, client certificate outside its validity period",
            &LIMITS[5],
        ),
        (RejectionKind::MissingCertificate, false) => (
            "request rejected: no verified client certificate",
            &LIMITS[0],
        ),
        (RejectionKind::MissingCertificate, true) => (
            "shadow mode: would reject, no verified client certificate",
            &LIMITS[1],
        ),
        (_, false) => (
            "request rejected: client certificate denied by policy",
            &LIMITS[2],
        ),
        (_, true) => (
            "shadow mode: would reject, client certificate denied by policy",
            &LIMITS[3],
        ),
    };
    let Some(suppressed) = limiter.admit() else {
        return;
    };
    tracing::warn!(
        target: "mtls_tower::reject",
        suppressed,
        status = rejection.status().as_u16(),
        shadow,
        method,
        path,
        subject,
        spiffe_id,
        fingerprint,
        rule,
        "{message}"
    );
}

pin_project! {
    /// The response future of this crate's middleware ([`RequireClientCert`],
    /// [`TrustedProxy`](crate::TrustedProxy), `grpc::GrpcTimeout`): the inner service's
    /// future, or a response the middleware answered with itself.
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Future {
            #[pin]
            future: F,
        },
        Rejected {
            response: Option<Response<B>>,
        },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn future(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Future { future },
        }
    }

    pub(crate) fn rejected(response: Response<B>) -> Self {
        ResponseFuture {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Future { future } => future.poll(cx),
            KindProj::Rejected { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polling a completed future breaks the `Future` contract (as in std and tower-http).
                None => panic!("mtls_tower::ResponseFuture polled after completion"),
            },
        }
    }
}
