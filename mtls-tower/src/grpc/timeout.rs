//! [`GrpcTimeoutLayer`]: the client's `grpc-timeout` deadline, and an optional server bound, for
//! tonic services served by [`serve`](crate::serve).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, HeaderName, Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

use crate::layer::ResponseFuture;

/// The request header that carries a gRPC client's deadline.
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Ends a gRPC call that runs past its deadline with `DEADLINE_EXCEEDED`: the deadline the client
/// sent in `grpc-timeout`, bounded by [`max`](Self::max) when set. For tonic services served by
/// [`serve`](crate::serve), which, unlike tonic's own `Server`, does not read `grpc-timeout`.
///
/// - tonic's `Server` enforces the same deadlines but ends a late call with `CANCELLED` ("Timeout
///   expired"); this layer answers `DEADLINE_EXCEEDED`, the code gRPC defines for it. Alerts or
///   retry policies that match tonic's `CANCELLED` need changing.
/// - The deadline covers the service's future, up to the response headers; a call still streaming
///   its response body past it is not cut (as in tonic's `Server`). The late call's future is
///   dropped, so its work stops.
/// - A malformed `grpc-timeout` is answered with `INTERNAL` ("malformed grpc-timeout") and the
///   service is not called, as grpc-go answers it (tonic's `Server` ignores such a header). The
///   format is read strictly, more so than grpc-go: 1 to 8 ASCII digits (no sign) and one of the
///   units `H M S m u n`, in a single header.
/// - Without a `grpc-timeout` and without `max`, calls are not bounded.
///
/// Every response it makes is a gRPC one (HTTP 200 and a `grpc-status`): put it around gRPC routes
/// only, not around REST routes merged into the same router, where a timed-out request would look
/// like a `200 OK`. Put it inside the [`RequireClientCertLayer`](crate::RequireClientCertLayer):
/// a request is then authenticated before anything else (no timer, no answer about its header,
/// for a client without a certificate), and as the certificate check does not wait, the deadline
/// still covers the whole call.
///
/// ```
/// use std::time::Duration;
/// use http::{Request, Response};
/// use mtls_tower::grpc::GrpcTimeoutLayer;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// type Body = tonic::body::Body;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// // Stands in for a tonic `Routes` whose method takes a minute.
/// let routes = service_fn(|_req: Request<Body>| async {
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
/// });
/// let app = GrpcTimeoutLayer::new().max(Duration::from_secs(30)).layer(routes);
///
/// let req = Request::post("/greeter.Greeter/SayHello")
///     .header("grpc-timeout", "20m") // the client allows 20 milliseconds
///     .body(Body::empty())?;
/// let res = app.oneshot(req).await?;
/// assert_eq!(res.headers()["grpc-status"], "4"); // DEADLINE_EXCEEDED
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct GrpcTimeoutLayer {
    max: Option<Duration>,
}

impl GrpcTimeoutLayer {
    /// Enforces the deadline each client sends; calls without one are not bounded.
    pub fn new() -> Self {
        GrpcTimeoutLayer { max: None }
    }

    /// Bounds every call to `max`, whatever the client asks for (tonic's `Server::timeout`): the
    /// deadline is the shorter of `max` and the client's `grpc-timeout`.
    pub fn max(self, max: Duration) -> Self {
        GrpcTimeoutLayer { max: Some(max) }
    }
}

impl<S> Layer<S> for GrpcTimeoutLayer {
    type Service = GrpcTimeout<S>;

    fn layer(&self, inner: S) -> GrpcTimeout<S> {
        GrpcTimeout {
            inner,
            max: self.max,
        }
    }
}

/// The service made by [`GrpcTimeoutLayer`].
#[derive(Debug, Clone)]
pub struct GrpcTimeout<S> {
    inner: S,
    max: Option<Duration>,
}

impl<S> GrpcTimeout<S> {
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcTimeout<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<TimeoutFuture<S::Future>, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let client = match client_timeout(req.headers()) {
            Ok(client) => client,
            Err(MalformedTimeout) => {
                tracing::debug!(
                    target: "mtls_tower::grpc",
                    "call refused: malformed grpc-timeout header"
                );
                return ResponseFuture::rejected(
                    Status::internal("malformed grpc-timeout").into_http(),
                );
            }
        };
        // The shorter of the two, if either is set.
        let deadline = client.into_iter().chain(self.max).min();
        ResponseFuture::future(TimeoutFuture {
            future: self.inner.call(req),
            sleep: deadline.map(tokio::time::sleep),
        })
    }
}

pin_project! {
    /// A call under [`GrpcTimeout`]: the service's future, ended with `DEADLINE_EXCEEDED` when
    /// its deadline passes first.
    pub struct TimeoutFuture<F> {
        #[pin]
        future: F,
        #[pin]
        sleep: Option<Sleep>,
    }
}

impl<F> fmt::Debug for TimeoutFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutFuture")
            .field("deadline", &self.sleep.as_ref().map(|s| s.deadline()))
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The service first: a response ready at the deadline is still delivered.
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(output);
        }
        match this.sleep.as_pin_mut().map(|sleep| sleep.poll(cx)) {
            Some(Poll::Ready(())) => {
                tracing::debug!(target: "mtls_tower::grpc", "call ended: deadline exceeded");
                // Returning ends the call: its owner drops this future, and the service's with it.
                Poll::Ready(Ok(
                    Status::deadline_exceeded("deadline exceeded").into_http()
                ))
            }
            _ => Poll::Pending,
        }
    }
}

/// A `grpc-timeout` header that is not in the gRPC format.
#[derive(Debug, PartialEq, Eq)]
struct MalformedTimeout;

/// The client's deadline from `grpc-timeout`, per the gRPC over HTTP/2 protocol: `TimeoutValue
/// TimeoutUnit`, a positive integer of at most 8 ASCII digits and one of `H M S m u n`.
/// `Ok(None)` without the header.
fn client_timeout(headers: &HeaderMap) -> Result<Option<Duration>, MalformedTimeout> {
    let mut values = headers.get_all(GRPC_TIMEOUT).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    // Two deadlines: which one would the client mean? Refuse rather than guess.
    if values.next().is_some() {
        return Err(MalformedTimeout);
    }
    let bytes = value.as_bytes();
    let Some((&unit, digits)) = bytes.split_last() else {
        return Err(MalformedTimeout);
    };
    // `u64::from_str` would also take a leading `+`; the protocol allows digits only. Eight
    // digits at most, so no unit below can overflow (99,999,999 hours fits a `Duration`).
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(MalformedTimeout);
    }
    let value = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    let duration = match unit {
        b'H' => Duration::from_secs(value * 3600),
        b'M' => Duration::from_secs(value * 60),
        b'S' => Duration::from_secs(value),
        b'm' => Duration::from_millis(value),
        b'u' => Duration::from_micros(value),
        b'n' => Duration::from_nanos(value),
        _ => return Err(MalformedTimeout),
    };
    Ok(Some(duration))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tower::{service_fn, ServiceExt};

    type Body = tonic::body::Body;

    fn parse(value: &str) -> Result<Option<Duration>, MalformedTimeout> {
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_TIMEOUT, value.parse().unwrap());
        client_timeout(&headers)
    }

    #[test]
    fn every_unit_of_the_protocol_is_read() {
        assert_eq!(parse("2H"), Ok(Some(Duration::from_secs(7200))));
        assert_eq!(parse("3M"), Ok(Some(Duration::from_secs(180))));
        assert_eq!(parse("4S"), Ok(Some(Duration::from_secs(4))));
        assert_eq!(parse("250m"), Ok(Some(Duration::from_millis(250))));
        assert_eq!(parse("7u"), Ok(Some(Duration::from_micros(7))));
        assert_eq!(
            parse("99999999n"),
            Ok(Some(Duration::from_nanos(99_999_999)))
        );
        assert_eq!(parse("0m"), Ok(Some(Duration::ZERO)));
    }

    #[test]
    fn the_largest_value_does_not_overflow() {
        assert_eq!(
            parse("99999999H"),
            Ok(Some(Duration::from_secs(99_999_999 * 3600)))
        );
    }

    #[test]
    fn values_outside_the_protocol_are_malformed() {
        for bad in [
            "",
            "S",
            "5",
            "123456789S",
            "+5S",
            "-5S",
            " 5S",
            "5 S",
            "5s",
            "5h",
            "5Ss",
            "1.5S",
            "５S",
            "0x5S",
        ] {
            assert_eq!(parse(bad), Err(MalformedTimeout), "{bad:?}");
        }
    }

    #[test]
    fn bytes_outside_ascii_are_malformed() {
        for bad in [&b"5\xff"[..], b"\x80S", b"5\tS"] {
            let mut headers = HeaderMap::new();
            headers.insert(GRPC_TIMEOUT, http::HeaderValue::from_bytes(bad).unwrap());
            assert_eq!(client_timeout(&headers), Err(MalformedTimeout), "{bad:?}");
        }
    }

    #[test]
    fn two_timeout_headers_are_malformed() {
        let mut headers = HeaderMap::new();
        headers.append(GRPC_TIMEOUT, "1S".parse().unwrap());
        headers.append(GRPC_TIMEOUT, "1S".parse().unwrap());
        assert_eq!(client_timeout(&headers), Err(MalformedTimeout));
    }

    #[test]
    fn no_header_is_no_client_deadline() {
        assert_eq!(client_timeout(&HeaderMap::new()), Ok(None));
    }

    /// A service that answers after `delay` and records whether its future was dropped unfinished.
    fn slow(
        delay: Duration,
        dropped: Arc<AtomicBool>,
    ) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone
    {
        service_fn(move |_req: Request<Body>| {
            let guard = DropFlag {
                dropped: dropped.clone(),
                finished: false,
            };
            async move {
                // The whole guard into the future (a field assignment alone would capture only
                // the field, and the guard would drop before the future runs).
                let mut guard = guard;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                guard.finished = true;
                Ok(Response::new(Body::empty()))
            }
        })
    }

    /// Sets `dropped` when dropped before `finished`.
    struct DropFlag {
        dropped: Arc<AtomicBool>,
        finished: bool,
    }

    impl Drop for DropFlag {
        fn drop(&mut self) {
            if !self.finished {
                self.dropped.store(true, Ordering::SeqCst);
            }
        }
    }

    fn request(timeout: Option<&str>) -> Request<Body> {
        let mut req = Request::post("/greeter.Greeter/SayHello");
        if let Some(timeout) = timeout {
            req = req.header(GRPC_TIMEOUT, timeout);
        }
        req.body(Body::empty()).unwrap()
    }

    async fn call(layer: GrpcTimeoutLayer, delay: Duration, timeout: Option<&str>) -> Outcome {
        let dropped = Arc::new(AtomicBool::new(false));
        let started = tokio::time::Instant::now();
        let res = layer
            .layer(slow(delay, dropped.clone()))
            .oneshot(request(timeout))
            .await
            .unwrap();
        Outcome {
            grpc_status: res
                .headers()
                .get("grpc-status")
                .map(|v| v.to_str().unwrap().to_owned()),
            message: res
                .headers()
                .get("grpc-message")
                .map(|v| v.to_str().unwrap().to_owned()),
            took: started.elapsed(),
            cancelled: dropped.load(Ordering::SeqCst),
        }
    }

    #[derive(Debug)]
    struct Outcome {
        grpc_status: Option<String>,
        message: Option<String>,
        took: Duration,
        cancelled: bool,
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_call_past_the_client_deadline_is_deadline_exceeded_and_dropped() {
        let outcome = call(GrpcTimeoutLayer::new(), 10 * SECOND, Some("200m")).await;
        assert_eq!(outcome.grpc_status.as_deref(), Some("4"), "{outcome:?}");
        assert_eq!(outcome.message.as_deref(), Some("deadline%20exceeded"));
        assert_eq!(outcome.took, Duration::from_millis(200));
        assert!(outcome.cancelled, "the service's future was not dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_within_the_client_deadline_gets_its_response() {
        let outcome = call(GrpcTimeoutLayer::new(), SECOND, Some("2S")).await;
        assert_eq!(outcome.grpc_status, None, "{outcome:?}");
        assert_eq!(outcome.took, SECOND);
        assert!(!outcome.cancelled);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_client_deadline_or_max_the_call_is_not_bounded() {
        let outcome = call(GrpcTimeoutLayer::new(), 3600 * SECOND, None).await;
        assert_eq!(outcome.grpc_status, None, "{outcome:?}");
        assert_eq!(outcome.took, 3600 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn max_bounds_a_call_without_a_client_deadline() {
        let layer = GrpcTimeoutLayer::new().max(SECOND);
        let outcome = call(layer, 10 * SECOND, None).await;
        assert_eq!(outcome.grpc_status.as_deref(), Some("4"), "{outcome:?}");
        assert_eq!(outcome.took, SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn max_bounds_a_longer_client_deadline() {
        let layer = GrpcTimeoutLayer::new().max(SECOND);
        let outcome = call(layer, 10 * SECOND, Some("1H")).await;
        assert_eq!(outcome.grpc_status.as_deref(), Some("4"), "{outcome:?}");
        assert_eq!(outcome.took, SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_client_deadline_wins_over_max() {
        let layer = GrpcTimeoutLayer::new().max(10 * SECOND);
        let outcome = call(layer, 60 * SECOND, Some("500m")).await;
        assert_eq!(outcome.grpc_status.as_deref(), Some("4"), "{outcome:?}");
        assert_eq!(outcome.took, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_malformed_deadline_is_internal_and_the_service_is_not_called() {
        let called = Arc::new(AtomicBool::new(false));
        let service = {
            let called = called.clone();
            service_fn(move |_req: Request<Body>| {
                called.store(true, Ordering::SeqCst);
                async { Ok::<_, Infallible>(Response::new(Body::empty())) }
            })
        };
        let res = GrpcTimeoutLayer::new()
            .max(SECOND)
            .layer(service)
            .oneshot(request(Some("+5S")))
            .await
            .unwrap();
        assert_eq!(res.headers()["grpc-status"], "13"); // INTERNAL
        assert_eq!(res.headers()["grpc-message"], "malformed%20grpc-timeout");
        assert!(!called.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_client_deadline_and_an_unbounded_max_are_timers_like_any_other() {
        // 99,999,999 hours and `Duration::MAX` are past what tokio's timer can hold; it falls back
        // to a far-future deadline, and the call is answered.
        let layer = GrpcTimeoutLayer::new().max(Duration::MAX);
        let outcome = call(layer, SECOND, Some("99999999H")).await;
        assert_eq!(outcome.grpc_status, None, "{outcome:?}");
        assert_eq!(outcome.took, SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_deadline_still_delivers_a_response_that_is_ready_at_once() {
        let outcome = call(GrpcTimeoutLayer::new(), Duration::ZERO, Some("0n")).await;
        assert_eq!(outcome.grpc_status, None, "{outcome:?}");
    }
}
